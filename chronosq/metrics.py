"""Render `chronosq status` data as Prometheus metrics in the text exposition format.

Each metric gets a "# HELP" and a "# TYPE" line followed by its samples, one
`name{label="value",...} number` line each. Label values escape backslash,
double quote and newline as \\\\, \\" and \\n. write_textfile() replaces a file
atomically, for node_exporter's textfile collector, which reads `*.prom` files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chronosq import fileops

# The keys render() reads from its counters argument, with each metric's help text.
COUNTERS = {
    "completions": "Jobs that succeeded and moved to output/.",
    "failures": "Jobs that failed after their last attempt and moved to error/.",
    "retries": "Failed attempts whose job went back to pending for another attempt.",
    "recoveries": "Claims that recovery requeued because their worker died "
                  "or stopped refreshing them.",
}

Labels = Mapping[str, str]
Sample = tuple[Labels, float]


def escape_label_value(value: str) -> str:
    """Escape backslash, double quote and newline in a label value."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape backslash and newline in HELP text."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Format a sample value, with +Inf, -Inf and NaN spelled as the format requires."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def format_labels(labels: Labels) -> str:
    """Format labels as {name="value",...}, sorted by name, or "" when there are none."""
    if not labels:
        return ""
    pairs = ",".join(f'{name}="{escape_label_value(str(labels[name]))}"'
                     for name in sorted(labels))
    return "{" + pairs + "}"


def metric_lines(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """Return the HELP and TYPE lines of one metric followed by its sample lines."""
    lines = [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        lines.append(f"{name}{format_labels(labels)} {format_value(value)}")
    return lines


def job_samples(data: Mapping[str, Any]) -> list[Sample]:
    """Return one sample per job type and lifecycle state from `data["types"]`."""
    samples: list[Sample] = []
    for job_type, counts in sorted(data.get("types", {}).items()):
        for state, count in sorted(counts.items()):
            samples.append(({"state": state, "type": job_type}, count))
    return samples


def oldest_pending_samples(data: Mapping[str, Any]) -> list[Sample]:
    """Return the age in seconds of each type's oldest pending job."""
    ages = data.get("oldest_pending_age_seconds", {})
    return [({"type": job_type}, age) for job_type, age in sorted(ages.items())]


def restart_samples(data: Mapping[str, Any]) -> list[Sample]:
    """Return the restart count of each supervisor child."""
    children = data.get("supervisor", {}).get("children", [])
    samples: list[Sample] = []
    for child in sorted(children, key=lambda record: str(record.get("role", ""))):
        samples.append(({"child": str(child.get("role", "?"))}, int(child.get("restarts", 0))))
    return samples


def worker_samples(data: Mapping[str, Any]) -> list[Sample]:
    """Return the number of live and of dead registered worker processes."""
    workers = [worker for worker in data.get("workers", []) if not worker.get("person")]
    alive = sum(1 for worker in workers if worker.get("alive"))
    return [({"alive": "true"}, alive), ({"alive": "false"}, len(workers) - alive)]


def people_samples(data: Mapping[str, Any]) -> list[Sample]:
    """Return the number of people registered by `chronosq take`."""
    return [({}, sum(1 for worker in data.get("workers", []) if worker.get("person")))]


def counter_lines(counters: Mapping[str, int]) -> list[str]:
    """Return the lines of the four job counters, without a sample for a missing key."""
    lines: list[str] = []
    for key, help_text in COUNTERS.items():
        samples: list[Sample] = [({}, counters[key])] if key in counters else []
        lines += metric_lines(f"chronosq_{key}_total", "counter", help_text, samples)
    return lines


def render(data: Mapping[str, Any], counters: Mapping[str, int]) -> str:
    """Render the dict from chronosq.status.gather() and the job counters as metrics text."""
    lines = metric_lines("chronosq_jobs", "gauge",
                         "Jobs in each lifecycle state, per job type.", job_samples(data))
    lines += metric_lines("chronosq_oldest_pending_age_seconds", "gauge",
                          "Age in seconds of the oldest pending job of each type.",
                          oldest_pending_samples(data))
    lines += counter_lines(counters)
    lines += metric_lines("chronosq_child_restarts_total", "counter",
                          "Restarts of each supervisor child since the supervisor started.",
                          restart_samples(data))
    lines += metric_lines("chronosq_workers", "gauge",
                          "Registered worker processes, by whether the process is alive.",
                          worker_samples(data))
    lines += metric_lines("chronosq_people", "gauge",
                          "People registered as workers by chronosq take.",
                          people_samples(data))
    return "\n".join(lines) + "\n"


def write_textfile(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, through a hidden temporary file and a rename."""
    # The temporary name ends in ".tmp", so the textfile collector, which reads
    # only "*.prom", never reads a partly written file.
    fileops.write_bytes(path, text.encode(), durable=False)
