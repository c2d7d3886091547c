"""Power loss, simulated through the file-operation module.

A recorder notes what each fsync made durable: a file's bytes, or a folder's
entries. At the simulated power cut every folder is put back to its entries at
its last fsync, and every file to its bytes at its last fsync; a file whose
bytes were never synced comes back empty or as NUL bytes, as ext4 can leave it.
Then the pipeline restarts and every acknowledged submit must end in output/.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from harness import Harness

from chronosq import fileops
from chronosq.cli.basic import submit


class PowerCut:
    """What the disk holds after a power cut, given the fsyncs seen so far."""

    def __init__(self, top: Path, seed: int):
        self.top = top
        self.random = random.Random(seed)
        self.data: dict[int, bytes] = {}
        self.entries: dict[Path, dict[str, int]] = {}
        for folder, _, files in os.walk(top):
            self.synced_folder(Path(folder))
            for name in files:
                path = Path(folder) / name
                self.data[os.stat(path).st_ino] = path.read_bytes()

    def synced_folder(self, folder: Path) -> None:
        self.entries[folder] = {
            name: os.stat(folder / name).st_ino
            for name in os.listdir(folder) if (folder / name).is_file()
        }

    def on_sync(self, path: Path, data: bytes | None) -> None:
        if data is None:
            self.synced_folder(path)
        else:
            self.data[os.stat(path).st_ino] = data

    def garbage(self, size: int) -> bytes:
        return b"" if self.random.random() < 0.5 else b"\0" * max(size, 1)

    def cut(self) -> tuple[int, int]:
        """Rewrite the tree as the disk would hold it; return (entries undone, files garbled)."""
        undone = garbled = 0
        for folder, _, files in os.walk(self.top):
            folder_path = Path(folder)
            durable = self.entries.get(folder_path, {})
            contents = {}
            for name in files:
                path = folder_path / name
                contents[name] = (os.stat(path).st_ino, path.read_bytes())
                path.unlink()
            for name, ino in durable.items():
                data = self.data.get(ino)
                if data is None:
                    size = len(contents.get(name, (0, b""))[1])
                    data = self.garbage(size)
                    garbled += 1
                (folder_path / name).write_bytes(data)
            undone += len(set(contents) ^ set(durable))
        return undone, garbled


class PowerFailure(BaseException):
    """Raised at the chosen file operation: the machine stops there."""


def run_with_power_cut(
    tmp_path: Path, durable: bool, stop_at: int | None = None
) -> tuple[list[str], dict[str, int]]:
    """Submit jobs while the pipeline runs, cut the power just before file
    operation `stop_at` (or at the end), restart; return the lost ids."""
    harness = Harness(tmp_path / "root", {"storage": {"durable": durable}})
    worker = harness.worker("w1")
    recorder = PowerCut(harness.path, seed=3)
    operations = 0

    def count(op: str, path: str) -> None:
        nonlocal operations
        operations += 1
        if operations == stop_at:
            raise PowerFailure()

    fileops.sync_hook = recorder.on_sync
    fileops.fault_hook = count
    acknowledged = []
    try:
        for i in range(30):
            job_id = f"j{i:02d}"
            submit("t", payload=f'{{"i": {i}}}', priority="normal", job_id=job_id,
                   root=harness.path)
            acknowledged.append(job_id)
            if i % 3 == 0:
                harness.ingest()
            if i % 5 == 0:
                harness.recover()
                harness.assign()
                assigned = worker.assigned_jobs()
                if assigned:
                    worker.process_first_ready(assigned)
    except PowerFailure:
        pass
    finally:
        fileops.sync_hook = None
        fileops.fault_hook = None
    undone, garbled = recorder.cut()
    fileops.unlink(harness.root.worker_path("w1"), durable=False, missing_ok=True)

    harness.drive()

    finished = {name[: -len(".json")] for name in os.listdir(harness.root.output)}
    lost = [job_id for job_id in acknowledged if job_id not in finished]
    return lost, {"undone": undone, "garbled": garbled, "finished": len(finished),
                  "acknowledged": len(acknowledged), "operations": operations}


def test_acknowledged_submits_survive(tmp_path):
    _, full_run = run_with_power_cut(tmp_path / "full", durable=True)
    cuts = range(7, full_run["operations"], 23)
    changed = 0
    for stop_at in cuts:
        lost, cut = run_with_power_cut(tmp_path / f"cut{stop_at}", True, stop_at)
        assert lost == [], (stop_at, cut)
        changed += cut["undone"] + cut["garbled"]

    print(f"{len(cuts)} power cuts over {full_run['operations']} operations")
    assert full_run["finished"] == 30
    assert changed > 0


def test_without_fsync_submits_are_lost(tmp_path):
    # The same run with durability off must lose acknowledged work; if it did
    # not, the simulation would not be testing anything.
    lost, cut = run_with_power_cut(tmp_path, durable=False)

    assert cut["acknowledged"] == 30
    assert lost != []
