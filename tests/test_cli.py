"""Each command through typer's test runner, for output and exit code."""

from __future__ import annotations

import json
import tomllib

from typer.testing import CliRunner

from chronosq.cli import app
from chronosq.config import default_text, parse

runner = CliRunner()


def test_init_creates_layout(tmp_path):
    result = runner.invoke(app, ["init", "--root", str(tmp_path)])

    assert result.exit_code == 0
    for folder in ("input", "jobs", "broker/types", "hold", "output", "error", "state",
                   "workers", "logs", "run"):
        assert (tmp_path / folder).is_dir()
    text = (tmp_path / "chronosq.toml").read_text()
    assert text.startswith("# ChronosQ configuration")
    assert tomllib.loads(text)["storage"]["durable"] is True


def test_init_twice_keeps_files(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    config = tmp_path / "chronosq.toml"
    config.write_text(config.read_text() + "\n[types.email]\nmax_attempts = 9\n")
    before = config.read_text()

    result = runner.invoke(app, ["init", "--root", str(tmp_path)])

    assert result.exit_code == 0
    assert "kept existing" in result.output
    assert config.read_text() == before


def test_init_reads_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CHRONOSQ_ROOT", str(tmp_path / "q"))

    result = runner.invoke(app, ["init"])

    assert result.exit_code == 0
    assert (tmp_path / "q" / "chronosq.toml").exists()


def test_submit_writes_event(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])

    result = runner.invoke(app, ["submit", "email", "--payload", '{"to": "a@b.c"}',
                                 "--priority", "high", "--root", str(tmp_path)])

    assert result.exit_code == 0
    job_id = result.output.strip()
    event = json.loads((tmp_path / "input" / f"{job_id}.json").read_text())
    assert event["type"] == "email"
    assert event["payload"] == {"to": "a@b.c"}
    assert event["priority"] == "high"
    assert event["job_id"] == job_id
    assert [p.name for p in (tmp_path / "input").iterdir()] == [f"{job_id}.json"]


