"""Chaos soak: SIGKILL random ChronosQ processes while jobs flow, then audit.

    python benchmarks/chaos_soak.py --jobs 10000 --workers 4

A real supervisor and real workers run in a fresh temporary root. Every 0.2 to
2 seconds (by default) one of them is SIGKILLed: the supervisor, one of its
three children, or a worker. Killed workers and supervisors are started again,
as systemd would. When every job has finished the audit checks that:

- every submitted job is in exactly one place, and none is pending or running;
- no job ran more often than max_attempts, counted in a ledger file outside the
  root that the handler appends to on every execution;
- every execution beyond a job's first is explained in its state history by a
  requeue or a retry.

The tests import `run_soak` with a small size; this script runs the long one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import tomli_w

HERE = Path(__file__).resolve().parent
MAX_ATTEMPTS = 25

SETTINGS: dict[str, dict[str, Any]] = {
    "ingest": {"rescan_seconds": 1.0},
    "scheduler": {"rescan_seconds": 1.0, "worker_stale_seconds": 5.0},
    "recovery": {"interval_seconds": 0.2},
    "supervisor": {"restart_backoff_min_seconds": 0.1, "restart_backoff_max_seconds": 1.0,
                   "stop_grace_seconds": 5.0},
    "worker": {"heartbeat_seconds": 0.5, "capacity": 4},
    "defaults": {"timeout": 30.0, "max_attempts": MAX_ATTEMPTS, "max_crashes": MAX_ATTEMPTS,
                 "retry_backoff_seconds": 0.05, "retry_backoff_max_seconds": 0.2},
}


class Soak:
    """The processes of one soak run and the bookkeeping of what was killed."""

    def __init__(self, workdir: Path, workers: int, seed: int):
        self.root = workdir / "root"
        self.ledger = workdir / "ledger.txt"
        self.logs = workdir / "process-output"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.random = random.Random(seed)
        self.worker_ids = [f"w{i}" for i in range(workers)]
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.kills: Counter[str] = Counter()
        self.env = dict(os.environ, CHRONOSQ_SOAK_LEDGER=str(self.ledger),
                        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))

    def chronosq(self, *args: str) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{args[0]}-{time.time_ns()}.out", "wb")
        try:
            return subprocess.Popen([sys.executable, "-m", "chronosq", *args, "--root",
                                     str(self.root)], stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env)
        finally:
            out.close()

    def init(self) -> None:
        subprocess.run([sys.executable, "-m", "chronosq", "init", "--root", str(self.root)],
                       check=True, capture_output=True)
        (self.root / "chronosq.toml").write_text(tomli_w.dumps(SETTINGS))

    def start_worker(self, worker_id: str) -> None:
        self.workers[worker_id] = self.chronosq(
            "worker", "--worker-id", worker_id, "--type", "soak",
            "--handler", "soak_handler:run")

    def keep_up(self) -> None:
        """Start again every worker and supervisor that has died."""
        for worker_id in self.worker_ids:
            process = self.workers.get(worker_id)
            if process is None or process.poll() is not None:
                self.start_worker(worker_id)
        if self.supervisor is None or self.supervisor.poll() is not None:
            # Rejected while the children of a killed supervisor still run; those
            # exit within about a second, and the next call tries again.
            self.supervisor = self.chronosq("supervise")

    def child_pids(self) -> dict[str, int]:
        pids = {}
        for role in ("ingest", "scheduler", "recovery"):
            try:
                record = json.loads((self.root / "run" / "children" / f"{role}.json").read_text())
            except (OSError, ValueError):
                continue
            if record.get("pid"):
                pids[role] = int(record["pid"])
        return pids

    def kill_one(self) -> None:
        """SIGKILL one random live ChronosQ process."""
        targets: dict[str, int] = {}
        if self.supervisor is not None and self.supervisor.poll() is None:
            targets["supervisor"] = self.supervisor.pid
            targets.update(self.child_pids())
        for worker_id, process in self.workers.items():
            if process.poll() is None:
                targets[f"worker {worker_id}"] = process.pid
        if not targets:
            return
        # Pick the kind first, so the one supervisor is hit as often as a worker.
        kinds = sorted({name.split()[0] if name.startswith("worker") else
                        "supervisor" if name == "supervisor" else "child" for name in targets})
        kind = self.random.choice(kinds)
        names = sorted(name for name in targets if name.startswith(kind) or (
            kind == "child" and name in ("ingest", "scheduler", "recovery")))
        name = self.random.choice(names)
        try:
            os.kill(targets[name], signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills[name.split()[0]] += 1

    def stop(self) -> None:
        for process in [*self.workers.values(), self.supervisor]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers.values(), self.supervisor]:
            if process is None:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def drop_events(root: Path, first: int, count: int, seconds: float) -> None:
    for i in range(first, first + count):
        name = f"soak{i:06d}.json"
        tmp = root / "input" / f"{name}.tmp"
        tmp.write_text(json.dumps({"type": "soak", "job_id": f"s{i:06d}",
                                   "payload": {"seconds": seconds}}))
        os.rename(tmp, root / "input" / name)


def places(root: Path) -> dict[str, list[str]]:
    """Return every job id and the places it is in."""
    found: dict[str, list[str]] = {}

    def add(folder: Path, suffix: str, place: str) -> None:
        if not folder.is_dir():
            return
        for name in os.listdir(folder):
            if name.endswith(suffix) and not name.startswith(".") \
                    and not name.endswith(".evidence.json"):
                found.setdefault(name[: -len(suffix)], []).append(place)

    add(root / "input", ".json", "input")
    add(root / "jobs", ".json", "pending")
    add(root / "hold", ".json", "held")
    add(root / "output", ".json", "succeeded")
    add(root / "error", ".json", "failed")
    add(root / "quarantine", ".json", "quarantined")
    for queue in (root / "broker" / "types").glob("*/*"):
        for suffix in (".json", ".json.processing", ".json.success", ".json.failure"):
            add(queue, suffix, "queue")
    return found


def finished_count(root: Path) -> int:
    return sum(len(os.listdir(root / place)) for place in ("output",)) + sum(
        1 for n in os.listdir(root / "error") if n.endswith(".json")) + sum(
        1 for n in os.listdir(root / "quarantine") if n.endswith(".json")
        and not n.endswith(".evidence.json"))


def wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def audit(root: Path, ledger: Path, submitted: int) -> dict[str, Any]:
    """Check the invariants after a soak; return the findings."""
    where = places(root)
    executions: Counter[str] = Counter()
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "start":
            executions[parts[1]] += 1
    unexplained = []
    for job_id, runs in executions.items():
        if runs < 2:
            continue
        history = json.loads((root / "state" / f"{job_id}.state.json").read_text())["history"]
        explained = sum(1 for e in history if e["event"] in ("requeued", "retry"))
        if explained < runs - 1:
            unexplained.append(job_id)
    final = Counter(p[0] for p in where.values() if len(p) == 1)
    return {
        "submitted": submitted,
        "lost": submitted - len(where),
        "in_two_places": sorted(j for j, p in where.items() if len(p) > 1),
        "unfinished": sorted(j for j, p in where.items()
                             if p[0] not in ("succeeded", "failed", "quarantined")),
        "final_places": dict(final),
        "executions": sum(executions.values()),
        "jobs_run_more_than_once": sum(1 for runs in executions.values() if runs > 1),
        "max_executions_per_job": max(executions.values(), default=0),
        "over_max_attempts": sorted(j for j, runs in executions.items() if runs > MAX_ATTEMPTS),
        "unexplained_duplicates": unexplained,
    }


def run_soak(workdir: Path, jobs: int, workers: int, kill_every: tuple[float, float],
             seed: int = 1, job_seconds: float = 0.005, limit_seconds: float = 600.0,
             drip_seconds: float = 0.0) -> dict:
    """Run one soak in `workdir`; return the audit with the kill counts and timing.

    Events are dropped evenly over `drip_seconds` (all at once for 0), so the
    kills land while work arrives as well as while it drains.
    """
    soak = Soak(workdir, workers, seed)
    soak.init()
    started = time.monotonic()
    dropped = 0
    try:
        soak.keep_up()
        deadline = started + limit_seconds
        while finished_count(soak.root) < jobs and time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            due = jobs if elapsed >= drip_seconds else int(jobs * elapsed / drip_seconds)
            drop_events(soak.root, dropped, due - dropped, job_seconds)
            dropped = due
            time.sleep(soak.random.uniform(*kill_every))
            soak.kill_one()
            time.sleep(0.05)
            soak.keep_up()
        drop_events(soak.root, dropped, jobs - dropped, job_seconds)
        # Without kills the rest drains; workers killed last are started again.
        drained = wait_until(lambda: (soak.keep_up(), finished_count(soak.root) >= jobs)[1],
                             max(60.0, deadline - time.monotonic()))
    finally:
        soak.stop()
    report = audit(soak.root, soak.ledger, jobs)
    report["drained"] = drained
    report["kills"] = dict(soak.kills)
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description="SIGKILL ChronosQ processes while jobs flow.")
    parser.add_argument("--jobs", type=int, default=10_000, help="events to submit (default: 10000)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default: 4)")
    parser.add_argument("--kill-min", type=float, default=0.2, help="seconds, at least")
    parser.add_argument("--kill-max", type=float, default=2.0, help="seconds, at most")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the random choice of victims and intervals (default: 1)")
    parser.add_argument("--limit", type=float, default=1800.0,
                        help="seconds of killing before the run drains without kills")
    parser.add_argument("--drip", type=float, default=120.0,
                        help="seconds over which the events are dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chronosq-soak-") as workdir:
        report = run_soak(Path(workdir), args.jobs, args.workers,
                          (args.kill_min, args.kill_max), args.seed, limit_seconds=args.limit,
                          drip_seconds=args.drip)
    print(json.dumps(report, indent=2))
    broken = (report["lost"] or report["in_two_places"] or report["unfinished"]
              or report["over_max_attempts"] or report["unexplained_duplicates"])
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
