"""Collect what `chronosq status` shows: job counts, workers, supervisor children.

Counts come from the files' places, which are the truth. What status needs
from inside job files is cached in run/status-index.json (see JobIndex).
"""

from __future__ import annotations

import bisect
import os
import time
from pathlib import Path
from typing import Any

from chronosq import fileops
from chronosq.config import Config
from chronosq.layout import (
    ASSIGNED,
    FAILURE,
    PROCESSING,
    REJECTED,
    SUCCESS,
    Root,
    job_id_of,
)
from chronosq.ingest import is_ignored
from chronosq.lifecycle import State, parse_time
from chronosq.registry import (
    heartbeat_age,
    pid_alive,
    queue_dirs,
    queue_load,
    read_records,
    worker_alive,
)

INDEX_NAME = "status-index.json"
# Upper bounds in minutes of the backlog-by-age histogram, as qshape draws it;
# the last bucket counts everything older.
AGE_BUCKETS = [1, 5, 10, 20, 40, 80, 160, 320, 640, 1280, float("inf")]
UNKNOWN_TYPE = "?"


class JobIndex:
    """What status needs of each job file, read once and kept under run/.

    A job's type never changes. Its retry time changes only when recovery
    rewrites the file, which changes its modification time, so a pending
    file is read again only when that time differs from the cached one.
    """

    def __init__(self, root: Root):
        self.root = root
        self.path = root.run / INDEX_NAME
        try:
            data = fileops.read_json(self.path)
            self.entries: dict[str, list[Any]] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.entries = {}
        self.seen: set[str] = set()
        self.changed = False

    def lookup(self, folder: Path, job_id: str, name: str, check_mtime: bool) -> list[Any]:
        """Return [type, retry_at, mtime_ns, created_at, worker_id, folder name] for
        one job file.

        A job found in another folder than last time is read again, because the
        worker that finished it was not known before.
        """
        self.seen.add(job_id)
        found = self.entries.get(job_id)
        mtime_ns = 0
        if check_mtime:
            try:
                mtime_ns = os.stat(folder / name).st_mtime_ns
            except FileNotFoundError:
                return [UNKNOWN_TYPE, None, 0, None, None, folder.name]
        if (found is not None and len(found) == 6 and found[5] == folder.name
                and (not check_mtime or found[2] == mtime_ns)):
            return found
        try:
            job = fileops.read_json(folder / name)
            entry = [str(job["type"]), job.get("retry_at"), mtime_ns, job.get("created_at"),
                     job.get("worker_id"), folder.name]
        except (OSError, ValueError, KeyError, TypeError):
            return [UNKNOWN_TYPE, None, mtime_ns, None, None, folder.name]
        self.entries[job_id] = entry
        self.changed = True
        return entry

    def save(self) -> None:
        if len(self.seen) < len(self.entries):
            self.entries = {k: v for k, v in self.entries.items() if k in self.seen}
            self.changed = True
        if self.changed:
            try:
                fileops.write_json(self.path, self.entries, durable=False)
            except OSError:
                pass  # the index only saves time; a read-only root still reports


def _count(counts: dict[str, dict[str, int]], job_type: str, state: State) -> None:
    per_type = counts.setdefault(job_type, {s.value: 0 for s in State})
    per_type[state.value] += 1


