"""Crash-point sweep: kill a process before each file operation of each transition.

Each scenario lays out a root just before one transition, then for k = 1, 2, ...
forks a child that performs the transition and SIGKILLs itself just before its
k-th file operation (write, fsync, rename, link, unlink, listdir, ...). The
parent then restarts the pipeline in-process with the real ingest, scheduler,
recovery and worker code, drives the job to a final place, and checks the
invariants with fsck. The sweep ends when the child completes without reaching
k, so every point before and after every operation is covered.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harness import Harness, failing_handler, ok_handler

from chronosq import fileops, lifecycle
from chronosq.control import Control
from chronosq.fsck import Fsck
from chronosq.ingest import Ingest
from chronosq.layout import Root
from chronosq.scheduler import Scheduler
from chronosq.worker import Worker

# Operations each transition makes. A change here means a transition gained or
# lost a file operation: check that the sweep covers it, then update the count.
EXPECTED_OPERATIONS = {
    "submit": 6,
    "ingest": 15,
    "assign": 21,
    "claim_and_succeed": 13,
    "claim_and_fail": 13,
    "heartbeat": 4,
    "collect_success": 32,
    "retry": 38,
    "fail_for_good": 39,
    "requeue_dead_worker": 32,
    "quarantine": 37,
    "hold": 10,
    "release": 10,
}


def job_places(root: Root, job_id: str) -> list[str]:
    found = []
    for place in ("jobs", "hold", "output", "error", "quarantine"):
        if (root.path / place / f"{job_id}.json").exists():
            found.append(place)
    for queue in root.broker.glob("*/*"):
        for suffix in (".json", ".json.processing", ".json.success", ".json.failure"):
            if (queue / f"{job_id}{suffix}").exists():
                found.append(f"queue{suffix}")
    return found


def check_invariants(harness: Harness, acknowledged: bool) -> None:
    places = job_places(harness.root, "job")
    if not acknowledged and not places:
        return
    assert len(places) == 1, places
    assert places[0] in ("output", "error", "quarantine", "hold"), places
    problems = Fsck(harness.root, harness.config, repair=False, now=time.time() + 120).run()
    serious = [p for p in problems if p.check not in ("stale_temp_file", "dead_worker")]
    assert serious == [], serious
    state = json.loads(harness.root.state_path("job").read_text())
    expected = {"output": "succeeded", "error": "failed", "quarantine": "quarantined",
                "hold": "held"}
    assert state["state"] == expected[places[0]]
    assert state["attempts"] <= harness.config.for_type("t").max_attempts


@dataclass
class Scenario:
    """Lay out the root before a transition, perform it, and finish the job after."""

    prepare: Callable[[Harness], None]
    act: Callable[[Harness], None]
    handler: Callable[..., Any] = ok_handler
    # Runs in the child before operations are counted.
    child_setup: Callable[[Harness], None] = lambda h: None
    # False when a crash before the acknowledgement may lose the job (submit).
    acknowledged_before: bool = True


def to_pending(h: Harness) -> None:
    h.drop()
    h.ingest()


def to_assigned(h: Harness) -> None:
    to_pending(h)
    h.worker("doomed")
    h.assign()


def dead_worker_holding(h: Harness, suffix: str, **state: Any) -> None:
    """Leave the job in the queue of a worker whose process is gone."""
    to_assigned(h)
    queue = h.root.queue_dir("t", "doomed")
    record = json.loads(h.root.worker_path("doomed").read_text())
    record["pid_started_at"] -= 1000.0  # the pid now belongs to another process
    h.root.worker_path("doomed").write_text(json.dumps(record))
    job = json.loads((queue / "job.json").read_text())
    path = h.root.state_path("job")
    current = json.loads(path.read_text())
    current.update({"state": "processing", "attempts": 1}, **state)
    path.write_text(json.dumps(current))
    if suffix != ".json.processing":
        job.update(attempt=current["attempts"], worker_id="doomed",
                   finished_at=lifecycle.utc_now())
        if suffix == ".json.success":
            job["result"] = {"ok": True}
        else:
            job["error"] = "RuntimeError: handler failed"
    (queue / "job.json").unlink()
    (queue / f"job{suffix}").write_text(json.dumps(job))


def become_doomed(h: Harness) -> None:
    """Register the child as the worker "doomed", so its death is a worker's death."""
    h.root.worker_path("doomed").unlink()
    h.worker("doomed")


