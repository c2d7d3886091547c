"""Sticky: jobs with the same key go to the same worker, by consistent hashing.

Each candidate owns many points on a hash ring; a job goes to the owner of the
first point at or after the hash of its key. Adding or removing a worker moves
only the keys next to its points, so most customers keep their worker. A job
without the key, or a key whose home worker is full or gone, goes to the next
owner on the ring, which is the same worker for every job of that key.

    [types.orders]
    policy = "sticky"
    options = { key = "customer_id", points = 64 }
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any

from chronosq import Candidate, ConfigError, Job, PolicyContext, hookimpl

POLICY_NAME = "sticky"
DEFAULT_POINTS = 64


def ring_hash(text: str) -> int:
    """Return a stable 64-bit hash; Python's hash() changes between processes."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def build_ring(worker_ids: list[str], points: int) -> list[tuple[int, str]]:
    return sorted(
        (ring_hash(f"{worker_id}#{index}"), worker_id)
        for worker_id in worker_ids
        for index in range(points)
    )


def owner(ring: list[tuple[int, str]], key: str) -> str:
    """Return the worker owning the first ring point at or after the key's hash."""
    position = bisect.bisect_left(ring, (ring_hash(key), ""))
    return ring[position % len(ring)][1]


@hookimpl
def chronosq_choose_worker(
    job: Job, candidates: list[Candidate], context: PolicyContext
) -> str | None:
    if not candidates:
        return None
    options = context.options.get("options", {})
    field = options.get("key", "customer_id")
    value = job.get("payload", {}).get(field)
    key = str(value) if value is not None else job["job_id"]
    ring = build_ring([c["worker_id"] for c in candidates],
                      int(options.get("points", DEFAULT_POINTS)))
    return owner(ring, key)


@hookimpl
def chronosq_validate_options(
    job_type: str, options: dict[str, Any], policies: list[str]
) -> None:
    unknown = sorted(set(options) - {"options"})
    if unknown:
        raise ConfigError(f"types.{job_type}.{unknown[0]}: sticky takes only options "
                          "= { key = ..., points = ... }")
    settings = options.get("options", {})
    for name in sorted(set(settings) - {"key", "points"}):
        raise ConfigError(f"types.{job_type}.options.{name}: unknown option; "
                          "valid: key, points")
    if not isinstance(settings.get("key", "customer_id"), str):
        raise ConfigError(f"types.{job_type}.options.key: expected a payload field name")
    points = settings.get("points", DEFAULT_POINTS)
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ConfigError(f"types.{job_type}.options.points: invalid value {points!r}; "
                          "use a whole number of 1 or more")
