"""Handlers of the bundled example: thumbnails and review scores.

Each simulates a little work. A payload may ask to fail: `fail_attempts: N`
fails the first N attempts (a flaky dependency that recovers on retry), and
`always_fail: true` fails every attempt, so the job ends in error/.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any


def _maybe_fail(job: dict[str, Any], what: str) -> None:
    payload = job["payload"]
    if payload.get("always_fail"):
        raise RuntimeError(f"{what}: source {payload.get('source', '?')} is corrupt")
    if job["attempt"] <= int(payload.get("fail_attempts", 0)):
        raise ConnectionError(f"{what}: storage timed out on attempt {job['attempt']}")


def thumbnail(job: dict[str, Any]) -> dict[str, Any]:
    """Pretend to resize an image; return the thumbnail's name and size."""
    _maybe_fail(job, "thumbnail")
    payload = job["payload"]
    time.sleep(float(payload.get("work_seconds", 0.05)))
    width = int(payload.get("width", 128))
    digest = hashlib.sha1(str(payload.get("source")).encode()).hexdigest()[:10]
    return {"thumbnail": f"thumbs/{digest}_{width}.jpg", "width": width}


def review(job: dict[str, Any]) -> dict[str, Any]:
    """Score a review text the way a first-pass bot would."""
    _maybe_fail(job, "review")
    text = str(job["payload"].get("text", ""))
    time.sleep(0.02)
    flagged = [word for word in ("refund", "broken", "scam") if word in text.lower()]
    return {"score": max(0, 5 - 2 * len(flagged)), "flagged": flagged,
            "needs_human": bool(flagged)}


def handle(job: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on the job's type."""
    if job["type"] == "thumbnail":
        return thumbnail(job)
    return review(job)
