"""Prometheus text from status data, parsed back line by line."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chronosq import config as config_module
from chronosq import fileops, metrics, status
from chronosq.layout import Root

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(rf"^({NAME})(\{{.*\}})? (\S+)$")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}

WEIRD_TYPE = 'odd\\type "quoted"\nsecond line'

COUNTERS = {"completions": 120, "failures": 4, "retries": 9, "recoveries": 2}


@dataclass
class Metric:
    help: str | None = None
    kind: str | None = None
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)


def parse_labels(text: str) -> dict[str, str]:
    """Parse {name="value",...} with the format's escapes."""
    assert text.startswith("{"), f"labels {text!r} do not start with a brace"
    assert text.endswith("}"), f"labels {text!r} do not end with a brace"
    labels: dict[str, str] = {}
    position = 1
    while text[position] != "}":
        match = LABEL_NAME_RE.match(text, position)
        assert match, f"no label name at {position} in {text!r}"
        name = match.group()
        position = match.end()
        assert text[position:position + 2] == '="', f"no =\" after {name} in {text!r}"
        position += 2
        value = []
        while text[position] != '"':
            char = text[position]
            if char == "\\":
                escaped = text[position + 1]
                assert escaped in UNESCAPE, f"invalid escape \\{escaped} in {text!r}"
                value.append(UNESCAPE[escaped])
                position += 2
            else:
                assert char != "\n", f"raw newline in {text!r}"
                value.append(char)
                position += 1
        position += 1
        assert name not in labels, f"label {name} repeated in {text!r}"
        labels[name] = "".join(value)
        if text[position] == ",":
            position += 1
    assert position == len(text) - 1, f"text after the closing brace in {text!r}"
    return labels


def parse_value(text: str) -> float:
    """Parse a sample value, including the format's +Inf, -Inf and NaN."""
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[text] if text in special else float(text)


def parse_exposition(text: str) -> dict[str, Metric]:
    """Parse text exposition format, checking each line's shape and HELP/TYPE order."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    found: dict[str, Metric] = {}
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP "):].partition(" ")
            metric = found.setdefault(name, Metric())
            assert metric.help is None, f"line {number}: second HELP for {name}"
            assert not metric.samples, f"line {number}: HELP for {name} after its samples"
            metric.help = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE "):].partition(" ")
            metric = found.setdefault(name, Metric())
            assert metric.kind is None, f"line {number}: second TYPE for {name}"
            assert not metric.samples, f"line {number}: TYPE for {name} after its samples"
            assert kind in ("counter", "gauge"), f"line {number}: unknown TYPE {kind!r}"
            metric.kind = kind
        else:
            match = SAMPLE_RE.match(line)
            assert match, f"line {number}: {line!r} is not 'name{{labels}} value'"
            name, label_text, value = match.groups()
            labels = parse_labels(label_text) if label_text else {}
            metric = found.get(name)
            assert metric is not None, f"line {number}: sample of {name} before its HELP"
            assert metric.help and metric.kind, f"line {number}: {name} lacks HELP or TYPE"
            key = tuple(sorted(labels.items()))
            assert key not in metric.samples, f"line {number}: series {line!r} repeated"
            metric.samples[key] = parse_value(value)
    return found


def status_data() -> dict[str, Any]:
    """Return status data shaped like chronosq.status.gather()'s, with known counts."""
    email = {"pending": 3, "assigned": 1, "processing": 2, "held": 0, "succeeded": 10,
             "failed": 1, "quarantined": 0}
    weird = {"pending": 1, "assigned": 0, "processing": 0, "held": 2, "succeeded": 0,
             "failed": 0, "quarantined": 5}
    return {
        "root": "/tmp/q",
        "jobs": {state: email[state] + weird[state] for state in email},
        "types": {"email": email, WEIRD_TYPE: weird},
        "rejected_events": 0,
        "retry_waiting": 0,
        "oldest_pending_age_seconds": {"email": 12.5, WEIRD_TYPE: 3},
        "ingest": {"paused": False, "reason": None},
        "workers": [
            {"worker_id": "w1", "alive": True},
            {"worker_id": "w2", "alive": True},
            {"worker_id": "w3", "alive": False},
        ],
        "supervisor": {
            "pid": 100, "alive": True, "started_at": None,
            "children": [
                {"role": "scheduler", "restarts": 3},
                {"role": "ingest", "restarts": 0},
                {"role": "recovery", "restarts": 1},
            ],
        },
    }


def test_metrics_every_metric_has_help_and_type() -> None:
    parsed = parse_exposition(metrics.render(status_data(), COUNTERS))
    expected = {
        "chronosq_jobs": "gauge",
        "chronosq_oldest_pending_age_seconds": "gauge",
        "chronosq_completions_total": "counter",
        "chronosq_failures_total": "counter",
        "chronosq_retries_total": "counter",
        "chronosq_recoveries_total": "counter",
        "chronosq_child_restarts_total": "counter",
        "chronosq_workers": "gauge",
        "chronosq_people": "gauge",
    }
    assert {name: metric.kind for name, metric in parsed.items()} == expected
    for name, metric in parsed.items():
        assert metric.help, f"{name} has an empty HELP"


