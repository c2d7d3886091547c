"""A policy that takes far longer than the scheduler allows."""

import time

from chronosq import hookimpl

POLICY_NAME = "slow"


@hookimpl
def chronosq_choose_worker(job, candidates, context):
    time.sleep(30)
    return candidates[0]["worker_id"]
