"""Records passed to assignment policies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict


class Job(TypedDict, total=False):
    """A job as stored in its file."""

    job_id: str
    type: str
    payload: dict[str, Any]
    priority: str
    created_at: str


class Candidate(TypedDict):
    """A live worker that serves the job's type and has room for it."""

    worker_id: str
    host: str
    types: list[str]
    capacity: int
    queued: int
    running: int
    room: int


# (policy name, job, candidates) -> the chosen worker id or None
Delegate = Callable[[str, Job, list[Candidate]], "str | None"]


@dataclass
class PolicyContext:
    """What a policy knows besides the job: its type's options and its saved state.

    `state` is saved under `state_dir` after each call that changes it and given
    back on the next call, across scheduler restarts. `delegate` asks another
    policy by name, with its own saved state, for example as a fallback.
    """

    job_type: str
    policy: str
    options: dict[str, Any]
    state: dict[str, Any]
    state_dir: Path
    delegate: Delegate