def test_metrics_job_counts_match_input() -> None:
    data = status_data()
    parsed = parse_exposition(metrics.render(data, COUNTERS))
    jobs = parsed["chronosq_jobs"].samples
    expected = {
        (("state", state), ("type", job_type)): count
        for job_type, counts in data["types"].items()
        for state, count in counts.items()
    }
    assert jobs == expected
    for state, total in data["jobs"].items():
        summed = sum(value for key, value in jobs.items() if ("state", state) in key)
        assert summed == total, f"state {state}"


def test_metrics_label_escaping_round_trips() -> None:
    text = metrics.render(status_data(), COUNTERS)
    assert 'type="odd\\\\type \\"quoted\\"\\nsecond line"' in text
    parsed = parse_exposition(text)
    types = {dict(key)["type"] for key in parsed["chronosq_jobs"].samples}
    assert types == {"email", WEIRD_TYPE}
    ages = parsed["chronosq_oldest_pending_age_seconds"].samples
    assert ages == {(("type", "email"),): 12.5, (("type", WEIRD_TYPE),): 3}


def test_metrics_counters_match_input() -> None:
    parsed = parse_exposition(metrics.render(status_data(), COUNTERS))
    for key, value in COUNTERS.items():
        assert parsed[f"chronosq_{key}_total"].samples == {(): value}, key


def test_metrics_child_restarts_and_workers() -> None:
    parsed = parse_exposition(metrics.render(status_data(), COUNTERS))
    assert parsed["chronosq_child_restarts_total"].samples == {
        (("child", "ingest"),): 0,
        (("child", "recovery"),): 1,
        (("child", "scheduler"),): 3,
    }
    assert parsed["chronosq_workers"].samples == {
        (("alive", "true"),): 2,
        (("alive", "false"),): 1,
    }
    assert parsed["chronosq_people"].samples == {(): 0}


def test_metrics_people_counted_apart() -> None:
    data = status_data()
    data["workers"].append({"worker_id": "alice", "alive": True, "person": True})

    parsed = parse_exposition(metrics.render(data, COUNTERS))

    assert parsed["chronosq_workers"].samples[(("alive", "true"),)] == 2
    assert parsed["chronosq_people"].samples == {(): 1}


def test_metrics_missing_parts_have_no_samples() -> None:
    data = status_data()
    del data["oldest_pending_age_seconds"]
    data["types"] = {}
    data["workers"] = []
    data["supervisor"]["children"] = []
    parsed = parse_exposition(metrics.render(data, {"completions": 1}))
    assert parsed["chronosq_jobs"].samples == {}
    assert parsed["chronosq_oldest_pending_age_seconds"].samples == {}
    assert parsed["chronosq_child_restarts_total"].samples == {}
    assert parsed["chronosq_completions_total"].samples == {(): 1}
    assert parsed["chronosq_failures_total"].samples == {}
    assert parsed["chronosq_workers"].samples == {(("alive", "true"),): 0,
                                                   (("alive", "false"),): 0}
    assert parsed["chronosq_failures_total"].kind == "counter"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, "3"), (0, "0"), (12.5, "12.5"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
     (math.nan, "NaN"), (True, "1")],
)
def test_metrics_format_value(value: float, expected: str) -> None:
    assert metrics.format_value(value) == expected


def test_metrics_render_real_status(tmp_path: Path) -> None:
    root_path = tmp_path / "q"
    subprocess.run([sys.executable, "-m", "chronosq", "init", "--root", str(root_path)],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "chronosq", "submit", "email", "--payload", "{}",
                    "--root", str(root_path)], check=True, capture_output=True)
    root = Root(root_path)
    data = status.gather(root, config_module.load(root))
    parsed = parse_exposition(metrics.render(data, COUNTERS))
    # Nothing ingests the event without a supervisor, so no job is counted yet.
    assert sum(data["jobs"].values()) == 0
    assert parsed["chronosq_jobs"].samples == {}
    assert parsed["chronosq_workers"].samples == {(("alive", "true"),): 0,
                                                   (("alive", "false"),): 0}


def test_write_textfile_replaces_file(tmp_path: Path) -> None:
    target = tmp_path / "chronosq.prom"
    metrics.write_textfile(target, "first 1\n")
    assert target.read_text() == "first 1\n"
    text = metrics.render(status_data(), COUNTERS)
    metrics.write_textfile(target, text)
    assert target.read_text() == text
    assert fileops.listdir(tmp_path) == ["chronosq.prom"]
