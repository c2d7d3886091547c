"""Measure ChronosQ end-to-end throughput and submit-to-start latency.

    python benchmarks/throughput.py [--jobs 5000] [--json]

The script creates a fresh root in a temporary folder, with durability on as
`chronosq init` writes it. It measures the filesystem's own
create-fsync-rename-fsync-folder rate in that folder as a reference. Then it
starts a real supervisor and two real workers with the no-op handler `noop:run`
from this folder, and drops the events into input/ the way a producer does:
each is written under a `.tmp` name and renamed to `<name>.json`. When every job
is in output/ it reads each job's state record and reports:

- end-to-end jobs per second: jobs / (last "succeeded" entry - first submit);
- submit-to-start latency: submit time to the job's first "claimed" entry;
- how long each stage took, how the jobs split between the workers, and the CPU
  seconds each ChronosQ process used during the measurement.

Then it stops the workers and the supervisor with SIGTERM, waits for them and
removes the temporary folder. Every wait has a deadline, and a process that does
not stop in time is killed with its process group. Linux only, because the CPU
figures come from psutil and /proc and the processes wake on inotify.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHRONOSQ = [sys.executable, "-m", "chronosq"]
JOB_TYPE = "bench"
JOB_PREFIX = "bench-"
WARMUP_ID = "warmup-1"
HANDLER = "noop:run"
CHILD_ROLES = ("ingest", "scheduler", "recovery")
STAGES = ("ingested", "assigned", "claimed", "succeeded")

STARTUP_TIMEOUT_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 60.0
# Each process gets this long to exit after SIGTERM before its group is killed.
# The supervisor's own grace for its children is 10 s by default.
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 5.0


class BenchmarkError(Exception):
    """The benchmark could not run or its jobs did not finish; the message gives the reason."""


class StopRequested(BaseException):
    """Raised from the SIGTERM handler so the cleanup in `finally` blocks runs."""


def log(message: str) -> None:
    print(f"[throughput] {message}", file=sys.stderr, flush=True)


# -- filesystem reference --------------------------------------------------------


def fsync_loop(folder: str, count: int, payload: bytes) -> tuple[float, float]:
    """Create, fsync, rename and fsync the folder `count` times; return the start and end.

    These are the steps of chronosq.fileops.write_bytes with durability on, except
    that the folder is opened once instead of once per file. The times come from
    time.perf_counter, which on Linux is one clock for all processes.
    """
    os.makedirs(folder)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    started = time.perf_counter()
    try:
        for index in range(count):
            tmp = os.path.join(folder, f".ref-{index}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(folder, f"ref-{index}.json"))
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return started, time.perf_counter()


def _fsync_loop_args(args: tuple[str, int, bytes]) -> tuple[float, float]:
    return fsync_loop(*args)


def measure_filesystem(base: Path, files: int, processes: int) -> dict[str, Any]:
    """Return the create-fsync-rename-fsync rate of one process and of `processes` at once.

    The payload is the size of one benchmark event. Each parallel process
    writes files/processes files into its own folder under `base`.
    """
    payload = event_bytes(0, "2026-01-01T00:00:00.000000Z")
    started, ended = fsync_loop(str(base / "single"), files, payload)
    single_seconds = ended - started

    # The parallel time runs from the first process's start to the last one's
    # end, so starting the pool is not counted.
    per_process = max(1, files // processes)
    jobs = [(str(base / f"parallel-{n}"), per_process, payload) for n in range(processes)]
    # The pool's processes are forked with this script's SIGTERM handler, which
    # would print a traceback when the pool terminates them.
    with multiprocessing.get_context("fork").Pool(processes, initializer=signal.signal,
                                                  initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        spans = pool.map(_fsync_loop_args, jobs)
    parallel_seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    return {
        "files": files,
        "payload_bytes": len(payload),
        "single_process_per_second": round(files / single_seconds, 1),
        "parallel_processes": processes,
        "parallel_per_second": round(per_process * processes / parallel_seconds, 1),
    }


# -- processes -------------------------------------------------------------------


def run_cli(root: Path, *args: str) -> str:
    """Run one `chronosq` command on the root and return its standard output."""
    try:
        done = subprocess.run(
            [*CHRONOSQ, *args, "--root", str(root)],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(
            f"'chronosq {' '.join(args)}' timed out after {COMMAND_TIMEOUT_SECONDS:g}s"
        ) from None
    if done.returncode != 0:
        raise BenchmarkError(
            f"'chronosq {' '.join(args)}' failed with status {done.returncode}: "
            f"{done.stderr.strip()}"
        )
    return done.stdout


@dataclass
class Started:
    """A process this script started in its own session, so its group id is its pid."""

    name: str
    process: subprocess.Popen[bytes]
    output_path: Path
    exit_status: int | None = None


@dataclass
class Cluster:
    """The supervisor and workers of one benchmark run."""

    root: Path
    scratch: Path
    supervisor: Started | None = None
    workers: list[Started] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Started:
        output_path = self.scratch / f"{name}.out"
        with open(output_path, "wb") as output:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=env, cwd=REPO, start_new_session=True,
            )
        log(f"started {name} (pid {process.pid})")
        return Started(name, process, output_path)

    def start_all(self, worker_count: int, capacity: int | None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(HERE), env.get("PYTHONPATH", "")) if part
        )
        self.supervisor = self.start(
            "supervisor", [*CHRONOSQ, "supervise", "--root", str(self.root)], env
        )
        for number in range(1, worker_count + 1):
            command = [*CHRONOSQ, "worker", "--root", str(self.root),
                       "--worker-id", f"bench-w{number}", "--type", JOB_TYPE,
                       "--handler", HANDLER]
            if capacity is not None:
                command += ["--capacity", str(capacity)]
            self.workers.append(self.start(f"worker bench-w{number}", command, env))

    def all_started(self) -> list[Started]:
        return [*self.workers, *([self.supervisor] if self.supervisor else [])]

    def check_running(self) -> None:
        """Raise BenchmarkError when a started process has exited."""
        for started in self.all_started():
            status = started.process.poll()
            if status is not None:
                raise BenchmarkError(
                    f"{started.name} exited early with status {status}; its output:\n"
                    f"{tail(started.output_path)}"
                )

    def child_pids(self) -> dict[str, int]:
        """Return the pid of each supervisor child from run/children/<role>.json."""
        pids = {}
        for role in CHILD_ROLES:
            try:
                record = json.loads((self.root / "run" / "children" / f"{role}.json").read_text())
            except (OSError, ValueError):
                continue
            if record.get("pid"):
                pids[role] = int(record["pid"])
        return pids

    def measured_pids(self) -> dict[str, int]:
        """Return the pids whose CPU time is reported: the supervisor, its children, workers."""
        pids = {}
        if self.supervisor is not None:
            pids["supervisor"] = self.supervisor.process.pid
        pids.update(self.child_pids())
        for started in self.workers:
            pids[started.name.removeprefix("worker ")] = started.process.pid
        return pids

    def stop(self) -> None:
        """Stop the workers with SIGTERM, then the supervisor, killing a late process group.

        SIGINT and SIGTERM are ignored meanwhile, so a second Ctrl-C cannot cut
        the stop short and leave processes behind. The deadlines bound it instead.
        """
        previous = {sig: signal.signal(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for started in self.workers:
                terminate(started)
            for started in self.workers:
                wait_or_kill(started)
            if self.supervisor is not None:
                terminate(self.supervisor)
                wait_or_kill(self.supervisor)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def terminate(started: Started) -> None:
    if started.process.poll() is None:
        started.process.send_signal(signal.SIGTERM)


def wait_or_kill(started: Started) -> None:
    """Wait for a process to exit; SIGKILL its process group past the deadline.

    The group also contains the processes it started itself, such as the
    supervisor's children, so none of them is left running either.
    """
    try:
        started.exit_status = started.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        log(f"{started.name} did not stop within {STOP_TIMEOUT_SECONDS:g}s; killing its group")
        kill_group(started)
        started.exit_status = started.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    # The supervisor waits for its children, so this finds nothing after a clean stop.
    try:
        os.killpg(started.process.pid, 0)
    except ProcessLookupError:
        return
    log(f"processes of {started.name}'s group remain after it exited; killing them")
    kill_group(started)


def kill_group(started: Started) -> None:
    try:
        os.killpg(started.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


def cpu_seconds(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Return (user, system) CPU seconds used so far by each named pid that still runs."""
    found = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[name] = (times.user, times.system)
    return found


