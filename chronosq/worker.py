"""Workers: claim jobs from their queue folders, run them, record the outcome.

A worker registers in workers/ with its pid and the pid's start time, so
recovery can tell a dead worker from a live one and a reused pid from the
original. A heartbeat thread rewrites the record and refreshes the claim file
of the running job, so a long job is not taken for a stuck one.

The outcome is written as <job_id>.json.success or .failure next to the claim,
then the claim is removed; recovery moves the outcome out of the queue.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, cast

from chronosq import config as config_module
from chronosq import fileops, logs
from chronosq.config import Config
from chronosq.errors import WorkerError
from chronosq.layout import (
    ASSIGNED,
    FAILURE,
    PROCESSING,
    SUCCESS,
    Root,
    job_id_of,
    validate_type,
    validate_worker_id,
)
from chronosq.lifecycle import HOST, Lifecycle, State, job_fields, utc_now
from chronosq.registry import death_evidence, pid_alive, process_start_time, read_record
from chronosq.watch import Waiter

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]

# Characters of a failed command's standard error kept as the job's error.
STDERR_TAIL_CHARS = 2000
# Seconds before looking again at jobs whose state record lags their file. The
# wait doubles from the first figure to the second while the record still lags.
# The scheduler writes the record a few fsyncs after its rename, so most waits
# end at the first or second look.
STATE_RETRY_FIRST_SECONDS = 0.001
STATE_RETRY_SECONDS = 0.02
# Seconds a canceled handler gets to return when the request names no grace.
CANCEL_GRACE_SECONDS = 10.0
# Seconds a stopped command's process group gets between SIGTERM and SIGKILL.
COMMAND_TERM_SECONDS = 2.0
ERROR_BACKOFF_MIN_SECONDS = 0.1
ERROR_BACKOFF_MAX_SECONDS = 5.0


class JobFailed(Exception):
    """Raised by a runner when a job failed; the message is the job's error."""


class JobCanceled(Exception):
    """Raised in the running job when an operator canceled it."""


class HandBack(Exception):
    """Raised when the worker stops before the job finished; the job goes back to
    pending without counting the attempt."""


