"""A real full disk: a small ext4 image loop-mounted under the test's folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    Processes,
    all_job_files,
    drop_event,
    finished,
    log_events,
    names,
    status_json,
    wait_for,
    write_config,
)

MiB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path: Path):
    """Mount a 24 MiB ext4 filesystem with no blocks reserved for root."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("mounting a loop filesystem needs root and mkfs.ext4")
    image = tmp_path / "disk.img"
    mount = tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(24 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop filesystem here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def fill(path: Path, leave_bytes: int) -> None:
    """Write a filler file until at most `leave_bytes` are free (0: until ENOSPC)."""
    chunk = b"\0" * (256 * 1024)
    with open(path, "ab") as handle:
        try:
            while free_bytes(path.parent) > leave_bytes + len(chunk):
                handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            if leave_bytes == 0:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError:
            pass


def test_full_disk_pauses_and_resumes(small_fs, tmp_path):
    root = small_fs / "root"
    subprocess.run([sys.executable, "-m", "chronosq", "init", "--root", str(root)],
                   check=True, capture_output=True)
    write_config(root, {"ingest": {"min_free_bytes": 8 * MiB}})
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    procs = Processes(root, logs_dir)
    try:
        procs.supervisor()
        worker = procs.worker("w1", "t", handler="fixtures:pause", capacity=1)
        for i in range(4):
            drop_event(root, f"busy{i}.json", {"type": "t", "payload": {"seconds": 0.5}})
        wait_for(lambda: len(names(root / "input")) == 0, 30, "the first events ingested")

        below_minimum = small_fs / "filler_low"
        fill(below_minimum, 2 * MiB)
        for i in range(20):
            drop_event(root, f"late{i}.json", {"type": "t", "payload": {"seconds": 0.01}})
        wait_for(lambda: status_json(root)["ingest"]["paused"], 30, "ingest to pause")
        reason = status_json(root)["ingest"]["reason"]
        assert "below ingest.min_free_bytes=8388608" in reason
        completely = small_fs / "filler_full"
        fill(completely, 0)
        wait_for(lambda: any(e["event"] in ("worker.io_error", "process.io_error")
                             for e in log_events(root)) or finished(root, "output", 4),
                 30, "the busy jobs to hit the full disk or finish")
        assert len(names(root / "input")) == 20

        completely.unlink()
        below_minimum.unlink()

        wait_for(lambda: finished(root, "output", 24), 90, "all 24 jobs in output/")
        assert not status_json(root)["ingest"]["paused"]
        events = [e["event"] for e in log_events(root)]
        assert "ingest.paused" in events
        assert "ingest.resumed" in events
        assert worker.poll() is None
        assert all(c["restarts"] == 0 for c in status_json(root)["supervisor"]["children"])
        for path in all_job_files(root):
            json.loads(path.read_text())
    finally:
        procs.stop_all()
        # Keep the log for a failed run; the filesystem goes with the fixture.
        shutil.copytree(root / "logs", tmp_path / "root-logs", dirs_exist_ok=True)
