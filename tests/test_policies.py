"""Assignment policies through a real scheduler, and their configuration checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import tomli_w
from conftest import (
    TESTS,
    FAST_SETTINGS,
    assignments,
    cli,
    drop_event,
    finished,
    log_events,
    names,
    wait_for,
    write_config,
)

from chronosq.fileops import CRASH_ENV
from chronosq.policy_types import PolicyContext
from chronosq_plugins import rule_based, weighted

REPO = TESTS.parent


def drop_jobs(root: Path, count: int, job_type: str = "t", **payload) -> None:
    for i in range(count):
        drop_event(root, f"{job_type}{i:04d}.json", {
            "type": job_type, "payload": dict(payload, i=i), "job_id": f"{job_type}{i:04d}",
            "created_at": 1_700_000_000 + i,
        })


def context(options: dict, state: dict | None = None) -> PolicyContext:
    return PolicyContext(job_type="t", policy="x", options=options, state=state or {},
                         state_dir=Path("/nonexistent"), delegate=lambda *a: None)


def candidates(*ids: str) -> list[dict]:
    return [{"worker_id": i, "host": "h", "types": ["t"], "capacity": 9, "queued": 0,
             "running": 0, "room": 9} for i in ids]


def test_weighted_order_is_smooth():
    ctx = context({"weights": {"a": 3, "b": 1}})
    picks = [weighted.chronosq_choose_worker({"job_id": str(i)}, candidates("a", "b"), ctx)
             for i in range(8)]
    assert picks == ["a", "a", "b", "a", "a", "a", "b", "a"]


def test_rules_operators():
    job = {"type": "t", "priority": "high", "job_id": "j",
           "payload": {"n": 5, "s": "ab@corp.example", "deep": {"k": "v"}}}
    assert rule_based.matches(job, {"payload.n": 5})
    assert rule_based.matches(job, {"payload.n": {"gt": 4, "lte": 5}})
    assert not rule_based.matches(job, {"payload.n": {"lt": 5}})
    assert rule_based.matches(job, {"priority": {"in": ["high", "normal"]}})
    assert rule_based.matches(job, {"payload.s": {"regex": "@corp\\.example$"}})
    assert rule_based.matches(job, {"payload.deep.k": "v"})
    assert rule_based.matches(job, {"payload.missing": {"ne": 1}})
    assert not rule_based.matches(job, {"payload.missing": 1})
    assert not rule_based.matches(job, {"payload.s": {"gt": 1}})
    assert not rule_based.matches(job, {"type": "t", "priority": "low"})


def test_round_robin_even_after_scheduler_kill(root, procs, tmp_path):
    for worker_id in ("a", "b", "c"):
        procs.worker(worker_id, "t", capacity=300)
    marker = tmp_path / "crashed"
    procs.supervisor(env={CRASH_ENV: f"rename:/jobs/t0150.json ->:{marker}"})

    drop_jobs(root, 300)

    wait_for(lambda: finished(root, "output", 300), 120, "300 jobs in output/")
    assert marker.exists()
    exits = [e for e in log_events(root) if e["event"] == "child.exited"]
    assert [e["child"] for e in exits] == ["scheduler"]
    # Jobs moved in the batch the crash cut short have no "assigned" log line,
    # so the split is read from where each job ran.
    split = Counter(json.loads(p.read_text())["worker_id"] for p in (root / "output").iterdir())
    assert sum(split.values()) == 300
    assert all(99 <= split[w] <= 101 for w in ("a", "b", "c")), split


def test_round_robin_exact_split(root, procs):
    for worker_id in ("a", "b", "c"):
        procs.worker(worker_id, "t", capacity=300)
    procs.supervisor()

    drop_jobs(root, 300)

    wait_for(lambda: finished(root, "output", 300), 120, "300 jobs in output/")
    split = Counter(worker for _, worker in assignments(root))
    assert split == {"a": 100, "b": 100, "c": 100}


def test_weighted_three_to_one(root, procs):
    write_config(root, {"types": {"t": {"policy": "weighted",
                                         "weights": {"heavy": 3, "light": 1}}}})
    procs.worker("heavy", "t", capacity=400)
    procs.worker("light", "t", capacity=400)
    procs.supervisor()

    drop_jobs(root, 400)

    wait_for(lambda: finished(root, "output", 400), 120, "400 jobs in output/")
    order = [worker for _, worker in assignments(root)]
    assert Counter(order) == {"heavy": 300, "light": 100}
    longest = run = 0
    for worker in order:
        run = run + 1 if worker == "heavy" else 0
        longest = max(longest, run)
    assert longest <= 3


def test_rule_based_routing(root, procs):
    customer_rule = {"match": {"payload.customer_id": "acme"}, "worker": "a"}
    priority_rule = {"match": {"priority": {"in": ["high"]}}, "worker": "b"}
    write_config(root, {"types": {
        "first": {"policy": "rule_based", "rules": [customer_rule, priority_rule]},
        "second": {"policy": "rule_based", "rules": [priority_rule, customer_rule],
                   "fallback": "round_robin"},
    }})
    for worker_id in ("a", "b", "c"):
        procs.worker(worker_id, "first", "second", capacity=100)
    procs.supervisor()
    jobs = {
        "acme_normal": ("acme", "normal"),
        "acme_high": ("acme", "high"),
        "other_high": ("zeta", "high"),
        **{f"other_{i}": ("zeta", "normal") for i in range(6)},
    }
    for job_type in ("first", "second"):
        for name, (customer, priority) in jobs.items():
            drop_event(root, f"{job_type}_{name}.json", {
                "type": job_type, "job_id": f"{job_type}_{name}", "priority": priority,
                "payload": {"customer_id": customer}})

    wait_for(lambda: finished(root, "output", 2 * len(jobs)), 60, "all jobs done")
    placed = dict(assignments(root))
    assert placed["first_acme_normal"] == "a"
    assert placed["first_acme_high"] == "a"
    assert placed["first_other_high"] == "b"
    assert placed["second_acme_normal"] == "a"
    assert placed["second_acme_high"] == "b"
    assert placed["second_other_high"] == "b"
    for job_type in ("first", "second"):
        rest = Counter(placed[f"{job_type}_other_{i}"] for i in range(6))
        assert rest == {"a": 2, "b": 2, "c": 2}


def test_dead_and_full_workers_not_offered(root, procs):
    write_config(root, {"plugins": {"modules": ["policy_recorder"]},
                        "types": {"t": {"policy": "recorder"}}})
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)
    dead_record = {"worker_id": "aaa_dead", "types": ["t"], "host": __import__("socket")
                   .gethostname(), "pid": int(exited.stdout), "pid_started_at": 1.0,
                   "capacity": 50, "started_at": "2026-01-01T00:00:00Z",
                   "heartbeat_at": "2099-01-01T00:00:00Z"}
    (root / "workers" / "aaa_dead.json").write_text(json.dumps(dead_record))
    procs.worker("bbb_small", "t", handler="fixtures:pause", capacity=1)
    procs.worker("ccc_big", "t", handler="fixtures:pause", capacity=50)
    procs.supervisor()

    drop_jobs(root, 12, seconds=0.3)

    wait_for(lambda: finished(root, "output", 12), 60, "12 jobs in output/")
    offers_file = root / "run" / "policies" / "recorder" / "offers.jsonl"
    offers = [json.loads(line) for line in offers_file.read_text().splitlines()]
    assert len(offers) == 12
    offered_ids = {c["worker_id"] for offer in offers for c in offer["candidates"]}
    assert "aaa_dead" not in offered_ids
    assert all(c["room"] > 0 for offer in offers for c in offer["candidates"])
    small = [offer for offer in offers
             if not any(c["worker_id"] == "bbb_small" for c in offer["candidates"])]
    assert small, "bbb_small was never full when a job was offered"


def test_failing_policies_leave_jobs_pending(root, procs):
    write_config(root, {
        "plugins": {"modules": ["policy_raising", "policy_stranger", "policy_slow",
                                "policy_odd"]},
        "scheduler": {"policy_timeout_seconds": 0.5},
        "types": {"broken": {"policy": "raising"}, "strange": {"policy": "stranger"},
                  "sluggish": {"policy": "slow"}, "listy": {"policy": "odd"},
                  "exiting": {"policy": "odd"}, "stateful": {"policy": "odd"}},
    })
    procs.worker("w1", "broken", "strange", "sluggish", "listy", "exiting", "stateful",
                 "fine", capacity=50)
    procs.supervisor()

    for job_type in ("broken", "strange", "sluggish"):
        drop_jobs(root, 3, job_type)
    drop_jobs(root, 3, "listy", mode="list")
    drop_jobs(root, 3, "exiting", mode="exit")
    drop_jobs(root, 3, "stateful", mode="state")
    drop_jobs(root, 10, "fine")

    wait_for(lambda: finished(root, "output", 10), 60, "fine jobs in output/")
    wait_for(lambda: {"raising", "stranger", "slow"} <= {
        e.get("policy") for e in log_events(root) if e["event"] == "policy.failed"},
        30, "a policy.failed line for each broken policy")
    wait_for(lambda: {"listy", "exiting", "stateful"} <= set(
        json.loads(cli(root, "status", "--json").stdout)["policy_errors"]), 30,
        "the odd policy's failures in status")
    pending = names(root / "jobs")
    assert len(pending) == 18
    assert all(not n.startswith("fine") for n in pending)
    failures = {e["policy"]: e for e in log_events(root) if e["event"] == "policy.failed"}
    assert "ValueError('this policy is broken')" in failures["raising"]["error"]
    assert "'nobody_offered_me', which is not a candidate" in failures["stranger"]["error"]
    assert "policy 'slow' took longer than 0.5s" in failures["slow"]["error"]
    assert all(e["child"] != "scheduler" for e in log_events(root)
               if e["event"] == "child.exited")
    status = json.loads(cli(root, "status", "--json").stdout)
    assert sorted(status["policy_errors"]) == ["broken", "exiting", "listy", "sluggish",
                                               "stateful", "strange"]
    assert "which is not a candidate" in status["policy_errors"]["listy"]["error"]
    assert "SystemExit(2)" in status["policy_errors"]["exiting"]["error"]
    assert "not JSON" in status["policy_errors"]["stateful"]["error"]
    assert status["policy_errors"]["broken"]["policy"] == "raising"
    broken_job = next(n for n in pending if n.startswith("broken"))[: -len(".json")]
    explained = cli(root, "explain", broken_job).stdout
    assert "policy 'raising' of type 'broken' failed" in explained
    assert "this policy is broken" in explained


def test_plugin_loaded_from_file_path(root, procs):
    shutil.copy(TESTS / "policy_recorder.py", root / "my_policy.py")
    write_config(root, {"plugins": {"modules": ["my_policy.py"]},
                        "types": {"t": {"policy": "recorder"}}})
    procs.worker("w1", "t")
    procs.supervisor()

    drop_jobs(root, 3)

    wait_for(lambda: finished(root, "output", 3), 30, "3 jobs in output/")
    assert (root / "run" / "policies" / "recorder" / "offers.jsonl").exists()


def test_contrib_package_installed_and_chosen(root, procs, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(site), str(REPO / "contrib" / "chronosq-sticky")],
        check=True, capture_output=True, timeout=300,
    )
    write_config(root, {"types": {"orders": {"policy": "sticky",
                                              "options": {"key": "customer_id"}}}})
    rejected = subprocess.run([sys.executable, "-m", "chronosq", "supervise", "--root", str(root)],
                              capture_output=True, text=True, timeout=30)
    assert "unknown policy 'sticky'" in rejected.stderr
    env = {"PYTHONPATH": f"{site}:{TESTS}"}
    # Room for every job: the home worker of a key is only left when it is full.
    for worker_id in ("w1", "w2", "w3"):
        procs.worker(worker_id, "orders", capacity=50)
    procs.supervisor(env=env)

    customers = [f"cust{i}" for i in range(8)]
    for i in range(40):
        drop_event(root, f"o{i}.json", {"type": "orders", "job_id": f"o{i:02d}",
                                        "payload": {"customer_id": customers[i % 8]}})

    wait_for(lambda: finished(root, "output", 40), 60, "40 orders in output/")
    placed = dict(assignments(root))
    homes: dict[str, set[str]] = {}
    for i in range(40):
        homes.setdefault(customers[i % 8], set()).add(placed[f"o{i:02d}"])
    assert all(len(workers) == 1 for workers in homes.values()), homes
    assert len({next(iter(w)) for w in homes.values()}) > 1


def run_to_pending_then_assign(root: Path, procs, count: int) -> None:
    """Ingest with no worker up, then start workers, then let the scheduler assign."""
    supervisor = procs.supervisor()
    drop_jobs(root, count)
    wait_for(lambda: len(names(root / "jobs")) == count, 30, "jobs pending")
    supervisor.terminate()
    supervisor.wait(timeout=20)
    for worker_id in ("w1", "w2", "w3"):
        procs.worker(worker_id, "t", capacity=count)


def test_same_input_same_assignment(tmp_path):
    from conftest import Processes

    results = []
    for run in ("one", "two"):
        root = tmp_path / run
        root.mkdir()
        subprocess.run([sys.executable, "-m", "chronosq", "init", "--root", str(root)],
                       check=True, capture_output=True)
        write_config(root, {"types": {"t": {"policy": "weighted",
                                             "weights": {"w1": 1, "w2": 2, "w3": 3}}}})
        logs_dir = tmp_path / f"{run}-logs"
        logs_dir.mkdir()
        procs = Processes(root, logs_dir)
        try:
            run_to_pending_then_assign(root, procs, 60)
            simulated = subprocess.run(
                [sys.executable, "-m", "chronosq", "policy", "simulate", "--json",
                 "--root", str(root)], capture_output=True, text=True, check=True)
            procs.supervisor()
            wait_for(lambda: finished(root, "output", 60), 60, "60 jobs in output/")
            placed = dict(assignments(root))
        finally:
            procs.stop_all()
        preview = {row["job_id"]: row["worker_id"] for row in json.loads(simulated.stdout)}
        assert preview == placed
        results.append(placed)
    assert results[0] == results[1]
    assert Counter(results[0].values()) == {"w1": 10, "w2": 20, "w3": 30}


@pytest.mark.parametrize(
    ("types", "message"),
    [
        ({"t": {"policy": "fastest"}}, "types.t.policy: unknown policy 'fastest'; valid "
                                       "choices: round_robin, rule_based, weighted"),
        ({"t": {"policy": "weighted", "weights": {"a": 0}}},
         "types.t.weights.a: invalid weight 0"),
        ({"t": {"policy": "weighted", "weights": {"a": "x"}}},
         "types.t.weights.a: invalid weight 'x'"),
        ({"t": {"policy": "round_robin", "weights": {"a": 1}}},
         "types.t.weights: round_robin takes no weights"),
        ({"t": {"policy": "rule_based"}}, "types.t.rules: missing"),
        ({"t": {"policy": "rule_based", "rules": [{"match": {}, "worker": "a", "x": 1}]}},
         "types.t.rules[0]: unknown key 'x'"),
        ({"t": {"policy": "rule_based", "rules": [{"match": {"colour": 1}, "worker": "a"}]}},
         "types.t.rules[0]: unknown field 'colour'"),
        ({"t": {"policy": "rule_based",
                "rules": [{"match": {"payload.n": {"about": 1}}, "worker": "a"}]}},
         "types.t.rules[0]: payload.n: unknown operator 'about'"),
        ({"t": {"policy": "rule_based",
                "rules": [{"match": {"payload.s": {"regex": "("}}, "worker": "a"}]}},
         "types.t.rules[0]: payload.s.regex: invalid pattern '('"),
        ({"t": {"policy": "rule_based", "rules": [{"match": {}}]}},
         "types.t.rules[0]: give exactly one of worker or workers"),
        ({"t": {"policy": "rule_based", "rules": [], "fallback": "nope"}},
         "types.t.fallback: unknown policy 'nope'"),
    ],
)
def test_bad_policy_config_rejected(root, types, message):
    settings = {section: dict(values) for section, values in FAST_SETTINGS.items()}
    settings["types"] = types
    (root / "chronosq.toml").write_text(tomli_w.dumps(settings))

    done = subprocess.run([sys.executable, "-m", "chronosq", "supervise", "--root", str(root)],
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 1
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (root / "run" / "supervisor.json").exists()


def test_sighup_reloads_weights(root, procs):
    write_config(root, {"types": {"t": {"policy": "weighted",
                                         "weights": {"heavy": 1, "light": 1}}}})
    procs.worker("heavy", "t", capacity=200)
    procs.worker("light", "t", capacity=200)
    supervisor = procs.supervisor()
    drop_jobs(root, 40)
    wait_for(lambda: finished(root, "output", 40), 60, "first 40 jobs done")
    write_config(root, {"types": {"t": {"policy": "weighted",
                                         "weights": {"heavy": 3, "light": 1}}}})

    supervisor.send_signal(__import__("signal").SIGHUP)
    wait_for(lambda: any(e["event"] == "config.reloaded" and e["role"] == "scheduler"
                         for e in log_events(root)), 20, "the scheduler to reload")
    for i in range(40, 80):
        drop_event(root, f"t{i:04d}.json", {"type": "t", "payload": {}, "job_id": f"t{i:04d}",
                                            "created_at": 1_700_000_000 + i})

    wait_for(lambda: finished(root, "output", 80), 60, "all 80 jobs done")
    order = [worker for _, worker in assignments(root)]
    assert Counter(order[:40]) == {"heavy": 20, "light": 20}
    assert Counter(order[40:]) == {"heavy": 30, "light": 10}
    assert supervisor.poll() is None


def test_rule_based_fallback_gets_weights():
    from chronosq.config import parse
    from chronosq.policy import plugin_manager, validate

    config = parse({"types": {"t": {"policy": "rule_based", "fallback": "weighted",
                                     "weights": {"a": 3, "b": 1}, "rules": []}}})
    validate(config, plugin_manager())
    ctx = context(config.for_type("t").options)
    ctx.delegate = lambda name, job, offered: weighted.chronosq_choose_worker(job, offered, ctx)

    picks = [rule_based.chronosq_choose_worker({"job_id": str(i), "payload": {}},
                                               candidates("a", "b"), ctx) for i in range(4)]

    assert picks == ["a", "a", "b", "a"]
