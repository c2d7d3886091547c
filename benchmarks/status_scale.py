"""Time `chronosq status --json` on a root holding many jobs.

    python benchmarks/status_scale.py --jobs 100000

Lays out a root with the given number of job files, half of them finished in
output/ and half pending in jobs/, written directly as ChronosQ writes them,
then times `status --json` twice: the first run reads every job file once to
build run/status-index.json, the second reads only the index and the listings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def lay_out(root: Path, jobs: int) -> None:
    subprocess.run([sys.executable, "-m", "chronosq", "init", "--root", str(root)],
                   check=True, capture_output=True)
    for i in range(jobs):
        finished = i % 2 == 0
        job = {"job_id": f"j{i:07d}", "type": f"type{i % 5}", "payload": {"i": i},
               "priority": "normal", "created_at": "2026-12-04T00:00:00.000000Z"}
        if finished:
            job.update(result={"ok": True}, worker_id=f"w{i % 4}", attempt=1)
        folder = root / ("output" if finished else "jobs")
        (folder / f"{job['job_id']}.json").write_text(json.dumps(job))


def timed_status(root: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "chronosq", "status", "--json",
                           "--root", str(root)], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000,
                        help="jobs to lay out, half finished and half pending (default: 100000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chronosq-status-") as workdir:
        root = Path(workdir) / "root"
        started = time.perf_counter()
        lay_out(root, args.jobs)
        print(f"laid out {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
        os.sync()
        first, data = timed_status(root)
        second, again = timed_status(root)
        assert data["jobs"] == again["jobs"]
        print(f"status --json, first run (builds the index): {first:.2f} s")
        print(f"status --json, second run (index warm):      {second:.2f} s")
        print(f"counts: {data['jobs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
