"""Turn the bytes of an event file into a job, or say why it cannot be one."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from chronosq import defaults
from chronosq.errors import InvalidEventError
from chronosq.layout import validate_job_id, validate_type
from chronosq.lifecycle import derive_job_id, parse_time

EVENT_FIELDS = ("type", "payload", "priority", "job_id", "created_at", "meta")


def _created_at(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidEventError(
            f"invalid created_at {value!r}: use an ISO 8601 time or epoch seconds"
        )
    try:
        seconds = parse_time(value) if isinstance(value, str) else float(value)
        moment = datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidEventError(
            f"invalid created_at {value!r}: use an ISO 8601 time or epoch seconds"
        ) from None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, rejecting a key given twice rather than keeping the last."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InvalidEventError(f"invalid JSON: key {key!r} appears twice in one object; "
                                    "keep one")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise InvalidEventError(f"invalid JSON: {name} is not a JSON number; use null or a string")


def _decode(data: bytes) -> dict[str, Any]:
    if not data.strip():
        raise InvalidEventError("empty event file")
    try:
        event = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys,
                           parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidEventError(f"event is not UTF-8: {exc.reason} at byte {exc.start}")
    except json.JSONDecodeError as exc:
        raise InvalidEventError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidEventError("invalid JSON: nested too deeply") from None
    except ValueError as exc:
        # For example an integer of more digits than Python converts.
        raise InvalidEventError(f"invalid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidEventError(
            f"event must be a JSON object, got {type(event).__name__}"
        )
    return event


def content_digest(job_type: str, payload: Any, priority: str, meta: Any) -> str:
    """Return a digest of what a job does, so a resubmission of the same job with
    a new created_at is recognised as the same, and a different job is not."""
    canonical = json.dumps([job_type, payload, priority, meta], sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_event(name: str, data: bytes, mtime_ns: int, now: str) -> dict[str, Any]:
    """Return the job an event file describes; raise InvalidEventError with the reason."""
    event = _decode(data)
    unknown = sorted(set(event) - set(EVENT_FIELDS))
    if unknown:
        raise InvalidEventError(
            f"unknown field {unknown[0]!r}; valid fields: {', '.join(EVENT_FIELDS)}"
        )
    if "type" not in event:
        raise InvalidEventError("missing field 'type'")
    job_type = validate_type(event["type"])
    if "payload" not in event:
        raise InvalidEventError("missing field 'payload': use {} for no payload")
    payload = event["payload"]
    if not isinstance(payload, dict):
        raise InvalidEventError(
            f"invalid payload: expected a JSON object, got {type(payload).__name__}"
        )
    priority = event.get("priority", defaults.DEFAULT_PRIORITY)
    if priority not in defaults.PRIORITIES:
        raise InvalidEventError(
            f"invalid priority {priority!r}; valid: {', '.join(defaults.PRIORITIES)}"
        )
    meta = event.get("meta", {})
    if not isinstance(meta, dict):
        raise InvalidEventError(
            f"invalid meta: expected a JSON object, got {type(meta).__name__}"
        )
    if "job_id" in event:
        job_id = validate_job_id(event["job_id"])
    else:
        job_id = derive_job_id(name, data, mtime_ns)
    created_at = _created_at(event["created_at"]) if "created_at" in event else now
    job: dict[str, Any] = {
        "job_id": job_id,
        "type": job_type,
        "payload": payload,
        "priority": priority,
        "created_at": created_at,
        "event": name,
        "event_digest": content_digest(job_type, payload, priority, meta),
    }
    if meta:
        job["meta"] = meta
    return job