def machine_cpu_seconds() -> dict[str, float]:
    """Return the CPU seconds all CPUs of the machine spent busy, idle and in iowait."""
    times = psutil.cpu_times()
    busy = times.user + times.nice + times.system + times.irq + times.softirq + times.steal
    return {"busy": busy, "idle": times.idle, "iowait": times.iowait}


def cpu_report(
    before: dict[str, tuple[float, float]],
    after: dict[str, tuple[float, float]],
    machine_before: dict[str, float],
    machine_after: dict[str, float],
) -> dict[str, Any]:
    """Return per-process CPU use over the measurement, and what the rest of the machine used.

    `other_busy_s` is machine-wide busy time minus the ChronosQ processes. It
    includes this script's own polling, kernel threads and any unrelated load.
    """
    processes = {}
    ours = 0.0
    for name, (user, system) in after.items():
        before_user, before_system = before.get(name, (0.0, 0.0))
        processes[name] = {"user_s": round(user - before_user, 2),
                           "system_s": round(system - before_system, 2)}
        ours += user - before_user + system - before_system
    machine = {key: machine_after[key] - machine_before[key] for key in machine_after}
    return {
        "processes": processes,
        "chronosq_busy_s": round(ours, 2),
        "machine_busy_s": round(machine["busy"], 2),
        "machine_iowait_s": round(machine["iowait"], 2),
        "machine_idle_s": round(machine["idle"], 2),
        "other_busy_s": round(machine["busy"] - ours, 2),
    }


