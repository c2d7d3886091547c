"""Weighted: spread jobs over candidates in proportion to configured weights.

Smooth weighted round-robin: on each choice every candidate's running score
grows by its weight, the highest score wins (ties go to the lower worker id) and
the winner's score drops by the sum of the weights. Weights 3 and 1 give the
repeating order A A B A, so the heavier worker gets three jobs of four,
interleaved rather than in bursts. Scores are kept in the policy state, so the
order survives a scheduler restart. Workers without a weight get weight 1.

    [types.render]
    policy = "weighted"
    weights = { gpu_1 = 3, cpu_1 = 1 }
"""

from __future__ import annotations

from typing import Any

from chronosq.errors import ConfigError
from chronosq.hookspecs import hookimpl
from chronosq.policy_types import Candidate, Job, PolicyContext

DEFAULT_WEIGHT = 1


@hookimpl
def chronosq_choose_worker(
    job: Job, candidates: list[Candidate], context: PolicyContext
) -> str | None:
    if not candidates:
        return None
    weights = context.options.get("weights", {})
    scores: dict[str, int] = context.state.setdefault("scores", {})
    total = 0
    best: str | None = None
    for worker_id in sorted(c["worker_id"] for c in candidates):
        weight = int(weights.get(worker_id, DEFAULT_WEIGHT))
        total += weight
        scores[worker_id] = scores.get(worker_id, 0) + weight
        if best is None or scores[worker_id] > scores[best]:
            best = worker_id
    assert best is not None
    scores[best] -= total
    return best


@hookimpl
def chronosq_validate_options(
    job_type: str, options: dict[str, Any], policies: list[str]
) -> None:
    for key in sorted(options):
        if key != "weights":
            raise ConfigError(
                f"types.{job_type}.{key}: weighted takes only weights; valid keys: weights"
            )
    weights = options.get("weights", {})
    for worker_id, weight in sorted(weights.items()):
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ConfigError(
                f"types.{job_type}.weights.{worker_id}: invalid weight {weight!r}; "
                "use a whole number of 1 or more"
            )
