"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from chronosq.errors import ChronosQError
from chronosq.layout import ROOT_ENV, Root

RET_OK = 0
RET_ERROR = 1

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar=ROOT_ENV,
        help="Root folder of the queue (the folder holding chronosq.toml); "
        "defaults to $CHRONOSQ_ROOT, then the current folder.",
        show_default=False,
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print one red error line on stderr and return the Exit to raise."""
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(RET_ERROR)


def handle_errors(command: F) -> F:
    """Turn a ChronosQError raised by a command into one error line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChronosQError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def find_root(path: Path | None) -> Root:
    return Root.find(path)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