# -- events ----------------------------------------------------------------------


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_bytes(number: int, created_at: str, job_id: str | None = None) -> bytes:
    event = {
        "job_id": job_id or f"{JOB_PREFIX}{number:06d}",
        "type": JOB_TYPE,
        "payload": {"n": number},
        "created_at": created_at,
    }
    return json.dumps(event).encode() + b"\n"


def drop_event(input_dir: Path, name: str, data: bytes, fsync: bool) -> float:
    """Write an event under a .tmp name and rename it to `<name>.json`.

    Returns the epoch time just after the rename, when ingest can first see it.
    """
    tmp = input_dir / f"{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, input_dir / f"{name}.json")
    return time.time()


def submit_all(input_dir: Path, count: int, rate: float, fsync: bool) -> dict[str, float]:
    """Drop `count` events, at `rate` per second or as fast as possible when rate is 0.

    Returns the epoch time at which each job's event became visible in input/.
    """
    submitted: dict[str, float] = {}
    started = time.monotonic()
    for number in range(1, count + 1):
        if rate > 0:
            delay = started + (number - 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        job_id = f"{JOB_PREFIX}{number:06d}"
        submitted[job_id] = drop_event(input_dir, job_id, event_bytes(number, utc_now()), fsync)
    return submitted


def count_outputs(output_dir: Path, prefix: str) -> int:
    with os.scandir(output_dir) as entries:
        return sum(1 for e in entries if e.name.startswith(prefix) and e.name.endswith(".json"))


def wait_for_outputs(
    cluster: Cluster, expected: int, prefix: str, timeout: float, progress: bool
) -> float:
    """Poll output/ until `expected` jobs with `prefix` are there; return the time it took."""
    output_dir = cluster.root / "output"
    started = time.monotonic()
    deadline = started + timeout
    next_report = started + PROGRESS_SECONDS
    while True:
        done = count_outputs(output_dir, prefix)
        if done >= expected:
            return time.monotonic() - started
        now = time.monotonic()
        if now > deadline:
            raise BenchmarkError(
                f"only {done} of {expected} jobs reached output/ within {timeout:g}s; "
                "rerun with --keep-root to keep the root and read its logs/chronosq.log"
            )
        if progress and now >= next_report:
            log(f"{done}/{expected} jobs in output/ after {now - started:.0f}s")
            next_report = now + PROGRESS_SECONDS
        cluster.check_running()
        time.sleep(POLL_SECONDS)


# -- results ---------------------------------------------------------------------


def parse_at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], percent: float) -> float:
    """Return the nearest-rank percentile of `values` (at least one value)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def read_histories(state_dir: Path, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Return, per job, the first time of each stage, the claim count and the worker."""
    found = {}
    for job_id in job_ids:
        record = json.loads((state_dir / f"{job_id}.state.json").read_text())
        first: dict[str, float] = {}
        claims = 0
        worker_id = None
        for entry in record["history"]:
            event = entry.get("event")
            if event == "claimed":
                claims += 1
            if event == "succeeded":
                worker_id = entry.get("worker_id")
            if event in STAGES and event not in first:
                first[event] = parse_at(entry["at"])
        missing = [stage for stage in STAGES if stage not in first]
        if missing:
            raise BenchmarkError(f"state record of {job_id} has no {', '.join(missing)} entry")
        found[job_id] = {"first": first, "claims": claims, "worker_id": worker_id}
    return found


