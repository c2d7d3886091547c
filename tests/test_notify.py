"""sd_notify messages sent to a real AF_UNIX datagram socket in place of systemd's."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronosq.notify import Notifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """Bind a datagram socket in tmp_path and return it with its NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def receive_fields(sock: socket.socket) -> dict[str, str]:
    """Read one datagram and return its KEY=VALUE lines as a dict."""
    data = sock.recv(4096).decode()
    assert data.endswith("\n"), f"datagram {data!r} does not end with a newline"
    fields = {}
    for line in data.splitlines():
        key, separator, value = line.partition("=")
        assert separator == "=", f"line {line!r} of datagram {data!r} has no '='"
        fields[key] = value
    return fields


def test_notify_messages_arrive(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled

    assert notifier.ready() is True
    assert receive_fields(sock) == {"READY": "1"}

    assert notifier.status("3 jobs pending") is True
    assert receive_fields(sock) == {"STATUS": "3 jobs pending"}

    assert notifier.stopping() is True
    assert receive_fields(sock) == {"STOPPING": "1"}

    assert notifier.watchdog() is True
    assert receive_fields(sock) == {"WATCHDOG": "1"}


def test_notify_reloading_sends_monotonic_time(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier({"NOTIFY_SOCKET": address}).reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = receive_fields(sock)
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_notify_send_several_fields(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    assert Notifier({"NOTIFY_SOCKET": address}).send(READY=1, STATUS="running") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=running\n"


def test_notify_status_newline_stays_one_line(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    Notifier({"NOTIFY_SOCKET": address}).status("line one\nREADY=1")
    fields = receive_fields(sock)
    assert fields == {"STATUS": "line one READY=1"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux only")
def test_notify_abstract_socket() -> None:
    name = f"chronosq-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.enabled
        assert notifier.ready() is True
        assert receive_fields(sock) == {"READY": "1"}


def test_notify_disabled_without_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send(READY=1) is False
    assert notifier.ready() is False
    assert notifier.status("idle") is False
    assert notifier.stopping() is False
    assert notifier.reloading() is False
    assert notifier.watchdog() is False


def test_notify_empty_socket_is_disabled() -> None:
    assert not Notifier({"NOTIFY_SOCKET": ""}).enabled


def test_notify_missing_socket_returns_false(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    with caplog.at_level(logging.DEBUG, logger="chronosq.notify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    levels = [record.levelno for record in caplog.records if record.getMessage() == "notify.failed"]
    assert levels == [logging.WARNING, logging.DEBUG]


def test_notify_recovers_after_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "late.sock"
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.watchdog() is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        assert notifier.watchdog() is True
        assert receive_fields(sock) == {"WATCHDOG": "1"}
    path.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chronosq.notify"):
        assert notifier.watchdog() is False
    # A failure after a successful send is a new run, so it is a warning again.
    assert [record.levelno for record in caplog.records] == [logging.WARNING]


def test_notify_reads_os_environ_by_default(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier()
    assert notifier.ready() is True
    assert receive_fields(sock) == {"READY": "1"}
    assert notifier.watchdog_interval_seconds() == 2.0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock", **environ})
    assert notifier.watchdog_interval_seconds() == expected
