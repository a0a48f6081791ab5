"""Ring (a): loading, overriding, validating and redacting the run config."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from engine.config import Config, ConfigError, apply_overrides, load_config, parse_config, redacted

REPO = Path(__file__).resolve().parents[2]

MINIMAL = {"seeds": {"paths": ["seeds.jsonl"]}, "languages": {"targets": ["fr"]}}


def write_config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def with_section(section: str, values: dict) -> dict:
    return {**MINIMAL, section: {**MINIMAL.get(section, {}), **values}}


def config_error(tmp_path: Path, data: dict, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, data), overrides)
    return str(caught.value)


def test_minimal_config_loads_with_defaults(tmp_path):
    config = load_config(write_config(tmp_path, MINIMAL))
    assert isinstance(config, Config)
    assert config.seeds.paths == ("seeds.jsonl",)
    assert config.languages.targets == ("fr",)
    assert config.plan.quotas == {"high": 100_000, "mid": 50_000, "low": 25_000}
    assert config.validation.max_attempts == 2


def test_demo_config_loads():
    config = load_config(REPO / "configs" / "demo.yaml")
    assert config.run.name == "demo"
    assert config.languages.targets == ("fr", "es", "de", "pt")
    assert config.mt_languages() == ("pt",) and config.translator_for("fr") == "llm"
    assert config.model.engine_kwargs["max_model_len"] == 4096


def test_config_is_frozen(tmp_path):
    config = load_config(write_config(tmp_path, MINIMAL))
    with pytest.raises(ValidationError, match="frozen"):
        config.compute.actors = 5


@pytest.mark.parametrize(
    "data, dotted",
    [
        ({**MINIMAL, "langauges": {"targets": ["fr"]}}, "langauges"),
        (with_section("validation", {"langid_treshold": 0.3}), "validation.langid_treshold"),
        (with_section("compute", {"actor": 2}), "compute.actor"),
        (with_section("seeds", {"on_bad_records": "skip"}), "seeds.on_bad_records"),
        (with_section("run", {"output": "x"}), "run.output"),
    ],
)
def test_unknown_key_anywhere_names_its_dotted_path(tmp_path, data, dotted):
    message = config_error(tmp_path, data)
    assert f"{dotted}: unknown key" in message
    assert str(tmp_path / "config.yaml") in message


def test_missing_required_section_is_an_error(tmp_path):
    message = config_error(tmp_path, {"seeds": {"paths": ["x.jsonl"]}})
    assert "languages" in message


@pytest.mark.parametrize(
    "text, words",
    [
        ("seeds: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "mapping at the top level"),
    ],
)
def test_unreadable_yaml_is_a_config_error(tmp_path, text, words):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_apply_and_parse_values_as_yaml(tmp_path):
    path = write_config(tmp_path, MINIMAL)
    config = load_config(
        path, ["compute.actors=3", "languages.targets=[fr, de]", "model.structured_output=false", "run.name=nightly"]
    )
    assert config.compute.actors == 3
    assert config.languages.targets == ("fr", "de")
    assert config.model.structured_output is False
    assert config.run.name == "nightly"


def test_override_creates_a_missing_section(tmp_path):
    config = load_config(write_config(tmp_path, MINIMAL), ["plan.seed=7"])
    assert config.plan.seed == 7


def test_later_override_wins(tmp_path):
    config = load_config(write_config(tmp_path, MINIMAL), ["compute.actors=2", "compute.actors=4"])
    assert config.compute.actors == 4


def test_apply_overrides_leaves_unrelated_keys():
    data = {"compute": {"actors": 1, "batch_size": 8}}
    assert apply_overrides(data, ["compute.actors=2"]) == {"compute": {"actors": 2, "batch_size": 8}}


@pytest.mark.parametrize(
    "override, dotted",
    [
        ("compute.actors=0", "compute.actors"),
        ("compute.actors=many", "compute.actors"),
        ("validation.langid_threshold=1.5", "validation.langid_threshold"),
        ("plan.mode=sometimes", "plan.mode"),
        ("validation.length_ratio=[3.0, 0.3]", "validation"),
        ("compute.actorz=2", "compute.actorz"),
    ],
)
def test_bad_override_value_is_validated_and_named(tmp_path, override, dotted):
    message = config_error(tmp_path, MINIMAL, [override])
    assert dotted in message


@pytest.mark.parametrize("override", ["compute.actors", "=3", "compute.=3", ".actors=3", "compute..actors=3", ""])
def test_malformed_override_string(tmp_path, override):
    message = config_error(tmp_path, MINIMAL, [override])
    assert "key.path=value" in message


def test_override_into_a_value_that_is_not_a_section(tmp_path):
    message = config_error(tmp_path, with_section("run", {"name": "demo"}), ["run.name.first=x"])
    assert "'name' is not a section" in message


def test_override_value_that_is_not_yaml(tmp_path):
    message = config_error(tmp_path, MINIMAL, ["languages.targets=[fr, de"])
    assert "languages.targets" in message and "not valid YAML" in message


@pytest.mark.parametrize(
    "targets, code, suggestion",
    [
        (["fr", "germn"], "germn", "de"),
        (["frr"], "frr", "fr"),
        (["french"], "french", "fr"),
    ],
)
def test_unknown_language_names_the_code_and_a_suggestion(tmp_path, targets, code, suggestion):
    message = config_error(tmp_path, with_section("languages", {"targets": targets}))
    assert "languages.targets" in message
    assert repr(code) in message
    assert f"did you mean {suggestion!r}" in message


@pytest.mark.parametrize("targets", [[], ["fr", "fr"], ["en"]])
def test_unusable_target_lists(tmp_path, targets):
    message = config_error(tmp_path, with_section("languages", {"targets": targets}))
    assert "languages.targets" in message


def test_default50_expands():
    config = parse_config({**MINIMAL, "languages": {"targets": "default50"}})
    assert len(config.languages.targets) == 50
    assert "en" not in config.languages.targets


@pytest.mark.parametrize(
    "quotas, words",
    [
        ({"high": 1, "mid": 1}, "missing ['low']"),
        ({"high": 1, "mid": 1, "low": 1, "tiny": 1}, "unknown ['tiny']"),
        ({"high": 1, "mid": -1, "low": 1}, ">= 0"),
        ({"high": "lots", "mid": 1, "low": 1}, "plan.quotas.high"),
    ],
)
def test_quota_tiers_are_validated(tmp_path, quotas, words):
    message = config_error(tmp_path, with_section("plan", {"quotas": quotas}))
    assert "plan.quotas" in message
    assert words in message


def test_zero_quota_is_allowed():
    config = parse_config(with_section("plan", {"quotas": {"high": 0, "mid": 0, "low": 0}}))
    assert config.plan.quotas["high"] == 0


def test_parse_config_names_its_source():
    with pytest.raises(ConfigError, match=r"<dict>"):
        parse_config({})


def redacted_kwargs(engine_kwargs: dict) -> dict:
    return redacted(parse_config(with_section("model", {"engine_kwargs": engine_kwargs})))["model"]["engine_kwargs"]


@pytest.mark.parametrize("key", ["api_key", "apiKey", "hf_token", "client_secret", "password", "db_passwd", "api_keys"])
def test_redacted_hides_secret_looking_values(key):
    assert redacted_kwargs({key: "sk-123"}) == {key: "***"}


@pytest.mark.parametrize(
    "key, value",
    [
        ("api_key_env", "OPENAI_API_KEY"),  # names an environment variable: not a secret
        ("tokenizer", "/models/tok"),
        ("max_num_batched_tokens", 4096),
        ("api_key", None),  # nothing to hide
        ("api_key", ""),
    ],
)
def test_redacted_keeps_values_that_are_not_secrets(key, value):
    assert redacted_kwargs({key: value}) == {key: value}


def test_redacted_keeps_the_rest_of_the_config():
    config = load_config(REPO / "configs" / "demo.yaml")
    data = redacted(config)
    assert data["generation"]["max_tokens"] == config.generation.max_tokens
    assert data["languages"]["targets"] == ["fr", "es", "de", "pt"]
    assert data["run"]["name"] == "demo"
    assert "***" not in yaml.safe_dump(data)
