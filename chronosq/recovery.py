"""Recovery: collect finished jobs and requeue the jobs of dead or silent workers.

Collecting and requeueing happen in this one process, so the check that an
outcome belongs to the current attempt and the requeue that starts a new one can
never interleave.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from chronosq import fileops, logs
from chronosq.layout import ASSIGNED, FAILURE, PROCESSING, SUCCESS, job_id_of
from chronosq.lifecycle import State, set_aside_corrupt, utc_now
from chronosq.registry import (
    WorkerRecord,
    death_evidence,
    queue_dirs,
    read_record,
    read_records,
    worker_alive,
)
from chronosq.service import Service

logger = logging.getLogger(__name__)

FINISHED_SUFFIXES = (SUCCESS, FAILURE)
RECONCILE_WINDOW_SECONDS = 3600.0
COUNTERS_NAME = "counters.json"
# Successes moved and recorded together, with one fsync per folder.
BATCH_SIZE = 64


class Recovery(Service):
    """Move outcomes out of worker queues; requeue what dead workers left behind."""

    role = "recovery"

    def setup(self) -> None:
        self.counters = self.load_counters()
        self.next_check = 0.0
        self.waiter.watch(self.root.broker)
        self.watch_queues()
        self.reconcile_finished()

    def reconcile_finished(self) -> None:
        """Record the final state of jobs whose move was not recorded.

        Recovery moves a job into output/, error/ or quarantine/ and then writes
        its state record; nothing moves a finished job again, so if recovery
        died in between, this start-up pass is what catches the record up. Only
        files moved within RECONCILE_WINDOW_SECONDS are read; fsck covers older ones.
        """
        cutoff = time.time() - RECONCILE_WINDOW_SECONDS
        # NOTE: hold/ and canceled/ are reconciled only here, at start-up, so a
        # record left behind by an operator command killed mid-way waits for
        # the next recovery start or `fsck --repair`.
        places = ((self.root.output, State.SUCCEEDED, "succeeded"),
                  (self.root.error, State.FAILED, "failed"),
                  (self.root.quarantine, State.QUARANTINED, "quarantined"),
                  (self.root.hold, State.HELD, "held"),
                  (self.root.canceled, State.CANCELED, "canceled"))
        for folder, state, event in places:
            for name in fileops.listdir(folder):
                job_id = job_id_of(name, ".json")
                if job_id is None or name.endswith(".evidence.json"):
                    continue
                path = folder / name
                try:
                    if os.stat(path).st_ctime < cutoff:
                        continue
                except FileNotFoundError:
                    continue
                record = self.lifecycle.read_state(job_id)
                if record is not None and record.get("state") == state.value:
                    continue
                try:
                    job = fileops.read_json(path)
                except ValueError:
                    continue
                self.lifecycle.transition(
                    job, event, state, record=record, level=logging.WARNING,
                    worker_id=job.get("worker_id"), error=job.get("error"),
                    reason="state record caught up after recovery restarted",
                    result_path=str(path.relative_to(self.root.path)),
                )

    def handle_changes(self, changes: list[tuple[Path, str]]) -> None:  # type: ignore[override]
        finished = []
        for folder, name in changes:
            if folder == self.root.broker or folder.parent == self.root.broker:
                self.watch_queues()
                continue
            if name.endswith(FINISHED_SUFFIXES) and not name.startswith("."):
                finished.append(folder / name)
        self.collect_all(finished)

    def step(self) -> float:
        now = time.monotonic()
        if now >= self.next_check or self.waiter.overflowed or not self.waiter.notifies:
            self.waiter.overflowed = False
            self.check()
            self.next_check = now + float(self.config.get("recovery", "interval_seconds"))
        return max(0.0, self.next_check - time.monotonic())

    def load_counters(self) -> dict[str, int]:
        """Return the running totals kept in run/counters.json across restarts."""
        try:
            data = fileops.read_json(self.root.run / COUNTERS_NAME)
        except (OSError, ValueError):
            data = {}
        return {key: int(data.get(key, 0)) if isinstance(data, dict) else 0
                for key in ("completions", "failures", "retries", "recoveries")}

    def count(self, state: Any, recovered: bool = False) -> None:
        """Add one outcome to the totals that the metrics file reports."""
        if state is None:
            return
        key = {State.SUCCEEDED: "completions", State.FAILED: "failures",
               State.PENDING: "recoveries" if recovered else "retries"}.get(state)
        if key is None:
            return
        self.counters[key] += 1
        self.counters_changed = True

    def save_counters(self) -> None:
        if getattr(self, "counters_changed", False):
            # NOTE: totals are written without fsync, so a power cut may lose a
            # few increments; Prometheus treats a drop as a counter reset.
            fileops.write_json(self.root.run / COUNTERS_NAME, self.counters, durable=False)
            self.counters_changed = False

    def check(self) -> None:
        """Collect outcomes, reap dead workers and expire silent claims, in one pass."""
        self.save_counters()
        self.watch_queues()
        stale = float(self.config.get("scheduler", "worker_stale_seconds"))
        records = read_records(self.root)
        live = {wid for wid, rec in records.items() if worker_alive(rec, stale)}
        for job_type, worker_id, folder in queue_dirs(self.root):
            if self.stopping:
                return
            self.collect_all([folder / name for name in fileops.listdir(folder)
                              if name.endswith(FINISHED_SUFFIXES) and not name.startswith(".")])
            if worker_id in live:
                person = bool(records[worker_id].get("person"))
                self.expire_claims(job_type, worker_id, folder, person)
            else:
                self.reap_queue(worker_id, folder, records.get(worker_id))
        for worker_id, record in records.items():
            if worker_id not in live:
                self.remove_record(worker_id, record)
        self.set_aside_unreadable_records(records, stale)

    def set_aside_unreadable_records(self, records: dict[str, WorkerRecord],
                                     stale_seconds: float) -> None:
        """Move worker records that stayed unreadable past a heartbeat to quarantine/."""
        for name in fileops.listdir(self.root.workers):
            worker_id = job_id_of(name, ".json")
            if worker_id is None or worker_id in records:
                continue
            path = self.root.workers / name
            try:
                age = time.time() - os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if age > stale_seconds:
                set_aside_corrupt(self.root, path, "unreadable worker record",
                                  self.lifecycle.durable)

    # -- outcomes --------------------------------------------------------------

    def collect_all(self, paths: list[Path]) -> None:
        """Collect outcome files; successes are moved and recorded in batches."""
        successes: list[tuple[Path, dict[str, Any], dict[str, Any] | None]] = []
        for path in dict.fromkeys(paths):
            accepted = self.accept(path)
            if accepted is None:
                continue
            if path.name.endswith(SUCCESS):
                successes.append(accepted)
                if len(successes) >= BATCH_SIZE:
                    self.collect_successes(successes)
            else:
                self.finish(path, self.lifecycle.collect(path, accepted[1]))
        self.collect_successes(successes)

    def collect_successes(
        self, batch: list[tuple[Path, dict[str, Any], dict[str, Any] | None]]
    ) -> None:
        if batch:
            for path in self.lifecycle.collect_successes(batch):
                self.finish(path, State.SUCCEEDED)
            batch.clear()

    def accept(self, path: Path) -> tuple[Path, dict[str, Any], dict[str, Any] | None] | None:
        """Read an outcome file; return it with its job's state record when it
        belongs to the current attempt, or set it aside and return None."""
        try:
            outcome = fileops.read_json(path)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            logs.log_event(logger, logging.ERROR, "outcome.unreadable",
                           path=str(path), error=str(exc))
            self.set_aside(path, f"unreadable outcome: {exc}")
            return None
        worker_id = path.parent.name
        suffix = SUCCESS if path.name.endswith(SUCCESS) else FAILURE
        job_id = job_id_of(path.name, suffix)
        if not isinstance(outcome, dict) or outcome.get("job_id") != job_id:
            self.set_aside(path, "outcome file does not hold its job")
            return None
        outcome.setdefault("worker_id", worker_id)
        record = self.lifecycle.read_state(job_id)
        if not self.is_current(outcome, worker_id, record):
            if self.copy_elsewhere(job_id, path):
                self.set_aside(path, "stale outcome of an attempt that was requeued")
                return None
            # The job is in no other place, so the record is what fell behind.
            # Setting the outcome aside would lose the job.
            logs.log_event(logger, logging.WARNING, "outcome.accepted_late", job_id=job_id,
                           worker_id=worker_id, attempt=outcome.get("attempt"),
                           found=(record or {}).get("state"))
        return path, outcome, record

    def copy_elsewhere(self, job_id: str, outcome_path: Path) -> bool:
        """True when the job is in some place other than this outcome and its claim."""
        name = f"{job_id}.json"
        for folder in (self.root.jobs, self.root.hold, self.root.output, self.root.error,
                       self.root.quarantine, self.root.canceled):
            if (folder / name).exists():
                return True
        own_claim = outcome_path.parent / f"{job_id}{PROCESSING}"
        for _, _, folder in queue_dirs(self.root):
            for suffix in (ASSIGNED, PROCESSING, SUCCESS, FAILURE):
                path = folder / f"{job_id}{suffix}"
                if path not in (outcome_path, own_claim) and path.exists():
                    return True
        return False

    def finish(self, path: Path, state: State | None) -> None:
        """Count a collected outcome and remove a claim a power cut brought back."""
        self.count(state)
        if state is not None:
            job_id = path.name.split(".json")[0]
            fileops.unlink(path.parent / f"{job_id}{PROCESSING}",
                           durable=self.lifecycle.durable, missing_ok=True)

    def is_current(self, outcome: dict[str, Any], worker_id: str,
                   record: dict[str, Any] | None) -> bool:
        """True when the outcome belongs to the attempt the state record names."""
        if record is None:
            return True
        if record.get("worker_id") != worker_id:
            return False
        attempt = outcome.get("attempt")
        if attempt is None:
            # A worker written to the file protocol alone claims without writing
            # the state record, which then still records the job as assigned.
            return record.get("state") in ("assigned", "processing")
        # A requeued claim leaves the record pending or assigned again, so only a
        # record that says this very attempt is running accepts the outcome.
        return record.get("state") == "processing" and attempt == record.get("attempts")

    def set_aside(self, path: Path, reason: str) -> None:
        """Keep an outcome that cannot be accepted in error/ and log why."""
        target = self.root.error / f"{path.name}.{time.time_ns()}.stale"
        try:
            fileops.rename(path, target, durable=self.lifecycle.durable)
        except FileNotFoundError:
            return
        logs.log_event(logger, logging.WARNING, "outcome.stale", path=str(target),
                       worker_id=path.parent.name, reason=reason)

    # -- dead workers and silent claims ----------------------------------------

    def reap_queue(self, worker_id: str, folder: Path, record: WorkerRecord | None) -> None:
        """Requeue the jobs in a dead worker's queue folder."""
        current = read_record(self.root.worker_path(worker_id))
        stale = float(self.config.get("scheduler", "worker_stale_seconds"))
        if current is not None and worker_alive(current, stale):
            return  # a new process took this worker id since the liveness check
        if record is not None:
            reason = f"worker {worker_id} died (pid {record.get('pid')} is gone)"
        else:
            reason = f"worker {worker_id} has no record"
        evidence = death_evidence(record)
        for name in sorted(fileops.listdir(folder)):
            running = job_id_of(name, PROCESSING)
            queued = job_id_of(name, ASSIGNED)
            if running is not None:
                self.requeue(folder / name, worker_id, reason, count_attempt=True,
                             crashed=True, evidence=evidence)
            elif queued is not None:
                self.requeue(folder / name, worker_id, reason, count_attempt=False)
        if record is not None:
            try:
                folder.rmdir()
            except OSError:
                pass

    def expire_claims(self, job_type: str, worker_id: str, folder: Path,
                      person: bool = False) -> None:
        """Requeue claims whose file went unrefreshed past the type's timeout."""
        settings = self.config.for_type(job_type)
        timeout = settings.person_timeout if person else settings.timeout
        now = time.time()
        for name in fileops.listdir(folder):
            if job_id_of(name, PROCESSING) is None:
                continue
            try:
                # A rename and a heartbeat both update ctime, so ctime is the
                # time of the claim's last sign of life.
                refreshed = os.stat(folder / name).st_ctime
            except FileNotFoundError:
                continue
            if now - refreshed > timeout:
                reason = f"claim timed out: no heartbeat for {timeout:g}s"
                self.requeue(folder / name, worker_id, reason, count_attempt=True)

    def requeue(
        self,
        path: Path,
        worker_id: str,
        reason: str,
        *,
        count_attempt: bool,
        crashed: bool = False,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        try:
            job = fileops.read_json(path)
        except FileNotFoundError:
            return
        except ValueError as exc:
            self.set_aside(path, f"unreadable job file: {exc}")
            return
        state = self.lifecycle.requeue(
            path, job, reason=reason, worker_id=worker_id, count_attempt=count_attempt,
            crashed=crashed, evidence=evidence,
        )
        self.count(state, recovered=True)

    def remove_record(self, worker_id: str, record: WorkerRecord) -> None:
        """Delete a dead worker's record once its queue is empty."""
        path = self.root.worker_path(worker_id)
        current = read_record(path)
        if current is not None and current.get("pid") != record.get("pid"):
            return  # the worker restarted under the same id meanwhile
        if fileops.unlink(path, durable=self.lifecycle.durable, missing_ok=True):
            logs.log_event(logger, logging.WARNING, "worker.reaped", worker_id=worker_id,
                           pid=record.get("pid"), at=utc_now())
