"""Ingest: turn event files in input/ into pending jobs in jobs/.

For each event the job file is written first, then its state record, then the
event is removed. A crash between any two steps leaves the event in input/, and
reading it again gives the same job id, so the replay is recognised by the
existing state record and yields no second job.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chronosq import fileops, logs
from chronosq.defaults import DISK_RECHECK_SECONDS
from chronosq.errors import InvalidEventError
from chronosq.events import parse_event
from chronosq.layout import REJECTED
from chronosq.lifecycle import utc_now
from chronosq.service import Service

logger = logging.getLogger(__name__)

EVENT_SUFFIX = ".json"
# Longer names are shortened in error/ so the rejected file and its reason fit
# in a 255-byte file name.
MAX_KEPT_NAME_BYTES = 180
PAUSE_RECORD = "ingest.json"
# Events accepted per batch; each batch costs one fsync of jobs/, state/ and input/.
BATCH_SIZE = 64
TEMP_SUFFIX = ".tmp"


# Errors opening one event that concern that file alone, not the disk.
UNREADABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.EOVERFLOW,
                     errno.ETXTBSY)


def is_ignored(name: str) -> bool:
    """True for names a producer is still writing: hidden or ending in .tmp."""
    return name.startswith(".") or name.endswith(TEMP_SUFFIX)


@dataclass
class Batch:
    """Events read in one pass, committed together."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    # Events to remove once their jobs are durable: accepted ones and replays.
    done: list[Path] = field(default_factory=list)


