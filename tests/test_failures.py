"""Failing jobs, malformed events and ingest replays."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import drop_event, finished, log_events, names, read_state, status_json, wait_for

from chronosq.fileops import CRASH_ENV


def test_always_failing_job_ends_in_error(root, procs):
    procs.supervisor()
    procs.worker("w1", "t", handler="fixtures:always_fail")
    drop_event(root, "f.json", {"type": "t", "payload": {}, "job_id": "doomed"})

    wait_for(lambda: finished(root, "error", 1), 30, "doomed in error/")

    state = read_state(root, "doomed")
    assert state["state"] == "failed"
    assert state["attempts"] == 3
    assert [e["attempt"] for e in state["errors"]] == [1, 2, 3]
    assert all("RuntimeError: boom on attempt" in e["error"] for e in state["errors"])
    final = json.loads((root / "error" / "doomed.json").read_text())
    assert final["error"].startswith("RuntimeError: boom on attempt 3")
    assert names(root / "jobs") == []


MALFORMED = {
    "bad_json.json": b'{"type": "t", "payload": ',
    "empty.json": b"",
    "not_object.json": b'["t"]',
    "no_type.json": b'{"payload": {}}',
    "bad_type.json": b'{"type": "../etc", "payload": {}}',
    "number_type.json": b'{"type": 7, "payload": {}}',
    "escaping_id.json": b'{"type": "t", "payload": {}, "job_id": "../../outside"}',
    "hidden_id.json": b'{"type": "t", "payload": {}, "job_id": ".hidden"}',
    "list_payload.json": b'{"type": "t", "payload": [1, 2]}',
    "bad_priority.json": b'{"type": "t", "payload": {}, "priority": "urgent"}',
    "unknown_field.json": b'{"type": "t", "payload": {}, "colour": "red"}',
    "not_utf8.json": b'{"type": "t", "payload": {"x": "\xff"}}',
    "wrong.txt": b'{"type": "t", "payload": {}}',
    "huge_int.json": b'{"type": "t", "payload": {"n": ' + b"9" * 5000 + b"}}",
}


def test_malformed_events_set_aside(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    for name, data in MALFORMED.items():
        drop_event(root, name, data)
    (root / "input" / "folder.json").mkdir()
    (root / "input" / "notes.txt").write_bytes(b"{}")
    for i in range(20):
        drop_event(root, f"good{i}.json", {"type": "t", "payload": {"i": i}})
    partial = root / "input" / "still_writing.json.tmp"
    partial.write_bytes(b'{"type": "t", "pay')
    hidden = root / "input" / ".also_writing.json"
    hidden.write_bytes(b"{")

    wait_for(lambda: len(names(root / "output")) == 20, 30, "20 good jobs in output/")
    expected = len(MALFORMED) + 2
    wait_for(lambda: len(names(root / "error", ".rejected")) == expected, 30,
             "every malformed event in error/")

    assert len(names(root / "error", ".reason")) == expected
    for name in [*MALFORMED, "folder.json", "notes.txt"]:
        reason = json.loads((root / "error" / f"{name}.rejected.reason").read_text())
        assert reason["event"] == name
        assert reason["reason"]
    assert (root / "error" / "bad_json.json.rejected").read_bytes() == MALFORMED["bad_json.json"]
    assert sorted(os.listdir(root / "input")) == [".also_writing.json", "still_writing.json.tmp"]
    assert partial.read_bytes() == b'{"type": "t", "pay'
    rejected = [e for e in log_events(root) if e["event"] == "event.rejected"]
    assert len(rejected) == expected
    assert status_json(root)["rejected_events"] == expected


def test_tmp_file_read_after_rename(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    tmp = root / "input" / "late.json.tmp"
    tmp.write_text('{"type": "t", "payload": {}, "job_id": "late"}')
    drop_event(root, "first.json", {"type": "t", "payload": {}, "job_id": "first"})
    wait_for(lambda: (root / "output" / "first.json").exists(), 30, "first in output/")
    assert tmp.exists()

    os.rename(tmp, root / "input" / "late.json")

    wait_for(lambda: (root / "output" / "late.json").exists(), 30, "late in output/")


def test_ingest_replay_yields_one_job(root, procs, tmp_path):
    # Ingest is killed after writing the job and its state record, just before
    # it removes the event; the restarted ingest reads the same event again.
    marker = tmp_path / "crashed"
    procs.supervisor(env={CRASH_ENV: f"unlink:/input/:{marker}"})
    procs.worker("w1", "t")
    drop_event(root, "once.json", {"type": "t", "payload": {"n": 1}})

    wait_for(lambda: finished(root, "output", 1), 30, "the job in output/")
    wait_for(lambda: names(root / "input") == [], 30, "the event removed")

    assert marker.exists()
    events = log_events(root)
    assert [e["event"] for e in events].count("event.replayed") == 1
    assert [e for e in events if e["event"] == "child.exited" and e["child"] == "ingest"]
    assert len(names(root / "output")) == 1
    assert len(names(root / "state", ".state.json")) == 1
    assert names(root / "jobs") == []


def test_replay_with_conflicting_job_id_rejected(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    drop_event(root, "a.json", {"type": "t", "payload": {"v": 1}, "job_id": "same"})
    wait_for(lambda: (root / "output" / "same.json").exists(), 30, "first job done")

    drop_event(root, "b.json", {"type": "t", "payload": {"v": 2}, "job_id": "same"})

    wait_for(lambda: (root / "error" / "b.json.rejected").exists(), 30, "b rejected")
    reason = json.loads((root / "error" / "b.json.rejected.reason").read_text())
    assert "already belongs to another event" in reason["reason"]
    assert json.loads((root / "output" / "same.json").read_text())["payload"] == {"v": 1}


def test_hostile_events_never_stop_ingest(root, procs, tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text('{"type": "t", "payload": {"stolen": true}}')
    procs.supervisor()
    procs.worker("w1", "t")
    os.symlink(outside, root / "input" / "link.json")
    os.mkfifo(root / "input" / "pipe.json")
    drop_event(root, "a" * 240 + ".json", {"type": "t", "payload": {}})
    drop_event(root, "surrogate.json", b'{"type": "t", "payload": {"s": "\\udcff"}}')
    raw_name = os.fsencode(root / "input") + b"/\xff\xfe.json"
    with open(raw_name, "wb") as handle:
        handle.write(b'{"type": "t", "payload": {"odd": "name"}}')
    for i in range(5):
        drop_event(root, f"zz{i}.json", {"type": "t", "payload": {"i": i}})

    wait_for(lambda: finished(root, "output", 8), 30, "the valid events to finish")
    wait_for(lambda: len(names(root / "error", ".rejected")) == 2, 30, "link and pipe rejected")

    assert os.listdir(root / "input") == []
    assert (root / "error" / "link.json.rejected").is_symlink()
    assert outside.exists()
    reasons = {json.loads((root / "error" / f"{n}.rejected.reason").read_text())["reason"]
               for n in ("link.json", "pipe.json")}
    assert reasons == {"not a regular file"}
    surrogate = [json.loads(p.read_text()) for p in (root / "output").iterdir()
                 if json.loads(p.read_text())["payload"].get("s")]
    assert surrogate[0]["payload"]["s"] == "\udcff"
    assert all(c["restarts"] == 0 for c in status_json(root)["supervisor"]["children"])


def test_api_worker_logs_handler_exit(root, procs):
    procs.supervisor()
    script = ("import sys, chronosq, fixtures; "
              "chronosq.Worker(sys.argv[1], 'api', ['t'], handler=fixtures.exits).run()")
    worker = subprocess.Popen([sys.executable, "-c", script, str(root)], env=procs.env())
    procs.started.append(worker)
    drop_event(root, "x.json", {"type": "t", "payload": {}, "job_id": "quits"})

    wait_for(lambda: finished(root, "error", 1), 30, "the job in error/")

    assert worker.poll() is None
    events = log_events(root)
    assert [e for e in events if e["event"] == "worker.started" and e["worker_id"] == "api"]
    raised = [e for e in events if e["event"] == "job.handler_raised"]
    assert len(raised) == 3
    assert all("SystemExit: 3" in e["traceback"] for e in raised)
    assert read_state(root, "quits")["last_error"] == "handler raised SystemExit(3)"


def test_device_node_event_set_aside(root, procs):
    device = root / "input" / "dev.json"
    try:
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(10, 250))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    procs.supervisor()
    procs.worker("w1", "t")
    drop_event(root, "after.json", {"type": "t", "payload": {}, "job_id": "after"})

    wait_for(lambda: finished(root, "output", 1), 30, "the event after it to finish")
    wait_for(lambda: (root / "error" / "dev.json.rejected.reason").exists(), 30,
             "the device node set aside")

    reason = json.loads((root / "error" / "dev.json.rejected.reason").read_text())
    assert reason["reason"] == "not a regular file"
    assert os.listdir(root / "input") == []
