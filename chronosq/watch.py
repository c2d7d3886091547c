"""Wake a process when files arrive in the folders it serves.

On Linux the waiter uses inotify, so a process sleeps until a file is created,
renamed into or out of a watched folder, or a signal arrives. Elsewhere it falls
back to waking every `fallback_seconds`. Signals reach the waiter through a
wake-up pipe, so a handler that only sets a flag still ends the wait at once.
"""

from __future__ import annotations

import logging
import os
import select
import signal
from pathlib import Path

try:
    from inotify_simple import INotify
    from inotify_simple import flags as _flags
except ImportError:  # pragma: no cover - non-Linux platforms
    INotify = None

logger = logging.getLogger(__name__)

if INotify is not None:
    WATCH_MASK = (
        _flags.CREATE
        | _flags.CLOSE_WRITE
        | _flags.MOVED_TO
        | _flags.MOVED_FROM
        | _flags.DELETE
    )


class Waiter:
    """Block until a watched folder changes, a signal arrives, or a timeout ends."""

    def __init__(self, fallback_seconds: float = 0.2):
        self.fallback_seconds = fallback_seconds
        self._inotify = None
        if INotify is not None:
            try:
                self._inotify = INotify()
            except OSError as exc:
                # EMFILE here means the per-user inotify instance limit is reached.
                logger.warning("inotify unavailable (%s); polling every %gs instead",
                               exc, fallback_seconds)
        self._watched: dict[Path, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.overflowed = False

    def install_signal_wakeup(self) -> None:
        """Make every caught signal end a wait; call from the main thread."""
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def watch(self, path: Path) -> None:
        """Watch a folder for new, renamed and removed entries."""
        if self._inotify is None or path in self._watched:
            return
        try:
            self._watched[path] = self._inotify.add_watch(path, WATCH_MASK)
        except FileNotFoundError:
            return
        except OSError as exc:
            # ENOSPC here means the inotify watch limit is reached; the rescan
            # interval keeps the process correct, only slower to wake.
            logger.warning("cannot watch %s: %s", path, exc)

    def forget(self, path: Path) -> None:
        wd = self._watched.pop(path, None)
        if wd is not None and self._inotify is not None:
            try:
                self._inotify.rm_watch(wd)
            except OSError:
                pass

    def wait(self, timeout: float) -> list[tuple[Path, str]]:
        """Wait up to `timeout` seconds; return the (folder, name) pairs that changed.

        Without inotify the list is always empty and callers rescan their folders.
        After a queue overflow `overflowed` is set and callers must rescan too.
        """
        fds = [self._wake_r]
        if self._inotify is not None:
            fds.append(self._inotify.fileno())
        else:
            timeout = min(timeout, self.fallback_seconds)
        ready, _, _ = select.select(fds, [], [], max(timeout, 0))
        if self._wake_r in ready:
            self._drain_wakeups()
        if self._inotify is None or self._inotify.fileno() not in ready:
            return []
        folders = {wd: path for path, wd in self._watched.items()}
        changes = []
        for event in self._inotify.read(timeout=0):
            if event.mask & _flags.Q_OVERFLOW:
                self.overflowed = True
                continue
            folder = folders.get(event.wd)
            if event.mask & _flags.IGNORED:
                if folder is not None:
                    self._watched.pop(folder, None)
                continue
            if folder is not None and event.name:
                changes.append((folder, event.name))
        return changes

    @property
    def notifies(self) -> bool:
        """True when changes are reported; False means callers must poll."""
        return self._inotify is not None

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
