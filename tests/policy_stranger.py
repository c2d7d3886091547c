"""A policy that picks a worker nobody offered."""

from chronosq import hookimpl

POLICY_NAME = "stranger"


@hookimpl
def chronosq_choose_worker(job, candidates, context):
    return "nobody_offered_me"
