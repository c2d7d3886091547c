"""SIGKILL of each process during a run: nothing is lost and nothing runs twice."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
from conftest import (
    finished,
    all_job_files,
    child_pid,
    drop_event,
    log_events,
    names,
    read_state,
    status_json,
    wait_for,
    write_config,
)


def kill_and_wait_restart(root, role: str) -> None:
    old = child_pid(root, role)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: child_pid(root, role) not in (None, old), 20, f"{role} restarted")


def test_children_killed_mid_run(root, procs):
    procs.supervisor()
    procs.worker("w1", "t", handler="fixtures:pause")
    procs.worker("w2", "t", handler="fixtures:pause")
    total = 300
    for i in range(total):
        drop_event(root, f"ev{i:04d}.json", {"type": "t", "payload": {"seconds": 0.005}})
        if i == 60:
            kill_and_wait_restart(root, "ingest")
        elif i == 140:
            kill_and_wait_restart(root, "scheduler")
        elif i == 220:
            kill_and_wait_restart(root, "recovery")

    wait_for(lambda: finished(root, "output", total), 120, f"{total} jobs in output/")

    files = all_job_files(root)
    assert len(files) == total
    assert len({path.name for path in files}) == total
    for name in names(root / "output"):
        history = read_state(root, name[: -len(".json")])["history"]
        assert [entry["event"] for entry in history].count("succeeded") == 1
    children = {c["role"]: c for c in status_json(root)["supervisor"]["children"]}
    for role in ("ingest", "scheduler", "recovery"):
        assert children[role]["restarts"] == 1
        assert children[role]["last_exit"] == "signal SIGKILL"
        assert children[role]["alive"]
    exits = [e for e in log_events(root) if e["event"] == "child.exited"]
    assert sorted(e["child"] for e in exits) == ["ingest", "recovery", "scheduler"]
    assert all(e["exit"] == "signal SIGKILL" for e in exits)


def test_worker_killed_mid_job_requeued(root, procs):
    procs.supervisor()
    doomed = procs.worker("w1", "t", handler="fixtures:slow_first_attempt", capacity=1)
    drop_event(root, "slow.json", {"type": "t", "payload": {}, "job_id": "slow"})
    wait_for(lambda: read_state(root, "slow")["state"] == "processing"
             if (root / "state" / "slow.state.json").exists() else False,
             30, "slow to be processing on w1")
    procs.worker("w2", "t", handler="fixtures:slow_first_attempt")

    killed_at = time.time()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)

    wait_for(lambda: finished(root, "output", 1), 30, "slow in output/")
    state = read_state(root, "slow")
    assert state["attempts"] == 2
    assert state["worker_id"] == "w2"
    requeue = next(e for e in state["history"] if e["event"] == "requeued")
    assert "died" in requeue["reason"]
    assert requeue["worker_id"] == "w1"
    from chronosq.lifecycle import parse_time
    assert parse_time(requeue["at"]) - killed_at < 5.0
    assert len(state["errors"]) == 1
    assert not (root / "workers" / "w1.json").exists()


def test_queued_jobs_of_dead_worker_return(root, procs):
    procs.supervisor()
    doomed = procs.worker("w1", "t", handler="fixtures:slow_first_attempt", capacity=3)
    for i in range(3):
        drop_event(root, f"q{i}.json", {"type": "t", "payload": {}, "job_id": f"q{i}"})
    queue = root / "broker" / "types" / "t" / "w1"
    # The claim's state record, written just after its rename, counts the attempt.
    wait_for(lambda: len(names(queue)) == 2 and len(names(queue, ".processing")) == 1
             and sum(read_state(root, f"q{i}")["state"] == "processing" for i in range(3)) == 1,
             30, "one running and two queued on w1")

    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    procs.worker("w2", "t")

    wait_for(lambda: finished(root, "output", 3), 30, "three jobs in output/")
    attempts = sorted(read_state(root, f"q{i}")["attempts"] for i in range(3))
    assert attempts == [1, 1, 2]


def test_worker_sigterm_hands_back_queue(root, procs):
    procs.supervisor()
    leaving = procs.worker("w1", "t", handler="fixtures:pause", capacity=4)
    for i in range(4):
        drop_event(root, f"s{i}.json", {"type": "t", "payload": {"seconds": 1.0},
                                        "job_id": f"s{i}"})
    queue = root / "broker" / "types" / "t" / "w1"
    wait_for(lambda: len(names(queue, ".processing")) == 1 and len(names(queue)) >= 1,
             30, "w1 busy with a queue")

    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=20) == 0
    assert not (root / "workers" / "w1.json").exists()
    assert names(queue) == []
    procs.worker("w2", "t", handler="fixtures:pause")

    wait_for(lambda: finished(root, "output", 4), 30, "four jobs in output/")
    assert sorted(read_state(root, f"s{i}")["attempts"] for i in range(4)) == [1, 1, 1, 1]
    assert not psutil.pid_exists(leaving.pid)


def test_stopped_command_handed_back(root, procs):
    write_config(root, {"worker": {"stop_grace_seconds": 1.0}})
    procs.supervisor()
    script = "sleep 60 & sleep 60; wait"
    leaving = procs.start("worker", "--worker-id", "w1", "--type", "t", "--", "sh", "-c", script)
    drop_event(root, "c.json", {"type": "t", "payload": {}, "job_id": "long"})
    wait_for(lambda: (root / "state" / "long.state.json").exists()
             and read_state(root, "long")["state"] == "processing", 30, "the command running")
    # The state record says "processing" just before the command starts.
    wait_for(lambda: any(p.name() == "sh" for p in psutil.Process(leaving.pid).children()),
             10, "the shell to start")
    shell = next(p for p in psutil.Process(leaving.pid).children() if p.name() == "sh")
    group = [shell, *shell.children(recursive=True)]

    started = time.monotonic()
    leaving.send_signal(signal.SIGTERM)

    assert leaving.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    _, alive = psutil.wait_procs(group, timeout=5)
    assert alive == []
    state = read_state(root, "long")
    assert state["state"] == "pending"
    assert state["attempts"] == 0
    assert "did not finish within 1s" in state["history"][-1]["reason"]
    assert names(root / "jobs") == ["long.json"]


def test_ctrl_c_does_not_reach_command(root, procs):
    procs.supervisor()
    worker = procs.start("worker", "--worker-id", "w1", "--type", "t", "--",
                         "sh", "-c", "sleep 1; echo '{\"done\": true}'", new_session=True)
    drop_event(root, "c.json", {"type": "t", "payload": {}, "job_id": "calm"})
    wait_for(lambda: (root / "state" / "calm.state.json").exists()
             and read_state(root, "calm")["state"] == "processing", 30, "the command running")

    # A terminal's Ctrl-C goes to the foreground process group: the worker's.
    os.killpg(worker.pid, signal.SIGINT)

    assert worker.wait(timeout=20) == 0
    wait_for(lambda: finished(root, "output", 1), 30, "the job to finish")
    assert read_state(root, "calm")["attempts"] == 1
    assert json.loads((root / "output" / "calm.json").read_text())["result"] == {"done": True}
