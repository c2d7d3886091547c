"""Check a root against the lifecycle invariants and repair what is safe to repair.

The checks: every job is in exactly one place; its state record exists, parses
and agrees with that place; no stale temporary files; no zero-byte or unparsable
job files; attempts within max_attempts; no records of dead workers or of a dead
supervisor. A repair never deletes a job: unreadable files are moved to
quarantine/ beside a reason, and a job found in two places is only merged when
both copies are byte-for-byte equal.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chronosq import fileops
from chronosq.config import Config
from chronosq.layout import (
    ASSIGNED,
    FAILURE,
    PROCESSING,
    SUCCESS,
    Root,
    job_id_of,
)
from chronosq.lifecycle import (
    STATE_LAG_SECONDS,
    Lifecycle,
    State,
    set_aside_corrupt,
    utc_now,
)
from chronosq.control import locate
from chronosq.registry import pid_alive, queue_dirs, read_record, worker_alive

# A temporary file this old belongs to a process that died while writing it;
# live processes rename theirs within milliseconds.
STALE_TEMP_SECONDS = 60.0

# Places in the order a job moves through them; when a job is found twice, the
# later place is kept.
PLACE_ORDER = ("pending", "held", "assigned", "processing", "finished", "canceled",
               "quarantined", "failed", "succeeded")
PLACE_STATE = {
    "pending": State.PENDING,
    "held": State.HELD,
    "assigned": State.ASSIGNED,
    "processing": State.PROCESSING,
    "finished": State.PROCESSING,
    "canceled": State.CANCELED,
    "quarantined": State.QUARANTINED,
    "failed": State.FAILED,
    "succeeded": State.SUCCEEDED,
}


@dataclass
class Problem:
    """One broken invariant, and whether it was repaired."""

    check: str
    path: str
    message: str
    repaired: bool = False


@dataclass
class Location:
    place: str
    path: Path


class Fsck:
    """One run of the checks over a root."""

    def __init__(self, root: Root, config: Config, *, repair: bool, now: float | None = None):
        self.root = root
        self.config = config
        self.repair = repair
        self.now = time.time() if now is None else now
        self.lifecycle = Lifecycle(root, config, "fsck")
        self.problems: list[Problem] = []

    def report(self, check: str, path: Path, message: str, repaired: bool = False) -> None:
        self.problems.append(Problem(check, str(path.relative_to(self.root.path)),
                                     message, repaired))

    def run(self) -> list[Problem]:
        """Run every check; return the problems found."""
        self.check_temp_files()
        locations = self.locate_jobs()
        self.check_duplicates(locations)
        self.check_states(locations)
        self.check_orphan_states(locations)
        self.check_workers()
        self.check_supervisor_record()
        return self.problems

    # -- files -----------------------------------------------------------------

    def folders(self) -> list[Path]:
        found = [self.root.jobs, self.root.hold, self.root.output, self.root.error,
                 self.root.quarantine, self.root.state, self.root.workers, self.root.run,
                 self.root.children]
        found += [folder for _, _, folder in queue_dirs(self.root)]
        return found

    def check_temp_files(self) -> None:
        for folder in self.folders():
            for name in fileops.listdir(folder):
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                path = folder / name
                try:
                    age = self.now - os.stat(path).st_mtime
                except FileNotFoundError:
                    continue
                if age < STALE_TEMP_SECONDS:
                    continue
                repaired = self.repair and fileops.unlink(
                    path, durable=self.lifecycle.durable, missing_ok=True)
                self.report("stale_temp_file", path,
                            f"temporary file left {age:.0f}s ago by a process that died",
                            repaired)

    def read_job(self, path: Path) -> dict[str, Any] | None:
        """Return a job file's contents; move an unreadable one aside and report it."""
        try:
            job = fileops.read_json(path)
            if isinstance(job, dict) and isinstance(job.get("job_id"), str):
                return job
            reason = "not a job object"
        except FileNotFoundError:
            return None
        except ValueError as exc:
            reason = "empty file" if path.stat().st_size == 0 else f"unparsable: {exc}"
        except OSError as exc:
            # A read error says nothing about the contents; never move such a file.
            self.report("read_failed", path, f"cannot read: {exc.strerror}")
            return None
        repaired = False
        if self.repair:
            repaired = set_aside_corrupt(self.root, path, reason, self.lifecycle.durable)
        self.report("unreadable_job_file", path, reason, repaired)
        return None

    def locate_jobs(self) -> dict[str, list[Location]]:
        """Return every readable job file by job id."""
        places = [
            (self.root.jobs, ".json", "pending"),
            (self.root.hold, ".json", "held"),
            (self.root.output, ".json", "succeeded"),
            (self.root.error, ".json", "failed"),
            (self.root.quarantine, ".json", "quarantined"),
            (self.root.canceled, ".json", "canceled"),
        ]
        for _, _, folder in queue_dirs(self.root):
            places += [(folder, ASSIGNED, "assigned"), (folder, PROCESSING, "processing"),
                       (folder, SUCCESS, "finished"), (folder, FAILURE, "finished")]
        found: dict[str, list[Location]] = {}
        for folder, suffix, place in places:
            for name in fileops.listdir(folder):
                job_id = job_id_of(name, suffix)
                if job_id is None or name.endswith(".evidence.json"):
                    continue
                path = folder / name
                job = self.read_job(path)
                if job is None:
                    continue
                found.setdefault(job_id, []).append(Location(place, path))
        return found

    # -- places and state records ----------------------------------------------

    def check_duplicates(self, locations: dict[str, list[Location]]) -> None:
        for job_id, where in sorted(locations.items()):
            # On a live root a job moves while the folders are listed, so only
            # copies that still exist count.
            where[:] = [w for w in where if w.path.exists()]
            if len(where) < 2:
                continue
            # A claim and its outcome side by side belong to a worker that has
            # just written the outcome, or died before removing the claim.
            # Recovery collects both cases.
            places = sorted(w.place for w in where)
            if places == ["finished", "processing"]:
                continue
            where.sort(key=lambda w: PLACE_ORDER.index(w.place))
            # Keep the copy in the place the state record names; without such a
            # copy, nothing says which one is real, so nothing is removed.
            record = self.read_state(self.root.state_path(job_id)) or {}
            agreed = [w for w in where if PLACE_STATE[w.place].value == record.get("state")]
            keep = agreed[-1] if agreed else where[-1]
            for extra in [w for w in where if w is not keep]:
                try:
                    same = fileops.read_bytes(extra.path) == fileops.read_bytes(keep.path)
                except FileNotFoundError:
                    continue  # moved since it was listed
                repaired = False
                if self.repair and same and agreed:
                    repaired = fileops.unlink(extra.path, durable=self.lifecycle.durable,
                                              missing_ok=True)
                    where.remove(extra)
                note = ("an identical copy" if same and agreed else
                        "compare the copies and the state record by hand")
                self.report("job_in_two_places", extra.path,
                            f"job {job_id} is also {keep.place} at "
                            f"{keep.path.relative_to(self.root.path)}: {note}", repaired)

    def check_states(self, locations: dict[str, list[Location]]) -> None:
        for job_id, where in sorted(locations.items()):
            if len(where) > 1:
                continue  # reported by check_duplicates; no state is right for two places
            if not where or not where[0].path.exists():
                continue  # moved since the folders were listed
            location = where[0]
            expected = PLACE_STATE[location.place]
            path = self.root.state_path(job_id)
            record = self.read_state(path)
            if record is None:
                # Ingest writes the record just after the job file, so a fresh
                # job without one is most likely being ingested right now.
                if self.settled(location.path):
                    self.repair_state(job_id, location, expected,
                                      "state record missing or unreadable")
                continue
            if record.get("state") != expected.value and self.settled(location.path):
                self.repair_state(
                    job_id, location, expected,
                    f"state record says {record.get('state')!r} but the job is "
                    f"{location.place} at {location.path.relative_to(self.root.path)}",
                    record,
                )
            attempts = record.get("attempts", 0)
            limit = record.get("max_attempts") or self.config.for_type(
                str(record.get("type"))).max_attempts
            if isinstance(attempts, int) and isinstance(limit, int) and attempts > limit:
                self.report("attempts_out_of_bounds", path,
                            f"{attempts} attempts recorded, over max_attempts={limit}")

    def written_before(self, path: Path) -> bool:
        """True when a file was last written longer than the state lag ago."""
        try:
            return self.now - os.stat(path).st_mtime >= STATE_LAG_SECONDS
        except FileNotFoundError:
            return False

    def settled(self, path: Path) -> bool:
        """True when the job's last move is old enough for its state to have caught up."""
        try:
            return self.now - os.stat(path).st_ctime >= STATE_LAG_SECONDS
        except FileNotFoundError:
            return False

    def read_state(self, path: Path) -> dict[str, Any] | None:
        try:
            record = fileops.read_json(path)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "history" in record else None

    def repair_state(
        self,
        job_id: str,
        location: Location,
        expected: State,
        message: str,
        record: dict[str, Any] | None = None,
    ) -> None:
        path = self.root.state_path(job_id)
        repaired = False
        if self.repair:
            job = fileops.read_json(location.path)
            if record is None:
                record = self.lifecycle.new_state(job, by="fsck")
                if path.exists():
                    set_aside_corrupt(self.root, path, "unreadable state record",
                                      self.lifecycle.durable)
            record["history"].append({"at": utc_now(), "event": "repaired", "by": "fsck",
                                      "state": expected.value, "reason": message})
            record["state"] = expected.value
            record["updated_at"] = utc_now()
            fileops.write_json(path, record, durable=self.lifecycle.durable)
            repaired = True
        self.report("state_mismatch", path, message, repaired)

    def check_orphan_states(self, locations: dict[str, list[Location]]) -> None:
        for name in fileops.listdir(self.root.state):
            job_id = job_id_of(name, ".state.json")
            if job_id is None or job_id in locations:
                continue
            if not self.written_before(self.root.state / name) or \
                    locate(self.root, job_id) is not None:
                continue  # written or moved while the folders were listed
            record = self.read_state(self.root.state / name)
            if record is None:
                self.report("unreadable_state", self.root.state / name,
                            "state record of no job is unreadable")
                continue
            self.report("state_without_job", self.root.state / name,
                        f"state record says {record.get('state')!r} but job {job_id} "
                        "is in no place; look for it in the logs before removing the record")

    # -- process records ---------------------------------------------------------

    def check_workers(self) -> None:
        stale = float(self.config.get("scheduler", "worker_stale_seconds"))
        for name in fileops.listdir(self.root.workers):
            worker_id = job_id_of(name, ".json")
            if worker_id is None:
                continue
            path = self.root.workers / name
            record = read_record(path)
            if record is None:
                repaired = self.repair and fileops.unlink(
                    path, durable=self.lifecycle.durable, missing_ok=True)
                self.report("unreadable_worker_record", path,
                            "worker record is unreadable; a live worker rewrites it "
                            "at its next heartbeat", bool(repaired))
                continue
            if worker_alive(record, stale):
                continue
            queued = sum(
                1 for job_type in record["types"]
                for n in fileops.listdir(self.root.queue_dir(job_type, worker_id))
                if not n.startswith(".")
            )
            if queued:
                self.report("dead_worker", path,
                            f"worker {worker_id} (pid {record['pid']}) is dead with {queued} "
                            "jobs in its queue; recovery requeues them when it runs")
                continue
            repaired = self.repair and fileops.unlink(
                path, durable=self.lifecycle.durable, missing_ok=True)
            self.report("dead_worker", path,
                        f"record of dead worker {worker_id} (pid {record['pid']})",
                        bool(repaired))

    def check_supervisor_record(self) -> None:
        path = self.root.run / "supervisor.json"
        try:
            record = fileops.read_json(path)
            alive = pid_alive(int(record["pid"]), float(record["pid_started_at"]))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        if alive:
            return
        repaired = self.repair and fileops.unlink(path, durable=False, missing_ok=True)
        self.report("stale_supervisor_record", path,
                    "supervisor record of a process that is gone", bool(repaired))


def check(root: Root, config: Config, *, repair: bool = False) -> list[dict[str, Any]]:
    """Run fsck over a root; return the problems as dicts."""
    return [asdict(problem) for problem in Fsck(root, config, repair=repair).run()]
