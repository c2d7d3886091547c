"""The loop shared by ingest, scheduler and recovery.

Signal handlers only set flags and the loop acts on them between steps, so a
process never stops halfway through a transition. A child started by a
supervisor also stops when that supervisor is gone.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from pathlib import Path
from types import FrameType

from chronosq import config as config_module
from chronosq import fileops, logs
from chronosq.config import Config
from chronosq.errors import ChronosQError
from chronosq.layout import Root
from chronosq.lifecycle import Lifecycle
from chronosq.watch import Waiter

logger = logging.getLogger(__name__)

SUPERVISOR_PID_ENV = "CHRONOSQ_SUPERVISOR_PID"
IDLE_BEAT_SECONDS = 2.0
ERROR_BACKOFF_MIN_SECONDS = 0.1
ERROR_BACKOFF_MAX_SECONDS = 5.0


ACTIVE_CONFIG_ENV = "CHRONOSQ_ACTIVE_CONFIG"


def active_config_path(root: Root) -> Path | None:
    """Return the configuration the supervisor accepted, for its children to read.

    A child restarted after a rejected edit of chronosq.toml must run with the
    settings the supervisor validated, not with the file as it is now.
    """
    value = os.environ.get(ACTIVE_CONFIG_ENV)
    return Path(value) if value else None


class Service:
    """A long-running process that works one step at a time until asked to stop."""

    role = "service"

    def __init__(self, root: Root, config: Config):
        self.root = root
        self.config = config
        self.waiter = Waiter()
        self.stopping = False
        self.reload_requested = False
        self.error_backoff_seconds = 0.0
        self.last_beat = 0.0
        self.lifecycle = Lifecycle(root, config, self.role)
        supervisor = os.environ.get(SUPERVISOR_PID_ENV)
        self.supervisor_pid = int(supervisor) if supervisor else None

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self.waiter.install_signal_wakeup()

    def supervisor_gone(self) -> bool:
        """True when this process was started by a supervisor that has exited."""
        return self.supervisor_pid is not None and os.getppid() != self.supervisor_pid

    def reload(self) -> None:
        """Reread chronosq.toml; keep the old settings when the new ones are invalid."""
        self.reload_requested = False
        try:
            self.config = config_module.load(self.root, active_config_path(self.root))
        except ChronosQError as exc:
            logs.log_event(logger, logging.ERROR, "config.reload_failed", error=str(exc))
            return
        logs.log_event(logger, logging.INFO, "config.reloaded")
        logging.getLogger().setLevel(str(self.config.get("logging", "level")).upper())
        self.lifecycle.reconfigure(self.config)
        self.on_reload()

    def on_reload(self) -> None:
        """Apply a reloaded configuration; subclasses override."""

    def setup(self) -> None:
        """Prepare before the first step; subclasses override."""

    def step(self) -> float:
        """Do one round of work; return the seconds to wait for changes before the next."""
        raise NotImplementedError

    def handle_changes(self, changes: list[tuple[object, str]]) -> None:
        """Take note of files that changed while waiting; subclasses override."""

    def back_off(self, error: OSError) -> None:
        """Wait after a failed file operation (disk full, I/O error) and try again.

        The operation that failed left its job where it was, so retrying the
        whole step is safe; the wait doubles up to ERROR_BACKOFF_MAX_SECONDS.
        """
        self.error_backoff_seconds = min(
            ERROR_BACKOFF_MAX_SECONDS, max(ERROR_BACKOFF_MIN_SECONDS, self.error_backoff_seconds * 2)
        )
        logs.log_event(
            logger, logging.ERROR, "process.io_error",
            errno=errno.errorcode.get(error.errno or 0, error.errno), error=str(error),
            retry_in_seconds=self.error_backoff_seconds,
        )
        deadline = time.monotonic() + self.error_backoff_seconds
        while not self.stopping and time.monotonic() < deadline:
            # File notifications end a wait early; only the deadline ends the pause.
            self.waiter.wait(deadline - time.monotonic())
        # Notifications that arrived meanwhile were dropped, so rescan everything.
        self.waiter.overflowed = True

    def watch_queues(self) -> None:
        """Watch every type and worker queue folder under broker/."""
        for job_type in fileops.listdir(self.root.broker):
            type_dir = self.root.broker / job_type
            self.waiter.watch(type_dir)
            for worker_id in fileops.listdir(type_dir):
                self.waiter.watch(type_dir / worker_id)

    def beat(self) -> None:
        """Show the supervisor this process is making progress, at most once a second.

        The mark is the modification time of run/children/<role>.json; the
        supervisor stops systemd's watchdog pings when it goes stale.
        """
        now = time.monotonic()
        if now - self.last_beat < 1.0:
            return
        self.last_beat = now
        try:
            fileops.touch(self.root.children / f"{self.role}.json")
        except OSError:
            pass  # a full disk shows up in the step's own error handling

    def run(self) -> int:
        """Run steps until a stop signal or the supervisor's exit; return an exit code."""
        self.install_signals()
        logs.log_event(logger, logging.INFO, "process.started", root=str(self.root.path))
        self.setup()
        while not self.stopping:
            if self.reload_requested:
                self.reload()
            if self.supervisor_gone():
                logs.log_event(logger, logging.WARNING, "process.orphaned",
                               supervisor_pid=self.supervisor_pid)
                break
            try:
                self.beat()
                self.lifecycle.flush_unrecorded()
                timeout = self.step()
                if self.stopping:
                    break
                # Wake at least every few seconds to show progress while idle.
                changes = self.waiter.wait(min(timeout, IDLE_BEAT_SECONDS))
                self.handle_changes(changes)  # type: ignore[arg-type]
            except OSError as exc:
                self.back_off(exc)
            else:
                self.error_backoff_seconds = 0.0
        logs.log_event(logger, logging.INFO, "process.stopped")
        self.waiter.close()
        return 0
