"""Events in, results out, through a real supervisor and real workers."""

from __future__ import annotations

import json
import sys
from collections import Counter

from conftest import (
    finished,
    all_job_files,
    drop_event,
    names,
    read_state,
    status_json,
    wait_for,
    write_config,
)


def test_500_events_exactly_once(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    procs.worker("w2", "t")
    for i in range(500):
        drop_event(root, f"ev{i:04d}.json", {"type": "t", "payload": {"i": i}})

    wait_for(lambda: finished(root, "output", 500), 120, "500 jobs in output/")

    files = all_job_files(root)
    assert len(files) == 500
    assert all(path.parent == root / "output" for path in files)
    assert names(root / "input") == []
    per_worker: Counter[str] = Counter()
    for name in names(root / "output"):
        state = read_state(root, name[: -len(".json")])
        events = [entry["event"] for entry in state["history"]]
        assert events.count("succeeded") == 1
        assert state["state"] == "succeeded"
        assert state["attempts"] == 1
        assert state["worker_id"] in ("w1", "w2")
        per_worker[state["worker_id"]] += 1
    assert per_worker["w1"] + per_worker["w2"] == 500
    assert 200 <= per_worker["w1"] <= 300
    assert 200 <= per_worker["w2"] <= 300


def test_result_and_history_recorded(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    drop_event(root, "one.json", {"type": "t", "payload": {"x": 1}, "job_id": "job-1"})

    wait_for(lambda: finished(root, "output", 1), 30, "job-1 in output/")

    state = read_state(root, "job-1")
    events = [entry["event"] for entry in state["history"]]
    assert events == ["ingested", "assigned", "claimed", "succeeded"]
    assert state["result_path"] == "output/job-1.json"
    status = status_json(root)
    assert status["jobs"]["succeeded"] == 1
    assert status["types"]["t"]["succeeded"] == 1


def test_priority_order_then_age(root, procs):
    write_config(root, {"worker": {"heartbeat_seconds": 0.5}})
    procs.supervisor()
    for i, priority in enumerate(["low", "normal", "high", "low", "high", "normal"]):
        drop_event(root, f"p{i}.json", {
            "type": "t", "payload": {}, "priority": priority, "job_id": f"p{i}",
            "created_at": f"2026-01-01T00:00:0{i}Z",
        })
    wait_for(lambda: len(names(root / "jobs")) == 6, 30, "six pending jobs")
    wait_for(lambda: all((root / "state" / f"p{i}.state.json").exists() for i in range(6)))

    procs.worker("w1", "t", capacity=1)
    wait_for(lambda: finished(root, "output", 6), 30, "six jobs in output/")

    claimed = sorted(
        (read_state(root, f"p{i}")["history"][2]["at"], f"p{i}") for i in range(6)
    )
    assert [job_id for _, job_id in claimed] == ["p2", "p4", "p1", "p5", "p0", "p3"]


def test_command_worker_success_and_failure(root, procs):
    procs.supervisor()
    script = (
        "import json, sys\n"
        "job = json.load(sys.stdin)\n"
        "if job['payload'].get('bad'):\n"
        "    sys.stderr.write('bad input')\n"
        "    sys.exit(3)\n"
        "print(json.dumps({'ok': job['job_id']}))\n"
    )
    procs.start("worker", "--worker-id", "cmd", "--type", "c", "--",
                sys.executable, "-c", script)
    drop_event(root, "good.json", {"type": "c", "payload": {}, "job_id": "good"})
    drop_event(root, "bad.json", {"type": "c", "payload": {"bad": True}, "job_id": "bad"})

    wait_for(lambda: finished(root, "output", 1), 30, "good in output/")
    wait_for(lambda: finished(root, "error", 1), 30, "bad in error/")

    good = json.loads((root / "output" / "good.json").read_text())
    assert good["result"] == {"ok": "good"}
    bad = read_state(root, "bad")
    assert bad["attempts"] == 3
    assert len(bad["errors"]) == 3
    assert all(e["error"] == "command exited with status 3: bad input" for e in bad["errors"])
