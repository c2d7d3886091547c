"""One supervisor per root, clean stops, and restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
from conftest import child_pid, children_ready, log_events, wait_for


def supervise_once(root) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronosq", "supervise", "--root", str(root)],
        capture_output=True, text=True, timeout=30,
    )


def test_second_supervisor_rejected(root, procs):
    first = procs.supervisor()

    second = supervise_once(root)

    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "another supervisor is running" in lines[0]
    assert f"supervisor pid {first.pid}" in lines[0]
    assert first.poll() is None


def test_rejected_while_children_of_killed_supervisor_live(root, procs):
    first = procs.supervisor()
    straggler = child_pid(root, "scheduler")
    os.kill(straggler, signal.SIGSTOP)

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = supervise_once(root)

    assert second.returncode == 1
    assert "another supervisor is running" in second.stderr
    assert f"scheduler pid {straggler}" in second.stderr
    os.kill(straggler, signal.SIGCONT)
    wait_for(lambda: not psutil.pid_exists(straggler), 20, "orphaned scheduler to exit")
    third = procs.supervisor()
    assert third.poll() is None


def test_sigterm_leaves_no_process(root, procs):
    supervisor = procs.supervisor()
    family = psutil.Process(supervisor.pid).children(recursive=True)
    assert len(family) == 3

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=20) == 0
    gone, alive = psutil.wait_procs(family, timeout=5)
    assert alive == []
    events = [e["event"] for e in log_events(root)]
    assert events.count("child.stopped") == 3
    assert "supervisor.stopped" in events
    assert not (root / "run" / "supervisor.json").exists()


def test_sigint_stops_like_sigterm(root, procs):
    supervisor = procs.supervisor()
    family = psutil.Process(supervisor.pid).children(recursive=True)

    supervisor.send_signal(signal.SIGINT)

    assert supervisor.wait(timeout=20) == 0
    _, alive = psutil.wait_procs(family, timeout=5)
    assert alive == []


def test_child_exit_logged_and_restarted(root, procs):
    procs.supervisor()
    old = child_pid(root, "recovery")

    os.kill(old, signal.SIGTERM)

    wait_for(lambda: child_pid(root, "recovery") not in (None, old), 20, "recovery restart")
    wait_for(lambda: children_ready(root), 20, "restarted recovery to log its start")
    exited = [e for e in log_events(root) if e["event"] == "child.exited"]
    assert len(exited) == 1
    assert exited[0]["child"] == "recovery"
    assert exited[0]["exit"] == "exit status 0"
    assert exited[0]["child_pid"] == old


def test_invalid_config_rejected_before_start(root, procs):
    (root / "chronosq.toml").write_text('[defaults]\npolicy = "fastest"\n')

    done = supervise_once(root)

    assert done.returncode == 1
    assert "defaults.policy: unknown policy 'fastest'; valid choices: round_robin" in done.stderr
    assert not (root / "run" / "supervisor.json").exists()


def test_failed_reload_shown_in_status(root, procs):
    supervisor = procs.supervisor()
    (root / "chronosq.toml").write_text('[defaults]\npolicy = "fastest"\n')

    supervisor.send_signal(signal.SIGHUP)

    wait_for(lambda: (root / "run" / "reload.json").exists(), 20, "the reload record")
    shown = subprocess.run([sys.executable, "-m", "chronosq", "status", "--root", str(root)],
                           capture_output=True, text=True, timeout=60)
    assert "last reload failed" in shown.stdout
    assert "unknown policy 'fastest'" in shown.stdout
    assert supervisor.poll() is None


def test_active_config_is_the_validated_text(root):
    from chronosq import config as config_module
    from chronosq.layout import Root
    from chronosq.supervisor import Supervisor

    found = Root(root)
    accepted = config_module.load(found)
    # An editor replaces the file between the check and the copy.
    (root / "chronosq.toml").write_text("[worker]\ncapacity = 'two'\n")
    supervisor = Supervisor(found, accepted)

    supervisor.save_active_config()

    assert supervisor.active_config.read_text() == accepted.text
    assert config_module.load(found, supervisor.active_config).get("worker", "capacity") == 2
