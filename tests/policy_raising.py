"""A policy that always raises."""

from chronosq import hookimpl

POLICY_NAME = "raising"


@hookimpl
def chronosq_choose_worker(job, candidates, context):
    raise ValueError("this policy is broken")