def test_submit_rejects_bad_input(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    cases = [
        (["submit", "email", "--payload", "{oops"], "invalid --payload '{oops'"),
        (["submit", "email", "--payload", "[1]"], "invalid payload: expected a JSON object"),
        (["submit", "email", "--priority", "urgent"], "invalid priority 'urgent'"),
        (["submit", "../x"], "invalid type '../x'"),
        (["submit", "email", "--job-id", "../x"], "invalid job_id '../x'"),
        (["submit", "email", "--job-id", ""], "invalid job_id ''"),
        (["submit", "email\n"], "invalid type 'email\\n'"),
        (["submit", "email", "--meta", "[1]"], "invalid meta: expected a JSON object"),
        (["submit", "email", "--meta", "{x"], "invalid --meta '{x'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*args, "--root", str(tmp_path)])
        assert result.exit_code == 1, args
        assert message in result.output, args
    assert list((tmp_path / "input").iterdir()) == []


def test_submit_same_job_again_is_no_op(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    args = ["submit", "t", "--job-id", "dup", "--payload", '{"n": 1}', "--root", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0

    again = runner.invoke(app, args)

    assert again.exit_code == 0
    assert "already waiting in input/ with the same content; nothing submitted" in again.output
    assert [p.name for p in (tmp_path / "input").iterdir()] == ["dup.json"]


def test_submit_job_id_taken_by_other_job(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    args = ["submit", "t", "--job-id", "dup", "--root", str(tmp_path)]
    assert runner.invoke(app, [*args, "--payload", '{"n": 1}']).exit_code == 0

    other = runner.invoke(app, [*args, "--payload", '{"n": 2}'])

    assert other.exit_code == 1
    assert "already waiting in input/ with another type, payload" in other.output


def test_commands_need_initialised_root(tmp_path):
    for args in (["submit", "t"], ["status"], ["supervise"],
                 ["worker", "--worker-id", "w", "--type", "t", "--handler", "x:y"]):
        result = runner.invoke(app, [*args, "--root", str(tmp_path)])
        assert result.exit_code == 1, args
        assert "is not a ChronosQ root" in result.output, args
        assert "chronosq init --root" in result.output, args


def test_status_json_on_empty_root(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])

    result = runner.invoke(app, ["status", "--json", "--root", str(tmp_path)])

    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["jobs"] == {"pending": 0, "assigned": 0, "processing": 0, "held": 0,
                            "succeeded": 0, "failed": 0, "quarantined": 0, "canceled": 0}
    assert data["retry_waiting"] == 0
    assert data["workers"] == []
    assert data["supervisor"]["alive"] is False


def test_status_table(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    (tmp_path / "jobs" / "a.json").write_text(json.dumps({"job_id": "a", "type": "mail"}))

    result = runner.invoke(app, ["status", "--root", str(tmp_path)])

    assert result.exit_code == 0
    assert "Jobs" in result.output
    assert "mail" in result.output
    assert "Workers" in result.output


def test_worker_needs_handler_or_command(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])

    result = runner.invoke(app, ["worker", "--worker-id", "w", "--type", "t",
                                 "--root", str(tmp_path)])

    assert result.exit_code == 1
    assert "give either --handler module:function or a command after --" in result.output


def test_worker_rejects_bad_handler_and_id(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    cases = [
        (["--worker-id", "w", "--handler", "nocolon"], "invalid handler 'nocolon'"),
        (["--worker-id", "w", "--handler", "no_such_module_x:f"], "cannot import handler"),
        (["--worker-id", "../w", "--handler", "json:dumps"], "invalid worker id '../w'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["worker", *args, "--type", "t", "--root", str(tmp_path)])
        assert result.exit_code == 1, args
        assert message in result.output, args


def test_config_errors_name_the_key(tmp_path):
    cases = [
        ('[ingest]\nrescan_secs = 1\n', "ingest.rescan_secs: unknown key"),
        ('[storage]\ndurable = "yes"\n', "storage.durable: expected bool, got str 'yes'"),
        ('[recovery]\ninterval_seconds = -1\n', "recovery.interval_seconds: must be greater"),
        ('[worker]\ncapacity = true\n', "worker.capacity: expected int, got bool"),
        ('[colour]\n', "colour: unknown section"),
        ('[types."../x"]\n', "types.../x: invalid type"),
        ('[types.mail]\nretries = 3\n', "types.mail.retries: unknown key"),
        ('[logging]\nlevel = "LOUD"\n', "logging.level: invalid value 'LOUD'"),
        ('[storage\n', "invalid TOML"),
    ]
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    for text, message in cases:
        (tmp_path / "chronosq.toml").write_text(text)
        result = runner.invoke(app, ["submit", "t", "--root", str(tmp_path)])
        assert result.exit_code == 1, text
        assert message in result.output, text
        assert len(result.output.strip().splitlines()) == 1, text


def test_default_config_parses():
    config = parse(tomllib.loads(default_text()))

    assert config.durable is True
    assert config.for_type("anything").policy == "round_robin"


def test_status_survives_bad_config(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    (tmp_path / "chronosq.toml").write_text("[worker]\ncapacity = true\n")

    result = runner.invoke(app, ["status", "--json", "--root", str(tmp_path)])

    assert result.exit_code == 0
    assert "worker.capacity: expected int" in result.output
    assert "using defaults" in result.output


def test_worker_command_must_exist(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])

    result = runner.invoke(app, ["worker", "--worker-id", "w", "--type", "t",
                                 "--root", str(tmp_path), "--", "/no/such/program"])

    assert result.exit_code == 1
    assert "command '/no/such/program' not found or not executable" in result.output


def test_status_index_tolerates_vanished_file(tmp_path):
    from chronosq.layout import Root
    from chronosq.status import JobIndex

    runner.invoke(app, ["init", "--root", str(tmp_path)])
    index = JobIndex(Root(tmp_path))

    entry = index.lookup(tmp_path / "jobs", "gone", "gone.json", check_mtime=True)

    assert len(entry) == 6
    assert entry[0] == "?"


def test_operator_commands_in_process(tmp_path):
    root = str(tmp_path)
    runner.invoke(app, ["init", "--root", root])
    job = {"job_id": "j1", "type": "t", "payload": {}, "priority": "normal",
           "created_at": "2026-01-01T00:00:00Z"}
    (tmp_path / "jobs" / "j1.json").write_text(json.dumps(job))
    (tmp_path / "jobs" / "j2.json").write_text(json.dumps(dict(job, job_id="j2")))
    from chronosq.config import load
    from chronosq.layout import Root
    from chronosq.lifecycle import Lifecycle
    lifecycle = Lifecycle(Root(tmp_path), load(Root(tmp_path)), "test")
    for job_id in ("j1", "j2"):
        lifecycle.create_state(lifecycle.new_state(dict(job, job_id=job_id), by="test"))

    steps = [
        (["jobs", "list", "--json"], 0, '"job_id": "j1"'),
        (["jobs", "show", "j1"], 0, "ingested"),
        (["explain", "j1"], 0, "no worker serves type 't'"),
        (["policy", "simulate"], 0, "no live worker"),
        (["take", "--worker-id", "ann"], 0, '"job_id": "j1"'),
        (["done", "j1", "--result", "[1, 2]"], 0, "j1: success recorded"),
        (["take", "--worker-id", "ann"], 0, '"job_id": "j2"'),
        (["fail", "j2", "--error", "blurry"], 0, "j2: failure recorded; it is retried (attempt 1 of 3)"),
        (["take", "--worker-id", "ann"], 3, "no pending job"),
        (["done", "j1", "--result", "{bad"], 1, "invalid --result"),
        (["logs", "--raw"], 0, "job.claimed"),
        (["fsck", "--json"], 0, "[]"),
        (["metrics"], 0, "chronosq_jobs"),
        (["systemd"], 0, "Type=notify"),
    ]
    for args, code, text in steps:
        result = runner.invoke(app, [*args, "--root", root])
        assert result.exit_code == code, (args, result.output)
        assert text in result.output, (args, result.output)
    assert (tmp_path / "broker" / "types" / "t" / "ann" / "j1.json.success").exists()


def test_commands_use_accepted_config_while_file_broken(tmp_path):
    runner.invoke(app, ["init", "--root", str(tmp_path)])
    accepted = (tmp_path / "chronosq.toml").read_text()
    (tmp_path / "chronosq.toml").write_text("[worker]\ncapacity = 'two'\n")
    rejected = runner.invoke(app, ["submit", "t", "--root", str(tmp_path)])
    # A supervisor that accepted the earlier text keeps it under run/.
    (tmp_path / "run" / "active-config.toml").write_text(accepted)

    submitted = runner.invoke(app, ["submit", "t", "--root", str(tmp_path)])

    assert rejected.exit_code == 1
    assert "worker.capacity" in rejected.output
    assert submitted.exit_code == 0
    assert "using the configuration the supervisor accepted" in submitted.output
    assert len(list((tmp_path / "input").iterdir())) == 1
