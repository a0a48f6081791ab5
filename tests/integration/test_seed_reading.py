"""Seeds read by Ray Data (actors/dataflow/seeds.py): the same seeds, bad records and messages as
the sequential reader, the text left in the object store, and a driver whose memory does not
grow with the seeds' text."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.inputs.seeds import DEDUP_KEY, LANGUAGE_VERDICT, SeedError, load_seed_table

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "data/seeds/english_seeds.jsonl"


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def as_tuples(bad):
    return [(b.id, b.source, b.reason) for b in bad]


def messy_file(tmp_path: Path) -> Path:
    good = [
        {"id": f"g{i}", "instruction": f"Explain step {i} of making bread at home.", "output": "Knead it."}
        for i in range(30)
    ]
    lines = [json.dumps(record).encode() for record in good]
    lines[3:3] = [b"{broken", b"", json.dumps({"id": "g1", "instruction": "Again.", "output": "x"}).encode()]
    lines[10:10] = [
        b'{"id": "u", "instruction": "caf\xe9", "output": "o"}',
        json.dumps({"instruction": "No id.", "output": "y"}).encode(),
    ]
    lines.append(
        json.dumps(
            {
                "id": "fr",
                "instruction": "Expliquez pourquoi le ciel est bleu pendant la journée.",
                "output": "Diffusion.",
            },
            ensure_ascii=False,
        ).encode()
    )
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("piece_bytes", [None, 97])
def test_ray_data_reads_what_the_sequential_reader_reads(ray_local, tmp_path, piece_bytes):
    from actors.dataflow.seeds import read_seed_view

    path = messy_file(tmp_path)
    table, bad = load_seed_table([str(path)], "skip")
    view, view_bad = read_seed_view([str(path)], "skip", piece_bytes=piece_bytes)
    assert as_tuples(view_bad) == as_tuples(bad) and len(bad) == 3
    assert view.num_rows == table.num_rows
    assert view.column("id").to_pylist() == table.column("id").to_pylist()
    picks = np.array([5, 0, 17, 5, table.num_rows - 1])
    assert view.take(picks).equals(table.take(picks))
    assert view.to_pylist() == table.to_pylist()
    with pytest.raises(SeedError, match=r"seeds.jsonl:4: malformed JSON"):
        read_seed_view([str(path)], piece_bytes=piece_bytes)
    limited, _ = read_seed_view([str(path)], "skip", limit=4, piece_bytes=piece_bytes)
    assert limited.column("id").to_pylist() == load_seed_table([str(path)], "skip", limit=4)[0].column("id").to_pylist()


def test_language_verdicts_and_dedup_keys_come_from_the_workers(ray_local, tmp_path):
    from actors.dataflow.seeds import read_seed_view
    from actors.engines.langid import FastTextLangId
    from engine.selection.dedup import text_key
    from engine.text.checks import seed_language_reason

    path = messy_file(tmp_path)
    table, _ = load_seed_table([str(path)], "skip")
    view, _ = read_seed_view([str(path)], "skip", language_model="lid176", keys=True)
    langid = FastTextLangId()
    expected = [seed_language_reason(text, langid) for text in table.column("instruction").to_pylist()]
    assert view.column(LANGUAGE_VERDICT).to_pylist() == expected and "seed_not_english:fr" in expected
    keys = [text_key(i, x) for i, x in zip(table.column("instruction").to_pylist(), table.column("input").to_pylist())]
    assert view.column(DEDUP_KEY).to_pylist() == keys
    kept = view.filter(np.array([reason is None for reason in expected])).append_column(
        "cluster", np.arange(view.num_rows - 1)
    )
    assert kept.num_rows == view.num_rows - 1 and kept.take([2]).column("cluster").to_pylist() == [2]
    texts = kept.text_dataset().take_all()
    assert sorted(row["pos"] for row in texts) == list(range(kept.num_rows))
    by_pos = {row["pos"]: row for row in texts}
    assert by_pos[0]["id"] == kept.column("id")[0].as_py()


@pytest.mark.parametrize(
    "select", [{}, {"select": {"by": "clusters", "clusters": 8}, "dedup": {"exact": True, "near_threshold": 0.95}}]
)
def test_the_plan_is_the_same_from_either_reader(ray_local, tmp_path, select):
    """The job's plan (Ray Data reader; language check, dedup keys and the clusters' texts on the
    workers) is the plan of the sequential reader, fingerprint and task rows alike."""
    from actors.dataflow.seeds import SeedReader, SeedSelector
    from actors.engines.langid import FastTextLangId
    from engine.config import parse_config
    from engine.inputs.plan import plan_fingerprint
    from engine.recipes import plan_run

    def config(name):
        return parse_config(
            {
                "seeds": {"paths": [str(SEEDS)]},
                "languages": {"targets": ["fr", "de", "sw"]},
                "plan": {"quotas": {"high": 30, "mid": 12, "low": 5}, "seed": 3},
                "run": {"output_dir": str(tmp_path / name)},
                **select,
            }
        )

    local_config, ray_config = config("local"), config("ray")
    local = plan_run(local_config, SeedSelector(local_config, lambda: None) if select else None, FastTextLangId())
    on_ray = plan_run(
        ray_config,
        SeedSelector(ray_config, lambda: None) if select else None,
        None,
        SeedReader(ray_config, lambda: None),
    )
    assert plan_fingerprint(on_ray.planned_ids()) == plan_fingerprint(local.planned_ids())
    assert on_ray.tasks.tasks().equals(local.tasks.tasks())
    assert on_ray.decided == local.decided and on_ray.read == local.read


MEASURE = textwrap.dedent(
    """
    import json, sys, ray
    from engine.inputs.seeds import load_seed_table
    from actors.dataflow.seeds import read_seed_view

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    reader, path, warm = sys.argv[1:]
    ray.init(num_cpus=2, include_dashboard=False)
    read = (lambda p: read_seed_view([p])) if reader == "ray" else (lambda p: load_seed_table([p]))
    read(warm)  # imports, Ray Data's first start
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
    seeds, bad = read(path)
    print("RESULT", json.dumps({"rows": seeds.num_rows, "growth": status("VmHWM") - before}))
    """
)


def fabricate(path: Path, count: int) -> Path:
    text = "Describe, step by step and with care, how a small bakery plans its morning. " * 12  # ~1 KB a seed
    with path.open("w") as out:
        for number in range(count):
            out.write(
                json.dumps({"id": f"seed-{number}", "instruction": f"{number}: {text}", "input": "", "output": text})
                + "\n"
            )
    return path


def peak_growth(reader: str, path: Path, warm: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, reader, str(path), str(warm)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("RESULT")][-1].split(" ", 1)[1])[
        "growth"
    ]


def test_driver_memory_does_not_grow_with_the_seeds_text(tmp_path):
    """50k and 200k seeds of ~1.9 KB: the sequential reader's driver grows with the text (885 MiB
    more for 150k more seeds, measured), the Ray Data reader's only with ids and small columns
    (51 MiB, measured)."""
    warm = fabricate(tmp_path / "warm.jsonl", 100)
    small, large = fabricate(tmp_path / "small.jsonl", 50_000), fabricate(tmp_path / "large.jsonl", 200_000)
    mib = 1 << 20
    figures = {
        reader: {n: peak_growth(reader, path, warm) / mib for n, path in ((50_000, small), (200_000, large))}
        for reader in ("local", "ray")
    }
    print("driver peak RSS growth, MiB:", json.dumps(figures))
    text_mib = (large.stat().st_size - small.stat().st_size) / mib
    assert figures["local"][200_000] - figures["local"][50_000] > 0.5 * text_mib, "the measurement sees the text"
    # Ids and a few small columns per seed (order key, block and row, nulls): about 360 B a seed
    # measured (the sequential reader ~6 KB), against ~1.9 KB of text a seed.
    ray_growth, local_growth = (figures[r][200_000] - figures[r][50_000] for r in ("ray", "local"))
    assert ray_growth < 0.3 * text_mib and ray_growth < 0.1 * local_growth, figures
