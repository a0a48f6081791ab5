"""Generated tokens per accepted example: translate every seed and then keep a budget of the accepted
rows, against selecting a budget of seeds first (the project's select.by: clusters, stratified over
k-means clusters of the English instructions, with dedup) and translating only those.

Both strategies read the same translation pass: one babelforge pass over every seed (greedy, so a
seed's answer does not depend on which other seeds are in the run; batching can still move a few
tokens), either the translation suite's own (b) or, when that suite is not run, one of its own.
Selection is the real SeedSelector + plan, run in its own process (it embeds on Ray).

    .venv/bin/python -m benchmarks.tokens --case selection --spec spec.json --result out.json
"""

from __future__ import annotations

import json
import time

from benchmarks.harness import case_main, start_local_ray
from benchmarks.workload import base_spec, bench_config
from engine.config import parse_config
from engine.records import ACCEPTED


def selection_config(spec: dict):
    data = json.loads(bench_config(spec, run_dir=spec["work_dir"]).model_dump_json())
    data["seeds"]["limit"] = spec["seeds"]
    data["plan"] = {
        **data["plan"],
        "mode": "per_language",
        "quotas": {tier: spec["budget"] for tier in ("high", "mid", "low")},
    }
    data["select"] = {"by": "clusters", "clusters": spec["clusters"]}
    data["dedup"] = {"exact": True, "near_threshold": 0.95}
    return parse_config(data, "benchmarks.tokens")


def case_selection(spec: dict) -> dict:
    """The seeds the project's selection plans for a budget, and the cluster of every seed."""
    import ray

    from actors.dataflow.seeds import SeedSelector
    from engine.recipes import plan_run

    config = selection_config(spec)
    started = time.perf_counter()
    selector = SeedSelector(config, lambda: start_local_ray(spec))
    try:
        plan = plan_run(config, selector)
        selected = plan.tasks.tasks().column("seed_id").to_pylist()
    finally:
        ray.shutdown()
    selection = selector.selection
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "seeds_read": plan.read,
        "k": selection.k,
        "duplicates": len(selection.duplicates),
        "selected": selected,
        "clusters": selection.clusters,
    }


def strategy(rows: list[dict], kept: list[dict], clusters: dict, k: int) -> dict:
    from engine.selection.cluster import coverage

    generated = sum(row["completion_tokens"] for row in rows)
    accepted = sum(1 for row in rows if row["status"] == ACCEPTED)
    return {
        "translated": len(rows),
        "generated_tokens": generated,
        "accepted": accepted,
        "kept": len(kept),
        "tokens_per_kept": round(generated / len(kept), 1) if kept else None,
        "clusters_covered": coverage([clusters[row["seed_id"]] for row in kept if row["seed_id"] in clusters], k)[
            "covered"
        ],
    }


def suite(sizes: dict, simulated: bool, runner, translation: dict | None = None) -> dict:
    from engine.selection.cluster import stratified_select

    spec = {
        **base_spec(sizes, simulated),
        "seeds": sizes["seeds"],
        "rounds": 0,
        "budget": sizes["budget"],
        "clusters": sizes["clusters"],
    }
    reused = bool(
        translation
        and translation.get("workload", {}).get("simulated") == simulated
        and "per_row" in translation.get("cases", {}).get("babelforge", {})
    )
    rows_case = (
        translation["cases"]["babelforge"] if reused else runner.case("benchmarks.translation", "babelforge", spec)
    )
    selection = runner.case("benchmarks.tokens", "selection", {**spec, "work_dir": runner.scratch("tokens-selection")})
    if "error" in rows_case or "error" in selection:
        return {"error": rows_case.get("error") or selection.get("error")}
    rows = rows_case["per_row"]
    clusters, k, budget = selection["clusters"], selection["k"], spec["budget"]
    accepted = [row for row in rows if row["status"] == ACCEPTED and row["seed_id"] in clusters]
    # The filter keeps its budget spread over clusters too, so it gets the same diversity rule.
    keep = stratified_select([clusters[row["seed_id"]] for row in accepted], budget, 0) if accepted else []
    chosen = set(selection["selected"])
    selected_rows = [row for row in rows if row["seed_id"] in chosen]
    after = strategy(rows, [accepted[i] for i in keep], clusters, k)
    before = strategy(selected_rows, [row for row in selected_rows if row["status"] == ACCEPTED], clusters, k)
    return {
        "workload": {
            "language": spec["lang"],
            "seeds": len(rows),
            "budget": budget,
            "clusters": k,
            "simulated": simulated,
            "duplicates_removed": selection["duplicates"],
            "rows_from": "translation suite (b)" if reused else "own babelforge pass",
        },
        "translate_then_filter": after,
        "select_then_translate": before,
        "ratio_tokens_per_kept_filter_over_select": round(after["tokens_per_kept"] / before["tokens_per_kept"], 2)
        if after["tokens_per_kept"] and before["tokens_per_kept"]
        else None,
        "selection_s": selection["seconds"],
        "notes": [
            "tokens are generated tokens of one pass (validation.max_attempts 1, no refinement)",
            "translate-then-filter keeps `budget` accepted rows stratified over the same clusters",
            "select-then-translate keeps what passes validation: fewer than `budget` rows when some are rejected",
        ],
    }


CASES = {"selection": case_selection}

if __name__ == "__main__":
    case_main(CASES)
