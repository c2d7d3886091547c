"""Policies that misbehave in ways a plain exception does not cover."""

import sys

from chronosq import hookimpl

POLICY_NAME = "odd"


@hookimpl
def chronosq_choose_worker(job, candidates, context):
    mode = job["payload"].get("mode")
    if mode == "list":
        return [candidates[0]["worker_id"]]
    if mode == "exit":
        sys.exit(2)
    if mode == "state":
        context.state["bad"] = object()
        return candidates[0]["worker_id"]
    return candidates[0]["worker_id"]
