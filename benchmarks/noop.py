"""Handler of the throughput benchmark: does no work, so only the queue is measured."""

from __future__ import annotations

from typing import Any


def run(job: dict[str, Any]) -> None:
    return None
