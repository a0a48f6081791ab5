"""What a build made, as counts: the card, the run report and the tests all read this."""

from __future__ import annotations

from collections import Counter

from engine.builders import SPLITS, Built


def _counts(rows: list[dict], key: str) -> dict[str, int]:
    return dict(sorted(Counter(row[key] or "(none)" for row in rows).items()))


def source_file(source: str | None) -> str:
    """'data/seeds.jsonl:12' -> 'data/seeds.jsonl': the card counts rows per seed file."""
    path, sep, line = (source or "(none)").rpartition(":")
    return path if sep and line.isdigit() else (source or "(none)")


def summarise(built: Built, build_config: dict, license: str) -> dict:
    datasets = {}
    for name, splits in built.splits.items():
        langs = sorted({row["lang"] for split in splits.values() for row in split})
        datasets[name] = {
            **{split: len(splits[split]) for split in SPLITS},
            "languages": {lang: {split: sum(1 for r in splits[split] if r["lang"] == lang) for split in SPLITS} for lang in langs},
            "builders": _counts(splits["train"] + splits["validation"], "builder"),
            "modes": _counts(splits["train"] + splits["validation"], "mode"),
            # Rows drawn again to fill a share (the mix's temperature upsampling); 0 elsewhere.
            "repeated_train_rows": len(splits["train"]) - len({row["id"] for row in splits["train"]}),
        }
    pool = built.pool
    return {
        "accepted_rows": len(pool.rows),
        "seeds": {"train": len(pool.seeds) - len(pool.validation_seeds), "validation": len(pool.validation_seeds)},
        "datasets": datasets,
        "provenance": {
            "models": _counts(pool.rows, "model"),
            "prompt_versions": _counts(pool.rows, "prompt_version"),
            "sources": dict(sorted(Counter(source_file(row.get("source")) for row in pool.rows).items())),
        },
        "license": license,
        "config": build_config,
    }
