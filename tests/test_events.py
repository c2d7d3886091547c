"""Parsing event files into jobs."""

from __future__ import annotations

import pytest

from chronosq.errors import InvalidEventError
from chronosq.events import parse_event

NOW = "2026-12-04T00:00:00.000000Z"


def parse(data: bytes, name: str = "e.json", mtime_ns: int = 1) -> dict:
    return parse_event(name, data, mtime_ns, NOW)


def test_defaults_filled_in():
    job = parse(b'{"type": "t", "payload": {"a": 1}}')

    assert job["priority"] == "normal"
    assert job["created_at"] == NOW
    assert job["payload"] == {"a": 1}
    assert job["job_id"].startswith("e")


def test_derived_id_stable_for_same_file():
    data = b'{"type": "t", "payload": {}}'

    assert parse(data)["job_id"] == parse(data)["job_id"]
    assert parse(data)["job_id"] != parse(data, name="f.json")["job_id"]
    assert parse(data)["job_id"] != parse(data, mtime_ns=2)["job_id"]


def test_named_job_id_kept():
    assert parse(b'{"type": "t", "payload": {}, "job_id": "order-1"}')["job_id"] == "order-1"


def test_created_at_normalised():
    assert parse(b'{"type": "t", "payload": {}, "created_at": 0}')["created_at"] == \
        "1970-01-01T00:00:00.000000Z"
    assert parse(b'{"type": "t", "payload": {}, "created_at": "2026-01-02T03:04:05+01:00"}')[
        "created_at"] == "2026-01-02T02:04:05.000000Z"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty event file"),
        (b"   \n", "empty event file"),
        (b"{", "invalid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "invalid JSON"),
        (b"42", "must be a JSON object, got int"),
        (b'{"payload": {}}', "missing field 'type'"),
        (b'{"type": "t"}', "missing field 'payload'"),
        (b'{"type": "", "payload": {}}', "invalid type ''"),
        (b'{"type": "a/b", "payload": {}}', "invalid type 'a/b'"),
        (b'{"type": ".t", "payload": {}}', "invalid type '.t'"),
        (b'{"type": "t", "payload": "x"}', "expected a JSON object, got str"),
        (b'{"type": "t", "payload": {}, "priority": 1}', "invalid priority 1"),
        (b'{"type": "t", "payload": {}, "job_id": "a/b"}', "invalid job_id 'a/b'"),
        (b'{"type": "t", "payload": {}, "job_id": "a..b"}', "invalid job_id 'a..b'"),
        (b'{"type": "t", "payload": {}, "job_id": 5}', "invalid job_id 5"),
        (b'{"type": "t", "payload": {}, "created_at": "soon"}', "invalid created_at 'soon'"),
        (b'{"type": "t", "payload": {}, "created_at": true}', "invalid created_at True"),
        (b'{"type": "t", "payload": {}, "meta": []}', "invalid meta"),
        (b'{"type": "t", "payload": {}, "result": 1}', "unknown field 'result'"),
        (b'{"type": "t", "payload": {}, "job_id": "evil\\n"}', "invalid job_id 'evil\\n'"),
        (b'{"type": "t\\n", "payload": {}}', "invalid type 't\\n'"),
        (b'{"type": "t", "payload": {}, "job_id": "v.evidence"}', "not ending in '.evidence'"),
        (b'{"type": "t", "payload": {}, "job_id": ""}', "invalid job_id ''"),
        (b'{"type": "a", "type": "b", "payload": {}}', "key 'type' appears twice"),
        (b'{"type": "t", "payload": {"x": NaN}}', "NaN is not a JSON number"),
        (b'{"type": "t", "payload": {"x": -Infinity}}', "-Infinity is not a JSON number"),
    ],
)
def test_invalid_events_rejected(data, reason):
    with pytest.raises(InvalidEventError) as caught:
        parse(data)
    assert reason in str(caught.value)
