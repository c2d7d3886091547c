"""A short chaos soak in every test run; benchmarks/chaos_soak.py runs the long one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from chaos_soak import run_soak  # noqa: E402


def test_chaos_soak_loses_nothing(tmp_path):
    report = run_soak(tmp_path, jobs=300, workers=3, kill_every=(0.2, 0.6), seed=7,
                      job_seconds=0.02, limit_seconds=60.0, drip_seconds=10.0)

    print(report)
    assert report["drained"]
    assert report["lost"] == 0
    assert report["in_two_places"] == []
    assert report["unfinished"] == []
    assert report["over_max_attempts"] == []
    assert report["unexplained_duplicates"] == []
    assert report["final_places"] == {"succeeded": 300}
    assert sum(report["kills"].values()) >= 15
    assert report["kills"].get("worker", 0) >= 3
    assert report["kills"].get("supervisor", 0) >= 1
