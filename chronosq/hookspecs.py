"""Hook specifications of the `chronosq` plugin project.

A policy is a plugin registered under its policy name. The scheduler calls the
hook on the configured policy alone, so a policy's None means "leave the job
pending" rather than "ask the next plugin".
"""

from __future__ import annotations

from typing import Any

import pluggy

from chronosq.policy_types import Candidate, Job, PolicyContext

PROJECT = "chronosq"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def chronosq_choose_worker(
    job: Job, candidates: list[Candidate], context: PolicyContext
) -> str | None:
    """Return the worker id of the candidate that gets `job`, or None to leave it
    pending. Candidates are live, serve the job's type and have room, in worker id
    order; `context.state` is saved after the call and given back next time."""


@hookspec
def chronosq_validate_options(
    job_type: str, options: dict[str, Any], policies: list[str]
) -> None:
    """Raise ConfigError when a type's options are invalid for this policy; called
    before any process starts. `policies` lists the installed policy names."""
