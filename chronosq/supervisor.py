"""Supervisor: start ingest, scheduler and recovery; restart them; stop them.

The supervisor holds an exclusive flock on run/supervisor.lock and passes the
locked descriptor to its children, so the lock stays held while any of them
lives, even after the supervisor itself was killed. A second supervisor on the
same root therefore fails until every process of the first is gone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from chronosq import config as config_module
from chronosq import fileops, fsck, logs, metrics
from chronosq import status as status_module
from chronosq.config import ACTIVE_CONFIG_NAME, Config
from chronosq.errors import ChronosQError, RootError
from chronosq.layout import Root
from chronosq.lifecycle import HOST, utc_now
from chronosq.notify import Notifier
from chronosq.policy import plugin_manager, validate
from chronosq.registry import pid_alive, process_start_time
from chronosq.service import ACTIVE_CONFIG_ENV, SUPERVISOR_PID_ENV
from chronosq.watch import Waiter

logger = logging.getLogger(__name__)

ROLES = ("ingest", "scheduler", "recovery")
LOCK_NAME = "supervisor.lock"
RECORD_NAME = "supervisor.json"
RELOAD_RECORD_NAME = "reload.json"


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    role: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    started_at_utc: str = ""
    restarts: int = 0
    backoff_seconds: float = 0.0
    restart_at: float = 0.0
    last_exit: str | None = None
    started_at_pid: float | None = None
    started_wall: float = 0.0


def ignore_sighup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def say(message: str) -> None:
    """Print one line for the person running `supervise` in a terminal."""
    print(f"chronosq: {message}", file=sys.stderr, flush=True)


def describe_exit(returncode: int) -> str:
    """Return 'exit status N' or 'signal NAME' for a child's return code."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def acquire_lock(root: Root) -> int:
    """Return a descriptor holding the root's supervisor lock; raise RootError if taken."""
    root.run.mkdir(parents=True, exist_ok=True)
    fd = os.open(root.run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holders, supervisor_alive = lock_holders(root)
        if supervisor_alive:
            raise RootError(f"another supervisor is running on {root.path} ({holders}); "
                            "stop it with SIGTERM first") from None
        raise RootError(
            f"another supervisor is running on {root.path}: its supervisor is gone but "
            f"its children still hold the lock ({holders or 'pids unknown'}); they exit "
            "within a few seconds, or stop them with SIGTERM"
        ) from None
    return fd


def lock_holders(root: Root) -> tuple[str, bool]:
    """Describe the live processes of the supervisor that holds the lock."""
    parts = []
    supervisor_alive = False
    try:
        record = fileops.read_json(root.run / RECORD_NAME)
        supervisor_alive = pid_alive(int(record["pid"]), float(record["pid_started_at"]))
        if supervisor_alive:
            parts.append(f"supervisor pid {record['pid']}")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for role in ROLES:
        try:
            child = fileops.read_json(root.children / f"{role}.json")
        except (OSError, ValueError):
            continue
        if child.get("pid") and child.get("pid_started_at") and pid_alive(
            int(child["pid"]), float(child["pid_started_at"])
        ):
            parts.append(f"{role} pid {child['pid']}")
    return ", ".join(parts), supervisor_alive


class Supervisor:
    """Run the three children of a root until SIGTERM or SIGINT."""

    def __init__(self, root: Root, config: Config):
        self.root = root
        self.config = config
        self.children = {role: Child(role) for role in ROLES}
        self.stopping = False
        self.reload_requested = False
        self.waiter = Waiter()
        self.lock_fd = -1
        self.notifier = Notifier()
        self.ready_sent = False
        self.last_ping = 0.0
        self.last_report = 0.0

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; return the exit code."""
        self.lock_fd = acquire_lock(self.root)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.waiter.install_signal_wakeup()
        self.check_root()
        self.save_active_config()
        self.write_record()
        logs.log_event(logger, logging.INFO, "supervisor.started", root=str(self.root.path))
        say(f"supervising {self.root.path} (pid {os.getpid()}); JSON log in "
            f"{self.root.path / self.config.get('logging', 'file')}; Ctrl-C or SIGTERM stops")
        try:
            while not self.stopping:
                if self.reload_requested:
                    self.reload()
                self.reap()
                self.spawn_due()
                self.report()
                self.waiter.wait(self.next_wakeup())
        finally:
            self.notifier.stopping()
            self.stop_children()
            fileops.unlink(self.root.run / RECORD_NAME, durable=False, missing_ok=True)
            logs.log_event(logger, logging.INFO, "supervisor.stopped")
            say("stopped")
            os.close(self.lock_fd)
        return 0

    # -- health, systemd and metrics ---------------------------------------------

    def child_healthy(self, child: Child, now: float) -> bool:
        """True when a child runs and has shown progress within hung_seconds.

        Children touch their record in run/children/ as they work, so a child
        that is stopped or stuck in a loop is caught, not only a dead one.
        """
        if child.process is None or child.process.poll() is not None:
            return False
        try:
            beat = os.stat(self.root.children / f"{child.role}.json").st_mtime
        except FileNotFoundError:
            return False
        limit = float(self.config.get("supervisor", "hung_seconds"))
        return now - max(beat, child.started_wall) < limit and beat > child.started_wall

    def report(self) -> None:
        """Send READY, WATCHDOG and STATUS to systemd and rewrite the metrics file."""
        now = time.time()
        healthy = all(self.child_healthy(child, now) for child in self.children.values())
        if healthy and not self.ready_sent:
            self.ready_sent = self.notifier.ready() or True
            logs.log_event(logger, logging.INFO, "supervisor.ready")
        interval = self.notifier.watchdog_interval_seconds() or 1.0
        if healthy and now - self.last_ping >= min(interval, 1.0):
            self.notifier.watchdog()
            self.last_ping = now
        if now - self.last_report < float(self.config.get("metrics", "interval_seconds")):
            return
        self.last_report = now
        if not self.notifier.enabled and not str(self.config.get("metrics", "textfile")):
            # Counting every job costs time and memory that grow with output/,
            # and without systemd or a metrics file the counts go unused.
            return
        try:
            data = status_module.gather(self.root, self.config)
        except Exception:
            # Reporting must never take the supervisor, and so its children, down.
            logger.exception("status.failed")
            return
        jobs = data["jobs"]
        unhealthy = [c.role for c in self.children.values() if not self.child_healthy(c, now)]
        self.notifier.status(
            " ".join(f"{state}={count}" for state, count in jobs.items())
            + (f" unhealthy={','.join(unhealthy)}" if unhealthy else "")
        )
        self.write_metrics(data)

    def write_metrics(self, data: dict[str, Any]) -> None:
        target = str(self.config.get("metrics", "textfile"))
        if not target:
            return
        try:
            counters = fileops.read_json(self.root.run / "counters.json")
        except (OSError, ValueError):
            counters = {}
        path = Path(target) if Path(target).is_absolute() else self.root.path / target
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            metrics.write_textfile(path, metrics.render(data, counters))
        except OSError as exc:
            logs.log_event(logger, logging.ERROR, "metrics.write_failed", path=str(path),
                           error=str(exc))

    def check_root(self) -> None:
        """Remove stale temporary files, run fsck without other repairs and log
        what it finds; recovery mends what it can while running."""
        try:
            # Temporary files of processes that died are always safe to remove.
            cleaner = fsck.Fsck(self.root, self.config, repair=True)
            cleaner.check_temp_files()
            problems = [asdict(p) for p in cleaner.problems]
            problems += fsck.check(self.root, self.config, repair=False)
        except OSError as exc:
            logs.log_event(logger, logging.ERROR, "fsck.failed", error=str(exc))
            return
        for problem in problems:
            logs.log_event(logger, logging.WARNING, "fsck.problem", **problem)
        logs.log_event(logger, logging.INFO, "fsck.done", problems=len(problems))

    @property
    def active_config(self) -> Path:
        return self.root.run / ACTIVE_CONFIG_NAME

    def save_active_config(self) -> None:
        """Keep the accepted chronosq.toml where restarted children read it.

        The text is the one that was validated, not the file as it is now, which
        an editor may have changed again since.
        """
        fileops.write_bytes(self.active_config, self.config.text.encode(),
                            durable=self.config.durable)

    def write_record(self) -> None:
        record = {
            "pid": os.getpid(),
            "pid_started_at": process_start_time(os.getpid()),
            "host": HOST,
            "started_at": utc_now(),
        }
        fileops.write_json(self.root.run / RECORD_NAME, record, durable=self.config.durable)

    def write_child_record(self, child: Child) -> None:
        process = child.process
        alive = process is not None and process.returncode is None
        record: dict[str, Any] = {
            "role": child.role,
            "pid": process.pid if alive and process else None,
            "pid_started_at": child.started_at_pid if alive else None,
            "started_at": child.started_at_utc if alive else None,
            "restarts": child.restarts,
            "last_exit": child.last_exit,
        }
        fileops.write_json(self.root.children / f"{child.role}.json", record, durable=False)

    def spawn(self, child: Child) -> None:
        env = dict(os.environ, **{SUPERVISOR_PID_ENV: str(os.getpid()),
                                  ACTIVE_CONFIG_ENV: str(self.active_config)})
        # The child starts with SIGHUP ignored until it installs its own handler,
        # so a reload signal that arrives while it imports cannot kill it.
        child.process = subprocess.Popen(
            [sys.executable, "-m", "chronosq.child", child.role, str(self.root.path)],
            pass_fds=(self.lock_fd,),
            env=env,
            preexec_fn=ignore_sighup,
        )
        child.started_at = time.monotonic()
        child.started_at_utc = utc_now()
        try:
            child.started_at_pid = process_start_time(child.process.pid)
        except psutil.NoSuchProcess:
            child.started_at_pid = None
        self.write_child_record(child)
        # Only a touch by the child itself, after this moment, counts as progress.
        child.started_wall = time.time()
        logs.log_event(logger, logging.INFO, "child.started", child=child.role,
                       child_pid=child.process.pid, restarts=child.restarts)

    def spawn_due(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.process is None and now >= child.restart_at and not self.stopping:
                self.spawn(child)

    def reap(self) -> None:
        """Notice children that exited and schedule their restart with backoff."""
        for child in self.children.values():
            process = child.process
            if process is None or process.poll() is None:
                continue
            child.last_exit = describe_exit(process.returncode)
            uptime = time.monotonic() - child.started_at
            low = float(self.config.get("supervisor", "restart_backoff_min_seconds"))
            high = float(self.config.get("supervisor", "restart_backoff_max_seconds"))
            if uptime >= float(self.config.get("supervisor", "restart_stable_seconds")):
                child.backoff_seconds = low
            else:
                child.backoff_seconds = min(high, max(low, child.backoff_seconds * 2))
            child.restart_at = time.monotonic() + child.backoff_seconds
            child.restarts += 1
            child.process = None
            self.write_child_record(child)
            logs.log_event(logger, logging.WARNING, "child.exited", child=child.role,
                           child_pid=process.pid, exit=child.last_exit,
                           uptime_seconds=round(uptime, 3),
                           restart_in_seconds=child.backoff_seconds)
            say(f"{child.role} (pid {process.pid}) exited with {child.last_exit}; "
                f"restarting in {child.backoff_seconds:g}s")

    def next_wakeup(self) -> float:
        waits = [1.0]
        now = time.monotonic()
        for child in self.children.values():
            if child.process is None:
                waits.append(max(0.0, child.restart_at - now))
        return min(waits)

    def reload(self) -> None:
        """Reread chronosq.toml and pass SIGHUP on; keep the old settings if invalid."""
        self.reload_requested = False
        try:
            config = config_module.load(self.root)
            validate(config, plugin_manager(config, self.root))
        except ChronosQError as exc:
            logs.log_event(logger, logging.ERROR, "config.reload_failed", error=str(exc))
            say(f"reload failed, keeping the running configuration: {exc}")
            self.write_reload_record(str(exc))
            return
        self.notifier.reloading()
        self.config = config
        self.save_active_config()
        logging.getLogger().setLevel(str(config.get("logging", "level")).upper())
        for child in self.children.values():
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGHUP)
        logs.log_event(logger, logging.INFO, "config.reloaded")
        say(f"reloaded {self.root.config_path}")
        self.write_reload_record(None)
        self.notifier.ready()

    def write_reload_record(self, error: str | None) -> None:
        """Tell `status` how the last SIGHUP reload went."""
        record = {"ok": error is None, "error": error, "at": utc_now()}
        try:
            fileops.write_json(self.root.run / RELOAD_RECORD_NAME, record, durable=False)
        except OSError as exc:
            logs.log_event(logger, logging.ERROR, "reload.record_failed", error=str(exc))

    def stop_children(self) -> None:
        """SIGTERM every child, wait the grace period, then SIGKILL what remains."""
        running = [c for c in self.children.values() if c.process and c.process.poll() is None]
        for child in running:
            child.process.terminate()  # type: ignore[union-attr]
        deadline = time.monotonic() + float(self.config.get("supervisor", "stop_grace_seconds"))
        for child in running:
            process = child.process
            assert process is not None
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logs.log_event(logger, logging.WARNING, "child.killed", child=child.role,
                               child_pid=process.pid, reason="did not stop within grace")
                process.kill()
                process.wait()
            child.last_exit = describe_exit(process.returncode)
            self.write_child_record(child)
            logs.log_event(logger, logging.INFO, "child.stopped", child=child.role,
                           child_pid=process.pid, exit=child.last_exit)


def supervise(root: Root) -> int:
    """Validate the configuration, then supervise the root in the foreground."""
    config = config_module.load(root.require())
    validate(config, plugin_manager(config, root))
    root.make_folders()
    logs.setup(root, "supervisor", config.get("logging", "level"),
               config.get("logging", "file"), config.get("logging", "stderr"))
    return Supervisor(root, config).run()
