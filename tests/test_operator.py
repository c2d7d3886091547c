"""Operator commands on single jobs and people working a queue, on live roots."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import (
    cli,
    drop_event,
    finished,
    log_events,
    names,
    read_state,
    wait_for,
    write_config,
)
from typer.testing import CliRunner

from chronosq.cli import app
from chronosq.config import load as load_config
from chronosq.control import Control
from chronosq.errors import ChronosQError
from chronosq.layout import Root

runner = CliRunner()


def invoke(root, *args: str):
    return runner.invoke(app, [*args, "--root", str(root)])


def state_of(root, job_id: str) -> str | None:
    try:
        return read_state(root, job_id)["state"]
    except (FileNotFoundError, ValueError):
        return None


def test_hold_release_retry_cancel_by_state(root, procs):
    procs.supervisor()
    for job_id in ("a", "b", "c"):
        drop_event(root, f"{job_id}.json", {"type": "t", "payload": {}, "job_id": job_id})
    wait_for(lambda: all(state_of(root, j) == "pending" for j in "abc"), 30, "pending jobs")

    held = invoke(root, "jobs", "hold", "a", "--reason", "customer asked")
    assert held.exit_code == 0, held.output
    assert (root / "hold" / "a.json").exists()
    again = invoke(root, "jobs", "hold", "a")
    assert again.exit_code == 1
    assert "cannot hold job 'a': it is held" in again.output
    assert invoke(root, "jobs", "release", "b").exit_code == 1
    assert "release applies to held jobs" in invoke(root, "jobs", "release", "b").output
    assert invoke(root, "jobs", "retry", "b").exit_code == 1
    assert invoke(root, "jobs", "cancel", "c", "--reason", "duplicate").exit_code == 0
    assert (root / "canceled" / "c.json").exists()
    assert "cannot cancel job 'c': it is canceled" in invoke(root, "jobs", "cancel", "c").output
    assert "not found" in invoke(root, "jobs", "hold", "nope").output

    entry = read_state(root, "a")["history"][-1]
    assert entry["event"] == "held"
    assert entry["operator"]["user"] == getpass.getuser()
    assert entry["operator"]["host"]
    assert entry["reason"] == "customer asked"

    procs.worker("w1", "t")
    wait_for(lambda: finished(root, "output", 1), 30, "b to finish")
    assert state_of(root, "a") == "held"
    assert invoke(root, "jobs", "release", "a").exit_code == 0
    assert invoke(root, "jobs", "retry", "c").exit_code == 0
    wait_for(lambda: finished(root, "output", 3), 30, "a and c to finish")
    assert "cannot hold job 'a': it is succeeded" in invoke(root, "jobs", "hold", "a").output
    assert [e["event"] for e in read_state(root, "c")["history"]][-5:] == [
        "canceled", "retried", "assigned", "claimed", "succeeded"]


def test_retry_failed_job_resets_attempts(root, procs):
    procs.supervisor()
    procs.worker("w1", "t", handler="fixtures:always_fail")
    drop_event(root, "f.json", {"type": "t", "payload": {}, "job_id": "f"})
    wait_for(lambda: finished(root, "error", 1), 30, "f to fail")

    result = cli(root, "jobs", "retry", "f", "--reason", "dependency fixed")

    assert result.returncode == 0, result.stderr
    wait_for(lambda: finished(root, "error", 1) and read_state(root, "f")["attempts"] == 3
             and any(e["event"] == "retried" for e in read_state(root, "f")["history"]),
             30, "f to fail again after three fresh attempts")
    events = [e["event"] for e in read_state(root, "f")["history"]]
    assert events.count("claimed") == 6


@pytest.mark.parametrize("mode", ["handler", "command"])
def test_cancel_running_job(root, procs, mode):
    procs.supervisor()
    if mode == "handler":
        procs.worker("w1", "t", handler="fixtures:busy_loop")
    else:
        procs.start("worker", "--worker-id", "w1", "--type", "t", "--", "sleep", "60")
    drop_event(root, "r.json", {"type": "t", "payload": {"seconds": 60}, "job_id": "run"})
    wait_for(lambda: state_of(root, "run") == "processing", 30, "the job running")

    result = cli(root, "jobs", "cancel", "run", "--reason", "wrong input", "--grace", "5")

    assert result.returncode == 0, result.stderr
    assert "run: processing" in result.stdout
    wait_for(lambda: state_of(root, "run") == "canceled", 30, "the job canceled")
    assert (root / "canceled" / "run.json").exists()
    wait_for(lambda: not (root / "run" / "cancel" / "run.json").exists(), 10,
             "the cancel request to be removed")
    assert read_state(root, "run")["history"][-1]["reason"] == "wrong input"
    checked = cli(root, "fsck")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_person_takes_holds_and_finishes(root, procs):
    procs.supervisor()
    procs.worker("bot", "auto")
    for i in range(3):
        drop_event(root, f"r{i}.json", {"type": "review", "payload": {"i": i},
                                         "job_id": f"r{i}", "created_at": 1_700_000_000 + i})
    for i in range(5):
        drop_event(root, f"a{i}.json", {"type": "auto", "payload": {"i": i}})
    wait_for(lambda: all(state_of(root, f"r{i}") == "pending" for i in range(3)), 30,
             "reviews pending")

    taken = cli(root, "take", "--worker-id", "alice", "--type", "review")
    assert taken.returncode == 0, taken.stderr
    job = json.loads(taken.stdout)
    assert job["job_id"] == "r0"
    assert job["attempt"] == 1
    assert state_of(root, "r0") == "processing"
    assert cli(root, "hold", "r0", "--reason", "need a second look").returncode == 0
    assert read_state(root, "r0")["attempts"] == 0
    assert cli(root, "jobs", "release", "r0").returncode == 0
    again = json.loads(cli(root, "take", "--worker-id", "alice").stdout)
    assert again["job_id"] == "r0"
    second = json.loads(cli(root, "take", "--worker-id", "bob", "--type", "review").stdout)
    assert second["job_id"] == "r1"
    not_mine = cli(root, "done", "r2")
    assert not_mine.returncode == 1
    assert "cannot finish job 'r2': it is pending" in not_mine.stderr

    assert cli(root, "done", "r0", "--result", '{"approved": true}').returncode == 0
    assert cli(root, "fail", "r1", "--error", "image unreadable").returncode == 0

    wait_for(lambda: finished(root, "output", 6), 30, "r0 and the automatic jobs done")
    output = json.loads((root / "output" / "r0.json").read_text())
    assert output["result"] == {"approved": True}
    assert output["worker_id"] == "alice"
    wait_for(lambda: state_of(root, "r1") == "pending", 30, "r1 back for a retry")
    assert read_state(root, "r1")["last_error"] == "image unreadable"
    status = json.loads(cli(root, "status", "--json").stdout)
    people = {w["worker_id"] for w in status["workers"]}
    assert {"alice", "bob", "bot"} <= people
    assert cli(root, "take", "--worker-id", "bot").returncode == 1


def test_person_claim_expires_and_is_fenced(root, procs):
    write_config(root, {"defaults": {"person_timeout": 2.0}})
    procs.supervisor()
    drop_event(root, "x.json", {"type": "review", "payload": {}, "job_id": "x"})
    wait_for(lambda: state_of(root, "x") == "pending", 30, "x pending")
    assert cli(root, "take", "--worker-id", "carol").returncode == 0

    wait_for(lambda: state_of(root, "x") == "pending", 30, "carol's claim to expire")
    late = cli(root, "done", "x")

    assert late.returncode == 1
    assert "cannot finish job 'x': it is pending" in late.stderr
    requeue = [e for e in read_state(root, "x")["history"] if e["event"] == "requeued"]
    assert "claim timed out" in requeue[0]["reason"]


def test_explain_names_the_cause(root, procs):
    write_config(root, {"types": {"routed": {"policy": "rule_based", "rules": [
        {"match": {"payload.customer_id": "acme"}, "worker": "acme_1"}]}}})
    procs.supervisor()
    procs.worker("w1", "routed")
    drop_event(root, "e.json", {"type": "lonely", "payload": {}, "job_id": "e"})
    drop_event(root, "a.json", {"type": "routed", "payload": {"customer_id": "acme"},
                                "job_id": "a"})
    wait_for(lambda: state_of(root, "e") == "pending", 30, "e pending")
    wait_for(lambda: state_of(root, "a") == "pending", 30, "a pending")

    routed = cli(root, "explain", "a").stdout
    assert "rule 1 of type 'routed' sends it to acme_1" in routed
    assert "acme_1 is not a live worker of this type" in routed

    assert "no worker serves type 'lonely'" in cli(root, "explain", "e").stdout
    cli(root, "jobs", "hold", "e", "--reason", "audit")
    held = cli(root, "explain", "e").stdout
    assert "is held" in held
    assert "(audit)" in held
    assert "chronosq jobs release e" in held


def test_jobs_list_and_show(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    drop_event(root, "s.json", {"type": "t", "payload": {"k": 1}, "job_id": "shown"})
    drop_event(root, "p.json", {"type": "other", "payload": {}, "job_id": "waiting"})
    wait_for(lambda: finished(root, "output", 1), 30, "shown to finish")
    wait_for(lambda: state_of(root, "waiting") == "pending", 30, "waiting pending")

    listed = json.loads(cli(root, "jobs", "list", "--json").stdout)
    pending = json.loads(cli(root, "jobs", "list", "--state", "pending", "--json").stdout)
    by_worker = json.loads(cli(root, "jobs", "list", "--worker", "w1", "--json").stdout)
    shown = cli(root, "jobs", "show", "shown")
    bad = cli(root, "jobs", "list", "--state", "sleeping")

    assert {r["job_id"]: r["state"] for r in listed} == {"shown": "succeeded",
                                                         "waiting": "pending"}
    assert [r["job_id"] for r in pending] == ["waiting"]
    assert [r["job_id"] for r in by_worker] == ["shown"]
    assert shown.returncode == 0
    for word in ("ingested", "assigned", "claimed", "succeeded", '"k": 1'):
        assert word in shown.stdout
    assert bad.returncode == 1
    assert "invalid --state 'sleeping'" in bad.stderr


def test_logs_filter_and_follow(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    drop_event(root, "l.json", {"type": "t", "payload": {}, "job_id": "logged"})
    wait_for(lambda: finished(root, "output", 1), 30, "the job done")

    lines = cli(root, "logs", "--job", "logged").stdout.splitlines()
    assert [json.loads(line)["event"] for line in lines] == [
        "job.ingested", "job.assigned", "job.claimed", "job.finished", "job.succeeded"]
    assert cli(root, "logs", "--since", "1h", "--worker", "w1").stdout.count("w1") >= 3
    assert cli(root, "logs", "--since", "yesterday-ish").returncode == 1
    nothing = cli(root, "logs", "--job", "nosuch")
    assert nothing.stdout == ""
    assert "no log lines match job 'nosuch'" in nothing.stderr

    follower = subprocess.Popen(
        [sys.executable, "-m", "chronosq", "logs", "--follow", "--job", "after", "--root",
         str(root)], stdout=subprocess.PIPE, text=True)
    try:
        log = root / "logs" / "chronosq.log"
        os.rename(log, log.with_name("chronosq.log.1"))
        drop_event(root, "m.json", {"type": "t", "payload": {}, "job_id": "after"})
        wait_for(lambda: finished(root, "output", 2), 30, "the second job done")
        time.sleep(0.5)  # NOTE: gives the follower one poll to print; bounded by wait below
    finally:
        follower.terminate()
        out, _ = follower.communicate(timeout=10)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert "job.succeeded" in events
    assert (root / "logs" / "chronosq.log").exists()
    assert any(e["job_id"] == "after" for e in log_events(root) if "job_id" in e)


def test_status_watch_redraws_until_ctrl_c(root, procs):
    procs.supervisor()
    procs.worker("w1", "t")
    drop_event(root, "w.json", {"type": "t", "payload": {}, "job_id": "seen"})
    wait_for(lambda: finished(root, "output", 1), 30, "the job done")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "chronosq", "status", "--watch", "--interval", "0.2",
         "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, COLUMNS="200"))
    # Piped, each redraw is printed after the last; the supervisor's table ends one.
    first = []
    while not first or "Supervisor" not in first[-1]:
        first.append(watcher.stdout.readline())
        assert first[-1], "the watcher stopped before a whole redraw"

    watcher.send_signal(signal.SIGINT)
    rest, _ = watcher.communicate(timeout=20)

    assert watcher.returncode == 0
    out = "".join(first) + rest
    for title in ("throughput over the last minute", "Jobs", "Pending backlog by age",
                  "Workers", "Supervisor", "stopped watching"):
        assert title in out


def test_worker_counts_follow_jobs_seen_pending(root, procs):
    procs.supervisor()
    for i in range(3):
        drop_event(root, f"p{i}.json", {"type": "t", "payload": {}, "job_id": f"p{i}"})
    wait_for(lambda: len(names(root / "jobs")) == 3, 30, "three pending jobs")
    # This status run caches the three jobs while they are pending and unfinished.
    assert json.loads(cli(root, "status", "--json").stdout)["jobs"]["pending"] == 3
    procs.worker("w1", "t")
    wait_for(lambda: finished(root, "output", 3), 30, "three jobs in output/")

    status = json.loads(cli(root, "status", "--json").stdout)

    assert status["finished_by_worker"]["w1"] == {"done": 3, "failed": 0}
    assert [w["done"] for w in status["workers"] if w["worker_id"] == "w1"] == [3]


def test_explain_event_not_yet_ingested(root):
    job_id = cli(root, "submit", "t").stdout.strip()

    explained = cli(root, "explain", job_id)
    hold_result = cli(root, "jobs", "hold", job_id)
    status = json.loads(cli(root, "status", "--json").stdout)

    assert explained.returncode == 0
    assert "is an event in input/ waiting for ingest" in explained.stdout
    assert "start 'chronosq supervise'" in explained.stdout
    assert hold_result.returncode == 1
    assert "act on it once it is a job" in hold_result.stderr
    assert status["incoming_events"] == 1


def test_retry_runs_waiting_job_now(root, procs):
    write_config(root, {"defaults": {"retry_backoff_seconds": 300.0,
                                     "retry_backoff_max_seconds": 300.0}})
    procs.supervisor()
    procs.worker("w1", "t", handler="fixtures:fail_first")
    drop_event(root, "r.json", {"type": "t", "payload": {}, "job_id": "later"})
    wait_for(lambda: (root / "jobs" / "later.json").exists()
             and "retry_at" in json.loads((root / "jobs" / "later.json").read_text())
             and state_of(root, "later") == "pending", 30, "the job waiting to retry")

    result = cli(root, "jobs", "retry", "later", "--reason", "fixed upstream")

    assert result.returncode == 0, result.stderr
    wait_for(lambda: finished(root, "output", 1), 30, "the job in output/")
    state = read_state(root, "later")
    assert state["attempts"] == 2
    retried = [e for e in state["history"] if e["event"] == "retried"]
    assert retried[0]["reason"] == "fixed upstream"
    assert "retry_at" not in json.loads((root / "output" / "later.json").read_text())


def test_person_and_process_ids_kept_apart(root, procs):
    procs.supervisor()
    procs.worker("bot", "t")
    drop_event(root, "r.json", {"type": "review", "payload": {}, "job_id": "r"})
    wait_for(lambda: state_of(root, "r") == "pending", 30, "the review pending")
    assert cli(root, "take", "--worker-id", "alice", "--type", "review").returncode == 0

    process = cli(root, "worker", "--worker-id", "alice", "--type", "t", "--handler",
                  "json:dumps")
    person = cli(root, "take", "--worker-id", "bot")

    assert process.returncode == 1
    assert "belongs to a person" in process.stderr
    assert person.returncode == 1
    assert "belongs to a worker process" in person.stderr


def cli_crashing(root, marker, spec: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command that SIGKILLs itself at the file operation `spec` names."""
    env = dict(os.environ, CHRONOSQ_CRASH_AT=f"{spec}:{marker}")
    return subprocess.run([sys.executable, "-m", "chronosq", *args, "--root", str(root)],
                          capture_output=True, text=True, timeout=60, env=env)


