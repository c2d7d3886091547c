"""Job lifecycle: the places a job can be, and the transitions between them.

A job's place on disk is the truth: pending in jobs/, assigned or processing in
a worker's queue folder, held in hold/, succeeded in output/, failed in error/.
Every transition is one rename. The process whose rename succeeds owns the job
and is the only writer of its state file until the next transition; a process
whose rename fails with FileNotFoundError lost a race and backs off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from chronosq import fileops, logs
from chronosq.config import Config
from chronosq.layout import ASSIGNED, PROCESSING, SUCCESS, Root

logger = logging.getLogger(__name__)


class State(StrEnum):
    """Lifecycle places; the values are the names `status --json` reports."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    PROCESSING = "processing"
    HELD = "held"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    CANCELED = "canceled"


ACTIVE_STATES = (State.ASSIGNED, State.PROCESSING)
FINISHED_STATES = (State.SUCCEEDED, State.FAILED)
# States no file in jobs/ or a worker queue can be in; a copy found there is stale.
FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.QUARANTINED, State.CANCELED)

# Keys a worker adds to a job file when it records an outcome.
OUTCOME_KEYS = ("result", "error", "attempt", "worker_id", "finished_at", "retry_at",
                "operator", "canceled", "traceback")

HOST = socket.gethostname()

# Seconds the next process waits for a state record to catch up with a rename
# before it takes the previous process for dead and goes on.
STATE_LAG_SECONDS = 5.0
# Seconds a pending job may lack a state record before the scheduler writes one.
# Ingest writes the record right after the job file, or again when it replays
# the event after a crash, so only a job whose event was removed waits this long.
MISSING_STATE_SECONDS = 300.0


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> float:
    """Return the epoch seconds of an ISO 8601 time; naive times are taken as UTC."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def new_job_id() -> str:
    """Return a fresh job id that sorts by creation time."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"j{stamp}-{os.urandom(4).hex()}"


def derive_job_id(name: str, data: bytes, mtime_ns: int) -> str:
    """Return the id of an event that names none: the same file read twice gives
    the same id, and two files with equal contents written at different times
    give different ids."""
    digest = hashlib.sha256()
    digest.update(os.fsencode(name))
    digest.update(b"\0")
    digest.update(str(mtime_ns).encode())
    digest.update(b"\0")
    digest.update(data)
    return "e" + digest.hexdigest()[:32]


def set_aside_corrupt(root: Root, path: Path, reason: str, durable: bool) -> bool:
    """Move an unreadable file to quarantine/ beside a file stating the reason."""
    target = root.quarantine / f"{path.name}.{time.time_ns()}.corrupt"
    record = {"path": str(path.relative_to(root.path)), "reason": reason, "at": utc_now()}
    fileops.write_json(target.with_name(target.name + ".reason"), record, durable=durable)
    try:
        fileops.rename(path, target, durable=durable)
    except FileNotFoundError:
        return False
    logs.log_event(logger, logging.WARNING, "file.set_aside", path=str(path),
                   target=str(target), reason=reason)
    return True


def job_fields(job: dict[str, Any]) -> dict[str, Any]:
    """Return the job without the outcome keys a worker added."""
    return {key: value for key, value in job.items() if key not in OUTCOME_KEYS}


