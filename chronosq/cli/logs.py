"""`chronosq logs`: the structured log, filtered; pretty in a terminal, raw when piped."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from chronosq.cli.common import RootOption, find_root, handle_errors, load_config
from chronosq.errors import ConfigError, InvalidEventError
from chronosq.lifecycle import parse_time

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LEVEL_STYLE = {"error": "red", "warning": "yellow", "info": "", "debug": "dim"}
ID_KEYS = ("job_id", "worker_id", "attempt", "child", "state")


def parse_since(value: str, now: float) -> float:
    """Return epoch seconds for '30s', '10m', '2h', '1d' ago or an ISO 8601 time."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if match:
        return now - float(match.group(1)) * UNITS[match.group(2)]
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidEventError(f"invalid --since {value!r}: use 30s, 10m, 2h, 1d or an "
                                "ISO 8601 time") from None


def matches(entry: dict[str, Any], job: str | None, worker: str | None,
            since: float | None) -> bool:
    if job is not None and entry.get("job_id") != job:
        return False
    if worker is not None and entry.get("worker_id") != worker:
        return False
    if since is not None:
        try:
            return parse_time(str(entry.get("time"))) >= since
        except ValueError:
            return False
    return True


def pretty(entry: dict[str, Any]) -> str:
    style = LEVEL_STYLE.get(str(entry.get("level")), "")
    ids = " ".join(f"{key}={entry[key]}" for key in ID_KEYS if key in entry)
    extra = entry.get("error") or entry.get("reason") or ""
    line = (f"{str(entry.get('time', ''))[:23]} {entry.get('role', ''):<10} "
            f"{entry.get('event', ''):<22} {ids} {extra}")
    return f"[{style}]{escape(line)}[/{style}]" if style else escape(line)


class Follower:
    """Read complete lines from a log file, reopening it when it is rotated."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: Any = None
        self.identity: tuple[int, int] | None = None
        self.partial = b""

    def lines(self) -> list[bytes]:
        if self.handle is None or self.rotated():
            if self.handle is not None:
                self.handle.close()
            try:
                self.handle = open(self.path, "rb")
            except FileNotFoundError:
                self.handle = None
                return []
            info = os.fstat(self.handle.fileno())
            self.identity = (info.st_dev, info.st_ino)
        data = self.partial + self.handle.read()
        complete, _, self.partial = data.rpartition(b"\n")
        return complete.split(b"\n") if complete else []

    def rotated(self) -> bool:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (info.st_dev, info.st_ino) != self.identity


@handle_errors
def logs(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines "
                                         "until Ctrl-C; follows logrotate.")] = False,
    job: Annotated[str | None, typer.Option("--job", help="Only lines of this job id.")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="Only lines of this "
                                               "worker id.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only lines from this time "
                                              "on: 30s, 10m, 2h, 1d ago, or ISO 8601.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print JSON lines even in a "
                                      "terminal.")] = False,
    root: RootOption = None,
) -> None:
    """Print the JSON log of every process, filtered."""
    found = find_root(root).require()
    file = load_config(found).get("logging", "file")
    if not file:
        raise ConfigError("logging.file is empty, so the log goes to standard error "
                          "(under systemd: journalctl -u chronosq); set a file to use this")
    path = found.path / file
    start = parse_since(since, time.time()) if since else None
    as_json = raw or not sys.stdout.isatty()
    console = Console(highlight=False)
    follower = Follower(path)
    printed = 0
    try:
        while True:
            for line in follower.lines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not matches(entry, job, worker, start):
                    continue
                printed += 1
                if as_json:
                    sys.stdout.write(line.decode("utf-8", errors="replace") + "\n")
                else:
                    console.print(pretty(entry))
            sys.stdout.flush()
            if not follow:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        return
    if not printed and (job or worker or since):
        # Empty output for a filter is easy to take for a typo, so say so on stderr.
        filters = ", ".join(f"{name} {value!r}" for name, value in
                           (("job", job), ("worker", worker), ("since", since)) if value)
        typer.echo(f"no log lines match {filters} in {path}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(logs)
