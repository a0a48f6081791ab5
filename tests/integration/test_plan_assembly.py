"""The plan's task rows are assembled inside the pipeline (actors/plan_source.py): that
step must run even when the generation pool reserves every CPU of the cluster
(compute.actors x compute.num_cpus_per_actor == ray.num_cpus), where a 1-CPU assembly task
waited forever for a core that the pool's actors held."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import pyarrow as pa, ray
    from engine.config import parse_config
    from engine.inputs.plan import build_task_plan
    from engine.inputs.seeds import load_seed_table
    from engine.languages import resolve_languages
    from jobs.synthesize import translate_dataset

    class EchoActor:
        # A stand-in for the translate actor: no model, the pool's resources are what matter.
        def __init__(self, config_data):
            pass

        def __call__(self, batch):
            return batch

    ray.init(num_cpus=2, include_dashboard=False)
    config = parse_config({"seeds": {"paths": ["data/seeds/english_seeds.jsonl"]}, "languages": {"targets": ["fr", "es"]},
                           "compute": {"actors": 2, "num_cpus_per_actor": 1, "batch_size": 4}, "ray": {"num_cpus": 2}})
    seeds, _ = load_seed_table(config.seeds.paths)
    plan = build_task_plan(seeds, resolve_languages(["fr", "es"]), "all", {"high": 1, "mid": 1, "low": 1}, 0, "sphinx", "v1")
    rows = sum(t.num_rows for t in translate_dataset(config, plan, EchoActor).iter_batches(batch_size=None, batch_format="pyarrow"))
    print("ROWS", rows, plan.num_rows)
    """
)


def test_assembly_runs_when_the_pool_takes_every_cpu():
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as error:
        raise AssertionError("the pipeline hung: plan assembly found no free CPU beside a pool that takes them all") from error
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("ROWS")][-1]
    _, rows, planned = line.split()
    assert int(rows) == int(planned) > 0