@dataclass
class Step:
    """One transition to record: the job, the event's name, the new state and details."""

    job: dict[str, Any]
    event: str
    state: State
    worker_id: str | None = None
    level: int = logging.INFO
    record: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Lifecycle:
    """Transitions of jobs on one root, run by one process in one role."""

    def __init__(self, root: Root, config: Config, role: str):
        self.root = root
        self.config = config
        self.role = role
        self.durable = config.durable
        self.deferred_error: OSError | None = None
        # job id -> (history length before, record) of state writes that failed
        self.unrecorded: dict[str, tuple[int, dict[str, Any]]] = {}

    def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration, keeping state writes still to be retried."""
        self.config = config
        self.durable = config.durable

    # -- moves -----------------------------------------------------------------

    def move(self, src: Path, dst: Path, sync_dir: bool = True) -> bool:
        """Rename a job file into its next place; False when another process took it.

        When the rename happened but the fsync after it failed, the move is
        still recorded in the state file by the caller's transition, which then
        raises the error, so the state never lags a move that is visible.
        """
        try:
            fileops.rename(src, dst, durable=self.durable, sync_dir=sync_dir)
        except FileNotFoundError:
            return False
        except fileops.NotDurableError as exc:
            self.deferred_error = exc
        return True

    def raise_deferred(self) -> None:
        """Raise the fsync error of the last move, now that the move is recorded."""
        error, self.deferred_error = self.deferred_error, None
        if error is not None:
            raise error

    def flush_unrecorded(self) -> None:
        """Write state records whose write failed earlier, unless another process
        has written the record since."""
        for job_id, (base_length, record) in list(self.unrecorded.items()):
            current = self.read_state(job_id)
            if current is not None and len(current.get("history", [])) != base_length:
                del self.unrecorded[job_id]
                continue
            fileops.write_json(self.root.state_path(job_id), record, durable=self.durable)
            del self.unrecorded[job_id]
            logs.log_event(logger, logging.INFO, "state.recorded_late", job_id=job_id,
                           state=record.get("state"))

    # -- state files ---------------------------------------------------------

    def read_state(self, job_id: str) -> dict[str, Any] | None:
        """Return a job's state record, or None when it has none or it is damaged.

        An I/O error is raised, not taken for a missing record, so a failing
        disk never makes a caller start a record afresh and lose its history.
        """
        try:
            record = fileops.read_json(self.root.state_path(job_id))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            logs.log_event(
                logger, logging.ERROR, "state.unreadable", job_id=job_id, error=str(exc)
            )
            return None
        return record if isinstance(record, dict) else None

    def new_state(self, job: dict[str, Any], by: str) -> dict[str, Any]:
        """Return the first state record of a job that was just accepted."""
        now = utc_now()
        return {
            "job_id": job["job_id"],
            "type": job["type"],
            "priority": job["priority"],
            "state": State.PENDING.value,
            "attempts": 0,
            "max_attempts": self.config.for_type(job["type"]).max_attempts,
            "worker_id": None,
            "created_at": job["created_at"],
            "updated_at": now,
            "event": job.get("event"),
            "event_digest": job.get("event_digest"),
            "last_error": None,
            "errors": [],
            "result_path": None,
            "history": [
                {"at": now, "event": "ingested", "state": "pending", "by": by}
            ],
        }

    def create_state(self, record: dict[str, Any], sync_dir: bool = True) -> bool:
        """Write a first state record unless one exists; return True if written."""
        return self.create_states([record], sync_dir=sync_dir)[0]

    def create_states(self, records: list[dict[str, Any]], sync_dir: bool = True) -> list[bool]:
        """Write first state records unless they exist; return which were written.

        Ingest and the scheduler may both create the record of the same job, so
        creation links a finished temporary file into place, which fails rather
        than replaces when the other process won. The temporary names need no
        folder fsync of their own: only the linked names have to survive.
        """
        paths = [self.root.state_path(record["job_id"]) for record in records]
        staged = fileops.stage([(path, fileops.dumps(record))
                                for path, record in zip(paths, records)], durable=self.durable)
        created = []
        try:
            for tmp, path in zip(staged, paths):
                try:
                    fileops.link(tmp, path)
                except FileExistsError:
                    created.append(False)
                    continue
                finally:
                    fileops.unlink(tmp, durable=False, missing_ok=True)
                created.append(True)
        finally:
            for tmp in staged[len(created):]:
                fileops.unlink(tmp, durable=False, missing_ok=True)
        if self.durable and sync_dir and any(created):
            fileops.fsync_dir(self.root.state)
        return created

    def transition(
        self,
        job: dict[str, Any],
        event: str,
        state: State,
        *,
        worker_id: str | None = None,
        level: int = logging.INFO,
        record: dict[str, Any] | None = None,
        sync_dir: bool = True,
        **details: Any,
    ) -> dict[str, Any]:
        """Record a transition the caller has just made: state file, then a log line.

        `record` is the state record the caller read before its rename, if any.
        """
        step = Step(job, event, state, worker_id=worker_id, level=level, record=record,
                    details=details)
        return self.record_steps([step], sync_dir=sync_dir)[0]

    def record_steps(self, steps: list[Step], sync_dir: bool = True) -> list[dict[str, Any]]:
        """Record transitions the caller has just made, fsyncing their state files
        together, then log each; return the new records in order."""
        records = []
        bases = []
        for step in steps:
            record = step.record
            if record is None:
                record = self.read_state(step.job["job_id"]) or self.new_state(step.job,
                                                                               by=self.role)
            bases.append(len(record["history"]))
            records.append(self.apply(record, step))
        entries = [(self.root.state_path(step.job["job_id"]), fileops.dumps(record))
                   for step, record in zip(steps, records)]
        try:
            fileops.write_many(entries, durable=self.durable, sync_dir=sync_dir)
        except OSError:
            for step, base, record in zip(steps, bases, records):
                self.unrecorded[step.job["job_id"]] = (base, record)
            raise
        finally:
            self.raise_deferred()
        for step, record in zip(steps, records):
            details = step.details
            logs.log_event(
                logger,
                step.level,
                f"job.{step.event}",
                job_id=step.job["job_id"],
                type=step.job.get("type"),
                worker_id=step.worker_id,
                attempt=details.get("attempt", record.get("attempts")),
                state=step.state.value,
                error=details.get("error"),
                reason=details.get("reason"),
            )
        return records

    def apply(self, record: dict[str, Any], step: Step) -> dict[str, Any]:
        """Add a step to a state record's history and fields; return the record."""
        details = step.details
        worker_id = step.worker_id
        now = utc_now()
        entry: dict[str, Any] = {"at": now, "event": step.event, "state": step.state.value}
        entry["by"] = self.role
        if worker_id is not None:
            entry["worker_id"] = worker_id
        entry.update({k: v for k, v in details.items() if v is not None})
        record["history"].append(entry)
        record["state"] = step.state.value
        record["updated_at"] = now
        if worker_id is not None:
            record["worker_id"] = worker_id
        for key in ("attempts", "last_error", "result_path", "crashes", "retry_at"):
            if key in details:
                record[key] = details[key]
        if details.get("error") is not None:
            record["last_error"] = details["error"]
            record["errors"].append(
                {
                    "attempt": details.get("attempt", record["attempts"]),
                    "worker_id": worker_id,
                    "error": details["error"],
                    "at": now,
                }
            )
        return record

    # -- transitions ---------------------------------------------------------

    def state_lags(
        self,
        path: Path,
        record: dict[str, Any] | None,
        state: State,
        worker_id: str | None = None,
    ) -> bool:
        """True while the state record does not yet show the job at `path` in `state`.

        The process that renamed a job into a place writes the state record just
        after; the next process waits for that write, so each record has one
        writer at a time. A record still behind STATE_LAG_SECONDS after the rename
        belongs to a process that died in between, and the next process goes on.
        """
        agrees = record is not None and record.get("state") == state.value and (
            worker_id is None or record.get("worker_id") == worker_id)
        if agrees and state is not State.ASSIGNED:
            return False
        try:
            moved_at = os.stat(path).st_ctime
        except FileNotFoundError:
            return True
        if agrees and record is not None and not self.written_before_move(record, moved_at):
            return False
        limit = STATE_LAG_SECONDS if record is not None else MISSING_STATE_SECONDS
        if time.time() - moved_at < limit:
            return True
        final = self.final_path(record) if record is not None else None
        if final is not None and final.exists():
            # The job already ended; this file is a copy that must not run again.
            set_aside_corrupt(self.root, path, f"copy of a job that is already "
                              f"{record.get('state')}", self.durable)
            return True
        logs.log_event(
            logger, logging.WARNING, "state.repaired", job_id=path.name.split(".json")[0],
            expected=state.value, found=(record or {}).get("state"), worker_id=worker_id,
        )
        return False

    def written_before_move(self, record: dict[str, Any], moved_at: float) -> bool:
        """True when an "assigned" record predates the rename into the queue, so it
        describes an earlier assignment to the same worker, not this one.

        Only assigned files are compared, because heartbeats touch claims and
        move their ctime past the record. The kernel stamps ctime from the clock
        that time.time() reads, at a coarser grain, so a record written after
        the rename is never older than it.
        """
        try:
            return parse_time(str(record.get("updated_at"))) < moved_at
        except ValueError:
            return False

    def final_path(self, record: dict[str, Any]) -> Path | None:
        """Return where a record in a final state places its job, or None.

        An operator's retry that stopped after its rename leaves the only copy
        of a failed job in jobs/, so only a job also found there is a copy.
        """
        folder = {State.SUCCEEDED.value: self.root.output, State.FAILED.value: self.root.error,
                  State.QUARANTINED.value: self.root.quarantine,
                  State.CANCELED.value: self.root.canceled}.get(str(record.get("state")))
        return None if folder is None else folder / f"{record.get('job_id')}.json"

    def assign_batch(
        self, choices: list[tuple[dict[str, Any], str, dict[str, Any] | None]]
    ) -> list[str]:
        """Move pending jobs into worker queues with one fsync per folder for the
        whole batch, then record them; return the ids of the jobs moved.

        The folders are fsynced before any state record shows "assigned", so a
        record never claims a move that a power cut could undo.
        """
        moved = []
        queues: set[Path] = set()
        for job, worker_id, record in choices:
            queue = self.root.queue_dir(job["type"], worker_id)
            queue.mkdir(parents=True, exist_ok=True)
            src = self.root.jobs / f"{job['job_id']}{ASSIGNED}"
            try:
                fileops.rename(src, queue / f"{job['job_id']}{ASSIGNED}", durable=self.durable,
                               sync_dir=False)
            except FileNotFoundError:
                continue
            queues.add(queue)
            moved.append((job, worker_id, record))
        error: OSError | None = None
        if self.durable and moved:
            try:
                # The queues first: a power cut between the two fsyncs then leaves
                # the job in both places, where it may run twice, not in neither.
                for folder in [*sorted(queues), self.root.jobs]:
                    fileops.fsync_dir(folder)
            except OSError as exc:
                error = fileops.NotDurableError(exc.errno, exc.strerror, exc.filename)
        if moved:
            self.record_steps([Step(job, "assigned", State.ASSIGNED, worker_id=worker_id,
                                    record=record) for job, worker_id, record in moved])
        if error is not None:
            raise error
        return [job["job_id"] for job, _, _ in moved]

    def assign(
        self, job: dict[str, Any], worker_id: str, record: dict[str, Any] | None = None
    ) -> bool:
        """Move a pending job into a worker's queue; False if it was gone."""
        job_id = job["job_id"]
        if record is None:
            # Ingest stopped between writing the job and its state record.
            self.create_state(self.new_state(job, by=self.role))
        queue = self.root.queue_dir(job["type"], worker_id)
        queue.mkdir(parents=True, exist_ok=True)
        src = self.root.jobs / f"{job_id}{ASSIGNED}"
        if not self.move(src, queue / f"{job_id}{ASSIGNED}"):
            return False
        self.transition(job, "assigned", State.ASSIGNED, worker_id=worker_id, record=record)
        return True

    def requeue(
        self,
        src: Path,
        job: dict[str, Any],
        *,
        reason: str,
        worker_id: str | None,
        count_attempt: bool,
        crashed: bool = False,
        evidence: dict[str, Any] | None = None,
        refund_attempt: bool = False,
    ) -> State | None:
        """Return a job from a worker's queue to pending; return the new state, or
        None if the file was gone.

        With `count_attempt` the claim counts as a failed execution, so a job whose
        attempts are spent goes to error/. With `crashed` its worker died while
        running it; after the type's max_crashes such deaths it goes to
        quarantine/ with `evidence` instead of killing one worker after another.
        With `refund_attempt` the claim that was handed back is not counted.

        A job whose state record does not yet show it in this queue is left for
        a later call: the process that moved it here still has to write that
        record, and would then overwrite this one.
        """
        current = self.read_state(job["job_id"])
        expected = State.PROCESSING if src.name.endswith(PROCESSING) else State.ASSIGNED
        if self.state_lags(src, current, expected, worker_id):
            return None
        request = self.cancel_request(job["job_id"])
        if request is not None:
            return self.cancel(src, job, request, worker_id)
        record = current or {}
        attempts = int(record.get("attempts", 0))
        settings = self.config.for_type(job["type"])
        crashes = int(record.get("crashes", 0)) + (1 if crashed else 0)
        if crashed and crashes >= settings.max_crashes:
            return self.quarantine(src, job, reason=reason, worker_id=worker_id,
                                   crashes=crashes, evidence=evidence or {})
        error = reason if count_attempt else None
        if count_attempt and attempts >= settings.max_attempts:
            return self._fail(src, job, error=reason, worker_id=worker_id)
        if not self.move(src, self.root.jobs / f"{job['job_id']}{ASSIGNED}"):
            return None
        details: dict[str, Any] = {"crashes": crashes} if crashed else {}
        if refund_attempt:
            attempts = max(0, attempts - 1)
            details["attempts"] = attempts
        self.transition(
            job,
            "requeued",
            State.PENDING,
            worker_id=worker_id,
            level=logging.WARNING,
            reason=reason,
            error=error,
            attempt=attempts,
            **details,
        )
        return State.PENDING

    def quarantine(
        self,
        src: Path,
        job: dict[str, Any],
        *,
        reason: str,
        worker_id: str | None,
        crashes: int,
        evidence: dict[str, Any],
    ) -> State | None:
        """Park a job that keeps killing its workers in quarantine/ with the evidence."""
        job_id = job["job_id"]
        record = self.read_state(job_id) or {}
        report = {
            "job_id": job_id,
            "type": job.get("type"),
            "reason": reason,
            "crashes": crashes,
            "worker_id": worker_id,
            "quarantined_at": utc_now(),
            "claims": [e for e in record.get("history", []) if e.get("event") == "claimed"],
            "errors": record.get("errors", []),
            **evidence,
        }
        evidence_path = self.root.quarantine / f"{job_id}.evidence.json"
        fileops.write_json(evidence_path, report, durable=self.durable)
        if not self.move(src, self.root.quarantine / f"{job_id}.json"):
            return None
        self.transition(
            job,
            "quarantined",
            State.QUARANTINED,
            worker_id=worker_id,
            level=logging.ERROR,
            reason=reason,
            error=reason,
            crashes=crashes,
            evidence_path=str(evidence_path.relative_to(self.root.path)),
        )
        return State.QUARANTINED

    def cancel(self, src: Path, job: dict[str, Any], request: dict[str, Any],
               worker_id: str | None) -> State | None:
        """Move a job whose cancel was requested to canceled/ and drop the request."""
        job_id = job["job_id"]
        if not self.move(src, self.root.canceled / f"{job_id}.json"):
            return None
        self.transition(job, "canceled", State.CANCELED, worker_id=worker_id,
                        level=logging.WARNING, operator=request.get("by"),
                        reason=request.get("reason"))
        fileops.unlink(self.root.cancel_requests / f"{job_id}.json", durable=self.durable,
                       missing_ok=True)
        return State.CANCELED

    def cancel_request(self, job_id: str) -> dict[str, Any] | None:
        """Return the pending cancel request of a job, if an operator made one."""
        try:
            request = fileops.read_json(self.root.cancel_requests / f"{job_id}.json")
        except (OSError, ValueError):
            return None
        return request if isinstance(request, dict) else None

    def retry_delay(self, job_type: str, attempt: int) -> float:
        """Return the seconds to wait before retrying after `attempt` failed.

        The delay doubles per attempt up to the type's cap, then a random part of
        up to half of it is taken off, so jobs that failed together spread out.
        """
        settings = self.config.for_type(job_type)
        ceiling = min(
            settings.retry_backoff_max_seconds,
            settings.retry_backoff_seconds * 2 ** max(0, attempt - 1),
        )
        return ceiling - random.uniform(0, ceiling / 2)

    def collect_successes(
        self, batch: list[tuple[Path, dict[str, Any], dict[str, Any] | None]]
    ) -> list[Path]:
        """Move successful outcomes to output/ with one fsync per folder, then
        record them; return the paths they were moved from.

        Each item of `batch` is an outcome file, its decoded contents and the
        state record read when it was checked.
        """
        moved = []
        sources: set[Path] = set()
        for src, outcome, record in batch:
            dst = self.root.output / f"{outcome['job_id']}.json"
            try:
                fileops.rename(src, dst, durable=self.durable, sync_dir=False)
            except FileNotFoundError:
                continue
            sources.add(src.parent)
            moved.append((src, outcome, record, dst))
        if not moved:
            return []
        error: OSError | None = None
        if self.durable:
            try:
                # The new entries first: a power cut between the two fsyncs
                # must leave a job in both places, never in neither.
                for folder in [self.root.output, *sorted(sources)]:
                    fileops.fsync_dir(folder)
            except OSError as exc:
                error = fileops.NotDurableError(exc.errno, exc.strerror, exc.filename)
        for _, outcome, _, _ in moved:
            fileops.unlink(self.root.cancel_requests / f"{outcome['job_id']}.json",
                           durable=self.durable, missing_ok=True)
        self.record_steps([
            Step(outcome, "succeeded", State.SUCCEEDED, worker_id=outcome.get("worker_id"),
                 record=record, details={
                     "attempt": outcome.get("attempt"),
                     "result_path": str(dst.relative_to(self.root.path)),
                     "finished_at": outcome.get("finished_at"),
                 })
            for _, outcome, record, dst in moved
        ])
        if error is not None:
            raise error
        return [src for src, _, _, _ in moved]

    def collect(self, src: Path, outcome: dict[str, Any]) -> State | None:
        """Move a finished job out of a worker's queue: success to output/, failure
        back to pending or, with its attempts spent, to error/."""
        job_id = outcome["job_id"]
        worker_id = outcome.get("worker_id")
        attempt = outcome.get("attempt")
        if src.name.endswith(SUCCESS):
            return State.SUCCEEDED if self.collect_successes([(src, outcome, None)]) else None
        error = str(outcome.get("error") or "failed without an error message")
        request = self.cancel_request(job_id)
        if request is not None:
            return self.cancel(src, outcome, request, worker_id)
        record = self.read_state(job_id) or {}
        attempts = int(record.get("attempts", attempt or 0))
        max_attempts = self.config.for_type(outcome["type"]).max_attempts
        if attempts >= max_attempts:
            return self._fail(src, outcome, error=error, worker_id=worker_id)
        delay = self.retry_delay(outcome["type"], attempts)
        retry_at = datetime.fromtimestamp(time.time() + delay, UTC)
        waiting = dict(outcome, retry_at=retry_at.isoformat().replace("+00:00", "Z"))
        # The outcome file is this process's until it moves, so it can carry the
        # retry time into jobs/, where the scheduler reads it with the job.
        fileops.write_json(src, waiting, durable=self.durable)
        if not self.move(src, self.root.jobs / f"{job_id}{ASSIGNED}"):
            return None
        self.transition(
            outcome,
            "retry",
            State.PENDING,
            worker_id=worker_id,
            level=logging.WARNING,
            attempt=attempt,
            error=error,
            retry_at=waiting["retry_at"],
            retry_in_seconds=round(delay, 3),
        )
        return State.PENDING

    def _fail(
        self, src: Path, job: dict[str, Any], *, error: str, worker_id: str | None
    ) -> State | None:
        job_id = job["job_id"]
        dst = self.root.error / f"{job_id}.json"
        if not self.move(src, dst):
            return None
        # error/ is a final place that only this process writes to now, so the
        # file can be rewritten in place to carry its last error.
        final = dict(job)
        final["error"] = error
        fileops.write_json(dst, final, durable=self.durable)
        record = self.read_state(job_id) or {}
        self.transition(
            job,
            "failed",
            State.FAILED,
            worker_id=worker_id,
            level=logging.ERROR,
            attempt=record.get("attempts"),
            error=error,
            result_path=str(dst.relative_to(self.root.path)),
        )
        return State.FAILED
