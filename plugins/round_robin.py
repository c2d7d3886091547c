"""Round-robin: each job goes to the next candidate after the last one chosen.

The last chosen worker id is kept in the policy state, so the rotation goes on
where it stopped after a scheduler restart, and a worker that is full or away is
skipped until it is a candidate again.
"""

from __future__ import annotations

from typing import Any

from chronosq.errors import ConfigError
from chronosq.hookspecs import hookimpl
from chronosq.policy_types import Candidate, Job, PolicyContext


def next_in_rotation(ids: list[str], last: str | None) -> str:
    """Return the first id after `last` in sorted order, wrapping around."""
    ordered = sorted(ids)
    return next((worker_id for worker_id in ordered if last is None or worker_id > last),
                ordered[0])


@hookimpl
def chronosq_choose_worker(
    job: Job, candidates: list[Candidate], context: PolicyContext
) -> str | None:
    if not candidates:
        return None
    chosen = next_in_rotation([c["worker_id"] for c in candidates],
                              context.state.get("last_worker_id"))
    context.state["last_worker_id"] = chosen
    return chosen


@hookimpl
def chronosq_validate_options(
    job_type: str, options: dict[str, Any], policies: list[str]
) -> None:
    for key in sorted(options):
        raise ConfigError(
            f"types.{job_type}.{key}: round_robin takes no {key}; "
            "use policy = \"weighted\" for weights or \"rule_based\" for rules"
        )