def job_counts(root: Root) -> dict[str, Any]:
    """Return totals per state, counts per type and state, and other counts."""
    index = JobIndex(root)
    by_type: dict[str, dict[str, int]] = {}
    places = (
        (root.jobs, State.PENDING),
        (root.hold, State.HELD),
        (root.output, State.SUCCEEDED),
        (root.error, State.FAILED),
        (root.quarantine, State.QUARANTINED),
        (root.canceled, State.CANCELED),
    )
    rejected = retry_waiting = 0
    oldest: dict[str, float] = {}
    backlog: dict[str, list[int]] = {}
    finished_by: dict[str, dict[str, int]] = {}
    now = time.time()
    for folder, state in places:
        for name in fileops.listdir(folder):
            if name.endswith(REJECTED):
                rejected += 1
            job_id = job_id_of(name, ".json")
            if job_id is None or name.endswith(".evidence.json"):
                continue
            job_type, retry_at, _, created_at, worker_id, _ = index.lookup(
                folder, job_id, name, check_mtime=state is State.PENDING)
            _count(by_type, job_type, state)
            if state in (State.SUCCEEDED, State.FAILED) and worker_id:
                per_worker = finished_by.setdefault(str(worker_id), {"done": 0, "failed": 0})
                per_worker["done" if state is State.SUCCEEDED else "failed"] += 1
            if state is not State.PENDING:
                continue
            if retry_at and _after(retry_at, now):
                retry_waiting += 1
            age = _age(created_at, now)
            if age is None:
                continue
            if age > oldest.get(job_type, -1.0):
                oldest[job_type] = age
            buckets = backlog.setdefault(job_type, [0] * len(AGE_BUCKETS))
            buckets[bisect.bisect_left(AGE_BUCKETS, age / 60.0)] += 1
    for job_type, _worker_id, folder in queue_dirs(root):
        for name in fileops.listdir(folder):
            if job_id_of(name, ASSIGNED) is not None:
                _count(by_type, job_type, State.ASSIGNED)
            elif any(job_id_of(name, s) is not None for s in (PROCESSING, SUCCESS, FAILURE)):
                # An outcome waiting for recovery to collect it is still in the queue.
                _count(by_type, job_type, State.PROCESSING)
    index.save()
    totals = {s.value: sum(t[s.value] for t in by_type.values()) for s in State}
    incoming = sum(1 for name in fileops.listdir(root.input) if not is_ignored(name))
    return {"jobs": totals, "types": by_type, "incoming_events": incoming,
            "rejected_events": rejected,
            "retry_waiting": retry_waiting,
            "oldest_pending_age_seconds": {t: round(a, 3) for t, a in sorted(oldest.items())},
            "backlog_by_age": {"bucket_minutes": [*AGE_BUCKETS[:-1], None],
                               "types": dict(sorted(backlog.items()))},
            "finished_by_worker": finished_by}


def _age(created_at: Any, now: float) -> float | None:
    try:
        return max(0.0, now - parse_time(str(created_at)))
    except ValueError:
        return None


def _after(moment: str, now: float) -> bool:
    try:
        return parse_time(moment) > now
    except ValueError:
        return False


def workers(root: Root, config: Config) -> list[dict[str, Any]]:
    """Return each registered worker with its liveness and load."""
    stale = float(config.get("scheduler", "worker_stale_seconds"))
    now = time.time()
    found = []
    for worker_id, record in sorted(read_records(root).items()):
        queued, running = queue_load(root, worker_id, list(record["types"]))
        found.append(
            {
                "worker_id": worker_id,
                "alive": worker_alive(record, stale),
                "person": bool(record.get("person")),
                "pid": record.get("pid"),
                "host": record.get("host"),
                "types": record.get("types"),
                "capacity": record.get("capacity"),
                "queued": queued,
                "running": running,
                "heartbeat_age_seconds": round(heartbeat_age(record, now), 3),
            }
        )
    return found


def supervisor(root: Root) -> dict[str, Any]:
    """Return the supervisor's record and its children with pid and restarts."""
    try:
        record = fileops.read_json(root.run / "supervisor.json")
        alive = pid_alive(int(record["pid"]), float(record["pid_started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        record, alive = {}, False
    children = []
    for name in sorted(fileops.listdir(root.children)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            child = fileops.read_json(root.children / name)
        except (OSError, ValueError):
            continue
        pid, started = child.get("pid"), child.get("pid_started_at")
        child["alive"] = bool(pid and started and pid_alive(int(pid), float(started)))
        children.append(child)
    return {"pid": record.get("pid"), "alive": alive, "started_at": record.get("started_at"),
            "children": children}


def gather(root: Root, config: Config) -> dict[str, Any]:
    """Return everything `status` reports, as JSON-ready data."""
    try:
        ingest = fileops.read_json(root.run / "ingest.json")
    except (OSError, ValueError):
        ingest = {"paused": False, "reason": None}
    counts = job_counts(root)
    found_workers = workers(root, config)
    for worker in found_workers:
        worker.update(counts["finished_by_worker"].get(worker["worker_id"],
                                                       {"done": 0, "failed": 0}))
    try:
        totals = fileops.read_json(root.run / "counters.json")
    except (OSError, ValueError):
        totals = {}
    try:
        reload = fileops.read_json(root.run / "reload.json")
    except (OSError, ValueError):
        reload = None
    try:
        policy_errors = fileops.read_json(root.run / "policy-errors.json")
    except (OSError, ValueError):
        policy_errors = {}
    return {
        "root": str(root.path),
        **counts,
        "counters": totals,
        "last_reload": reload,
        "policy_errors": policy_errors if isinstance(policy_errors, dict) else {},
        "ingest": ingest,
        "workers": found_workers,
        "supervisor": supervisor(root),
    }
