"""ChronosQ: a job queue whose only infrastructure is a directory."""

from chronosq.errors import (
    ChronosQError,
    ConfigError,
    InvalidEventError,
    InvalidNameError,
    RootError,
    WorkerError,
)
from chronosq.hookspecs import hookimpl
from chronosq.layout import Root
from chronosq.lifecycle import State
from chronosq.policy_types import Candidate, Job, PolicyContext
from chronosq.worker import JobCanceled, JobFailed, Worker

__all__ = [
    "Candidate",
    "ChronosQError",
    "ConfigError",
    "InvalidEventError",
    "InvalidNameError",
    "Job",
    "JobCanceled",
    "JobFailed",
    "PolicyContext",
    "Root",
    "RootError",
    "State",
    "Worker",
    "WorkerError",
    "hookimpl",
]