def claim_in_child(h: Harness, handler: Callable[..., Any]) -> None:
    worker = Worker(h.root, "doomed", ["t"], handler=handler, config=h.config)
    worker.process_first_ready(worker.assigned_jobs())


def submit(h: Harness) -> None:
    from chronosq.cli.basic import submit as submit_command
    submit_command("t", payload='{"n": 1}', priority="normal", job_id="job", root=h.path)


def operator(h: Harness) -> Control:
    return Control(h.root, h.config, reason="sweep")


def to_held(h: Harness) -> None:
    to_pending(h)
    operator(h).hold("job")


SCENARIOS: dict[str, Scenario] = {
    "hold": Scenario(to_pending, lambda h: operator(h).hold("job")),
    "release": Scenario(to_held, lambda h: operator(h).release("job")),
    "submit": Scenario(lambda h: None, submit, acknowledged_before=False),
    "ingest": Scenario(lambda h: h.drop(), lambda h: h.service(Ingest).ingest_one("job.json")),
    "assign": Scenario(lambda h: (to_pending(h), h.worker("doomed")),
                       lambda h: h.service(Scheduler).step()),
    "claim_and_succeed": Scenario(to_assigned, lambda h: claim_in_child(h, ok_handler),
                                  child_setup=become_doomed),
    "claim_and_fail": Scenario(to_assigned, lambda h: claim_in_child(h, failing_handler),
                               handler=failing_handler, child_setup=become_doomed),
    "heartbeat": Scenario(to_assigned,
                          lambda h: Worker(h.root, "doomed", ["t"], handler=ok_handler,
                                           config=h.config).write_record(),
                          child_setup=become_doomed),
    "collect_success": Scenario(lambda h: dead_worker_holding(h, ".json.success"),
                                lambda h: h.recover()),
    "retry": Scenario(lambda h: dead_worker_holding(h, ".json.failure"), lambda h: h.recover()),
    "fail_for_good": Scenario(lambda h: dead_worker_holding(h, ".json.failure", attempts=3),
                              lambda h: h.recover(), handler=failing_handler),
    "requeue_dead_worker": Scenario(lambda h: dead_worker_holding(h, ".json.processing"),
                                    lambda h: h.recover()),
    "quarantine": Scenario(lambda h: dead_worker_holding(h, ".json.processing", crashes=2),
                           lambda h: h.recover()),
}


def run_child(harness: Harness, scenario: Scenario, crash_at: int) -> tuple[bool, int]:
    """Fork a child that performs the transition and dies before operation `crash_at`.

    Returns (the child was killed, the number of operations it made).
    """
    counter_read, counter_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(counter_read)
        count = 0

        def crash(op: str, path: str) -> None:
            nonlocal count
            count += 1
            os.write(counter_write, b".")
            if count == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)

        try:
            scenario.child_setup(harness)
            fileops.fault_hook = crash
            scenario.act(harness)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(counter_write)
    made = 0
    while chunk := os.read(counter_read, 4096):
        made += len(chunk)
    os.close(counter_read)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed or os.WEXITSTATUS(status) == 0, "the transition raised; see stderr"
    return killed, made - (1 if killed else 0)


@pytest.fixture(autouse=True)
def no_state_lag(monkeypatch):
    # The sweep restarts one process at a time, so nothing is in flight and a
    # lagging state record can be repaired at once instead of after 5 seconds.
    monkeypatch.setattr(lifecycle, "STATE_LAG_SECONDS", 0.0)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_crash_points(name, tmp_path):
    scenario = SCENARIOS[name]
    covered = 0
    operations = None
    crash_at = 1
    while True:
        harness = Harness(tmp_path / f"k{crash_at}")
        scenario.prepare(harness)
        killed, made = run_child(harness, scenario, crash_at)
        acknowledged = scenario.acknowledged_before or not killed
        harness.drive(scenario.handler)
        check_invariants(harness, acknowledged)
        covered += 1
        if not killed:
            operations = made
            break
        crash_at += 1
    print(f"{name}: {covered} crash points over {operations} file operations")
    assert operations == EXPECTED_OPERATIONS[name], (
        f"{name} now makes {operations} file operations; check the sweep covers the new "
        "ones, then update EXPECTED_OPERATIONS"
    )
    assert covered == operations + 1


def test_sweep_covers_every_transition():
    assert set(SCENARIOS) == set(EXPECTED_OPERATIONS)
    print(f"crash points in the sweep: {sum(n + 1 for n in EXPECTED_OPERATIONS.values())}")