def summarise(
    submitted: dict[str, float], histories: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    first_submit = min(submitted.values())
    last_submit = max(submitted.values())
    last_success = max(h["first"]["succeeded"] for h in histories.values())
    elapsed = last_success - first_submit
    stages = {}
    for stage in STAGES:
        delays = [h["first"][stage] - submitted[job_id] for job_id, h in histories.items()]
        stages[stage] = {
            "p50_ms": round(percentile(delays, 50) * 1000, 1),
            "p99_ms": round(percentile(delays, 99) * 1000, 1),
            "max_ms": round(max(delays) * 1000, 1),
            "last_after_s": round(
                max(h["first"][stage] for h in histories.values()) - first_submit, 3
            ),
        }
    split = Counter(h["worker_id"] for h in histories.values())
    return {
        "jobs": len(histories),
        "submit_seconds": round(last_submit - first_submit, 3),
        "submit_per_second": round(len(submitted) / max(last_submit - first_submit, 1e-9), 1),
        "elapsed_seconds": round(elapsed, 3),
        "jobs_per_second": round(len(histories) / elapsed, 1),
        "start_latency_p50_ms": stages["claimed"]["p50_ms"],
        "start_latency_p99_ms": stages["claimed"]["p99_ms"],
        "stages": stages,
        "jobs_claimed_more_than_once": sum(1 for h in histories.values() if h["claims"] > 1),
        "worker_split": dict(sorted(split.items(), key=lambda item: str(item[0]))),
    }


def count_log_levels(log_path: Path) -> dict[str, int]:
    levels: Counter[str] = Counter()
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                levels[json.loads(line).get("level", "?")] += 1
            except ValueError:
                levels["unparsed"] += 1
    return dict(sorted(levels.items()))


def describe_machine() -> dict[str, Any]:
    memory = psutil.virtual_memory().total
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def source_version() -> dict[str, Any] | None:
    """Return the git commit of the checkout and its uncommitted product files, if git works."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        changes = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "chronosq", "plugins"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(),
            "uncommitted": [line[3:] for line in changes.stdout.splitlines()]}


def filesystem_type(path: Path) -> str:
    """Return the type of the filesystem mounted at the longest prefix of `path`."""
    best, best_type = "", "unknown"
    for partition in psutil.disk_partitions(all=True):
        mount = partition.mountpoint
        if str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount:
            if len(mount) > len(best):
                best, best_type = mount, partition.fstype
    return best_type


# -- main ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000,
                        help="number of events to submit (default: 5000)")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes to start (default: 2)")
    parser.add_argument("--capacity", type=int, default=None,
                        help="--capacity of each worker: queued plus running jobs "
                             "(default: worker.capacity of chronosq.toml)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events submitted per second; 0 submits as fast as possible "
                             "(default: 0)")
    parser.add_argument("--producer-fsync", action="store_true",
                        help="fsync each event file before its rename, as 'chronosq submit' "
                             "does with durability on (default: off)")
    parser.add_argument("--no-durable", action="store_true",
                        help="set [storage] durable = false, for comparison only")

    parser.add_argument("--fs-files", type=int, default=2000,
                        help="files written by the filesystem reference (default: 2000)")
    parser.add_argument("--fs-processes", type=int, default=5,
                        help="processes of the parallel filesystem reference; 5 is the "
                             "number of busy ChronosQ processes (default: 5)")

    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for all jobs to reach output/ (default: 600)")
    parser.add_argument("--tmp-dir", default=None,
                        help="parent of the temporary folder (default: $TMPDIR or /tmp)")
    parser.add_argument("--keep-root", action="store_true",
                        help="keep the temporary folder and print its path")
    parser.add_argument("--json", action="store_true",
                        help="print the results as one JSON object instead of a table")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line; exit with a usage error on an invalid value."""
    parser = build_parser()
    args = parser.parse_args(argv)

    for name in ("jobs", "workers", "capacity", "fs_files", "fs_processes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"invalid --{name.replace('_', '-')} {value}: use 1 or more")
    if args.rate < 0:
        parser.error(f"invalid --rate {args.rate:g}: use 0 or more")
    if args.timeout <= 0:
        parser.error(f"invalid --timeout {args.timeout:g}: use more than 0 seconds")
    return args


def prepare_root(root: Path, durable: bool) -> None:
    run_cli(root, "init")
    config_path = root / "chronosq.toml"
    if not durable:
        text = config_path.read_text()
        config_path.write_text(text.replace("durable = true", "durable = false", 1))
    config = tomllib.loads(config_path.read_text())
    if config["storage"]["durable"] is not durable:
        raise BenchmarkError(f"{config_path}: could not set [storage] durable = {durable}")


def wait_until_ready(cluster: Cluster, worker_count: int) -> float:
    """Wait until the supervisor's children and every worker run, then pass one warm-up
    job through the pipeline; return the warm-up job's seconds."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    worker_dir = cluster.root / "workers"
    while True:
        cluster.check_running()
        workers_up = sum(1 for n in range(1, worker_count + 1)
                         if (worker_dir / f"bench-w{n}.json").exists())
        if workers_up == worker_count and len(cluster.child_pids()) == len(CHILD_ROLES):
            break
        if time.monotonic() > deadline:
            raise BenchmarkError(
                f"the supervisor's children and {worker_count} workers were not all up "
                f"within {STARTUP_TIMEOUT_SECONDS:g}s"
            )
        time.sleep(POLL_SECONDS)
    drop_event(cluster.root / "input", WARMUP_ID, event_bytes(0, utc_now(), WARMUP_ID), False)
    return wait_for_outputs(cluster, 1, WARMUP_ID, STARTUP_TIMEOUT_SECONDS, progress=False)


def background_load(seconds: float = 1.0) -> float:
    """Return how many CPUs other processes kept busy while this script slept `seconds`."""
    before = machine_cpu_seconds()
    time.sleep(seconds)
    after = machine_cpu_seconds()
    return (after["busy"] - before["busy"]) / seconds


def run_benchmark(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    # NOTE: other load on the machine lowers every figure; it is measured and
    # reported here, not prevented.
    load_before = background_load()
    if load_before > 0.1:
        log(f"warning: other processes keep {load_before:.2f} CPUs busy before the run")
    root = scratch / "root"
    prepare_root(root, durable=not args.no_durable)
    log(f"root {root}")

    log(f"filesystem reference: {args.fs_files} files, then {args.fs_processes} processes")
    reference = measure_filesystem(scratch / "fs-reference", args.fs_files, args.fs_processes)

    cluster = Cluster(root=root, scratch=scratch)
    try:
        cluster.start_all(args.workers, args.capacity)
        warmup_seconds = wait_until_ready(cluster, args.workers)
        pids = cluster.measured_pids()
        log(f"pipeline ready; warm-up job took {warmup_seconds:.2f}s; pids "
            + ", ".join(f"{name}={pid}" for name, pid in pids.items()))
        cpu_before = cpu_seconds(pids)
        machine_before = machine_cpu_seconds()
        wall_before = time.monotonic()
        submitted = submit_all(root / "input", args.jobs, args.rate, args.producer_fsync)
        log(f"submitted {args.jobs} events")
        wait_for_outputs(cluster, args.jobs, JOB_PREFIX, args.timeout, progress=True)
        wall_seconds = time.monotonic() - wall_before
        cpu_after = cpu_seconds(pids)
        machine_after = machine_cpu_seconds()
        restarts = {role: child_restarts(root, role) for role in CHILD_ROLES}
        status_jobs = status_counts(root)
    finally:
        cluster.stop()

    histories = read_histories(root / "state", sorted(submitted))
    results = summarise(submitted, histories)
    results.update(
        wall_seconds=round(wall_seconds, 3),
        cpu=cpu_report(cpu_before, cpu_after, machine_before, machine_after),
        child_restarts=restarts,
        status_succeeded=status_jobs.get("succeeded"),
        status_failed=status_jobs.get("failed"),
        log_levels=count_log_levels(root / "logs" / "chronosq.log"),
        exit_statuses={s.name: s.exit_status for s in cluster.all_started()},
    )
    return {
        "settings": {
            "jobs": args.jobs,
            "workers": args.workers,
            "capacity": args.capacity,
            "rate": args.rate,
            "producer_fsync": args.producer_fsync,
            "durable": not args.no_durable,
            "handler": HANDLER,
        },
        "machine": dict(describe_machine(), filesystem=filesystem_type(scratch)),
        "source": source_version(),
        "filesystem_reference": reference,
        "background_load_cpus": round(load_before, 2),
        "warmup_seconds": round(warmup_seconds, 3),
        "results": results,
    }


def status_counts(root: Path) -> dict[str, Any]:
    """Return the `jobs` counts of `chronosq status --json`, or {} when the command fails.

    The counts only cross-check the run, so a failing status command is logged
    and does not discard the measurement.
    """
    try:
        return dict(json.loads(run_cli(root, "status", "--json"))["jobs"])
    except (BenchmarkError, ValueError, KeyError, TypeError) as exc:
        log(f"warning: 'chronosq status --json' failed, so its counts are missing: {exc}")
        return {}


def child_restarts(root: Path, role: str) -> int | None:
    try:
        return int(json.loads((root / "run" / "children" / f"{role}.json").read_text())["restarts"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def source_label(source: dict[str, Any] | None) -> str:
    if source is None:
        return "unknown (git not available)"
    label = source["commit"][:12]
    if source["uncommitted"]:
        label += f" + uncommitted changes in {len(source['uncommitted'])} product files"
    return label


def print_summary(report: dict[str, Any]) -> None:
    settings, results = report["settings"], report["results"]
    reference = report["filesystem_reference"]
    machine = report["machine"]
    rows = [
        ("source", source_label(report["source"])),
        ("jobs", f"{results['jobs']}"),
        ("workers x capacity", f"{settings['workers']} x {settings['capacity'] or 'default'}"),
        ("durable", f"{settings['durable']}"),
        ("machine", f"{machine['cpus']} CPUs, {machine['memory_gib']} GiB, "
                    f"Python {machine['python']}, {machine['filesystem']}"),
        ("other load before the run", f"{report['background_load_cpus']:.2f} CPUs busy"),
        ("fs reference, 1 process", f"{reference['single_process_per_second']:.0f} files/s"),
        (f"fs reference, {reference['parallel_processes']} processes",
         f"{reference['parallel_per_second']:.0f} files/s"),
        ("submit", f"{results['submit_seconds']:.2f} s "
                   f"({results['submit_per_second']:.0f} events/s)"),
        ("end to end", f"{results['elapsed_seconds']:.2f} s"),
        ("throughput", f"{results['jobs_per_second']:.1f} jobs/s"),
        ("submit to start p50", f"{results['start_latency_p50_ms']:.1f} ms"),
        ("submit to start p99", f"{results['start_latency_p99_ms']:.1f} ms"),
        ("worker split", ", ".join(f"{k}: {v}" for k, v in results["worker_split"].items())),
        ("claimed more than once", f"{results['jobs_claimed_more_than_once']}"),
        ("status --json", "failed, see the warning above"
         if results["status_succeeded"] is None
         else f"{results['status_succeeded']} succeeded (warm-up job included), "
              f"{results['status_failed']} failed"),
        ("exit statuses", ", ".join(f"{name}: {code}"
                                    for name, code in results["exit_statuses"].items())),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def print_stages(results: dict[str, Any]) -> None:
    print(f"{'stage':<10} {'p50 ms':>10} {'p99 ms':>10} {'max ms':>10} {'last at s':>10}")
    for stage, figures in results["stages"].items():
        print(f"{stage:<10} {figures['p50_ms']:>10.1f} {figures['p99_ms']:>10.1f} "
              f"{figures['max_ms']:>10.1f} {figures['last_after_s']:>10.2f}")


def print_cpu(results: dict[str, Any], cpus: int) -> None:
    cpu = results["cpu"]
    print(f"CPU seconds while submitting and waiting ({results['wall_seconds']:.1f} s wall, "
          f"{cpus} CPUs)")
    print(f"{'process':<12} {'user s':>8} {'system s':>9}")
    for name, figures in cpu["processes"].items():
        print(f"{name:<12} {figures['user_s']:>8.2f} {figures['system_s']:>9.2f}")
    print(f"machine busy {cpu['machine_busy_s']:.2f} s (ChronosQ {cpu['chronosq_busy_s']:.2f} s, "
          f"other {cpu['other_busy_s']:.2f} s), iowait {cpu['machine_iowait_s']:.2f} s, "
          f"idle {cpu['machine_idle_s']:.2f} s")


def print_table(report: dict[str, Any]) -> None:
    print_summary(report)
    print()
    print_stages(report["results"])
    print()
    print_cpu(report["results"], report["machine"]["cpus"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_term(signum: int, frame: object) -> None:
        raise StopRequested()

    signal.signal(signal.SIGTERM, on_term)
    scratch = Path(tempfile.mkdtemp(prefix="chronosq-bench-", dir=args.tmp_dir))
    try:
        report = run_benchmark(args, scratch)
    except BenchmarkError as exc:
        log(f"failed: {exc}")
        return 1
    except (KeyboardInterrupt, StopRequested):
        log("interrupted; the started processes were stopped")
        return 130
    finally:
        if args.keep_root:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
