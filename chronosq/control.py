"""Operator and person actions on single jobs: hold, release, retry, cancel, take,
done, fail, and the explanation of where a job is and why.

Every action is a rename that takes the job from the place it is expected in,
so it races safely with the pipeline: if the job moved first, the rename fails
and the action reports the job's new place. Each action records who did it
(user and host) and an optional reason in the job's history.
"""

from __future__ import annotations

import getpass
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chronosq import fileops, logs
from chronosq.config import Config
from chronosq.errors import ChronosQError
from chronosq.layout import (
    ASSIGNED,
    FAILURE,
    PROCESSING,
    SUCCESS,
    Root,
    job_id_of,
    validate_job_id,
    validate_type,
    validate_worker_id,
)
from chronosq.lifecycle import (
    HOST,
    STATE_LAG_SECONDS,
    Lifecycle,
    State,
    job_fields,
    parse_time,
    utc_now,
)
from chronosq.registry import queue_dirs, read_record, read_records, worker_alive
from chronosq.status import supervisor

logger = logging.getLogger(__name__)

PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


class JobStateError(ChronosQError):
    """An action does not apply to the job in the place it is in."""


@dataclass
class Location:
    """Where a job is: its state, its file, and the worker whose queue holds it."""

    state: State
    path: Path
    worker_id: str | None = None
    job_type: str | None = None
    finished: bool = False


