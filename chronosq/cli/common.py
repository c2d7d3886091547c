"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import errno
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from chronosq import config as config_module
from chronosq.config import ACTIVE_CONFIG_NAME, Config
from chronosq.errors import ChronosQError, ConfigError
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
        except OSError as exc:
            raise fail(os_error_message(exc)) from None

    return wrapper  # type: ignore[return-value]


# Hints for file errors by errno; other errors get a general hint.
OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space on that disk and try again",
    errno.EDQUOT: "free some space within the disk quota and try again",
    errno.EACCES: "check the permissions, or run as the user who owns the root",
    errno.EPERM: "check the permissions, or run as the user who owns the root",
    errno.EROFS: "the filesystem is mounted read-only; choose a writable path",
    errno.ENOTDIR: "a part of that path is a file, not a folder; choose another path",
    errno.EEXIST: "a file of that name is in the way; move it or choose another path",
    errno.ENOENT: "check that the folders on that path exist",
}


def os_error_message(exc: OSError) -> str:
    """Return one line naming a failed file operation's path, its error and a hint."""
    reason = exc.strerror or str(exc)
    path = exc.filename
    if exc.filename2 is not None:
        path = f"{exc.filename} -> {exc.filename2}"
    where = f": {path}" if path is not None else ""
    hint = OS_ERROR_HINTS.get(exc.errno or 0, "check the path and try again")
    return f"{reason}{where}; {hint}"


def find_root(path: Path | None) -> Root:
    return Root.find(path)


def load_config(found: Root) -> Config:
    """Return the root's configuration. While chronosq.toml is invalid, return the
    one the running supervisor accepted, with a warning, so that producers and
    operators keep working while the file is being fixed."""
    try:
        return config_module.load(found)
    except ConfigError as exc:
        accepted = found.run / ACTIVE_CONFIG_NAME
        if not accepted.is_file():
            raise
        try:
            config = config_module.load(found, accepted)
        except ConfigError:
            raise exc from None
        Console(stderr=True, highlight=False).print(
            f"[yellow]warning:[/yellow] {exc}; using the configuration the supervisor "
            f"accepted, {accepted}", soft_wrap=True)
        return config


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
