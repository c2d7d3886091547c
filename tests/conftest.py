"""Fixtures that start real ChronosQ processes in temporary roots and always reap them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w

# A shell that runs the tests in the background starts them with SIGINT
# ignored, and child processes inherit that. Catching it here gives every
# child the default again, so the tests that press Ctrl-C reach them.
signal.signal(signal.SIGINT, signal.default_int_handler)

TESTS = Path(__file__).resolve().parent

# Short intervals keep the tests quick; each test states what else it changes.
FAST_SETTINGS: dict[str, dict[str, Any]] = {
    "ingest": {"rescan_seconds": 1.0},
    "scheduler": {"rescan_seconds": 1.0, "worker_stale_seconds": 5.0},
    "recovery": {"interval_seconds": 0.2},
    "supervisor": {"restart_backoff_min_seconds": 0.1, "stop_grace_seconds": 5.0},
    "worker": {"heartbeat_seconds": 0.5, "stop_grace_seconds": 2.0},
    "defaults": {"timeout": 60.0, "max_attempts": 3, "retry_backoff_seconds": 0.05,
                 "retry_backoff_max_seconds": 0.2},
}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, message: str = "condition"
) -> Any:
    """Poll `predicate` until it returns a true value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(0.05)


def finished(root: Path, place: str, count: int) -> bool:
    """True when `count` jobs are in output/ or error/ and their state records agree.

    Recovery renames a job into place first and writes its state record just
    after, so both are checked.
    """
    found = names(root / place)
    if len(found) != count:
        return False
    expected = "succeeded" if place == "output" else "failed"
    for name in found:
        try:
            state = read_state(root, name[: -len(".json")])
        except (FileNotFoundError, ValueError):
            return False
        if state["state"] != expected:
            return False
    return True


def write_config(root: Path, overrides: dict[str, dict[str, Any]] | None = None) -> None:
    settings = {section: dict(values) for section, values in FAST_SETTINGS.items()}
    for section, values in (overrides or {}).items():
        settings.setdefault(section, {}).update(values)
    (root / "chronosq.toml").write_text(tomli_w.dumps(settings))


def drop_event(root: Path, name: str, event: Any) -> Path:
    """Write an event the way a producer should: a .tmp name, then a rename."""
    data = event if isinstance(event, (bytes, str)) else json.dumps(event)
    tmp = root / "input" / f"{name}.tmp"
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    final = root / "input" / name
    os.rename(tmp, final)
    return final


def read_state(root: Path, job_id: str) -> dict[str, Any]:
    return json.loads((root / "state" / f"{job_id}.state.json").read_text())


def names(folder: Path, suffix: str = ".json") -> list[str]:
    """Return the sorted names ending in `suffix`; a missing folder has none."""
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(suffix))
    except FileNotFoundError:
        return []


def all_job_files(root: Path) -> list[Path]:
    """Every job file in every lifecycle place, for exactly-once checks."""
    found = [p for p in (root / "jobs").glob("*.json")]
    found += [p for p in (root / "hold").glob("*.json")]
    found += [p for p in (root / "output").glob("*.json")]
    found += [p for p in (root / "error").glob("*.json")]
    for pattern in ("*.json", "*.json.processing", "*.json.success", "*.json.failure"):
        found += list((root / "broker" / "types").glob(f"*/*/{pattern}"))
    return found


class Processes:
    """Starts ChronosQ processes and stops them, with their children, at teardown."""

    def __init__(self, root: Path, log_dir: Path):
        self.root = root
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        env.update(extra or {})
        return env

    def start(self, *args: str, env: dict[str, str] | None = None,
              new_session: bool = False) -> subprocess.Popen[bytes]:
        index = len(self.started)
        out = open(self.log_dir / f"proc{index}.out", "wb")
        # The root goes before a worker's "--", after which the command begins.
        split = args.index("--") if "--" in args else len(args)
        command = [*args[:split], "--root", str(self.root), *args[split:]]
        process = subprocess.Popen(
            [sys.executable, "-m", "chronosq", *command],
            stdout=out, stderr=subprocess.STDOUT, env=self.env(env), cwd=self.root,
            start_new_session=new_session,
        )
        out.close()
        self.started.append(process)
        return process

    def supervisor(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = self.start("supervise", env=env)
        wait_for(lambda: self.children_up(process), 20, "supervisor children to start")
        return process

    def children_up(self, supervisor: subprocess.Popen[bytes]) -> bool:
        try:
            children = psutil.Process(supervisor.pid).children()
        except psutil.NoSuchProcess:
            return False
        if len(children) != 3:
            return False
        return children_ready(self.root)

    def worker(self, worker_id: str, *types: str, handler: str = "fixtures:echo",
               capacity: int = 2) -> subprocess.Popen[bytes]:
        args = ["worker", "--worker-id", worker_id, "--capacity", str(capacity),
                "--handler", handler]
        for job_type in types or ("t",):
            args += ["--type", job_type]
        process = self.start(*args)
        wait_for(lambda: worker_registered(self.root, worker_id, process.pid), 20,
                 f"worker {worker_id} to register")
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        index = self.started.index(process)
        return (self.log_dir / f"proc{index}.out").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.started:
            try:
                family = [psutil.Process(process.pid)]
                family += family[0].children(recursive=True)
            except psutil.NoSuchProcess:
                family = []
            for member in family:
                try:
                    member.send_signal(signal.SIGCONT)
                    member.kill()
                except psutil.NoSuchProcess:
                    pass
            process.wait(timeout=10)


def worker_registered(root: Path, worker_id: str, pid: int) -> bool:
    try:
        record = json.loads((root / "workers" / f"{worker_id}.json").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return record.get("pid") == pid


def child_pid(root: Path, role: str) -> int | None:
    try:
        return json.loads((root / "run" / "children" / f"{role}.json").read_text())["pid"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def children_ready(root: Path) -> bool:
    """True when each child named in run/children/ has logged that it started."""
    pids = {child_pid(root, role) for role in ("ingest", "scheduler", "recovery")}
    if None in pids:
        return False
    try:
        started = {e["pid"] for e in log_events(root) if e["event"] == "process.started"}
    except FileNotFoundError:
        return False
    return pids <= started


def assignments(root: Path) -> list[tuple[str, str]]:
    """Return (job_id, worker_id) for every assignment, in the order they were made."""
    return [(e["job_id"], e["worker_id"]) for e in log_events(root)
            if e["event"] == "job.assigned"]


def status_json(root: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "chronosq", "status", "--json", "--root", str(root)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one chronosq command on `root` as a real process."""
    return subprocess.run([sys.executable, "-m", "chronosq", *args, "--root", str(root)],
                          capture_output=True, text=True, timeout=60)


def log_events(root: Path) -> list[dict[str, Any]]:
    text = (root / "logs" / "chronosq.log").read_text()
    # A line another process is writing right now may be cut short; complete
    # lines end in a newline.
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An initialised root with fast intervals."""
    path = tmp_path / "root"
    path.mkdir()
    subprocess.run([sys.executable, "-m", "chronosq", "init", "--root", str(path)],
                   check=True, capture_output=True)
    write_config(path)
    return path


@pytest.fixture
def procs(root: Path, tmp_path: Path) -> Iterator[Processes]:
    manager = Processes(root, tmp_path)
    yield manager
    manager.stop_all()