def actor() -> dict[str, str]:
    """Return who runs this command: the user name and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": HOST}


def locate(root: Root, job_id: str) -> Location | None:
    """Return where a job is now, or None when it is in no place."""
    validate_job_id(job_id)
    simple = (
        (root.jobs, State.PENDING), (root.hold, State.HELD), (root.output, State.SUCCEEDED),
        (root.error, State.FAILED), (root.quarantine, State.QUARANTINED),
        (root.canceled, State.CANCELED),
    )
    for folder, state in simple:
        path = folder / f"{job_id}.json"
        if path.exists():
            return Location(state, path)
    for job_type, worker_id, folder in queue_dirs(root):
        for suffix, state, finished in ((ASSIGNED, State.ASSIGNED, False),
                                        (PROCESSING, State.PROCESSING, False),
                                        (SUCCESS, State.PROCESSING, True),
                                        (FAILURE, State.PROCESSING, True)):
            path = folder / f"{job_id}{suffix}"
            if path.exists():
                return Location(state, path, worker_id, job_type, finished)
    return None


class Control:
    """Actions on single jobs, performed as the person running the command."""

    def __init__(self, root: Root, config: Config, reason: str | None = None):
        self.root = root
        self.config = config
        self.lifecycle = Lifecycle(root, config, "operator")
        self.by = actor()
        self.reason = reason

    def find(self, job_id: str) -> Location:
        found = locate(self.root, job_id)
        if found is None:
            waiting = self.waiting_event(job_id)
            if waiting is not None:
                raise JobStateError(f"{waiting}; act on it once it is a job")
            raise JobStateError(f"job {job_id!r} not found in {self.root.path}; "
                                "check the id with 'chronosq jobs list'")
        return found

    def waiting_event(self, job_id: str) -> str | None:
        """Describe a submitted event that ingest has not accepted yet, if there is one."""
        if not (self.root.input / f"{job_id}.json").exists():
            return None
        if supervisor(self.root)["alive"]:
            return f"job {job_id!r} is an event in input/ that ingest has not accepted yet"
        return (f"job {job_id!r} is an event in input/ waiting for ingest, and no "
                "supervisor runs on this root: start 'chronosq supervise'")

    def wrong_state(self, job_id: str, where: Location, action: str, valid: str) -> JobStateError:
        place = where.state.value + (f" on worker {where.worker_id}" if where.worker_id else "")
        return JobStateError(f"cannot {action} job {job_id!r}: it is {place}; "
                             f"{action} applies to {valid} jobs")

    def record(self, job: dict[str, Any], event: str, state: State,
               **details: Any) -> dict[str, Any]:
        return self.lifecycle.transition(job, event, state, level=logging.WARNING,
                                         operator=self.by, reason=self.reason, **details)

    def move(self, job_id: str, where: Location, dst: Path) -> dict[str, Any]:
        """Rename the job to `dst` and return its contents; fail if it moved first.

        The process that moved the job into its place writes the state record
        just after, so this waits for that record first. Moving the job before
        would let that late write replace the operator's record.
        """
        deadline = time.monotonic() + STATE_LAG_SECONDS + 1.0
        while self.lifecycle.state_lags(where.path, self.lifecycle.read_state(job_id),
                                        where.state, where.worker_id):
            if time.monotonic() > deadline or not where.path.exists():
                break
            time.sleep(0.01)
        job = fileops.read_json(where.path)
        if not self.lifecycle.move(where.path, dst):
            now = locate(self.root, job_id)
            place = now.state.value if now else "gone"
            raise JobStateError(f"job {job_id!r} moved while acting on it (now {place}); "
                                "run the command again")
        return job  # type: ignore[no-any-return]

    # -- operator actions --------------------------------------------------------

    def hold(self, job_id: str) -> State:
        """Park a pending, assigned, or person-claimed job in hold/."""
        where = self.find(job_id)
        if where.state is State.PROCESSING and not self.is_person(where.worker_id):
            raise self.wrong_state(job_id, where, "hold", "pending, assigned or person-claimed")
        if where.state not in (State.PENDING, State.ASSIGNED, State.PROCESSING) \
                or where.finished:
            raise self.wrong_state(job_id, where, "hold", "pending, assigned or person-claimed")
        job = self.move(job_id, where, self.root.hold / f"{job_id}.json")
        refund = {}
        if where.state is State.PROCESSING:
            record = self.lifecycle.read_state(job_id) or {}
            refund["attempts"] = max(0, int(record.get("attempts", 1)) - 1)
        self.record(job_fields(job), "held", State.HELD, worker_id=where.worker_id, **refund)
        return State.HELD

    def release(self, job_id: str) -> State:
        """Return a held job to pending."""
        where = self.find(job_id)
        if where.state is not State.HELD:
            raise self.wrong_state(job_id, where, "release", "held")
        job = self.move(job_id, where, self.root.jobs / f"{job_id}.json")
        self.record(job, "released", State.PENDING)
        return State.PENDING

    def retry(self, job_id: str) -> State:
        """Send a failed, quarantined or canceled job back to pending with fresh
        attempts, or let a pending job waiting for its retry time run now."""
        where = self.find(job_id)
        if where.state is State.PENDING and self.waits_for_retry(where.path):
            return self.retry_now(job_id, where)
        if where.state not in (State.FAILED, State.QUARANTINED, State.CANCELED):
            raise self.wrong_state(job_id, where, "retry", "failed, quarantined, canceled "
                                   "or waiting-to-retry")
        job = self.move(job_id, where, self.root.jobs / f"{job_id}.json")
        clean = job_fields(job)
        fileops.write_json(self.root.jobs / f"{job_id}.json", clean,
                           durable=self.lifecycle.durable)
        self.record(clean, "retried", State.PENDING, attempts=0, crashes=0)
        return State.PENDING

    def waits_for_retry(self, path: Path) -> bool:
        retry_at = fileops.read_json(path).get("retry_at")
        return isinstance(retry_at, str) and parse_time(retry_at) > time.time()

    def retry_now(self, job_id: str, where: Location) -> State:
        """Clear a pending job's retry time so the scheduler assigns it now.

        The job passes through hold/ while its file is rewritten, so the
        scheduler never assigns a copy that is about to be replaced. Its record
        shows it held meanwhile, so the scheduler waits for the record to show the
        job pending again before it writes the record itself. A command killed
        in between leaves the job held, for `jobs release`.
        """
        parked = self.root.hold / f"{job_id}.json"
        job = self.move(job_id, where, parked)
        self.record(job_fields(job), "held", State.HELD)
        job.pop("retry_at", None)
        fileops.write_json(parked, job, durable=self.lifecycle.durable)
        if not self.lifecycle.move(parked, self.root.jobs / f"{job_id}.json"):
            raise JobStateError(f"job {job_id!r} left hold/ while its retry time was "
                                "cleared; check it with 'chronosq jobs show'")
        self.record(job_fields(job), "retried", State.PENDING, retry_at=None)
        return State.PENDING

    def cancel(self, job_id: str, grace_seconds: float) -> State:
        """Cancel a queued job now; ask the worker of a running one to stop it."""
        where = self.find(job_id)
        if where.state in (State.PENDING, State.ASSIGNED, State.HELD):
            job = self.move(job_id, where, self.root.canceled / f"{job_id}.json")
            self.record(job_fields(job), "canceled", State.CANCELED, worker_id=where.worker_id)
            return State.CANCELED
        if where.state is State.PROCESSING and not where.finished:
            request = {"job_id": job_id, "by": self.by, "reason": self.reason,
                       "requested_at": utc_now(), "grace_seconds": grace_seconds}
            fileops.write_json(self.root.cancel_requests / f"{job_id}.json", request,
                               durable=self.lifecycle.durable)
            logs.log_event(logger, logging.WARNING, "job.cancel_requested", job_id=job_id,
                           worker_id=where.worker_id, operator=self.by, reason=self.reason)
            return State.PROCESSING
        raise self.wrong_state(job_id, where, "cancel", "pending, assigned, held or running")

    # -- people as workers -------------------------------------------------------

    def is_person(self, worker_id: str | None) -> bool:
        if worker_id is None:
            return False
        record = read_record(self.root.worker_path(worker_id))
        return bool(record and record.get("person"))

    def register_person(self, worker_id: str, types: list[str]) -> None:
        """Write or refresh the record of a person working a queue by hand."""
        path = self.root.worker_path(worker_id)
        existing = read_record(path)
        if existing is not None and not existing.get("person"):
            raise JobStateError(f"worker id {worker_id!r} belongs to a worker process; "
                                "choose another --worker-id")
        record = {
            "worker_id": worker_id, "types": types, "host": HOST, "pid": 0,
            "pid_started_at": 0.0, "capacity": 0, "person": True, "user": self.by["user"],
            "started_at": (existing or {}).get("started_at", utc_now()),
            "heartbeat_at": utc_now(),
        }
        fileops.write_json(path, record, durable=self.lifecycle.durable)

    def take(self, worker_id: str, job_type: str | None) -> dict[str, Any] | None:
        """Claim the next pending job (of `job_type`, if given) for a person."""
        validate_worker_id(worker_id)
        if job_type is not None:
            validate_type(job_type)
        existing = read_record(self.root.worker_path(worker_id))
        if existing is not None and not existing.get("person"):
            raise JobStateError(f"worker id {worker_id!r} belongs to a worker process; "
                                "choose another --worker-id")
        for _, job_id, job in self.pending_in_order(job_type):
            self.register_person(worker_id, sorted({job["type"], *([job_type] if job_type else [])}))
            record = self.lifecycle.read_state(job_id)
            if record is None or record.get("state") != State.PENDING.value:
                continue
            queue = self.root.queue_dir(job["type"], worker_id)
            queue.mkdir(parents=True, exist_ok=True)
            claim = queue / f"{job_id}{PROCESSING}"
            if not self.lifecycle.move(self.root.jobs / f"{job_id}.json", claim):
                continue  # the scheduler or another person took it first
            attempt = int(record.get("attempts", 0)) + 1
            self.lifecycle.transition(job, "claimed", State.PROCESSING, record=record,
                                      worker_id=worker_id, attempts=attempt, attempt=attempt,
                                      operator=self.by)
            return dict(job_fields(job), attempt=attempt, worker_id=worker_id)
        return None

    def pending_in_order(self, job_type: str | None) -> list[tuple[Any, str, dict[str, Any]]]:
        found = []
        now = time.time()
        for name in fileops.listdir(self.root.jobs):
            job_id = job_id_of(name, ".json")
            if job_id is None:
                continue
            try:
                job = fileops.read_json(self.root.jobs / name)
                key = (PRIORITY_RANK[job["priority"]], parse_time(job["created_at"]), job_id)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            retry_at = job.get("retry_at")
            if isinstance(retry_at, str) and parse_time(retry_at) > now:
                continue
            if job_type is None or job["type"] == job_type:
                found.append((key, job_id, job))
        return sorted(found, key=lambda item: item[0])

    def finish(self, job_id: str, *, result: Any = None,
               error: str | None = None) -> dict[str, Any]:
        """Record the outcome of a job a person took, for recovery to collect;
        return the job's state record as it was before."""
        where = self.find(job_id)
        if where.state is not State.PROCESSING or where.finished or \
                not self.is_person(where.worker_id):
            verb = "fail" if error is not None else "finish"
            problem = self.wrong_state(job_id, where, verb, "person-claimed")
            expired = [e for e in (self.lifecycle.read_state(job_id) or {}).get("history", [])
                       if e.get("event") == "requeued" and self.is_person(e.get("worker_id"))]
            if expired:
                raise JobStateError(f"{problem}; the claim by {expired[-1]['worker_id']} "
                                    "expired after person_timeout, so 'chronosq take' it again")
            raise problem
        record = self.lifecycle.read_state(job_id) or {}
        job = fileops.read_json(where.path)
        if record.get("state") != State.PROCESSING.value or \
                record.get("worker_id") != where.worker_id:
            record = self.record_late_claim(job, where, record)
        outcome = dict(job_fields(job), attempt=record.get("attempts"),
                       worker_id=where.worker_id, finished_at=utc_now(), operator=self.by)
        suffix = SUCCESS if error is None else FAILURE
        if error is None:
            outcome["result"] = result
        else:
            outcome["error"] = error
        target = where.path.with_name(f"{job_id}{suffix}")
        if not where.path.exists():
            raise JobStateError(f"job {job_id!r} is no longer claimed by {where.worker_id}")
        fileops.write_json(target, outcome, durable=self.lifecycle.durable)
        fileops.unlink(where.path, durable=self.lifecycle.durable, missing_ok=True)
        logs.log_event(logger, logging.INFO, "job.finished" if error is None else "job.errored",
                       job_id=job_id, worker_id=where.worker_id, operator=self.by, error=error)
        return record

    def record_late_claim(self, job: dict[str, Any], where: Location,
                          record: dict[str, Any]) -> dict[str, Any]:
        """Record a person's claim whose `take` stopped between its rename and its
        state write, so recovery accepts the outcome; return the record before."""
        if self.lifecycle.state_lags(where.path, record or None, State.PROCESSING,
                                     where.worker_id):
            raise JobStateError(f"the claim of job {job['job_id']!r} is still being "
                                "recorded; run the command again in a few seconds")
        attempt = int(record.get("attempts", 0)) + 1
        self.lifecycle.transition(job, "claimed", State.PROCESSING, record=record or None,
                                  worker_id=where.worker_id, attempts=attempt,
                                  attempt=attempt, operator=self.by,
                                  reason="claim recorded late: take stopped before it")
        return self.lifecycle.read_state(job["job_id"]) or {}

    # -- explanation -------------------------------------------------------------

    def explain(self, job_id: str) -> str:
        """Return one paragraph saying where the job is and why."""
        waiting = self.waiting_event(job_id) if locate(self.root, job_id) is None else None
        if waiting is not None:
            return waiting[0].upper() + waiting[1:] + "."
        where = self.find(job_id)
        record = self.lifecycle.read_state(job_id) or {}
        last = (record.get("history") or [{}])[-1]
        job = fileops.read_json(where.path)
        since = f" since {last.get('at')}" if last.get("at") else ""
        if where.state is State.PENDING:
            return self.explain_pending(job_id, job, record)
        if where.state is State.HELD:
            who = (last.get("operator") or {}).get("user", last.get("by", "someone"))
            why = f" ({last['reason']})" if last.get("reason") else ""
            return (f"{job_id} is held{since}, put there by {who}{why}; "
                    f"'chronosq jobs release {job_id}' returns it to pending.")
        if where.state is State.ASSIGNED:
            return (f"{job_id} is queued on worker {where.worker_id}{since} and waits for "
                    f"it to claim the job; {self.worker_note(where.worker_id)}.")
        if where.state is State.PROCESSING:
            if where.finished:
                return (f"{job_id} finished on {where.worker_id} and waits for recovery to "
                        "collect the outcome; recovery may not be running.")
            request = self.root.cancel_requests / f"{job_id}.json"
            cancel = " A cancel was requested." if request.exists() else ""
            return (f"{job_id} is running on {where.worker_id}, attempt "
                    f"{record.get('attempts')} of {record.get('max_attempts')}{since}; "
                    f"{self.worker_note(where.worker_id)}.{cancel}")
        if where.state is State.SUCCEEDED:
            return f"{job_id} succeeded{since}; its result is in {where.path.relative_to(self.root.path)}."
        if where.state is State.FAILED:
            return (f"{job_id} failed after {record.get('attempts')} attempts{since}; last error: "
                    f"{record.get('last_error')}. 'chronosq jobs retry {job_id}' runs it again.")
        if where.state is State.QUARANTINED:
            return (f"{job_id} is quarantined after {record.get('crashes')} worker crashes{since};"
                    f" see quarantine/{job_id}.evidence.json. 'chronosq jobs retry {job_id}' "
                    "runs it again.")
        return f"{job_id} was canceled{since}. 'chronosq jobs retry {job_id}' runs it again."

    def worker_note(self, worker_id: str | None) -> str:
        record = read_record(self.root.worker_path(worker_id)) if worker_id else None
        if record is None:
            return f"worker {worker_id} has no record, so recovery will requeue the job"
        if record.get("person"):
            return f"{worker_id} is a person ({record.get('user')})"
        stale = float(self.config.get("scheduler", "worker_stale_seconds"))
        if worker_alive(record, stale):
            return f"worker {worker_id} is alive (pid {record['pid']})"
        return f"worker {worker_id} is dead, so recovery will requeue the job"

    def explain_pending(self, job_id: str, job: dict[str, Any], record: dict[str, Any]) -> str:
        job_type = job.get("type", "?")
        retry_at = job.get("retry_at")
        if isinstance(retry_at, str) and parse_time(retry_at) > time.time():
            return (f"{job_id} is pending and waits for its retry time {retry_at} after "
                    f"attempt {record.get('attempts')} failed: {record.get('last_error')}.")
        try:
            failing = fileops.read_json(self.root.run / "policy-errors.json").get(job_type)
        except (OSError, ValueError, AttributeError):
            failing = None
        if isinstance(failing, dict):
            return (f"{job_id} is pending: policy {failing.get('policy')!r} of type "
                    f"{job_type!r} failed at {failing.get('at')}: {failing.get('error')}. "
                    "The scheduler asks it again after a pause; fix the plugin or the "
                    "type's policy settings, then reload with SIGHUP.")
        stale = float(self.config.get("scheduler", "worker_stale_seconds"))
        serving = {wid: rec for wid, rec in read_records(self.root).items()
                   if job_type in rec.get("types", []) and not rec.get("person")}
        live = {wid: rec for wid, rec in serving.items() if worker_alive(rec, stale)}
        if not serving:
            people = sorted(wid for wid, rec in read_records(self.root).items()
                            if rec.get("person") and job_type in rec.get("types", []))
            hint = (f"; people who took this type before ({', '.join(people)}) can run "
                    f"'chronosq take --type {job_type}'" if people else "")
            return f"{job_id} is pending: no worker serves type {job_type!r}{hint}."
        if not live:
            return (f"{job_id} is pending: every worker of type {job_type!r} "
                    f"({', '.join(sorted(serving))}) is dead.")
        full = []
        for worker_id, rec in live.items():
            load = sum(1 for t in rec["types"]
                       for n in fileops.listdir(self.root.queue_dir(t, worker_id))
                       if n.endswith((ASSIGNED, PROCESSING)) and not n.startswith("."))
            if load >= int(rec["capacity"]):
                full.append(worker_id)
        if len(full) == len(live):
            return (f"{job_id} is pending: every live worker of type {job_type!r} is full "
                    f"({', '.join(sorted(full))}).")
        settings = self.config.for_type(job_type)
        policy = settings.policy
        if policy == "rule_based":
            from chronosq_plugins.rule_based import matches, rule_workers

            rules = settings.options.get("rules", [])
            index, rule = next(((i, r) for i, r in enumerate(rules, start=1)
                                if matches(job, r.get("match", {}))), (0, None))
            if rule is not None:
                waiting_for = rule_workers(rule)
                away = [w for w in waiting_for if w not in live]
                cause = (f"{', '.join(away)} {'is not a live worker' if len(away) == 1 else 'are not live workers'} "
                         "of this type" if away else "they are full")
                return (f"{job_id} is pending: rule {index} of type {job_type!r} sends it to "
                        f"{', '.join(waiting_for)}, and {cause}.")
        return (f"{job_id} is pending and next in line for a worker of type {job_type!r} "
                f"under {policy}; if it stays, check that the scheduler runs.")
