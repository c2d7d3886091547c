"""Handlers that test workers import by `module:function`."""

from __future__ import annotations

import os
import time
from typing import Any


def echo(job: dict[str, Any]) -> dict[str, Any]:
    """Return the payload and the attempt."""
    return {"payload": job["payload"], "attempt": job["attempt"]}


def pause(job: dict[str, Any]) -> dict[str, Any]:
    """Sleep `payload.seconds` (default 0.01), then echo."""
    time.sleep(float(job["payload"].get("seconds", 0.01)))
    return echo(job)


def slow_first_attempt(job: dict[str, Any]) -> dict[str, Any]:
    """Hang on the first attempt, so the worker can be killed mid-job."""
    if job["attempt"] == 1:
        time.sleep(120)
    return echo(job)


def always_fail(job: dict[str, Any]) -> None:
    """Fail every attempt with an error that names the attempt."""
    raise RuntimeError(f"boom on attempt {job['attempt']} in pid {os.getpid()}")


def poison(job: dict[str, Any]) -> dict[str, Any]:
    """Kill the worker running the job when the payload says so; echo otherwise."""
    if job["payload"].get("poison"):
        os.kill(os.getpid(), 9)
    return echo(job)


def busy_loop(job: dict[str, Any]) -> dict[str, Any]:
    """Compute until interrupted, for cancel tests."""
    deadline = time.monotonic() + float(job["payload"].get("seconds", 60))
    while time.monotonic() < deadline:
        sum(range(1000))
    return echo(job)


def exits(job: dict[str, Any]) -> None:
    raise SystemExit(3)


def fail_first(job: dict[str, Any]) -> dict[str, Any]:
    if job["attempt"] == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": job["attempt"]}
