"""The `chronosq` command line: one typer app, one module per command group."""

from __future__ import annotations

import typer

from chronosq.cli import basic, fsck, jobs, logs, ops, policy, status, worker

app = typer.Typer(
    name="chronosq",
    help="A job queue whose only infrastructure is a directory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
basic.register(app)
worker.register(app)
status.register(app)
policy.register(app)
fsck.register(app)
jobs.register(app)
logs.register(app)
ops.register(app)


def main() -> None:
    """Run the command line; the console script and `python -m chronosq` call this."""
    app()
