"""`chronosq policy simulate`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chronosq.cli.common import RootOption, find_root, handle_errors, load_config, print_json
from chronosq.simulate import simulate as run_simulation

policy_app = typer.Typer(help="Inspect assignment policies.", no_args_is_help=True)


@policy_app.command()
@handle_errors
def simulate(
    job_type: Annotated[
        str | None, typer.Option("--type", help="Only jobs of this type.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
    root: RootOption = None,
) -> None:
    """Show where the pending jobs would go now, without moving anything."""
    found = find_root(root).require()
    rows = run_simulation(found, load_config(found), job_type)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Pending jobs: {len(rows)}")
    for column in ("job", "type", "priority", "policy", "worker", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["job_id"], row["type"], row["priority"], row["policy"],
                      row["worker_id"] or "-", row["reason"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
