"""`chronosq worker`: run a worker with a Python handler or a command."""

from __future__ import annotations

import shutil
import sys
from typing import Annotated

import typer

from chronosq import logs
from chronosq.cli.common import RootOption, find_root, handle_errors, load_config
from chronosq.errors import WorkerError
from chronosq.worker import Worker, load_handler


@handle_errors
def worker(
    ctx: typer.Context,
    worker_id: Annotated[
        str, typer.Option("--worker-id", help="Unique id of this worker, e.g. bot_1.")
    ],
    types: Annotated[
        list[str],
        typer.Option("--type", help="Job type this worker serves; repeat for several."),
    ],
    capacity: Annotated[
        int | None,
        typer.Option(
            "--capacity",
            min=1,
            help="Jobs queued plus running this worker accepts at once "
            "(default: worker.capacity in chronosq.toml).",
        ),
    ] = None,
    handler: Annotated[
        str | None,
        typer.Option(
            "--handler",
            help="Python function module:function called with the job as a dict; "
            "its return value is the result, an exception is a failure.",
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """Serve jobs until SIGTERM or Ctrl-C.

    Give either --handler or a command after `--`: the command runs once per job
    with the job as JSON on stdin; exit status 0 is success with stdout as the
    result, any other status is a failure with the end of stderr as the error.
    """
    command = list(ctx.args)
    if bool(handler) == bool(command):
        raise WorkerError("give either --handler module:function or a command after --")
    if command and shutil.which(command[0]) is None:
        raise WorkerError(f"command {command[0]!r} not found or not executable; "
                          "give a path or a program on PATH")
    found = find_root(root).require()
    config = load_config(found)
    logs.setup(found, "worker", config.get("logging", "level"),
               config.get("logging", "file"), config.get("logging", "stderr"))
    if handler and "" not in sys.path:
        sys.path.insert(0, "")
    runner = Worker(
        found,
        worker_id,
        types,
        handler=load_handler(handler) if handler else None,
        command=command or None,
        capacity=capacity,
        config=config,
    )
    raise typer.Exit(runner.run())


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
        options_metavar="[OPTIONS] [-- COMMAND [ARGS]...]",
    )(worker)
