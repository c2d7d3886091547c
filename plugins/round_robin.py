"""Round-robin: each job goes to the next candidate after the last one chosen.

The last chosen worker id is kept in the policy state, so the rotation continues
where it stopped after a scheduler restart, and a worker that was full or away
is simply skipped until it is a candidate again.
"""

from __future__ import annotations

from chronosq.hookspecs import hookimpl
from chronosq.policy_types import Candidate, Job, PolicyContext


@hookimpl
def chronosq_choose_worker(
    job: Job, candidates: list[Candidate], context: PolicyContext
) -> str | None:
    if not candidates:
        return None
    ids = sorted(candidate["worker_id"] for candidate in candidates)
    last = context.state.get("last_worker_id")
    chosen = next((worker_id for worker_id in ids if last is None or worker_id > last), ids[0])
    context.state["last_worker_id"] = chosen
    return chosen
