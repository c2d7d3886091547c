"""List jobs across every place, for `chronosq jobs list`."""

from __future__ import annotations

from typing import Any

from chronosq import fileops
from chronosq.layout import ASSIGNED, FAILURE, PROCESSING, SUCCESS, Root, job_id_of
from chronosq.lifecycle import State
from chronosq.registry import queue_dirs

PLACES = (("jobs", State.PENDING), ("hold", State.HELD), ("output", State.SUCCEEDED),
          ("error", State.FAILED), ("quarantine", State.QUARANTINED),
          ("canceled", State.CANCELED))


def _row(root: Root, path: Any, job_id: str, state: State,
         worker_id: str | None) -> dict[str, Any] | None:
    try:
        job = fileops.read_json(path)
    except (OSError, ValueError):
        return None
    record: dict[str, Any] = {}
    try:
        record = fileops.read_json(root.state_path(job_id))
    except (OSError, ValueError):
        pass
    return {
        "job_id": job_id, "state": state.value, "type": job.get("type", "?"),
        "priority": job.get("priority", "?"), "created_at": job.get("created_at", ""),
        "worker_id": worker_id or job.get("worker_id") or record.get("worker_id"),
        "attempts": record.get("attempts", 0),
    }


def list_jobs(root: Root, *, state: str | None = None, job_type: str | None = None,
              worker: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Return matching jobs, oldest first, at most `limit` of them."""
    rows = []
    for folder, place_state in PLACES:
        if state not in (None, place_state.value):
            continue
        for name in fileops.listdir(root.path / folder):
            job_id = job_id_of(name, ".json")
            if job_id is None or name.endswith(".evidence.json"):
                continue
            row = _row(root, root.path / folder / name, job_id, place_state, None)
            if row is not None:
                rows.append(row)
    for queue_type, worker_id, folder in queue_dirs(root):
        for name in fileops.listdir(folder):
            for suffix, place_state in ((ASSIGNED, State.ASSIGNED), (PROCESSING, State.PROCESSING),
                                        (SUCCESS, State.PROCESSING), (FAILURE, State.PROCESSING)):
                job_id = job_id_of(name, suffix)
                if job_id is None or state not in (None, place_state.value):
                    continue
                row = _row(root, folder / name, job_id, place_state, worker_id)
                if row is not None:
                    rows.append(row)
                break
    rows = [r for r in rows if (job_type is None or r["type"] == job_type)
            and (worker is None or r["worker_id"] == worker)]
    rows.sort(key=lambda r: (r["created_at"], r["job_id"]))
    return rows[:limit]
