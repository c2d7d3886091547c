"""Scheduler: assign pending jobs to live workers through each type's policy.

Pending jobs are kept in memory, one heap per type ordered by priority, then
creation time, then id. Each job file is read once, when a notification or a
periodic scan of jobs/ first shows it, so the cost of an assignment does not grow
with the number of pending jobs.
"""

from __future__ import annotations

import heapq
import logging
import time
from pathlib import Path
from typing import Any

from chronosq import fileops, logs
from chronosq.defaults import POLICY_ERROR_BACKOFF_MAX_SECONDS, PRIORITIES
from chronosq.errors import ChronosQError
from chronosq.layout import ASSIGNED, PROCESSING, job_id_of
from chronosq.lifecycle import State, parse_time, set_aside_corrupt, utc_now
from chronosq.policy import Policies, PolicyError, plugin_manager
from chronosq.policy_types import Candidate
from chronosq.registry import queue_load, read_records, worker_alive
from chronosq.service import Service

logger = logging.getLogger(__name__)

# Under run/: the types whose policy is failing, with the error.
POLICY_ERRORS_NAME = "policy-errors.json"
PRIORITY_RANK = {name: rank for rank, name in enumerate(PRIORITIES)}
# Seconds before retrying jobs whose state record lags behind their file.
DEFER_RETRY_SECONDS = 0.02
LIVENESS_CACHE_SECONDS = 0.5
# Assignments committed together, with one fsync per folder.
BATCH_SIZE = 64
# NOTE: jobs a policy declines are asked again on every pass; past this many in
# one pass the rest of the type waits for the next pass.
MAX_DECLINED_PER_PASS = 1000


def retry_time(job: dict[str, Any]) -> float | None:
    """Return the epoch seconds before which a retried job must wait, if any."""
    value = job.get("retry_at")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


