"""`chronosq status`: job counts per state and type, workers, supervisor children."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chronosq import config as config_module
from chronosq import status as status_module
from chronosq.errors import ConfigError
from chronosq.cli.common import RootOption, find_root, handle_errors, print_json
from chronosq.lifecycle import State


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
                   "running", "heartbeat"):
        table.add_column(column)
    for worker in data["workers"]:
        table.add_row(
            worker["worker_id"],
            "[green]yes[/green]" if worker["alive"] else "[red]no[/red]",
            str(worker["pid"]),
            str(worker["host"]),
            ", ".join(worker["types"] or []),
            str(worker["capacity"]),
            str(worker["queued"]),
            str(worker["running"]),
            f"{worker['heartbeat_age_seconds']:.1f}s ago",
        )
    return table


def children_table(data: dict[str, Any]) -> Table:
    supervisor = data["supervisor"]
    state = "running" if supervisor["alive"] else "not running"
    table = Table(title=f"Supervisor (pid {supervisor['pid'] or '-'}, {state})")
    for column in ("child", "alive", "pid", "restarts", "last exit"):
        table.add_column(column)
    for child in supervisor["children"]:
        table.add_row(
            child["role"],
            "[green]yes[/green]" if child["alive"] else "[red]no[/red]",
            str(child.get("pid") or "-"),
            str(child.get("restarts", 0)),
            str(child.get("last_exit") or "-"),
        )
    return table


@handle_errors
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the data as JSON instead of tables.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Show job counts per state and type, workers, and the supervisor's children."""
    found = find_root(root).require()
    try:
        config = config_module.load(found)
    except ConfigError as exc:
        # Status only reads the liveness threshold from the file, so an operator
        # still sees the queue while fixing the configuration.
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {exc}; using defaults")
        config = config_module.parse({})
    data = status_module.gather(found, config)
    if as_json:
        print_json(data)
        return
    # Ids and types stay whole when the output is not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(jobs_table(data))
    if data["rejected_events"]:
        console.print(f"rejected events in error/: {data['rejected_events']}")
    if data["ingest"].get("paused"):
        console.print(f"[red]ingest paused:[/red] {data['ingest']['reason']}")
    if data["retry_waiting"]:
        console.print(f"pending jobs waiting for their retry time: {data['retry_waiting']}")
    console.print(workers_table(data))
    console.print(children_table(data))


def register(app: typer.Typer) -> None:
    app.command()(status)
