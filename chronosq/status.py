"""Collect what `chronosq status` shows: job counts, workers, supervisor children.

Counts come from the files' places, which are the truth. The type of a job
never changes, so the type of each job id seen once is cached in
run/status-types.json and later runs read only the files they have not seen.
"""

from __future__ import annotations

import time
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
from chronosq.lifecycle import State
from chronosq.registry import (
    heartbeat_age,
    pid_alive,
    queue_dirs,
    queue_load,
    read_records,
    worker_alive,
)

TYPE_CACHE_NAME = "status-types.json"
UNKNOWN_TYPE = "?"


class TypeCache:
    """Job id to type, read from job files once and kept under run/."""

    def __init__(self, root: Root):
        self.root = root
        self.path = root.run / TYPE_CACHE_NAME
        try:
            data = fileops.read_json(self.path)
            self.types: dict[str, str] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.types = {}
        self.seen: set[str] = set()
        self.changed = False

    def type_of(self, folder_path: Any, job_id: str, name: str) -> str:
        self.seen.add(job_id)
        found = self.types.get(job_id)
        if found is not None:
            return found
        try:
            job_type = str(fileops.read_json(folder_path / name)["type"])
        except (OSError, ValueError, KeyError, TypeError):
            return UNKNOWN_TYPE
        self.types[job_id] = job_type
        self.changed = True
        return job_type

    def save(self) -> None:
        if len(self.seen) < len(self.types):
            self.types = {k: v for k, v in self.types.items() if k in self.seen}
            self.changed = True
        if self.changed:
            try:
                fileops.write_json(self.path, self.types, durable=False)
            except OSError:
                pass  # the cache only saves time; a read-only root still reports


def _count(counts: dict[str, dict[str, int]], job_type: str, state: State) -> None:
    per_type = counts.setdefault(job_type, {s.value: 0 for s in State})
    per_type[state.value] += 1


def job_counts(root: Root) -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
    """Return (totals per state, counts per type and state, rejected events)."""
    cache = TypeCache(root)
    by_type: dict[str, dict[str, int]] = {}
    places = (
        (root.jobs, State.PENDING),
        (root.hold, State.HELD),
        (root.output, State.SUCCEEDED),
        (root.error, State.FAILED),
    )
    rejected = 0
    for folder, state in places:
        for name in fileops.listdir(folder):
            if name.endswith(REJECTED):
                rejected += 1
            job_id = job_id_of(name, ".json")
            if job_id is None:
                continue
            _count(by_type, cache.type_of(folder, job_id, name), state)
    for job_type, _worker_id, folder in queue_dirs(root):
        for name in fileops.listdir(folder):
            if job_id_of(name, ASSIGNED) is not None:
                _count(by_type, job_type, State.ASSIGNED)
            elif any(job_id_of(name, s) is not None for s in (PROCESSING, SUCCESS, FAILURE)):
                # An outcome waiting for recovery to collect it is still in the queue.
                _count(by_type, job_type, State.PROCESSING)
    cache.save()
    totals = {s.value: sum(t[s.value] for t in by_type.values()) for s in State}
    return totals, by_type, rejected


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
    totals, by_type, rejected = job_counts(root)
    return {
        "root": str(root.path),
        "jobs": totals,
        "types": by_type,
        "rejected_events": rejected,
        "workers": workers(root, config),
        "supervisor": supervisor(root),
    }