def test_done_after_take_killed_mid_claim(root, procs, tmp_path):
    procs.supervisor()
    drop_event(root, "r.json", {"type": "review", "payload": {}, "job_id": "rv"})
    wait_for(lambda: state_of(root, "rv") == "pending", 30, "the review pending")

    take_result = cli_crashing(root, tmp_path / "crashed", "write:/state/", "take",
                         "--worker-id", "alice")
    assert take_result.returncode == -9
    wait_for(lambda: cli(root, "done", "rv").returncode == 0, 20, "done to be accepted")

    wait_for(lambda: finished(root, "output", 1), 30, "the review in output/")
    state = read_state(root, "rv")
    assert state["attempts"] == 1
    claimed = [e for e in state["history"] if e["event"] == "claimed"]
    assert claimed[0]["worker_id"] == "alice"
    assert "claim recorded late" in claimed[0]["reason"]


def test_retry_killed_midway_still_runs(root, procs, tmp_path):
    procs.supervisor()
    failing = procs.worker("w1", "t", handler="fixtures:always_fail")
    drop_event(root, "f.json", {"type": "t", "payload": {}, "job_id": "again"})
    wait_for(lambda: finished(root, "error", 1), 30, "the job in error/")
    failing.send_signal(signal.SIGTERM)
    assert failing.wait(timeout=20) == 0

    retried = cli_crashing(root, tmp_path / "crashed", "write:/state/", "jobs", "retry",
                           "again")
    assert retried.returncode == -9
    assert (root / "jobs" / "again.json").exists()
    procs.worker("w2", "t")

    wait_for(lambda: finished(root, "output", 1), 30, "the retried job in output/")
    assert list((root / "quarantine").iterdir()) == []
    assert read_state(root, "again")["worker_id"] == "w2"


