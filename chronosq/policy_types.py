"""Records passed to assignment policies."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class PolicyContext:
    """What a policy knows besides the job: its type's options and its saved state."""

    job_type: str
    policy: str
    options: dict[str, Any]
    state: dict[str, Any]
    state_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)
