"""`chronosq fsck`: check a root against the lifecycle invariants."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chronosq import fsck as fsck_module
from chronosq.cli.common import (
    RET_ERROR,
    RootOption,
    find_root,
    handle_errors,
    load_config,
    print_json,
)


@handle_errors
def fsck(
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what is safe to fix; report the rest.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as JSON.")] = False,
    root: RootOption = None,
) -> None:
    """Check every job, state record and process record; exit 1 if problems remain.

    Exact on a stopped root; on a running one a job that moves during the check
    can show up as a false alarm.
    """
    found = find_root(root).require()
    problems = fsck_module.check(found, load_config(found), repair=repair)
    remaining = [p for p in problems if not p["repaired"]]
    if as_json:
        print_json(problems)
    elif not problems:
        typer.echo(f"{found.path}: no problems found")
    else:
        table = Table(title=f"{len(problems)} problems, {len(remaining)} remaining")
        for column in ("check", "path", "problem", "repaired"):
            table.add_column(column, overflow="fold")
        for problem in problems:
            table.add_row(problem["check"], problem["path"], problem["message"],
                          "yes" if problem["repaired"] else "no")
        Console().print(table)
    if remaining:
        raise typer.Exit(RET_ERROR)


def register(app: typer.Typer) -> None:
    app.command()(fsck)
