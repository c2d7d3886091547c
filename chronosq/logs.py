"""Structured JSON logging shared by every ChronosQ process.

Each record is one JSON object on one line. All processes append to the same
file; each line goes out in a single write on a file opened with O_APPEND, so
lines from different processes never mix. The handler reopens the file when
logrotate moves it away.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import traceback
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


def setup(root: Root, role: str, level: str, file: str, stderr: bool) -> None:
    """Send this process's logs to the root's JSON log; call once per entry point."""
    global _ROLE
    _ROLE = role
    formatter = JsonFormatter()
    top = logging.getLogger()
    for handler in list(top.handlers):
        top.removeHandler(handler)
        handler.close()
    path = root.path / file
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    file_handler.setFormatter(formatter)
    top.addHandler(file_handler)
    if stderr:
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