def test_late_cancel_keeps_worker(root, procs):
    write_config(root, {"worker": {"heartbeat_seconds": 0.1}})
    procs.supervisor()
    worker = procs.worker("w1", "t", handler="fixtures:pause")
    for i in range(400):
        drop_event(root, f"k{i:03d}.json", {"type": "t", "payload": {"seconds": 0.02},
                                            "job_id": f"k{i:03d}"})
    control = Control(Root(root), load_config(Root(root)), reason="race")
    queue = root / "broker" / "types" / "t" / "w1"

    # A cancel request whose signal lands just after the handler returned must
    # leave the worker running and the result in place.
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline and worker.poll() is None:
        for name in names(queue, ".json.processing"):
            try:
                control.cancel(name[: -len(".json.processing")], 5.0)
            except (ChronosQError, OSError):
                pass

    assert worker.poll() is None, procs.output(worker)
    wait_for(lambda: len(names(root / "output")) + len(names(root / "canceled")) == 400, 60,
             "every job succeeded or canceled")
    assert "Traceback" not in procs.output(worker)


def test_cancel_in_thread_worker_spares_host(root, procs):
    procs.supervisor()
    script = (
        "import sys, threading, time, chronosq, fixtures\n"
        "worker = chronosq.Worker(sys.argv[1], 'tw', ['t'], handler=fixtures.pause)\n"
        "threading.Thread(target=worker.run, daemon=True).start()\n"
        "time.sleep(60)\n"
    )
    host = subprocess.Popen([sys.executable, "-c", script, str(root)], env=procs.env())
    procs.started.append(host)
    drop_event(root, "c.json", {"type": "t", "payload": {"seconds": 2.0}, "job_id": "slow"})
    wait_for(lambda: state_of(root, "slow") == "processing", 30, "the job running")

    assert cli(root, "jobs", "cancel", "slow", "--grace", "0.5").returncode == 0

    wait_for(lambda: state_of(root, "slow") == "canceled", 30, "the job canceled")
    assert host.poll() is None


def test_status_watch_json_lines(root):
    watcher = subprocess.Popen(
        [sys.executable, "-m", "chronosq", "status", "--watch", "--json", "--interval", "0.2",
         "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(watcher.stdout.readline())
    second = json.loads(watcher.stdout.readline())

    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=20)

    assert watcher.returncode == 0
    assert first["jobs"]["pending"] == 0
    assert "rates_per_second" in second
    assert "stopped watching" in err
