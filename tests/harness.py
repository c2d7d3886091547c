"""An in-process pipeline on a real root, for tests that restart it step by step."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from chronosq import fileops, lifecycle
from chronosq.config import load as load_config
from chronosq.ingest import Ingest
from chronosq.layout import Root
from chronosq.recovery import Recovery
from chronosq.registry import read_records
from chronosq.scheduler import Scheduler
from chronosq.worker import Worker

SETTINGS = {
    "worker": {"heartbeat_seconds": 0.01, "capacity": 5},
    "recovery": {"interval_seconds": 0.01},
    "defaults": {"max_attempts": 3, "max_crashes": 3, "timeout": 60.0,
                 "retry_backoff_seconds": 0.001, "retry_backoff_max_seconds": 0.001},
}


def ok_handler(job: dict[str, Any]) -> dict[str, Any]:
    return {"ok": job["job_id"]}


def failing_handler(job: dict[str, Any]) -> None:
    raise RuntimeError("handler failed")


def event(job_id: str = "job") -> dict[str, Any]:
    return {"type": "t", "payload": {"n": 1}, "job_id": job_id}


class Harness:
    """A root and the in-process pieces of a pipeline working on it."""

    def __init__(self, path: Path, settings: dict[str, Any] | None = None):
        self.path = path
        Root(path).make_folders()
        (path / "chronosq.toml").write_text(tomli_w.dumps(dict(SETTINGS, **(settings or {}))))
        self.root = Root(path)
        self.config = load_config(self.root)

    def service(self, kind: type) -> Any:
        service = kind(self.root, self.config)
        service.setup()
        return service

    def worker(self, worker_id: str, handler: Callable[..., Any] = ok_handler) -> Worker:
        worker = Worker(self.root, worker_id, ["t"], handler=handler, config=self.config)
        worker.register()
        # The test process plays several workers in turn, and a forked child may
        # take over one of them, so it keeps no worker id lock.
        worker.unlock()
        return worker

    def drop(self, job_id: str = "job") -> None:
        fileops.write_json(self.root.input / f"{job_id}.json", event(job_id),
                           durable=self.config.durable)

    def ingest(self) -> None:
        self.service(Ingest).step()

    def assign(self) -> None:
        self.service(Scheduler).step()

    def recover(self) -> None:
        self.service(Recovery).check()

    def drive(self, handler: Callable[..., Any] = ok_handler) -> None:
        """Run every process in turn until no job is waiting or running.

        Workers registered by this process (the test) are live and serve jobs
        too; a worker registered by the killed child is dead and is reaped.
        Nothing else runs meanwhile, so no process is about to write a state
        record that lags its job's place, and the lag is not waited for.
        """
        saved = lifecycle.STATE_LAG_SECONDS
        lifecycle.STATE_LAG_SECONDS = 0.0
        try:
            self._drive(handler)
        finally:
            lifecycle.STATE_LAG_SECONDS = saved

    def _drive(self, handler: Callable[..., Any]) -> None:
        workers = [self.worker("finisher", handler)]
        for worker_id, record in sorted(read_records(self.root).items()):
            if record["pid"] == os.getpid() and worker_id != "finisher":
                workers.append(Worker(self.root, worker_id, ["t"], handler=handler,
                                      config=self.config))
        for _ in range(60):
            self.ingest()
            self.recover()
            self.assign()
            for worker in workers:
                assigned = worker.assigned_jobs()
                if assigned:
                    worker.process_first_ready(assigned)
            self.recover()
            if not self.busy():
                break
            time.sleep(0.002)
        for worker in workers:
            fileops.unlink(self.root.worker_path(worker.worker_id), durable=True,
                           missing_ok=True)

    def busy(self) -> bool:
        if any(not n.startswith(".") for n in os.listdir(self.root.input)):
            return True
        if any(n.endswith(".json") for n in os.listdir(self.root.jobs)):
            return True
        return any(not n.startswith(".")
                   for q in self.root.broker.glob("*/*") for n in os.listdir(q))
