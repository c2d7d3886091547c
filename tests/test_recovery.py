"""Fencing, dead-worker detection, quarantine, injected disk faults and fsck."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from conftest import (
    all_job_files,
    child_pid,
    drop_event,
    finished,
    log_events,
    names,
    read_state,
    status_json,
    wait_for,
    write_config,
)

from chronosq.config import load as load_config
from chronosq.fileops import FAIL_ENV
from chronosq.fsck import Fsck
from chronosq.layout import Root
from chronosq.lifecycle import parse_time


def state_is(root, job_id: str, state: str, worker_id: str | None = None) -> bool:
    try:
        record = read_state(root, job_id)
    except (FileNotFoundError, ValueError):
        return False
    return record["state"] == state and worker_id in (None, record["worker_id"])


def test_stopped_worker_fenced_out(root, procs):
    write_config(root, {"defaults": {"timeout": 2.0}})
    procs.supervisor()
    first = procs.worker("w1", "t", handler="fixtures:pause", capacity=1)
    drop_event(root, "f.json", {"type": "t", "payload": {"seconds": 1.5}, "job_id": "fenced"})
    wait_for(lambda: state_is(root, "fenced", "processing", "w1"), 30, "w1 running it")
    first.send_signal(signal.SIGSTOP)
    procs.worker("w2", "t", handler="fixtures:pause")

    wait_for(lambda: finished(root, "output", 1), 30, "w2 to finish the job")
    first.send_signal(signal.SIGCONT)
    wait_for(lambda: any(e["event"] == "outcome.stale" for e in log_events(root)), 30,
             "w1's late outcome to be set aside")

    state = read_state(root, "fenced")
    events = [e["event"] for e in state["history"]]
    assert events.count("succeeded") == 1
    assert state["worker_id"] == "w2"
    assert "claim timed out" in next(e for e in state["history"]
                                     if e["event"] == "requeued")["reason"]
    output = json.loads((root / "output" / "fenced.json").read_text())
    assert output["worker_id"] == "w2"
    stale = names(root / "error", ".stale")
    assert len(stale) == 1
    assert json.loads((root / "error" / stale[0]).read_text())["worker_id"] == "w1"
    assert len(all_job_files(root)) == 1


def fake_claim(root, worker_id: str, pid: int, pid_started_at: float, job_id: str) -> None:
    """Lay out a worker record and a claimed job as a worker would have left them."""
    record = {"worker_id": worker_id, "types": ["t"], "host": socket.gethostname(),
              "pid": pid, "pid_started_at": pid_started_at, "capacity": 1,
              "started_at": "2026-01-01T00:00:00Z", "heartbeat_at": "2099-01-01T00:00:00Z"}
    (root / "workers" / f"{worker_id}.json").write_text(json.dumps(record))
    queue = root / "broker" / "types" / "t" / worker_id
    queue.mkdir(parents=True)
    job = {"job_id": job_id, "type": "t", "payload": {}, "priority": "normal",
           "created_at": "2026-01-01T00:00:00Z"}
    (queue / f"{job_id}.json.processing").write_text(json.dumps(job))
    state = {"job_id": job_id, "type": "t", "priority": "normal", "state": "processing",
             "attempts": 1, "max_attempts": 3, "worker_id": worker_id, "errors": [],
             "created_at": job["created_at"], "history": []}
    (root / "state" / f"{job_id}.state.json").write_text(json.dumps(state))


def test_reused_pid_detected_and_spared(root, procs):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        started = psutil.Process(bystander.pid).create_time()
        fake_claim(root, "ghost", bystander.pid, started - 1000.0, "reused")
        procs.worker("w2", "t")
        began = time.time()

        procs.supervisor()

        wait_for(lambda: finished(root, "output", 1), 30, "the job to finish on w2")
        requeue = next(e for e in read_state(root, "reused")["history"]
                       if e["event"] == "requeued")
        assert parse_time(requeue["at"]) - began < 3.0
        assert "died" in requeue["reason"]
        assert bystander.poll() is None
        assert psutil.Process(bystander.pid).status() != psutil.STATUS_STOPPED
    finally:
        bystander.kill()
        bystander.wait()


def test_zombie_worker_detected(root, procs):
    procs.supervisor()
    doomed = procs.worker("w1", "t", handler="fixtures:slow_first_attempt", capacity=1)
    drop_event(root, "z.json", {"type": "t", "payload": {}, "job_id": "zombie"})
    wait_for(lambda: state_is(root, "zombie", "processing", "w1"), 30, "w1 running it")
    procs.worker("w2", "t")

    os.kill(doomed.pid, signal.SIGKILL)
    wait_for(lambda: psutil.Process(doomed.pid).status() == psutil.STATUS_ZOMBIE, 10,
             "w1 to become a zombie")
    killed_at = time.time()

    wait_for(lambda: finished(root, "output", 1), 30, "the job to finish on w2")
    requeue = next(e for e in read_state(root, "zombie")["history"] if e["event"] == "requeued")
    assert parse_time(requeue["at"]) - killed_at < 3.0
    assert psutil.Process(doomed.pid).status() == psutil.STATUS_ZOMBIE
    doomed.wait()


def test_poison_job_quarantined(root, procs):
    write_config(root, {"defaults": {"max_crashes": 3, "max_attempts": 5}})
    procs.supervisor()
    workers = [procs.worker(f"w{i}", "t", handler="fixtures:poison", capacity=1)
               for i in range(4)]
    drop_event(root, "p.json", {"type": "t", "payload": {"poison": True}, "job_id": "poison"})
    wait_for(lambda: sum(1 for w in workers if w.poll() is not None) >= 1, 30,
             "the first worker to die")
    for i in range(20):
        drop_event(root, f"ok{i}.json", {"type": "t", "payload": {"i": i}})

    wait_for(lambda: (root / "quarantine" / "poison.json").exists()
             and state_is(root, "poison", "quarantined"), 60, "quarantine")
    wait_for(lambda: finished(root, "output", 20), 60, "the other jobs to finish")

    assert sum(1 for w in workers if w.poll() is not None) == 3
    state = read_state(root, "poison")
    assert state["state"] == "quarantined"
    assert state["crashes"] == 3
    evidence = json.loads((root / "quarantine" / "poison.evidence.json").read_text())
    assert evidence["crashes"] == 3
    assert len(evidence["claims"]) == 3
    assert {c["worker_id"] for c in evidence["claims"]} <= {f"w{i}" for i in range(4)}
    assert evidence["worker_pid"] in {w.pid for w in workers}
    assert evidence["detected_at"]
    assert status_json(root)["jobs"]["quarantined"] == 1


def test_poison_counted_when_worker_restarts_first(root, procs):
    # Recovery looks only every 30 s, so each restarted worker finds the claim.
    write_config(root, {"recovery": {"interval_seconds": 30.0},
                        "defaults": {"max_crashes": 2, "max_attempts": 5}})
    procs.supervisor()
    drop_event(root, "p.json", {"type": "t", "payload": {"poison": True}, "job_id": "poison"})
    for _ in range(2):
        dying = procs.worker("w1", "t", handler="fixtures:poison", capacity=1)
        assert dying.wait(timeout=30) == -9

    restarted = procs.worker("w1", "t", handler="fixtures:poison", capacity=1)

    wait_for(lambda: (root / "quarantine" / "poison.json").exists()
             and state_is(root, "poison", "quarantined"), 30, "quarantine")
    assert restarted.poll() is None
    assert read_state(root, "poison")["crashes"] == 2
    evidence = json.loads((root / "quarantine" / "poison.evidence.json").read_text())
    assert evidence["worker_pid"] == dying.pid


def test_retry_waits_with_backoff(root, procs):
    write_config(root, {"defaults": {"retry_backoff_seconds": 1.0,
                                     "retry_backoff_max_seconds": 1.0}})
    procs.supervisor()
    procs.worker("w1", "t", handler="fixtures:always_fail")
    drop_event(root, "r.json", {"type": "t", "payload": {}, "job_id": "later"})

    wait_for(lambda: status_json(root)["retry_waiting"] == 1, 30, "the job waiting to retry")
    wait_for(lambda: finished(root, "error", 1), 30, "the job in error/")

    history = read_state(root, "later")["history"]
    retries = [e for e in history if e["event"] == "retry"]
    claims = [e for e in history if e["event"] == "claimed"]
    assert len(retries) == 2
    for retry, next_claim in zip(retries, claims[1:]):
        assert 0.5 <= retry["retry_in_seconds"] <= 1.0
        assert parse_time(next_claim["at"]) >= parse_time(retry["retry_at"])


@pytest.mark.parametrize(
    ("code", "op", "part"),
    [
        ("ENOSPC", "write", "/jobs/"),
        ("ENOSPC", "rename", "/broker/"),
        ("ENOSPC", "write", "/state/"),
        ("EIO", "fsync", "/"),
        ("EIO", "fsync_dir", "/output"),
        ("ENOSPC", "write", "/broker/"),
        ("ENOSPC", "link", "/state/"),
        ("EIO", "unlink", "/input/"),
        ("EIO", "listdir", "/jobs"),
        ("EIO", "read", "/broker/"),
        ("EIO", "touch", "/broker/"),
    ],
)
def test_injected_disk_faults_drain_after(root, procs, tmp_path, code, op, part):
    flag = tmp_path / "failing"
    env = {FAIL_ENV: f"{code}:{op}:{part}:{flag}"}
    procs.supervisor(env=env)
    worker = procs.start("worker", "--worker-id", "w1", "--type", "t",
                         "--handler", "fixtures:pause", env=env)
    wait_for(lambda: (root / "workers" / "w1.json").exists(), 20, "w1 to register")
    flag.touch()
    # A claim is refreshed only while its job runs, so those jobs run longer.
    seconds = 0.7 if op == "touch" else 0.01
    for i in range(10):
        drop_event(root, f"d{i}.json", {"type": "t", "payload": {"i": i, "seconds": seconds}})
    logged = ("process.io_error", "worker.io_error", "worker.heartbeat_failed")
    wait_for(lambda: any(e["event"] in logged for e in log_events(root)), 30,
             "an I/O error to be logged")

    flag.unlink()

    wait_for(lambda: finished(root, "output", 10), 60, "the backlog to drain")
    assert len(all_job_files(root)) == 10
    for path in all_job_files(root):
        json.loads(path.read_text())
    for state in (root / "state").iterdir():
        if not state.name.startswith("."):
            json.loads(state.read_text())
    children = status_json(root)["supervisor"]["children"]
    assert all(child["restarts"] == 0 for child in children)
    assert [w["worker_id"] for w in status_json(root)["workers"]] == ["w1"]
    assert worker.poll() is None


GARBAGE = {
    "jobs/zero.json": b"",
    "jobs/nul.json": b"\0" * 64,
    "jobs/truncated.json": b'{"job_id": "truncated", "type": "t", "pay',
    "output/bad.json": b"\0\0\0",
    "state/missing.state.json": b"{",
    "workers/broken.json": b"\0" * 10,
    "run/supervisor.json": b'{"pid": 999999, "pid_started_at": 1.0}',
    "jobs/.left.json.1.abcd.tmp": b"{",
    "state/.x.state.json.2.ab.tmp": b"",
}


def lay_garbage(root) -> None:
    for relative, data in GARBAGE.items():
        path = root / relative
        path.write_bytes(data)
        os.utime(path, (time.time() - 3600, time.time() - 3600))


def test_startup_survives_garbage(root, procs):
    write_config(root, {"scheduler": {"worker_stale_seconds": 1.0}})
    lay_garbage(root)

    procs.supervisor()
    procs.worker("w1", "t")
    for i in range(5):
        drop_event(root, f"g{i}.json", {"type": "t", "payload": {}})

    wait_for(lambda: len([n for n in names(root / "output") if n != "bad.json"]) == 5,
             30, "the good jobs to finish")
    wait_for(lambda: not (root / "jobs" / "zero.json").exists()
             and not (root / "workers" / "broken.json").exists(), 30, "garbage set aside")
    assert os.listdir(root / "jobs") == []
    assert not (root / "state" / ".x.state.json.2.ab.tmp").exists()
    corrupt = names(root / "quarantine", ".corrupt")
    assert len(corrupt) == 4
    assert any(e["event"] == "fsck.problem" for e in log_events(root))
    for role in ("ingest", "scheduler", "recovery"):
        assert child_pid(root, role) is not None
    assert all(c["restarts"] == 0 for c in status_json(root)["supervisor"]["children"])


def test_fsck_repairs_garbage(root):
    lay_garbage(root)
    run = [sys.executable, "-m", "chronosq", "fsck", "--json", "--root", str(root)]

    checked = subprocess.run(run, capture_output=True, text=True, timeout=60)
    repaired = subprocess.run([*run, "--repair"], capture_output=True, text=True, timeout=60)
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)

    assert checked.returncode == 1
    found = {(p["check"], p["path"]) for p in json.loads(checked.stdout)}
    assert ("unreadable_job_file", "jobs/zero.json") in found
    assert ("unreadable_job_file", "jobs/nul.json") in found
    assert ("unreadable_job_file", "jobs/truncated.json") in found
    assert ("unreadable_job_file", "output/bad.json") in found
    assert ("stale_temp_file", "jobs/.left.json.1.abcd.tmp") in found
    assert ("unreadable_worker_record", "workers/broken.json") in found
    assert ("stale_supervisor_record", "run/supervisor.json") in found
    assert ("unreadable_state", "state/missing.state.json") in found
    assert all(p["repaired"] is False for p in json.loads(checked.stdout))
    assert repaired.returncode == 1
    left = [p for p in json.loads(repaired.stdout) if not p["repaired"]]
    assert [p["check"] for p in left] == ["unreadable_state"]
    assert [p["check"] for p in json.loads(again.stdout)] == ["unreadable_state"]
    assert not (root / "jobs" / "zero.json").exists()
    assert len(names(root / "quarantine", ".corrupt")) == 4


def test_fsck_repairs_state_mismatch(root):
    job = {"job_id": "moved", "type": "t", "payload": {}, "priority": "normal",
           "created_at": "2026-01-01T00:00:00Z"}
    (root / "output" / "moved.json").write_text(json.dumps(job))
    state = {"job_id": "moved", "type": "t", "state": "processing", "attempts": 1,
             "max_attempts": 3, "history": []}
    (root / "state" / "moved.state.json").write_text(json.dumps(state))
    (root / "jobs" / "lost.json").write_text(json.dumps(dict(job, job_id="lost")))
    config = load_config(Root(root))

    # A mismatch or a missing record younger than the state lag may be a
    # transition in progress, such as a job being ingested.
    early = Fsck(Root(root), config, repair=False).run()
    problems = Fsck(Root(root), config, repair=True, now=time.time() + 60).run()

    assert early == []
    assert {p.path for p in problems} == {"state/moved.state.json", "state/lost.state.json"}
    assert all(p.repaired for p in problems)
    assert read_state(root, "moved")["state"] == "succeeded"
    assert read_state(root, "moved")["history"][-1]["by"] == "fsck"
    assert read_state(root, "lost")["state"] == "pending"


def test_late_outcome_fenced_on_same_worker(root, procs):
    # The only worker stalls past the claim timeout, gets the requeued job back,
    # then wakes and finishes the old attempt: that outcome must not count.
    write_config(root, {"defaults": {"timeout": 2.0}})
    procs.supervisor()
    only = procs.worker("w1", "t", handler="fixtures:pause", capacity=2)
    drop_event(root, "g.json", {"type": "t", "payload": {"seconds": 1.0}, "job_id": "gil"})
    wait_for(lambda: state_is(root, "gil", "processing", "w1"), 30, "w1 running it")
    only.send_signal(signal.SIGSTOP)
    wait_for(lambda: state_is(root, "gil", "assigned", "w1"), 30,
             "the job requeued and assigned to w1 again")

    only.send_signal(signal.SIGCONT)

    wait_for(lambda: finished(root, "output", 1), 30, "the job to finish")
    wait_for(lambda: names(root / "error", ".stale") != [], 30, "the late outcome set aside")
    assert len(all_job_files(root)) == 1
    state = read_state(root, "gil")
    assert [e["event"] for e in state["history"]].count("succeeded") == 1
    assert state["attempts"] == 2


def test_fsck_keeps_job_copied_into_output(root):
    job = {"job_id": "twin", "type": "t", "payload": {}, "priority": "normal",
           "created_at": "2026-01-01T00:00:00Z"}
    (root / "jobs" / "twin.json").write_text(json.dumps(job))
    (root / "output" / "twin.json").write_text(json.dumps(job))
    state = {"job_id": "twin", "type": "t", "state": "pending", "attempts": 0,
             "max_attempts": 3, "history": []}
    (root / "state" / "twin.state.json").write_text(json.dumps(state))

    problems = Fsck(Root(root), load_config(Root(root)), repair=True,
                    now=time.time() + 60).run()

    # The state record says pending, so the copy in jobs/ is the real job and
    # the identical stray in output/ goes.
    assert [p.check for p in problems] == ["job_in_two_places"]
    assert problems[0].path == "output/twin.json"
    assert problems[0].repaired is True
    assert (root / "jobs" / "twin.json").exists()
    assert not (root / "output" / "twin.json").exists()
    assert read_state(root, "twin")["state"] == "pending"


def test_fsck_on_live_root_changes_nothing(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    procs.worker("w2", "t")
    for i in range(1500):
        drop_event(root, f"f{i:04d}.json", {"type": "t", "payload": {}, "job_id": f"f{i:04d}"})
    config = load_config(Root(root))

    found = []
    while len(names(root / "output")) < 1500:
        found += Fsck(Root(root), config, repair=True).run()

    serious = [p for p in found if p.check not in ("stale_temp_file", "dead_worker")]
    assert serious == []
    assert all(read_state(root, f"f{i:04d}")["history"][0]["by"] == "ingest"
               for i in range(1500))


def test_reaping_waits_for_assignment_record(tmp_path):
    from harness import Harness

    from chronosq import fileops

    harness = Harness(tmp_path / "root")
    harness.worker("w1")
    harness.drop("job")
    harness.ingest()
    exited = subprocess.Popen(["true"])
    exited.wait()

    def worker_dies_mid_assignment(op: str, path: str) -> None:
        # The scheduler has moved the job into w1's queue and is about to write
        # "assigned"; w1 dies and recovery reaps its queue at this moment.
        if op == "write" and "/state/" in path:
            fileops.fault_hook = None
            record_path = harness.root.worker_path("w1")
            record = json.loads(record_path.read_text())
            record_path.write_text(json.dumps(dict(record, pid=exited.pid)))
            harness.recover()

    fileops.fault_hook = worker_dies_mid_assignment
    try:
        harness.assign()
    finally:
        fileops.fault_hook = None

    state = read_state(harness.path, "job")
    queued = (harness.root.queue_dir("t", "w1") / "job.json").exists()
    assert (state["state"], queued) in {("assigned", True), ("pending", False)}
    harness.drive()
    assert (harness.root.output / "job.json").exists()
    assert read_state(harness.path, "job")["state"] == "succeeded"


def test_last_copy_outcome_collected(tmp_path):
    from harness import Harness

    harness = Harness(tmp_path / "root")
    worker = harness.worker("w1")
    harness.drop("job")
    harness.ingest()
    harness.assign()
    worker.process_first_ready(worker.assigned_jobs())
    # The claim's record was lost, so the record still shows the assignment.
    path = harness.root.state_path("job")
    record = json.loads(path.read_text())
    record.update(state="assigned", attempts=0, history=record["history"][:2])
    path.write_text(json.dumps(record))

    harness.recover()

    assert (harness.root.output / "job.json").exists()
    assert read_state(harness.path, "job")["state"] == "succeeded"
    assert names(harness.root.error, ".stale") == []


def test_worker_waits_on_stale_assignment(tmp_path):
    from harness import Harness

    harness = Harness(tmp_path / "root")
    worker = harness.worker("w1")
    harness.drop("job")
    harness.ingest()
    harness.assign()
    queued = harness.root.queue_dir("t", "w1") / "job.json"
    # The job left the queue and came back with no record of either move, as
    # when a requeue's record was lost: the record describes the first visit.
    time.sleep(0.05)
    os.rename(queued, harness.root.jobs / "job.json")
    os.rename(harness.root.jobs / "job.json", queued)

    assert worker.process_first_ready(worker.assigned_jobs()) is False
    assert read_state(harness.path, "job")["state"] == "assigned"
