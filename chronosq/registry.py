"""Worker records in workers/ and the liveness checks made on them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypedDict

import psutil

from chronosq import fileops
from chronosq.layout import ASSIGNED, PROCESSING, Root, job_id_of
from chronosq.lifecycle import HOST, parse_time, utc_now

# psutil reports a process's start time from /proc; two reads of one process
# agree far closer than this, and a reused pid starts at a different time.
START_TIME_TOLERANCE_SECONDS = 0.05


class WorkerRecord(TypedDict):
    """The file workers/<worker_id>.json."""

    worker_id: str
    types: list[str]
    host: str
    pid: int
    pid_started_at: float
    capacity: int
    started_at: str
    heartbeat_at: str


def process_start_time(pid: int) -> float:
    """Return the start time psutil reports for `pid`."""
    return psutil.Process(pid).create_time()


def pid_alive(pid: int, started_at: float) -> bool:
    """True when `pid` runs and is the process that started at `started_at`.

    A zombie counts as dead, and so does a pid that now belongs to another
    process, which is never signalled.
    """
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started_at) > START_TIME_TOLERANCE_SECONDS:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def heartbeat_age(record: WorkerRecord, now: float | None = None) -> float:
    """Return the seconds since the worker's last heartbeat."""
    current = time.time() if now is None else now
    try:
        return current - parse_time(record["heartbeat_at"])
    except (KeyError, TypeError, ValueError):
        return float("inf")


def worker_alive(record: WorkerRecord, stale_seconds: float) -> bool:
    """True when a worker is live: its pid on this host, its heartbeat elsewhere.

    A person working a queue by hand has no process; their record counts as
    live, and their claims expire after the type's person_timeout instead.
    """
    if record.get("person"):
        return True
    if record.get("host") == HOST:
        return pid_alive(int(record["pid"]), float(record["pid_started_at"]))
    return heartbeat_age(record) < stale_seconds


def read_record(path: Path) -> WorkerRecord | None:
    """Return a worker record, or None when it is gone or unreadable.

    Unreadable records are left to recovery, which sets them aside once they
    are older than a heartbeat could leave them.
    """
    try:
        data = fileops.read_json(path)
    except (OSError, ValueError):
        return None
    required = ("worker_id", "types", "pid", "pid_started_at", "capacity")
    if not isinstance(data, dict) or any(key not in data for key in required):
        return None
    if not isinstance(data["types"], list) or not isinstance(data["pid"], int):
        return None
    return data  # type: ignore[return-value]


def read_records(root: Root) -> dict[str, WorkerRecord]:
    """Return every readable worker record by worker id."""
    records = {}
    for name in fileops.listdir(root.workers):
        worker_id = job_id_of(name, ".json")
        if worker_id is None:
            continue
        record = read_record(root.worker_path(worker_id))
        if record is not None:
            records[worker_id] = record
    return records


def queue_load(root: Root, worker_id: str, types: list[str]) -> tuple[int, int]:
    """Return (queued, running) job counts across a worker's queue folders."""
    queued = running = 0
    for job_type in types:
        for name in fileops.listdir(root.queue_dir(job_type, worker_id)):
            if job_id_of(name, ASSIGNED) is not None:
                queued += 1
            elif job_id_of(name, PROCESSING) is not None:
                running += 1
    return queued, running


def queue_dirs(root: Root) -> list[tuple[str, str, Path]]:
    """Return (type, worker_id, folder) for every worker queue folder."""
    found = []
    for job_type in fileops.listdir(root.broker):
        type_dir = root.broker / job_type
        for worker_id in fileops.listdir(type_dir):
            folder = type_dir / worker_id
            if folder.is_dir():
                found.append((job_type, worker_id, folder))
    return found


def record_summary(record: WorkerRecord) -> dict[str, Any]:
    return {key: record.get(key) for key in ("worker_id", "host", "pid", "types", "capacity")}


def death_evidence(record: WorkerRecord | None) -> dict[str, Any]:
    """Return what is known of a worker process that died while running a job."""
    return {
        "worker_pid": (record or {}).get("pid"),
        "worker_host": (record or {}).get("host"),
        "worker_started_at": (record or {}).get("started_at"),
        "last_heartbeat_at": (record or {}).get("heartbeat_at"),
        "detected_at": utc_now(),
        # Neither recovery nor a restarted worker is the dead worker's parent,
        # so the signal that ended it is not known.
        "exit_signal": None,
    }
