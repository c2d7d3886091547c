"""Handler of the chaos soak: records each execution in a ledger outside the root."""

from __future__ import annotations

import os
import time
from typing import Any

LEDGER_ENV = "CHRONOSQ_SOAK_LEDGER"


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Write a start line, work briefly, write an end line; one write(2) per line."""
    ledger = os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(ledger, f"start {job['job_id']} {job['attempt']} {os.getpid()}\n".encode())
        time.sleep(float(job["payload"].get("seconds", 0.005)))
        os.write(ledger, f"end {job['job_id']} {job['attempt']} {os.getpid()}\n".encode())
    finally:
        os.close(ledger)
    return {"attempt": job["attempt"]}
