"""Paths of a ChronosQ root and validation of the names that become path parts."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from chronosq.errors import InvalidNameError, RootError

CONFIG_NAME = "chronosq.toml"
ROOT_ENV = "CHRONOSQ_ROOT"

FOLDERS = (
    "input",
    "jobs",
    "broker/types",
    "hold",
    "quarantine",
    "canceled",
    "output",
    "error",
    "state",
    "workers",
    "logs",
    "run",
    "run/children",
    "run/policies",
    "run/cancel",
)

# Ids may not start with a dot (hidden) or contain a separator, so they stay in
# their folder. Types and worker ids also name folders under broker/.
_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_TYPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")

# Suffixes of the files in a worker's queue folder.
ASSIGNED = ".json"
PROCESSING = ".json.processing"
SUCCESS = ".json.success"
FAILURE = ".json.failure"
REJECTED = ".rejected"
# quarantine/<job_id>.evidence.json holds the evidence of a quarantined job, so
# no job id may end in it.
EVIDENCE = ".evidence"


def validate_job_id(value: object) -> str:
    """Return `value` when it is a safe job id; raise InvalidNameError otherwise."""
    if (not isinstance(value, str) or not _ID_RE.fullmatch(value) or ".." in value
            or value.endswith(EVIDENCE)):
        raise InvalidNameError(
            f"invalid job_id {value!r}: use 1-128 letters, digits, '_', '-' or '.', "
            f"not starting with '.', without '..' and not ending in '{EVIDENCE}'"
        )
    return value


def validate_type(value: object) -> str:
    """Return `value` when it is a safe job type; raise InvalidNameError otherwise."""
    if not isinstance(value, str) or not _TYPE_RE.fullmatch(value):
        raise InvalidNameError(
            f"invalid type {value!r}: use 1-64 letters, digits, '_' or '-', "
            "not starting with '-'"
        )
    return value


def validate_worker_id(value: object) -> str:
    """Return `value` when it is a safe worker id; raise InvalidNameError otherwise."""
    if not isinstance(value, str) or not _TYPE_RE.fullmatch(value):
        raise InvalidNameError(
            f"invalid worker id {value!r}: use 1-64 letters, digits, '_' or '-', "
            "not starting with '-'"
        )
    return value


def job_id_of(name: str, suffix: str = ASSIGNED) -> str | None:
    """Return the job id in a file name ending in `suffix`, or None for other names."""
    if name.startswith(".") or not name.endswith(suffix):
        return None
    return name[: -len(suffix)]


@dataclass(frozen=True)
class Root:
    """The folder holding chronosq.toml and every lifecycle place.

    Each place's path is built once per Root, since the daemons use them for
    every job.
    """

    path: Path

    @classmethod
    def find(cls, path: str | os.PathLike[str] | None = None) -> Root:
        """Return the root at `path`, or at $CHRONOSQ_ROOT, or the current folder."""
        chosen = path or os.environ.get(ROOT_ENV) or "."
        return cls(Path(chosen).resolve())

    def require(self) -> Root:
        """Return self when the root has been initialised; raise RootError otherwise."""
        if not self.config_path.is_file():
            raise RootError(
                f"{self.path} is not a ChronosQ root (no {CONFIG_NAME}): "
                f"run 'chronosq init --root {self.path}' first"
            )
        return self

    @cached_property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @cached_property
    def input(self) -> Path:
        return self.path / "input"

    @cached_property
    def jobs(self) -> Path:
        return self.path / "jobs"

    @cached_property
    def broker(self) -> Path:
        return self.path / "broker" / "types"

    @cached_property
    def hold(self) -> Path:
        return self.path / "hold"

    @cached_property
    def quarantine(self) -> Path:
        return self.path / "quarantine"

    @cached_property
    def canceled(self) -> Path:
        return self.path / "canceled"

    @cached_property
    def cancel_requests(self) -> Path:
        return self.path / "run" / "cancel"

    @cached_property
    def output(self) -> Path:
        return self.path / "output"

    @cached_property
    def error(self) -> Path:
        return self.path / "error"

    @cached_property
    def state(self) -> Path:
        return self.path / "state"

    @cached_property
    def workers(self) -> Path:
        return self.path / "workers"

    @cached_property
    def logs(self) -> Path:
        return self.path / "logs"

    @cached_property
    def run(self) -> Path:
        return self.path / "run"

    @cached_property
    def children(self) -> Path:
        return self.path / "run" / "children"

    @cached_property
    def policies(self) -> Path:
        return self.path / "run" / "policies"

    def queue_dir(self, job_type: str, worker_id: str) -> Path:
        """Return the folder of one worker's queue for one type."""
        return self.broker / job_type / worker_id

    def state_path(self, job_id: str) -> Path:
        return self.state / f"{job_id}.state.json"

    def worker_path(self, worker_id: str) -> Path:
        return self.workers / f"{worker_id}.json"

    def make_folders(self) -> None:
        """Create every folder of the layout that is missing."""
        for folder in FOLDERS:
            (self.path / folder).mkdir(parents=True, exist_ok=True)
