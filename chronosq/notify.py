"""Report the service's state to systemd with the sd_notify protocol.

The protocol facts used here come from the sd_notify(3) man page and from
sd_watchdog_enabled(3) as shipped with systemd 253:

- The service manager sets NOTIFY_SOCKET to the address of an AF_UNIX datagram
  socket. A value that starts with "@" names a socket in Linux's abstract
  namespace, whose address has a NUL byte in place of the "@".
- A message is one datagram of newline-separated KEY=VALUE assignments, such as
  READY=1, STATUS=text, RELOADING=1, STOPPING=1 and WATCHDOG=1. READY=1 counts
  only for units with Type=notify.
- WATCHDOG_USEC is the watchdog timeout in microseconds. When WATCHDOG_PID is
  set to another process's pid, the watchdog belongs to that process. The man
  page recommends sending WATCHDOG=1 every half of the timeout.

Without NOTIFY_SOCKET every method does nothing and returns False, so the same
code runs unchanged outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

from chronosq import logs

logger = logging.getLogger(__name__)

SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


def socket_address(value: str) -> bytes | None:
    """Return the socket address that a NOTIFY_SOCKET value names, or None when empty."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    return os.fsencode(value)


def watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """Return this process's watchdog timeout in microseconds, or None when it has none."""
    owner = environ.get(WATCHDOG_PID_ENV, "").strip()
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            return None
    try:
        usec = int(environ.get(WATCHDOG_USEC_ENV, "").strip())
    except ValueError:
        return None
    return usec if usec > 0 else None


def encode_message(fields: Mapping[str, object]) -> bytes:
    """Encode assignments as one "KEY=VALUE\\n" line each, with newlines in values replaced."""
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\r", " ").replace("\n", " ")
        lines.append(f"{key}={text}\n")
    return "".join(lines).encode()


class Notifier:
    """A sender of sd_notify messages to the socket named in an environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        source = os.environ if environ is None else environ
        self.socket_value = source.get(SOCKET_ENV, "")
        self.address = socket_address(self.socket_value)
        self.watchdog_usec = watchdog_usec(source, os.getpid())
        # Only the first of a run of failed sends is logged as a warning, so a
        # vanished socket does not add a line for every watchdog ping.
        self.failing = False

    @property
    def enabled(self) -> bool:
        """Whether NOTIFY_SOCKET names a socket to send to."""
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send the assignments as one datagram and return whether it was sent."""
        if self.address is None or not fields:
            return False
        message = encode_message(fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            self.report_failure(exc, fields)
            return False
        self.failing = False
        return True

    def report_failure(self, exc: OSError, fields: Mapping[str, object]) -> None:
        """Log a failed send, as a warning only when the previous send worked."""
        level = logging.DEBUG if self.failing else logging.WARNING
        self.failing = True
        logs.log_event(logger, level, "notify.failed", socket=self.socket_value,
                       keys=sorted(fields), error=str(exc))

    def ready(self) -> bool:
        """Send READY=1: start-up or a reload has finished."""
        return self.send(READY=1)

    def status(self, text: str) -> bool:
        """Send STATUS=text, the one-line status that `systemctl status` shows."""
        return self.send(STATUS=text)

    def stopping(self) -> bool:
        """Send STOPPING=1: the service has begun to shut down."""
        return self.send(STOPPING=1)

    def reloading(self) -> bool:
        """Send RELOADING=1 with MONOTONIC_USEC, the time of the reload on CLOCK_MONOTONIC."""
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=now_usec)

    def watchdog(self) -> bool:
        """Send WATCHDOG=1, the keep-alive that resets the watchdog timer."""
        return self.send(WATCHDOG=1)

    def watchdog_interval_seconds(self) -> float | None:
        """Return half the watchdog timeout in seconds, or None when no watchdog is ours."""
        if self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000