class Scheduler(Service):
    """Assign pending jobs, best priority and oldest first, to workers with room."""

    role = "scheduler"

    def setup(self) -> None:
        self.policies = Policies(self.root, self.config, plugin_manager(self.config, self.root))
        # Types whose policy failed on its last call, as status and explain show them.
        self.policy_errors: dict[str, dict[str, Any]] = {}
        self.save_policy_errors()
        self.paused_until: dict[str, float] = {}
        self.pause_seconds: dict[str, float] = {}
        self.heaps: dict[str, list[tuple[int, float, str]]] = {}
        self.delayed: list[tuple[float, str, tuple[int, float, str]]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.workers_changed = True
        self.records: dict[str, Any] = {}
        self.live: dict[str, bool] = {}
        self.live_checked = 0.0
        self.next_scan = 0.0
        # Set when something may let a pending job be assigned now.
        self.changed = True
        self.released = False
        self.next_liveness_pass = 0.0
        self.waiter.watch(self.root.jobs)
        self.waiter.watch(self.root.workers)
        self.waiter.watch(self.root.broker)

    def on_reload(self) -> None:
        try:
            manager = plugin_manager(self.config, self.root)
        except ChronosQError as exc:
            logs.log_event(logger, logging.ERROR, "config.reload_failed", error=str(exc))
            return
        self.policies = Policies(self.root, self.config, manager)
        self.paused_until.clear()
        self.pause_seconds.clear()
        self.policy_errors.clear()
        self.save_policy_errors()
        self.changed = True

    # -- pending index ---------------------------------------------------------

    def handle_changes(self, changes: list[tuple[Path, str]]) -> None:  # type: ignore[override]
        for folder, name in changes:
            if name.startswith("."):
                continue  # a temporary file, renamed into place later
            if folder == self.root.jobs:
                job_id = job_id_of(name, ASSIGNED)
                if job_id is not None:
                    # A known job arrives again when an operator clears its
                    # retry time. The stale heap entry is skipped once assigned.
                    self.load_job(job_id)
            elif folder == self.root.workers:
                self.workers_changed = True
                self.changed = True
            elif folder.parent == self.root.broker or folder == self.root.broker:
                self.watch_queues()
                self.changed = True
            elif name.endswith((ASSIGNED, PROCESSING)):
                # A worker's room changes only when an assigned job or a claim
                # leaves its queue. Finished outcomes do not count.
                self.changed = True

    def load_job(self, job_id: str) -> None:
        """Read a pending job file once and put it in its type's heap."""
        try:
            job = fileops.read_json(self.root.jobs / f"{job_id}{ASSIGNED}")
            key = (PRIORITY_RANK[job["priority"]], parse_time(job["created_at"]), job_id)
            job_type = job["type"]
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError) as exc:
            # Job files are renamed into jobs/ complete, so this one was damaged
            # on disk; keep it for inspection rather than reading it every scan.
            set_aside_corrupt(self.root, self.root.jobs / f"{job_id}{ASSIGNED}",
                              f"unreadable job file: {exc!r}", self.lifecycle.durable)
            return
        self.jobs[job_id] = job
        self.changed = True
        retry_at = retry_time(job)
        if retry_at is not None and retry_at > time.time():
            heapq.heappush(self.delayed, (retry_at, job_type, key))
            return
        heapq.heappush(self.heaps.setdefault(job_type, []), key)

    def release_due(self) -> float | None:
        """Move jobs whose retry time has come into their heaps; return the next time."""
        now = time.time()
        while self.delayed and self.delayed[0][0] <= now:
            _, job_type, key = heapq.heappop(self.delayed)
            if key[2] in self.jobs:
                heapq.heappush(self.heaps.setdefault(job_type, []), key)
                self.released = True
        return self.delayed[0][0] if self.delayed else None

    def rescan(self) -> None:
        """List jobs/ and index the job files no notification reported."""
        present = set()
        for name in fileops.listdir(self.root.jobs):
            job_id = job_id_of(name, ASSIGNED)
            if job_id is None:
                continue
            present.add(job_id)
            if job_id not in self.jobs:
                self.load_job(job_id)
        for job_id in set(self.jobs) - present:
            self.jobs.pop(job_id, None)
        self.watch_queues()

    # -- workers ---------------------------------------------------------------

    def live_records(self) -> dict[str, Any]:
        """Return the records of live workers, rechecking pids at most twice a second."""
        now = time.monotonic()
        if self.workers_changed:
            self.records = read_records(self.root)
            self.workers_changed = False
            self.live_checked = 0.0
        if now - self.live_checked > LIVENESS_CACHE_SECONDS:
            stale = float(self.config.get("scheduler", "worker_stale_seconds"))
            self.live = {
                worker_id: worker_alive(record, stale)
                for worker_id, record in self.records.items()
            }
            self.live_checked = now
        # People pull jobs with `chronosq take`; nothing is pushed to them.
        return {wid: rec for wid, rec in self.records.items()
                if self.live.get(wid) and not rec.get("person")}

    def candidates(self, records: dict[str, Any]) -> dict[str, Candidate]:
        """Return every live worker with its current load and room."""
        found: dict[str, Candidate] = {}
        for worker_id in sorted(records):
            record = records[worker_id]
            queued, running = queue_load(self.root, worker_id, list(record["types"]))
            capacity = int(record["capacity"])
            found[worker_id] = Candidate(
                worker_id=worker_id,
                host=str(record.get("host", "")),
                types=list(record["types"]),
                capacity=capacity,
                queued=queued,
                running=running,
                room=capacity - queued - running,
            )
        return found

    # -- assignment ------------------------------------------------------------

    def step(self) -> float:
        now = time.monotonic()
        if now >= self.next_scan or self.waiter.overflowed or not self.waiter.notifies:
            self.waiter.overflowed = False
            self.rescan()
            self.next_scan = now + float(self.config.get("scheduler", "rescan_seconds"))
            # Without notifications, or after missing some, room may have changed.
            self.changed = True
        next_retry = self.release_due()
        deferred = False
        if any(until <= now for until in self.paused_until.values()):
            self.paused_until = {t: u for t, u in self.paused_until.items() if u > now}
            self.changed = True
        if self.changed or self.released or now >= self.next_liveness_pass:
            # Nothing else can make room or add work: only a changed file, a
            # retry time that came, or a worker's liveness, checked on a timer.
            self.changed = self.released = False
            self.next_liveness_pass = now + LIVENESS_CACHE_SECONDS
            deferred = self.assign_pending()
        now = time.monotonic()
        wait = max(0.0, self.next_scan - now)
        if next_retry is not None:
            wait = min(wait, max(0.0, next_retry - time.time()))
        for job_type, until in self.paused_until.items():
            if self.heaps.get(job_type):
                wait = min(wait, max(0.0, until - now))
        if any(self.heaps.values()):
            wait = min(wait, max(0.0, self.next_liveness_pass - now))
        if deferred:
            self.changed = True
            return min(wait, DEFER_RETRY_SECONDS)
        return wait

    def assign_pending(self) -> bool:
        """Assign what can be assigned now; return True when jobs were deferred."""
        if not any(self.heaps.values()):
            return False
        workers = self.candidates(self.live_records())
        deferred = False
        now = time.monotonic()
        for job_type in sorted(self.heaps):
            if self.stopping:
                break
            if self.paused_until.get(job_type, 0.0) > now:
                continue
            deferred |= self.assign_type(job_type, workers)
        return deferred

    def assign_type(self, job_type: str, workers: dict[str, Candidate]) -> bool:
        """Assign the type's pending jobs in order; return True when some were deferred.

        A job the policy declines stays pending and the next one is tried, so a
        rule waiting for one busy worker does not hold up the rest of the type.
        """
        heap = self.heaps[job_type]
        waiting: list[tuple[int, float, str]] = []
        batch: list[tuple[dict[str, Any], str, dict[str, Any] | None]] = []
        deferred = False
        declined = 0
        while heap and not self.stopping:
            offered = [
                w for w in workers.values() if job_type in w["types"] and w["room"] > 0
            ]
            if not offered:
                break
            key = heapq.heappop(heap)
            job = self.jobs.get(key[2])
            if job is None:
                continue
            record = self.lifecycle.read_state(job["job_id"])
            path = self.root.jobs / f"{job['job_id']}{ASSIGNED}"
            if self.lifecycle.state_lags(path, record, State.PENDING):
                waiting.append(key)
                deferred = True
                continue
            try:
                choice = self.policies.choose(job, offered)  # type: ignore[arg-type]
            except PolicyError as exc:
                waiting.append(key)
                self.pause_type(job_type, job, exc)
                break
            self.pause_seconds.pop(job_type, None)
            if self.policy_errors.pop(job_type, None) is not None:
                self.save_policy_errors()
            if choice is None:
                waiting.append(key)
                declined += 1
                if declined >= MAX_DECLINED_PER_PASS:
                    break
                continue
            self.jobs.pop(job["job_id"], None)
            self.beat()
            batch.append((job, choice, record))
            workers[choice]["room"] -= 1
            workers[choice]["queued"] += 1
            if len(batch) >= BATCH_SIZE:
                self.commit(batch)
        self.commit(batch)
        for key in waiting:
            heapq.heappush(heap, key)
        return deferred

    def commit(self, batch: list[tuple[dict[str, Any], str, dict[str, Any] | None]]) -> None:
        """Move and record a batch of choices, then save the policies' state."""
        if batch:
            self.lifecycle.assign_batch(batch)
            batch.clear()
        self.policies.flush()

    def pause_type(self, job_type: str, job: dict[str, Any], error: Exception) -> None:
        """Leave a type's jobs pending for a while after its policy failed.

        The pause doubles on each failure in a row, so a broken policy costs a
        log line every few seconds rather than one per scheduling pass.
        """
        base = float(self.config.get("scheduler", "policy_error_backoff_seconds"))
        pause = min(POLICY_ERROR_BACKOFF_MAX_SECONDS, self.pause_seconds.get(job_type, base / 2) * 2)
        self.pause_seconds[job_type] = pause
        self.paused_until[job_type] = time.monotonic() + pause
        policy = self.policies.policy_of(job_type)
        logs.log_event(
            logger, logging.ERROR, "policy.failed", job_id=job["job_id"], type=job_type,
            policy=policy, error=str(error), retry_in_seconds=pause,
        )
        self.policy_errors[job_type] = {"policy": policy, "error": str(error),
                                        "job_id": job["job_id"], "at": utc_now(),
                                        "retry_in_seconds": pause}
        self.save_policy_errors()

    def save_policy_errors(self) -> None:
        """Write the types whose policy is failing to run/, for status and explain."""
        try:
            fileops.write_json(self.root.run / POLICY_ERRORS_NAME, self.policy_errors,
                               durable=False)
        except OSError as exc:
            logs.log_event(logger, logging.ERROR, "policy.errors_not_saved", error=str(exc))
