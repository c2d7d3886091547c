"""Run the bundled example end to end: `make demo`.

Makes a fresh root in ./demo-root, starts a real supervisor and three workers
(two Python API workers for thumbnail and review jobs, one command worker for
email jobs), drops the events of examples/sample_events/ into input/ the way a
producer would, waits until every job has finished, prints the status table and
stops every process it started. Exits 0 when all jobs finished as expected.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent / "demo-root"
EVENTS = HERE / "sample_events"
DEADLINE_SECONDS = 60.0
CHRONOSQ = [sys.executable, "-m", "chronosq"]


def run(*args: str) -> str:
    done = subprocess.run([*CHRONOSQ, *args, "--root", str(ROOT)], check=True,
                          capture_output=True, text=True)
    return done.stdout


def start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=HERE.parent)


def drop_events() -> int:
    """Copy each sample event into input/ under a .tmp name, then rename it."""
    count = 0
    for source in sorted(EVENTS.glob("*.json")):
        tmp = ROOT / "input" / f"{source.name}.tmp"
        shutil.copyfile(source, tmp)
        os.rename(tmp, ROOT / "input" / source.name)
        count += 1
    return count


def wait_until_finished(expected: int) -> dict:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status = json.loads(run("status", "--json"))
        jobs = status["jobs"]
        done = jobs["succeeded"] + jobs["failed"] + status["rejected_events"]
        if done >= expected and jobs["pending"] + jobs["assigned"] + jobs["processing"] == 0:
            return status
        time.sleep(0.2)
    raise TimeoutError(f"jobs still unfinished after {DEADLINE_SECONDS:g}s")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    shutil.rmtree(ROOT, ignore_errors=True)
    run("init")
    workers = [
        start([sys.executable, str(HERE / "dummy_worker.py"), "--worker-id", "user_1",
               "--root", str(ROOT)]),
        start([sys.executable, str(HERE / "dummy_worker.py"), "--worker-id", "bot_1",
               "--root", str(ROOT)]),
        start([*CHRONOSQ, "worker", "--root", str(ROOT), "--worker-id", "mailer_1",
               "--type", "email", "--", sys.executable, str(HERE / "send_email.py")]),
    ]
    supervisor = start([*CHRONOSQ, "supervise", "--root", str(ROOT)])
    try:
        expected = drop_events()
        print(f"dropped {expected} events into {ROOT / 'input'}")
        status = wait_until_finished(expected)
        subprocess.run([*CHRONOSQ, "status", "--root", str(ROOT)], check=True)
    except (TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        stop(workers)
        stop([supervisor])
    jobs = status["jobs"]
    print(f"{jobs['succeeded']} succeeded, {jobs['failed']} failed after their retries, "
          f"{status['rejected_events']} malformed event set aside; "
          f"see {ROOT}/output, {ROOT}/error and {ROOT}/logs/chronosq.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