def load_handler(spec: str) -> Handler:
    """Import `module:function` and return the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise WorkerError(f"invalid handler {spec!r}: use module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerError(
            f"cannot import handler module {module_name!r}: {exc}; the current folder "
            "and PYTHONPATH are searched, so run from the folder holding it or set PYTHONPATH"
        ) from None
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise WorkerError(f"handler {spec!r}: {module_name} has no function {attr!r}")
    return handler  # type: ignore[no-any-return]


class Worker:
    """One worker process serving one or more job types."""

    def __init__(
        self,
        root: Root | str | os.PathLike[str],
        worker_id: str,
        types: list[str],
        *,
        handler: Handler | None = None,
        command: list[str] | None = None,
        capacity: int | None = None,
        config: Config | None = None,
    ):
        if (handler is None) == (not command):
            raise WorkerError("give a worker either a handler or a command, not both")
        self.root = root if isinstance(root, Root) else Root.find(root)
        self.config = config or config_module.load(self.root)
        self.worker_id = validate_worker_id(worker_id)
        if not types:
            raise WorkerError("a worker needs at least one --type")
        self.types = [validate_type(t) for t in types]
        self.handler = handler
        self.command = command
        self.capacity = capacity or int(self.config.get("worker", "capacity"))
        if self.capacity < 1:
            raise WorkerError(f"invalid capacity {self.capacity}: use 1 or more")
        self.lifecycle = Lifecycle(self.root, self.config, "worker")
        self.waiter = Waiter()
        self.stopping = False
        self.current: Path | None = None
        self.lock = threading.Lock()
        self.state_retry_seconds = STATE_RETRY_FIRST_SECONDS
        # True while the handler runs, the only time SIGUSR1 may raise JobCanceled.
        self.in_handler = False
        # Set by run(): only a worker on the main thread installs signal handlers.
        self.owns_signals = False
        self.heartbeat_stop = threading.Event()
        self.pid = os.getpid()
        self.error_backoff_seconds = 0.0
        self.cancel_requested_at: float | None = None
        self.lock_fd = -1
        self.started_at = utc_now()

    # -- registration ----------------------------------------------------------

    def lock_id(self) -> None:
        """Hold an flock named after the worker id for the life of this process."""
        folder = self.root.run / "worker-locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{self.worker_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkerError(f"worker id {self.worker_id!r} is already in use by a running "
                              "worker; stop it or choose another --worker-id") from None
        self.lock_fd = fd

    def unlock(self) -> None:
        """Release the worker id lock, for callers that drive a worker by hand."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def register(self) -> None:
        """Write this worker's record; raise WorkerError when the id is live elsewhere."""
        if self.lock_fd < 0:
            self.lock_id()
        existing = read_record(self.root.worker_path(self.worker_id))
        if existing is not None and existing.get("person"):
            raise WorkerError(
                f"worker id {self.worker_id!r} belongs to a person who takes jobs with "
                "'chronosq take'; choose another --worker-id"
            )
        if existing is not None and existing.get("host") == HOST and existing["pid"] != self.pid:
            if pid_alive(int(existing["pid"]), float(existing["pid_started_at"])):
                raise WorkerError(
                    f"worker id {self.worker_id!r} is already running as pid "
                    f"{existing['pid']}; stop it or choose another --worker-id"
                )
        self.write_record()
        for job_type in self.types:
            folder = self.root.queue_dir(job_type, self.worker_id)
            folder.mkdir(parents=True, exist_ok=True)
            self.waiter.watch(folder)
        self.requeue_leftovers(existing)
        logs.log_event(logger, logging.INFO, "worker.started", worker_id=self.worker_id,
                       types=self.types, capacity=self.capacity, pid=self.pid)

    def write_record(self) -> None:
        record = {
            "worker_id": self.worker_id,
            "types": self.types,
            "host": HOST,
            "pid": self.pid,
            "pid_started_at": process_start_time(self.pid),
            "capacity": self.capacity,
            "started_at": self.started_at,
            "heartbeat_at": utc_now(),
            "mode": "command" if self.command else "handler",
        }
        fileops.write_json(self.root.worker_path(self.worker_id), record,
                           durable=self.lifecycle.durable)

    def requeue_leftovers(self, previous: dict[str, Any] | None = None) -> None:
        """Requeue claims an earlier process under this id left when it died.

        That process died while running them, so each counts as a crash, as it
        would had recovery found them first; `previous` is its worker record.
        """
        evidence = death_evidence(previous)
        for job_type in self.types:
            folder = self.root.queue_dir(job_type, self.worker_id)
            for name in fileops.listdir(folder):
                if job_id_of(name, PROCESSING) is None:
                    continue
                job = self.read_job(folder / name)
                if job is not None:
                    self.lifecycle.requeue(
                        folder / name, job, worker_id=self.worker_id, count_attempt=True,
                        reason=f"worker {self.worker_id} restarted while running the job",
                        crashed=True, evidence=evidence,
                    )

    def unregister(self) -> None:
        """Remove the record, then hand queued jobs back to pending."""
        fileops.unlink(self.root.worker_path(self.worker_id),
                       durable=self.lifecycle.durable, missing_ok=True)
        for job_type in self.types:
            folder = self.root.queue_dir(job_type, self.worker_id)
            for name in sorted(fileops.listdir(folder)):
                if job_id_of(name, ASSIGNED) is None:
                    continue
                job = self.read_job(folder / name)
                if job is not None:
                    self.lifecycle.requeue(
                        folder / name, job, worker_id=self.worker_id, count_attempt=False,
                        reason=f"worker {self.worker_id} stopped",
                    )

    # -- heartbeat -------------------------------------------------------------

    def heartbeat_loop(self) -> None:
        interval = float(self.config.get("worker", "heartbeat_seconds"))
        while not self.heartbeat_stop.wait(interval):
            try:
                self.write_record()
                with self.lock:
                    current = self.current
                if current is not None:
                    fileops.touch(current)
                    self.check_cancel(current)
            except OSError as exc:
                logs.log_event(logger, logging.ERROR, "worker.heartbeat_failed",
                               worker_id=self.worker_id, error=str(exc))

    def check_cancel(self, claim: Path) -> None:
        """Stop the running job when an operator asked to cancel it.

        A command is stopped by run_command. A handler gets SIGUSR1, which raises
        JobCanceled in it; one that has not returned within the request's grace
        period takes the whole worker down, and recovery cancels the job.
        """
        job_id = claim.name[: -len(PROCESSING)]
        request = self.lifecycle.cancel_request(job_id)
        if request is None:
            return
        if self.cancel_requested_at is None:
            self.cancel_requested_at = time.monotonic()
            logs.log_event(logger, logging.WARNING, "job.cancel_received", job_id=job_id,
                           worker_id=self.worker_id)
            if self.handler is not None and self.owns_signals:
                os.kill(os.getpid(), signal.SIGUSR1)
            return
        if not self.owns_signals:
            # A worker on a thread of another program may not signal or kill
            # that program; the job is canceled when the handler returns.
            return
        grace = float(request.get("grace_seconds", CANCEL_GRACE_SECONDS))
        if time.monotonic() - self.cancel_requested_at > grace:
            logs.log_event(logger, logging.ERROR, "worker.killed_for_cancel", job_id=job_id,
                           worker_id=self.worker_id, grace_seconds=grace)
            os.kill(os.getpid(), signal.SIGKILL)

    def _on_cancel(self, signum: int, frame: FrameType | None) -> None:
        # Only the main thread runs handlers, so this interrupts the handler code.
        # Outside the handler the signal does nothing: the job is then either
        # about to start, and call_handler cancels it, or already finished.
        if self.cancel_requested_at is not None and self.in_handler:
            raise JobCanceled("canceled by an operator")

    def call_handler(self, task: dict[str, Any]) -> Any:
        """Call the handler, raising JobCanceled when a cancel came before or during it."""
        handler = cast(Handler, self.handler)
        self.in_handler = True
        try:
            if self.cancel_requested_at is not None:
                raise JobCanceled("canceled by an operator")
            result = handler(task)
        finally:
            self.in_handler = False
        if self.cancel_requested_at is not None and not self.owns_signals:
            raise JobCanceled("canceled by an operator while the handler ran")
        return result

    # -- main loop -------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Serve jobs until SIGTERM or SIGINT; return an exit code."""
        if not logging.getLogger().handlers:
            # Started from the Python API without logs.setup: log like the CLI.
            logs.setup(self.root, "worker", self.config.get("logging", "level"),
                       self.config.get("logging", "file"), self.config.get("logging", "stderr"))
        self.owns_signals = threading.current_thread() is threading.main_thread()
        if self.owns_signals:
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGINT, self._on_stop)
            signal.signal(signal.SIGUSR1, self._on_cancel)
            # Workers read their settings at start; a SIGHUP meant for a whole
            # process group must not kill them.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            self.waiter.install_signal_wakeup()
        self.register()
        beat = threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        try:
            while not self.stopping:
                try:
                    self.serve_once()
                except OSError as exc:
                    self.back_off(exc)
                else:
                    self.error_backoff_seconds = 0.0
        finally:
            self.heartbeat_stop.set()
            beat.join()
            self.stop_cleanly()
            self.waiter.close()
            logs.log_event(logger, logging.INFO, "worker.stopped", worker_id=self.worker_id)
        return 0

    def serve_once(self) -> None:
        """Process the next ready job, or wait for one to arrive."""
        self.lifecycle.flush_unrecorded()
        assigned = self.assigned_jobs()
        if not assigned:
            self.waiter.wait(float(self.config.get("worker", "heartbeat_seconds")))
        elif self.process_first_ready(assigned):
            self.state_retry_seconds = STATE_RETRY_FIRST_SECONDS
        else:
            self.waiter.wait(self.state_retry_seconds)
            self.state_retry_seconds = min(STATE_RETRY_SECONDS, self.state_retry_seconds * 2)

    def back_off(self, error: OSError) -> None:
        """Wait after a failed file operation (disk full, I/O error) before going on."""
        self.error_backoff_seconds = min(
            ERROR_BACKOFF_MAX_SECONDS, max(ERROR_BACKOFF_MIN_SECONDS, self.error_backoff_seconds * 2)
        )
        logs.log_event(logger, logging.ERROR, "worker.io_error", worker_id=self.worker_id,
                       error=str(error), retry_in_seconds=self.error_backoff_seconds)
        deadline = time.monotonic() + self.error_backoff_seconds
        while not self.stopping and time.monotonic() < deadline:
            # File notifications end a wait early; only the deadline ends the pause.
            self.waiter.wait(deadline - time.monotonic())

    def stop_cleanly(self) -> None:
        """Unregister and hand back queued jobs, retrying briefly if the disk fails."""
        deadline = time.monotonic() + float(self.config.get("worker", "stop_grace_seconds"))
        while True:
            try:
                self.unregister()
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    # Recovery requeues what is left once this process is gone.
                    logs.log_event(logger, logging.ERROR, "worker.unregister_failed",
                                   worker_id=self.worker_id, error=str(exc))
                    return
                self.back_off(exc)

    def assigned_jobs(self) -> list[Path]:
        """Return the paths of assigned jobs, earliest assignment first."""
        assigned: list[tuple[int, Path]] = []
        for job_type in self.types:
            folder = self.root.queue_dir(job_type, self.worker_id)
            for name in fileops.listdir(folder):
                if job_id_of(name, ASSIGNED) is None:
                    continue
                try:
                    # The scheduler's rename set ctime, so it orders assignments.
                    assigned.append((os.stat(folder / name).st_ctime_ns, folder / name))
                except FileNotFoundError:
                    continue
        return [path for _, path in sorted(assigned)]

    def process_first_ready(self, assigned: list[Path]) -> bool:
        """Process the first job whose state record shows the assignment; False if none."""
        for path in assigned:
            job_id = path.name[: -len(ASSIGNED)]
            record = self.lifecycle.read_state(job_id)
            if self.lifecycle.state_lags(path, record, State.ASSIGNED, self.worker_id):
                continue
            self.process(path, record)
            return True
        return False

    def read_job(self, path: Path) -> dict[str, Any] | None:
        """Return a job file's contents, or None when it is gone or damaged.

        An I/O error is raised rather than taken for damage, so a failing disk
        makes the worker back off instead of setting good jobs aside.
        """
        try:
            job = fileops.read_json(path)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            logs.log_event(logger, logging.ERROR, "job.unreadable", path=str(path),
                           worker_id=self.worker_id, error=str(exc))
            return None
        return job if isinstance(job, dict) else None

    def process(self, path: Path, record: dict[str, Any] | None) -> None:
        """Claim one assigned job, run it and record its outcome."""
        claim = path.with_name(path.name[: -len(ASSIGNED)] + PROCESSING)
        # The queue folder is not fsynced for the claim: a power cut that undoes
        # it only runs the job again, and the outcome's write fsyncs the folder.
        if not self.lifecycle.move(path, claim, sync_dir=False):
            return  # recovery took it back first
        try:
            job = self.read_job(claim)
        except OSError:
            # Give the claim back so the job is tried again after the back-off.
            self.lifecycle.move(claim, path)
            raise
        if job is None:
            self.set_aside(claim)
            return
        attempt = int((record or {}).get("attempts", 0)) + 1
        with self.lock:
            self.current = claim
        try:
            self.lifecycle.transition(job, "claimed", State.PROCESSING, record=record,
                                      worker_id=self.worker_id, attempts=attempt,
                                      attempt=attempt)
        except OSError as exc:
            # The claim is this worker's; the state record is written before the
            # outcome (see write_outcome), so run the job rather than strand it.
            logs.log_event(logger, logging.ERROR, "worker.io_error", job_id=job["job_id"],
                           worker_id=self.worker_id, error=str(exc))
        task = dict(job_fields(job), attempt=attempt, worker_id=self.worker_id)
        started = time.monotonic()
        try:
            result = self.execute(task)
        except JobCanceled as exc:
            self.finish(claim, job, attempt, error=str(exc), started=started, canceled=True)
        except HandBack as exc:
            self.lifecycle.requeue(claim, job, reason=f"worker {self.worker_id} stopped: {exc}",
                                   worker_id=self.worker_id, count_attempt=False,
                                   refund_attempt=True)
        except JobFailed as exc:
            self.finish(claim, job, attempt, error=str(exc), started=started)
        except Exception as exc:
            logs.log_event(logger, logging.WARNING, "job.handler_raised", job_id=job["job_id"],
                           worker_id=self.worker_id, attempt=attempt,
                           traceback=traceback.format_exc())
            self.finish(claim, job, attempt, error=f"{type(exc).__name__}: {exc}",
                        started=started)
        else:
            self.finish(claim, job, attempt, result=result, started=started)
        finally:
            with self.lock:
                self.current = None
                self.cancel_requested_at = None

    def write_outcome(self, target: Path, outcome: dict[str, Any]) -> None:
        """Write the outcome file, retrying while the disk is full or failing.

        The result exists only in this process until it is written, so the worker
        keeps trying, and keeps its claim fresh meanwhile, until it succeeds or is
        told to stop; then the claim is left for recovery to requeue.
        """
        while True:
            try:
                # Recovery checks an outcome against the state record, so a claim
                # whose record could not be written yet must be recorded first.
                self.lifecycle.flush_unrecorded()
                fileops.write_json(target, outcome, durable=self.lifecycle.durable)
                return
            except OSError as exc:
                if self.stopping:
                    raise
                self.back_off(exc)

    def set_aside(self, claim: Path) -> None:
        """Move an unreadable job file to error/ so it is not claimed again."""
        target = self.root.error / f"{claim.name}.{time.time_ns()}.unreadable"
        try:
            fileops.rename(claim, target, durable=self.lifecycle.durable)
        except FileNotFoundError:
            return
        logs.log_event(logger, logging.ERROR, "job.set_aside", path=str(target),
                       worker_id=self.worker_id, reason="unreadable job file")

    def execute(self, task: dict[str, Any]) -> Any:
        """Run the job and return its result; raise JobFailed or any error on failure."""
        if self.handler is not None:
            try:
                result = self.call_handler(task)
            except (SystemExit, KeyboardInterrupt) as exc:
                # A handler must not end the worker; its exit is the job's failure.
                logs.log_event(logger, logging.WARNING, "job.handler_raised",
                               job_id=task.get("job_id"), worker_id=self.worker_id,
                               attempt=task.get("attempt"), traceback=traceback.format_exc())
                raise JobFailed(f"handler raised {exc!r}") from None
        else:
            result = self.run_command(task)
        try:
            size = len(fileops.dumps(result))
        except (TypeError, ValueError) as exc:
            raise JobFailed(f"result is not JSON that can be stored: {exc}") from None
        limit = int(self.config.get("worker", "max_result_bytes"))
        if size > limit:
            raise JobFailed(f"result is {size} bytes, over worker.max_result_bytes={limit}")
        return result

    def run_command(self, task: dict[str, Any]) -> Any:
        """Run the command with the job as JSON on stdin; stdout is the result.

        The command gets a session of its own, so a Ctrl-C meant for the worker
        does not reach it, and stopping it reaches every process it started.
        When the worker is told to stop, the command has stop_grace_seconds to
        finish; then its process group gets SIGTERM, then SIGKILL, and the job
        is handed back.
        """
        assert self.command is not None
        # Output goes to unnamed temporary files rather than pipes: a command that
        # writes a lot costs disk, not worker memory, and a grandchild that keeps
        # the output open cannot make the worker wait after the command exits.
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout_file, \
                tempfile.TemporaryFile() as stderr_file:
            stdin.write(json.dumps(task).encode())
            stdin.seek(0)
            process = subprocess.Popen(self.command, stdin=stdin, stdout=stdout_file,
                                       stderr=stderr_file, start_new_session=True)
            self.wait_command(process)
            stdout = self.read_limited(stdout_file)
            stderr_file.seek(max(0, stderr_file.seek(0, os.SEEK_END) - 4 * STDERR_TAIL_CHARS))
            stderr = stderr_file.read()
        if process.returncode != 0:
            tail = stderr.decode(errors="replace")[-STDERR_TAIL_CHARS:].strip()
            if process.returncode < 0:
                cause = f"command killed by {signal.Signals(-process.returncode).name}"
            else:
                cause = f"command exited with status {process.returncode}"
            raise JobFailed(f"{cause}: {tail}" if tail else cause)
        text = stdout.decode(errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text.strip()

    def wait_command(self, process: subprocess.Popen[bytes]) -> None:
        """Wait for the command, stopping it on cancel or when the worker stops."""
        grace = float(self.config.get("worker", "stop_grace_seconds"))
        deadline: float | None = None
        while True:
            try:
                process.wait(timeout=0.2)
                return
            except subprocess.TimeoutExpired:
                pass
            if self.cancel_requested_at is not None:
                self.stop_command(process)
                raise JobCanceled("canceled by an operator")
            if self.stopping and deadline is None:
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                self.stop_command(process)
                raise HandBack(f"the command did not finish within {grace:g}s of stop")

    def read_limited(self, handle: Any) -> bytes:
        """Return a command's standard output; fail the job if it is too large."""
        limit = int(self.config.get("worker", "max_result_bytes"))
        size = handle.seek(0, os.SEEK_END)
        if size > limit:
            raise JobFailed(f"command wrote {size} bytes to stdout, over "
                            f"worker.max_result_bytes={limit}")
        handle.seek(0)
        return handle.read()  # type: ignore[no-any-return]

    def stop_command(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the command's process group, then SIGKILL what is left."""
        for sig, wait_seconds in ((signal.SIGTERM, COMMAND_TERM_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=wait_seconds)
                return
            except subprocess.TimeoutExpired:
                continue
        logs.log_event(logger, logging.ERROR, "worker.command_unkillable",
                       worker_id=self.worker_id, command_pid=process.pid)

    def finish(
        self,
        claim: Path,
        job: dict[str, Any],
        attempt: int,
        *,
        started: float,
        result: Any = None,
        error: str | None = None,
        canceled: bool = False,
    ) -> None:
        """Write the outcome beside the claim, then drop the claim."""
        outcome = dict(job_fields(job), attempt=attempt, worker_id=self.worker_id,
                       finished_at=utc_now())
        if canceled:
            outcome["canceled"] = True
        if error is None:
            outcome["result"] = result
            suffix = SUCCESS
        else:
            outcome["error"] = error
            suffix = FAILURE
        if not claim.exists():
            logs.log_event(logger, logging.WARNING, "job.claim_lost", job_id=job["job_id"],
                           worker_id=self.worker_id, attempt=attempt)
        target = claim.with_name(claim.name[: -len(PROCESSING)] + suffix)
        self.write_outcome(target, outcome)
        # Recovery fsyncs this folder when it moves the outcome out; a claim that
        # a power cut brings back beside its outcome is removed then too.
        fileops.unlink(claim, durable=self.lifecycle.durable, missing_ok=True, sync_dir=False)
        logs.log_event(
            logger,
            logging.INFO if error is None else logging.WARNING,
            "job.finished" if error is None else "job.errored",
            job_id=job["job_id"], type=job.get("type"), worker_id=self.worker_id,
            attempt=attempt, error=error,
            duration_seconds=round(time.monotonic() - started, 6),
        )
