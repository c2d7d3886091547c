"""`chronosq status`: job counts per state and type, workers, supervisor children."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from chronosq import config as config_module
from chronosq import status as status_module
from chronosq.errors import ConfigError
from chronosq.cli.common import RootOption, find_root, handle_errors, load_config, print_json
from chronosq.lifecycle import State, parse_time


def jobs_table(data: dict[str, Any]) -> Table:
    table = Table(title="Jobs")
    table.add_column("type")
    for state in State:
        table.add_column(state.value, justify="right")
    for job_type, counts in sorted(data["types"].items()):
        table.add_row(job_type, *(str(counts[s.value]) for s in State))
    table.add_row("[bold]total[/bold]", *(f"[bold]{data['jobs'][s.value]}[/bold]" for s in State))
    return table


def workers_table(data: dict[str, Any]) -> Table:
    table = Table(title="Workers")
    for column in ("worker", "alive", "pid", "host", "types", "capacity", "queued",
                   "running", "done", "failed", "heartbeat"):
        table.add_column(column)
    for worker in data["workers"]:
        table.add_row(
            worker["worker_id"],
            "person" if worker.get("person") else
            "[green]yes[/green]" if worker["alive"] else "[red]no[/red]",
            str(worker["pid"]) if not worker.get("person") else "-",
            str(worker["host"]),
            ", ".join(worker["types"] or []),
            str(worker["capacity"]),
            str(worker["queued"]),
            str(worker["running"]),
            str(worker.get("done", 0)),
            str(worker.get("failed", 0)),
            f"{worker['heartbeat_age_seconds']:.1f}s ago",
        )
    return table


def children_table(data: dict[str, Any]) -> Table:
    supervisor = data["supervisor"]
    state = "running" if supervisor["alive"] else "not running"
    table = Table(title=f"Supervisor (pid {supervisor['pid'] or '-'}, {state})")
    for column in ("child", "alive", "pid", "uptime", "restarts", "last exit"):
        table.add_column(column)
    now = time.time()
    for child in supervisor["children"]:
        started = child.get("started_at")
        uptime = f"{now - parse_time(started):.0f}s" if started and child["alive"] else "-"
        table.add_row(
            child["role"],
            "[green]yes[/green]" if child["alive"] else "[red]no[/red]",
            str(child.get("pid") or "-"),
            uptime,
            str(child.get("restarts", 0)),
            str(child.get("last_exit") or "-"),
        )
    return table


def backlog_table(data: dict[str, Any]) -> Table:
    """Pending jobs per type by age, in the manner of Postfix's qshape."""
    bounds = data["backlog_by_age"]["bucket_minutes"]
    table = Table(title="Pending backlog by age (minutes)")
    table.add_column("type")
    table.add_column("oldest", justify="right")
    for bound in bounds:
        table.add_column(f"<{bound}" if bound is not None else "older", justify="right")
    for job_type, buckets in data["backlog_by_age"]["types"].items():
        oldest = data["oldest_pending_age_seconds"].get(job_type, 0.0)
        table.add_row(job_type, f"{oldest:.0f}s", *(str(n) for n in buckets))
    return table


def watch_view(data: dict[str, Any], rates: dict[str, float]) -> Group:
    children = children_table(data)
    header = (f"{data['root']}  throughput over the last minute: "
              f"{rates.get('completions', 0.0):.1f} done/s, "
              f"{rates.get('failures', 0.0):.2f} failed/s, "
              f"{rates.get('retries', 0.0):.2f} retried/s")
    parts: list[Any] = [header, jobs_table(data), backlog_table(data), workers_table(data),
                        children]
    if data["ingest"].get("paused"):
        parts.insert(1, f"[red]ingest paused:[/red] {data['ingest']['reason']}")
    parts[1:1] = policy_error_lines(data)
    return Group(*parts)


def policy_error_lines(data: dict[str, Any]) -> list[str]:
    """Return a red line for each type whose policy failed on its last call."""
    return [f"[red]policy {escape(str(e.get('policy')))} of type {escape(job_type)} failed "
            f"at {e.get('at')}, its jobs wait:[/red] {escape(str(e.get('error')))}"
            for job_type, e in sorted(data.get("policy_errors", {}).items())]


def watch_samples(found: Any, config: Any, interval: float) -> Iterator[tuple[dict[str, Any],
                                                                             dict[str, float]]]:
    """Yield the status and the rates over the last minute every `interval` seconds."""
    samples: deque[tuple[float, dict[str, int]]] = deque()
    while True:
        data = status_module.gather(found, config)
        now = time.monotonic()
        samples.append((now, dict(data.get("counters") or {})))
        while samples and now - samples[0][0] > 60.0:
            samples.popleft()
        first_at, first = samples[0]
        span = max(now - first_at, 1e-9)
        rates = {key: (int(value) - int(first.get(key, 0))) / span
                 for key, value in samples[-1][1].items()} if len(samples) > 1 else {}
        yield data, rates
        time.sleep(interval)


def watch(found: Any, config: Any, interval: float, as_json: bool = False) -> None:
    """Redraw the status in place every `interval` seconds until Ctrl-C.

    With `as_json`, or when the output is not a terminal, each redraw is
    printed after the last instead: one JSON object per line, or the tables.
    """
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        if as_json:
            for data, rates in watch_samples(found, config, interval):
                sys.stdout.write(json.dumps(dict(data, rates_per_second=rates), sort_keys=True,
                                            default=str) + "\n")
                sys.stdout.flush()
        elif not sys.stdout.isatty():
            for data, rates in watch_samples(found, config, interval):
                console.print(watch_view(data, rates))
                sys.stdout.flush()
        else:
            with Live(console=console, auto_refresh=False, screen=False) as live:
                for data, rates in watch_samples(found, config, interval):
                    live.update(watch_view(data, rates), refresh=True)
    except KeyboardInterrupt:
        Console(stderr=as_json).print("stopped watching")


@handle_errors
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the data as JSON instead of tables.")
    ] = False,
    watch_mode: Annotated[
        bool, typer.Option("--watch", help="Redraw a live view in place until Ctrl-C; "
                           "when piped, or with --json, print one view or JSON line per "
                           "interval.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between redraws with --watch.")
    ] = 2.0,
    root: RootOption = None,
) -> None:
    """Show job counts per state and type, workers, and the supervisor's children."""
    found = find_root(root).require()
    try:
        config = load_config(found)
    except ConfigError as exc:
        # Status only reads the liveness threshold from the file, so an operator
        # still sees the queue while fixing the configuration.
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {exc}; using defaults")
        config = config_module.parse({})
    if watch_mode:
        watch(found, config, interval, as_json)
        return
    data = status_module.gather(found, config)
    if as_json:
        print_json(data)
        return
    # Ids and types stay whole when the output is not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(jobs_table(data))
    if data["incoming_events"]:
        console.print(f"events in input/ waiting for ingest: {data['incoming_events']}")
    if data["rejected_events"]:
        console.print(f"rejected events in error/: {data['rejected_events']}")
    if data["ingest"].get("paused"):
        console.print(f"[red]ingest paused:[/red] {data['ingest']['reason']}")
    reload = data.get("last_reload")
    if reload and not reload.get("ok"):
        console.print(f"[red]last reload failed at {reload['at']}, running on the previous "
                      f"configuration:[/red] {reload['error']}")
    for line in policy_error_lines(data):
        console.print(line)
    if data["retry_waiting"]:
        console.print(f"pending jobs waiting for their retry time: {data['retry_waiting']}")
    console.print(workers_table(data))
    console.print(children_table(data))


def register(app: typer.Typer) -> None:
    app.command()(status)
