"""A policy that records every offer in its state folder, then picks the first."""

import json

from chronosq import hookimpl

POLICY_NAME = "recorder"


@hookimpl
def chronosq_choose_worker(job, candidates, context):
    context.state_dir.mkdir(parents=True, exist_ok=True)
    with open(context.state_dir / "offers.jsonl", "a") as offers:
        offers.write(json.dumps({"job_id": job["job_id"], "candidates": candidates}) + "\n")
    return candidates[0]["worker_id"]
