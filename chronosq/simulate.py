"""Show where pending jobs would go under the configured policies, moving nothing."""

from __future__ import annotations

from typing import Any

from chronosq import fileops
from chronosq.config import Config
from chronosq.layout import ASSIGNED, Root, job_id_of
from chronosq.lifecycle import parse_time
from chronosq.policy import Policies, PolicyError, plugin_manager, validate
from chronosq.policy_types import Candidate
from chronosq.registry import queue_load, read_records, worker_alive
from chronosq.scheduler import PRIORITY_RANK


def pending_jobs(root: Root, job_type: str | None) -> list[dict[str, Any]]:
    """Return the readable pending jobs in the order the scheduler takes them."""
    jobs = []
    for name in fileops.listdir(root.jobs):
        if job_id_of(name, ASSIGNED) is None:
            continue
        try:
            job = fileops.read_json(root.jobs / name)
            key = (PRIORITY_RANK[job["priority"]], parse_time(job["created_at"]),
                   job["job_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if job_type is None or job["type"] == job_type:
            jobs.append((key, job))
    return [job for _, job in sorted(jobs, key=lambda pair: pair[0])]


def live_candidates(root: Root, config: Config) -> dict[str, Candidate]:
    stale = float(config.get("scheduler", "worker_stale_seconds"))
    found: dict[str, Candidate] = {}
    for worker_id, record in sorted(read_records(root).items()):
        if not worker_alive(record, stale) or record.get("person"):
            continue
        queued, running = queue_load(root, worker_id, list(record["types"]))
        capacity = int(record["capacity"])
        found[worker_id] = Candidate(
            worker_id=worker_id, host=str(record.get("host", "")),
            types=list(record["types"]), capacity=capacity, queued=queued,
            running=running, room=capacity - queued - running,
        )
    return found


def simulate(root: Root, config: Config, job_type: str | None = None) -> list[dict[str, Any]]:
    """Return one row per pending job: the worker it would go to, or why none."""
    manager = plugin_manager(config, root)
    validate(config, manager)
    policies = Policies(root, config, manager, persist=False)
    workers = live_candidates(root, config)
    rows = []
    for job in pending_jobs(root, job_type):
        row = {"job_id": job["job_id"], "type": job["type"], "priority": job["priority"],
               "policy": policies.policy_of(job["type"]), "worker_id": None, "reason": ""}
        offered = [w for w in workers.values() if job["type"] in w["types"] and w["room"] > 0]
        if not offered:
            row["reason"] = "no live worker with room serves this type"
        else:
            try:
                choice = policies.choose(job, offered)  # type: ignore[arg-type]
            except PolicyError as exc:
                row["reason"] = str(exc)
            else:
                if choice is None:
                    row["reason"] = "the policy leaves it pending"
                else:
                    row["worker_id"] = choice
                    workers[choice]["room"] -= 1
                    workers[choice]["queued"] += 1
        rows.append(row)
    return rows
