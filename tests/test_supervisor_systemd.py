"""The supervisor under systemd: sd_notify over a real socket, and the metrics file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import (
    child_pid,
    drop_event,
    finished,
    status_json,
    wait_for,
    write_config,
)


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, socket.timeout):
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append((time.monotonic(), fields))

    def seen(self, key: str, value: str | None = None, after: float = 0.0) -> bool:
        self.drain()
        return any(key in fields and (value is None or fields[key] == value) and at >= after
                   for at, fields in self.messages)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


def test_sd_notify_lifecycle(root, procs, notify):
    write_config(root, {"supervisor": {"hung_seconds": 2.0},
                        "metrics": {"interval_seconds": 0.5}})
    supervisor = procs.start("supervise", env={"NOTIFY_SOCKET": str(notify.path)})

    wait_for(lambda: notify.seen("READY", "1"), 30, "READY=1")
    for role in ("ingest", "scheduler", "recovery"):
        assert child_pid(root, role) is not None
    wait_for(lambda: notify.seen("WATCHDOG", "1"), 10, "watchdog pings")
    wait_for(lambda: notify.seen("STATUS"), 10, "a STATUS line")
    status = next(f["STATUS"] for _, f in notify.messages if "STATUS" in f)
    assert "pending=0" in status

    stopped = child_pid(root, "scheduler")
    os.kill(stopped, signal.SIGSTOP)
    try:
        wait_for(lambda: notify.seen("STATUS") and "unhealthy=scheduler" in
                 [f["STATUS"] for _, f in notify.messages if "STATUS" in f][-1], 15,
                 "STATUS to name the stopped scheduler")
        quiet_from = time.monotonic()
        wait_for(lambda: time.monotonic() - quiet_from > 3.0 or notify.seen(
            "WATCHDOG", after=quiet_from), 10, "three seconds without pings")
        assert not notify.seen("WATCHDOG", after=quiet_from)
    finally:
        os.kill(stopped, signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(lambda: notify.seen("WATCHDOG", after=resumed), 15, "pings to resume")

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=20) == 0
    assert notify.seen("STOPPING", "1")


def parse_prometheus(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    declared = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        pairs = tuple(tuple(p.split("=", 1)) for p in labels.rstrip("}").split(",") if p)
        assert name in declared, line
        samples[(name, tuple((k, v.strip('"')) for k, v in pairs))] = float(value)
    return samples


def test_metrics_file_matches_status(root, procs):
    write_config(root, {"metrics": {"textfile": "metrics/chronosq.prom",
                                    "interval_seconds": 0.3}})
    procs.supervisor()
    procs.worker("w1", "t", handler="fixtures:always_fail")
    procs.worker("w2", "u")
    for i in range(6):
        drop_event(root, f"u{i}.json", {"type": "u", "payload": {}})
    drop_event(root, "f.json", {"type": "t", "payload": {}, "job_id": "f"})
    drop_event(root, "waiting.json", {"type": "idle", "payload": {},
                                      "created_at": time.time() - 120})
    wait_for(lambda: finished(root, "output", 6) and finished(root, "error", 1), 30,
             "the jobs to end")
    path = root / "metrics" / "chronosq.prom"
    time.sleep(0.1)

    def settled():
        if not path.exists():
            return None
        samples = parse_prometheus(path.read_text())
        if samples.get(("chronosq_failures_total", ())) != 1.0:
            return None
        return samples

    samples = wait_for(settled, 30, "metrics with the final counts")
    status = status_json(root)
    for job_type, counts in status["types"].items():
        for state, count in counts.items():
            key = ("chronosq_jobs", (("state", state), ("type", job_type)))
            assert samples[key] == count, key
    assert samples[("chronosq_completions_total", ())] == 6
    assert samples[("chronosq_retries_total", ())] == 2
    assert samples[("chronosq_oldest_pending_age_seconds", (("type", "idle"),))] >= 120
    assert samples[("chronosq_workers", (("alive", "true"),))] == 2


def test_systemd_and_metrics_commands(root, procs, tmp_path):
    procs.supervisor()
    out = tmp_path / "units"
    written = subprocess.run([sys.executable, "-m", "chronosq", "systemd", "--output-dir",
                              str(out), "--root", str(root)], capture_output=True, text=True,
                             timeout=60)
    printed = subprocess.run([sys.executable, "-m", "chronosq", "metrics", "--root", str(root)],
                             capture_output=True, text=True, timeout=60)

    assert written.returncode == 0, written.stderr
    service = (out / "chronosq.service").read_text()
    assert "Type=notify" in service
    assert f"ReadWritePaths={root}" in service
    assert "KillMode=mixed" in service
    assert (out / "chronosq-worker@.service").exists()
    assert printed.returncode == 0
    assert "chronosq_jobs" in printed.stdout
    assert json.loads(subprocess.run(
        [sys.executable, "-m", "chronosq", "status", "--json", "--root", str(root)],
        capture_output=True, text=True, timeout=60).stdout)["supervisor"]["alive"]
