"""Structured JSON logging shared by every ChronosQ process.

Each record is one JSON object on one line, and every process appends to the
same file through AppendHandler.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path
from datetime import UTC, datetime
from typing import Any

from chronosq.layout import Root

_ROLE = "cli"


def log_event(
    logger: logging.Logger, level: int, event: str, **fields: Any
) -> None:
    """Log `event` with `fields` (job_id, worker_id, attempt, ...) as JSON keys."""
    logger.log(level, event, extra={"chronosq": fields})


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with its ChronosQ fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="microseconds"
            ),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "role": _ROLE,
            "pid": record.process,
            "logger": record.name,
        }
        fields = getattr(record, "chronosq", None)
        if fields:
            entry.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info:
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class AppendHandler(logging.Handler):
    """Append each record to a file in one write(2) on an O_APPEND descriptor.

    Several processes share the file, and one unbuffered write per line keeps
    their lines whole. The file is reopened when logrotate moves it away. A line
    that cannot be written (disk full) is dropped and reported on stderr; the
    next one is tried afresh.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.fd = -1
        self.identity: tuple[int, int] | None = None
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        info = os.fstat(self.fd)
        self.identity = (info.st_dev, info.st_ino)

    def _reopen_if_moved(self) -> None:
        try:
            info = os.stat(self.path)
            moved = (info.st_dev, info.st_ino) != self.identity
        except FileNotFoundError:
            moved = True
        if moved:
            os.close(self.fd)
            self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", errors="replace")
            self._reopen_if_moved()
            os.write(self.fd, line)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()


def setup(root: Root, role: str, level: str, file: str, stderr: bool) -> None:
    """Send this process's logs to the root's JSON log; call once per entry point."""
    global _ROLE
    _ROLE = role
    formatter = JsonFormatter()
    top = logging.getLogger()
    for handler in list(top.handlers):
        top.removeHandler(handler)
        handler.close()
    if file:
        path = root.path / file
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = AppendHandler(path)
        file_handler.setFormatter(formatter)
        top.addHandler(file_handler)
    if stderr or not file:
        stream_handler = logging.StreamHandler(sys.stderr)
        stream_handler.setFormatter(formatter)
        top.addHandler(stream_handler)
    top.setLevel(level.upper())


def role() -> str:
    """Return the role this process logs under (ingest, scheduler, worker, ...)."""
    return _ROLE


def set_role(name: str) -> None:
    global _ROLE
    _ROLE = name