class Ingest(Service):
    """Read events from input/ and accept each as exactly one job."""

    role = "ingest"

    def setup(self) -> None:
        self.waiter.watch(self.root.input)
        self.next_scan = 0.0
        self.queued: set[str] = set()
        self.paused_reason: str | None = None
        self.write_pause_record()

    def handle_changes(self, changes: list[tuple[Path, str]]) -> None:  # type: ignore[override]
        for _folder, name in changes:
            if not is_ignored(name):
                self.queued.add(name)

    def free_bytes(self) -> int:
        info = os.statvfs(self.root.path)
        return info.f_bavail * info.f_frsize

    def space_ok(self) -> bool:
        """Pause or resume ingest by the free space left; return True to ingest now.

        Jobs already accepted keep moving while ingest is paused, so a full disk
        stops new work at the door rather than in the middle of a transition.
        """
        minimum = int(self.config.get("ingest", "min_free_bytes"))
        free = self.free_bytes()
        if free >= minimum:
            if self.paused_reason is not None:
                self.paused_reason = None
                logs.log_event(logger, logging.INFO, "ingest.resumed", free_bytes=free)
                self.write_pause_record()
            return True
        if self.paused_reason is None:
            self.paused_reason = (
                f"free space {free} bytes is below ingest.min_free_bytes={minimum}; "
                "free space on the root's filesystem to resume"
            )
            logs.log_event(logger, logging.WARNING, "ingest.paused", free_bytes=free,
                           min_free_bytes=minimum)
            self.write_pause_record()
        return False

    def write_pause_record(self) -> None:
        """Tell `status` why ingest is paused, if it is."""
        record = {"paused": self.paused_reason is not None, "reason": self.paused_reason,
                  "at": utc_now()}
        try:
            fileops.write_json(self.root.run / PAUSE_RECORD, record, durable=False)
        except OSError as exc:
            logs.log_event(logger, logging.ERROR, "ingest.pause_record_failed", error=str(exc))

    def step(self) -> float:
        if not self.space_ok():
            return DISK_RECHECK_SECONDS
        now = time.monotonic()
        if now >= self.next_scan or self.waiter.overflowed or not self.waiter.notifies:
            self.waiter.overflowed = False
            self.queued.update(n for n in fileops.listdir(self.root.input) if not is_ignored(n))
            self.next_scan = now + float(self.config.get("ingest", "rescan_seconds"))
        # Sorted so events dropped in name order are accepted in that order.
        names = sorted(self.queued)
        for start in range(0, len(names), BATCH_SIZE):
            if self.stopping:
                break
            batch = names[start:start + BATCH_SIZE]
            self.queued.difference_update(batch)
            self.ingest_batch(batch)
            self.beat()
        return max(0.0, self.next_scan - time.monotonic())

    def ingest_one(self, name: str) -> None:
        """Accept one event as a job, recognise a replay, or set the event aside."""
        self.ingest_batch([name])

    def ingest_batch(self, names: list[str]) -> None:
        """Accept a batch of events with one fsync per folder instead of per event.

        Job files are written and jobs/ fsynced, then state records and state/,
        and only then are the events removed and input/ fsynced, so a crash at
        any point leaves each event in input/ until its job is durable.
        """
        batch = Batch()
        for name in names:
            self.read_one(name, batch)
        durable = self.lifecycle.durable
        if batch.jobs:
            fileops.write_many([(self.root.jobs / f"{job['job_id']}.json", fileops.dumps(job))
                                for job in batch.jobs], durable=durable)
            self.lifecycle.create_states([self.lifecycle.new_state(job, by=self.role)
                                          for job in batch.jobs])
        for path in batch.done:
            fileops.unlink(path, durable=durable, missing_ok=True, sync_dir=False)
        if durable and batch.done:
            fileops.fsync_dir(self.root.input)
        for job in batch.jobs:
            logs.log_event(logger, logging.INFO, "job.ingested", job_id=job["job_id"],
                           type=job["type"], priority=job["priority"],
                           event_name=job["event"], state="pending")

    def read_one(self, name: str, batch: Batch) -> None:
        """Read one event into the batch, or set it aside.

        No event can stop ingest: an unexpected error is logged with the event's
        name and the event is set aside like an invalid one.
        """
        path = self.root.input / name
        try:
            self.read_and_accept(name, path, batch)
        except OSError:
            raise  # a disk problem: the service backs off and retries the event
        except Exception as exc:
            logs.log_event(logger, logging.ERROR, "event.unexpected_error", event_name=name,
                           error=repr(exc), traceback=traceback.format_exc())
            self.reject(name, f"could not be ingested: {exc!r}")

    def read_and_accept(self, name: str, path: Path, batch: Batch) -> None:
        try:
            if not name.endswith(EVENT_SUFFIX):
                raise InvalidEventError(
                    f"event file names must end in {EVENT_SUFFIX}; "
                    f"write under a .tmp or dot name and rename when complete"
                )
            limit = int(self.config.get("ingest", "max_event_bytes"))
            try:
                data = fileops.read_regular(path, limit)
            except fileops.NotRegularFileError:
                raise InvalidEventError("not a regular file") from None
            except fileops.TooLargeError:
                raise InvalidEventError(
                    f"event is over ingest.max_event_bytes={limit} bytes") from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV):
                    raise InvalidEventError("not a regular file") from None
                if exc.errno in UNREADABLE_ERRNOS:
                    # This one file cannot be read, unlike a failing disk, so it
                    # must not hold back the events behind it.
                    raise InvalidEventError(
                        f"cannot be read: {exc.strerror}; give the file to the user "
                        "running chronosq, or make it readable, and drop it again") from None
                raise
            mtime_ns = os.stat(path, follow_symlinks=False).st_mtime_ns
            job = parse_event(name, data, mtime_ns, utc_now())
        except FileNotFoundError:
            return
        except InvalidEventError as exc:
            self.reject(name, str(exc))
            return
        self.accept(path, job, batch)

    def accept(self, path: Path, job: dict[str, Any], batch: Batch) -> None:
        """Add a new job to the batch, or recognise a replay of one accepted before."""
        job_id = str(job["job_id"])
        if job_id in batch.ids:
            # Two events name one job id: the second waits for the next batch,
            # where the first one's state record decides replay or conflict.
            self.queued.add(path.name)
            return
        existing = self.lifecycle.read_state(job_id)
        if existing is not None:
            if existing.get("event_digest") not in (None, job["event_digest"]):
                self.reject(
                    path.name,
                    f"job_id {job_id!r} already belongs to another event; "
                    "give this event a new job_id",
                )
                return
            logs.log_event(
                logger, logging.INFO, "event.replayed", job_id=job_id, event_name=path.name
            )
            batch.done.append(path)
            return
        batch.ids.add(job_id)
        batch.jobs.append(job)
        batch.done.append(path)

    def reject(self, name: str, reason: str) -> None:
        """Move an event to error/ beside a file stating the reason."""
        durable = self.lifecycle.durable
        safe = name if len(os.fsencode(name)) <= MAX_KEPT_NAME_BYTES else (
            os.fsencode(name)[:100].decode(errors="ignore") + "." +
            hashlib.sha256(os.fsencode(name)).hexdigest()[:16])
        target = self.root.error / f"{safe}{REJECTED}"
        if target.exists():
            target = self.root.error / f"{safe}.{time.time_ns()}{REJECTED}"
        record = {"event": name.encode(errors="surrogateescape").decode(errors="replace"),
                  "reason": reason, "rejected_at": utc_now()}
        reason_path = target.with_name(target.name + ".reason")
        fileops.write_json(reason_path, record, durable=durable)
        try:
            fileops.rename(self.root.input / name, target, durable=durable)
        except FileNotFoundError:
            # Set aside already, by an earlier pass over the same name.
            fileops.unlink(reason_path, durable=durable, missing_ok=True)
            return
        logs.log_event(
            logger, logging.WARNING, "event.rejected", event_name=name, reason=reason,
            path=str(target.relative_to(self.root.path)),
        )
