"""Ring (a): quotas, language temperature, the anchor share and the mix of datasets."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from actors.dataflow.build_pipeline import MixRanked, mix_rows
from engine.builders.groups import BUILT_SCHEMA
from engine.builders.mixing import apportion, feasible_total, language_quotas, temperature_weights
from engine.config import BuildConfig, ConfigError, MixConfig, parse_config
from tests.local_build import LocalDataset, build_and_read
from tests.unit.test_builders import make_rows


def rows(dataset: str, counts: dict[str, int]) -> list[dict]:
    return [
        {"id": f"{dataset}-{lang}-{i}", "lang": lang, "builder": dataset}
        for lang, n in counts.items()
        for i in range(n)
    ]


def mix_datasets(
    datasets: dict[str, list[dict]],
    ratios: dict[str, float],
    size: int | None,
    anchor_share: float | None,
    temperature: float,
    seed: int,
) -> list[dict]:
    """The build's mix (actors.dataflow.build_pipeline.mix_rows) of these datasets' training rows, in one process."""
    examples = [
        {**row, "dataset": name, "split": "train", "copy": 0} for name, named in datasets.items() for row in named
    ]
    table = MixRanked(seed)(pa.Table.from_pylist(examples, schema=BUILT_SCHEMA))
    tally = Counter((row["dataset"], "train", row["lang"], row["builder"], None, False) for row in examples)
    mix = MixConfig(ratios=ratios, size=size, anchor_share=anchor_share, temperature=temperature)
    mixed = mix_rows(LocalDataset([table]), tally, list(datasets), mix)
    return [row for batch in mixed.iter_batches(batch_format="pyarrow", batch_size=None) for row in batch.to_pylist()]


@pytest.mark.parametrize(
    "total, weights, expected",
    [
        (10, {"a": 1, "b": 1}, {"a": 5, "b": 5}),
        (10, {"a": 2, "b": 1, "c": 1}, {"a": 5, "b": 3, "c": 2}),  # remainders: b and c tie at .5, b wins by key
        (7, {"a": 1, "b": 0}, {"a": 7, "b": 0}),
        (0, {"a": 1}, {"a": 0}),
        (3, {"a": 0, "b": 0}, {"a": 0, "b": 0}),
        (100, {"x": 0.9, "y": 0.1}, {"x": 90, "y": 10}),
    ],
)
def test_apportion_adds_up_exactly(total, weights, expected):
    assert apportion(total, weights) == expected


@pytest.mark.parametrize(
    "available, weights, expected",
    [
        ({"a": 10, "b": 3}, {"a": 1, "b": 1}, 6),
        ({"a": 7, "b": 100}, {"a": 1, "b": 3}, 28),
        ({"a": 5, "b": 5}, {"a": 1, "b": 0}, 5),
        ({"a": 0}, {"a": 1}, 0),
    ],
)
def test_feasible_total_is_the_largest_total_at_the_exact_ratios_that_fits(available, weights, expected):
    total = feasible_total(available, weights)
    assert total == expected
    assert all(q <= available[k] for k, q in apportion(total, weights).items())


def test_temperature_one_keeps_natural_sizes_and_high_temperature_flattens():
    counts = {"fr": 90, "de": 10}
    assert apportion(100, temperature_weights(counts, 1.0)) == {"fr": 90, "de": 10}
    flat = apportion(100, temperature_weights(counts, 100.0))
    assert 48 <= flat["de"] <= 52
    between = apportion(100, temperature_weights(counts, 2.0))  # 90^.5 : 10^.5 = 3 : 1
    assert between == {"fr": 75, "de": 25}


def test_anchor_share_fixes_english_and_the_temperature_splits_the_rest():
    quotas = language_quotas({"en": 100, "fr": 50, "de": 10}, 100, anchor_share=0.9, temperature=1.0)
    assert quotas == {"en": 90, "fr": 8, "de": 2}
    assert language_quotas({"en": 10, "fr": 10}, 40, anchor_share=None, temperature=1.0) == {"en": 20, "fr": 20}
    # Without other languages the anchor share cannot apply: all rows are English.
    assert language_quotas({"en": 10}, 10, anchor_share=0.5, temperature=1.0) == {"en": 10}


def test_mix_follows_the_dataset_ratios():
    datasets = {"a": rows("a", {"fr": 100}), "b": rows("b", {"fr": 100})}
    mixed = mix_datasets(datasets, {"a": 3, "b": 1}, 80, None, 1.0, seed=0)
    assert Counter(row["builder"] for row in mixed) == {"a": 60, "b": 20}
    assert len({row["id"] for row in mixed}) == 80, "no repeats while rows last"


def test_mix_without_a_size_takes_the_most_the_ratios_allow_without_repeats():
    datasets = {"a": rows("a", {"fr": 100}), "b": rows("b", {"fr": 30}), "empty": []}
    mixed = mix_datasets(datasets, {}, None, None, 1.0, seed=0)
    assert Counter(row["builder"] for row in mixed) == {"a": 30, "b": 30}


def test_mix_anchor_share_and_upsampling_of_small_languages():
    datasets = {"a": rows("a", {"en": 200, "fr": 90, "sw": 10})}
    mixed = mix_datasets(datasets, {}, 200, 0.5, 100.0, seed=0)
    by_lang = Counter(row["lang"] for row in mixed)
    assert by_lang["en"] == 100
    assert 48 <= by_lang["sw"] <= 52, "a flat temperature gives sw about half of the rest"
    sw_ids = [row["id"] for row in mixed if row["lang"] == "sw"]
    assert len(set(sw_ids)) == 10, "all 10 sw rows, then repeats"


def test_mix_is_deterministic_and_moves_with_the_seed():
    datasets = {"a": rows("a", {"fr": 50, "de": 50}), "b": rows("b", {"fr": 40})}
    first = [row["id"] for row in mix_datasets(datasets, {"a": 1, "b": 1}, 60, None, 1.0, seed=3)]
    assert first == [row["id"] for row in mix_datasets(datasets, {"a": 1, "b": 1}, 60, None, 1.0, seed=3)]
    assert first != [row["id"] for row in mix_datasets(datasets, {"a": 1, "b": 1}, 60, None, 1.0, seed=4)]


def test_built_mix_draws_training_rows_only_and_keeps_every_validation_row_once(tmp_path):
    config = BuildConfig(
        builders=("sphinx", "transllm", "crossin"), validation_share=0.3, mix={"ratios": {"sphinx": 1, "transllm": 1}}
    )
    _, built = build_and_read(make_rows(), config, tmp_path)
    mix = built["mix"]
    train_ids = {row["id"] for name in ("sphinx", "transllm") for row in built[name]["train"]}
    assert {row["id"] for row in mix["train"]} <= train_ids
    assert {row["builder"] for row in mix["train"]} == {"sphinx", "transllm"}
    expected = [row["id"] for name in ("sphinx", "transllm") for row in built[name]["validation"]]
    assert sorted(row["id"] for row in mix["validation"]) == sorted(expected)


def test_mix_can_be_turned_off(tmp_path):
    summary, built = build_and_read(make_rows(), BuildConfig(builders=("transllm",), mix={"enabled": False}), tmp_path)
    assert "mix" not in built and "mix" not in summary["datasets"]


@pytest.mark.parametrize(
    "build, message",
    [
        ({"sphinx": {"shots": 6}}, "build.sphinx.shots"),
        ({"sphinx": {"shot": 2}}, "build.sphinx.shot: unknown key"),
        ({"builders": ["sphinx", "alpaca"]}, "build.builders"),
        ({"crossin": {"modes": {"en_x": 1, "x_y": 1}}}, "unknown CrossIn modes"),
        ({"builders": ["sphinx"], "mix": {"ratios": {"crossin": 1}}}, "not built"),
        ({"validation_share": 1.0}, "build.validation_share"),
        ({"mix": {"temperature": 0}}, "build.mix.temperature"),
    ],
)
def test_build_config_rejects_what_it_cannot_use(build, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({"seeds": {"paths": ["s.jsonl"]}, "languages": {"targets": ["fr"]}, "build": build})


def test_build_is_off_by_default_in_a_run_config():
    config = parse_config({"seeds": {"paths": ["s.jsonl"]}, "languages": {"targets": ["fr"]}})
    assert config.build.enabled is False and config.build.sphinx.shots == 2
