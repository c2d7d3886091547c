"""Every file operation ChronosQ makes on a root goes through this module.

Writes go to a hidden temporary name in the target folder and are renamed into
place, so no reader sees a partly written file. With durability on, the file is
fsynced before its rename and the folder after it, so an acknowledged write
survives a power cut. A failed fsync raises and the operation counts as failed.

`fault_hook`, when set, runs before each operation with the operation's name and
path (for a rename, "SRC -> DST"); tests use it to stop a process or inject an
error at a chosen point.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

fault_hook: Callable[[str, str], None] | None = None
# Called after each successful fsync with the file's path and the bytes it now
# holds on disk, or with a folder's path and None; the power-loss tests use it.
sync_hook: Callable[[Path, bytes | None], None] | None = None

# CRASH_ENV="OP:PATH_PART:MARKER" makes the process SIGKILL itself before the
# first operation OP on a path containing PATH_PART, unless the file MARKER
# exists; it creates MARKER first, so the restarted process runs through. Tests
# use it to crash a real process at an exact point of a transition.
CRASH_ENV = "CHRONOSQ_CRASH_AT"


def _crash_hook_from_env() -> Callable[[str, str], None] | None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return None
    op, part, marker = spec.split(":", 2)

    def crash(current_op: str, path: str) -> None:
        if current_op != op or part not in path:
            return
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    return crash


# FAIL_ENV="ERRNO:OP:PATH_PART:FLAG" makes every operation OP on a path
# containing PATH_PART raise OSError(ERRNO) while the file FLAG exists, as a
# full or failing disk would. OP may be "*" for every operation.
FAIL_ENV = "CHRONOSQ_FAIL_AT"


def _fail_hook_from_env() -> Callable[[str, str], None] | None:
    spec = os.environ.get(FAIL_ENV)
    if not spec:
        return None
    code, op, part, flag = spec.split(":", 3)
    number = getattr(errno, code)

    def fail(current_op: str, path: str) -> None:
        if op in ("*", current_op) and part in path and os.path.exists(flag):
            raise OSError(number, f"{os.strerror(number)} (injected)", path)

    return fail


def _hooks_from_env() -> Callable[[str, str], None] | None:
    hooks = [hook for hook in (_crash_hook_from_env(), _fail_hook_from_env()) if hook]
    if not hooks:
        return None

    def run_all(op: str, path: str) -> None:
        for hook in hooks:
            hook(op, path)

    return run_all


fault_hook = _hooks_from_env()


class NotDurableError(OSError):
    """The rename took place but the fsync after it failed, so a power cut may
    undo it; callers record the move and then report the error."""


def _fsync_after_rename(folders: list[Path]) -> None:
    try:
        for folder in folders:
            fsync_dir(folder)
    except OSError as exc:
        raise NotDurableError(exc.errno, exc.strerror, exc.filename) from exc


def _before(op: str, path: Path | str) -> None:
    if fault_hook is not None:
        fault_hook(op, str(path))


def temp_name(path: Path) -> Path:
    """Return a hidden, unique temporary path beside `path`."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk."""
    _before("fsync_dir", path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if sync_hook is not None:
        sync_hook(path, None)


def write_bytes(path: Path, data: bytes, *, durable: bool, sync_dir: bool = True) -> None:
    """Write `data` to `path` atomically, replacing any file there.

    With `sync_dir` False the folder is not fsynced; a caller writing a batch
    fsyncs it once for all, before anything depends on the batch.
    """
    write_many([(path, data)], durable=durable, sync_dir=sync_dir)


def write_many(entries: list[tuple[Path, bytes]], *, durable: bool,
               sync_dir: bool = True) -> None:
    """Write each `(path, data)` atomically, fsyncing the files together.

    The files are renamed into place in order, after all of them are on disk,
    and each folder is fsynced once. When an operation fails, the files renamed
    before it stay in place and the rest are discarded.
    """
    staged = stage(entries, durable=durable)
    renamed = 0
    try:
        for (path, _), tmp in zip(entries, staged):
            _before("rename", f"{tmp} -> {path}")
            os.rename(tmp, path)
            renamed += 1
    except BaseException:
        for tmp in staged[renamed:]:
            _discard(tmp)
        raise
    if durable and sync_dir:
        _fsync_after_rename(sorted({path.parent for path, _ in entries}))


def stage(entries: list[tuple[Path, bytes]], *, durable: bool) -> list[Path]:
    """Write each entry's data to a hidden temporary file beside its path; return
    the temporary paths in order.

    With durability on, the files are fsynced before this returns, several at
    a time on a few threads, because `os.fsync` releases the GIL and a
    journaling filesystem such as ext4 can commit concurrent fsyncs together.
    """
    staged: list[Path] = []
    fds: list[int] = []
    try:
        for path, data in entries:
            tmp = temp_name(path)
            _before("write", tmp)
            fds.append(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            staged.append(tmp)
            view = memoryview(data)
            while view:
                written = os.write(fds[-1], view)
                view = view[written:]
        if durable:
            for tmp in staged:
                _before("fsync", tmp)
            _fsync_all(fds)
            if sync_hook is not None:
                for tmp, (_, data) in zip(staged, entries):
                    sync_hook(tmp, data)
    except BaseException:
        for fd in fds:
            os.close(fd)
        for tmp in staged:
            _discard(tmp)
        raise
    for fd in fds:
        os.close(fd)
    return staged


# Threads that fsync the files of one batch at once.
SYNC_THREADS = 8
# Smaller batches are fsynced one file after another: handing a few files to
# threads cost more CPU than it saved time on the machine in docs/benchmarks.md.
SYNC_THREADS_MIN_FILES = 8
_sync_pool: ThreadPoolExecutor | None = None


def _fsync_all(fds: list[int]) -> None:
    """fsync every descriptor; raise the first error after all have finished."""
    global _sync_pool
    if len(fds) < SYNC_THREADS_MIN_FILES:
        for fd in fds:
            os.fsync(fd)
        return
    if _sync_pool is None:
        _sync_pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="fsync")
    futures = [_sync_pool.submit(os.fsync, fd) for fd in fds]
    errors = [exc for exc in (future.exception() for future in futures) if exc is not None]
    if errors:
        raise errors[0]


def _discard(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def dumps(obj: Any) -> bytes:
    """Encode a JSON record the way every ChronosQ file stores it."""
    # ASCII escapes keep any string encodable, lone surrogates included.
    return json.dumps(obj, ensure_ascii=True, sort_keys=True, indent=1).encode() + b"\n"


def write_json(path: Path, obj: Any, *, durable: bool, sync_dir: bool = True) -> None:
    """Write `obj` as JSON to `path` atomically."""
    write_bytes(path, dumps(obj), durable=durable, sync_dir=sync_dir)


def read_bytes(path: Path) -> bytes:
    """Return a file's contents."""
    _before("read", path)
    with open(path, "rb") as handle:
        return handle.read()


class NotRegularFileError(ValueError):
    """The path is a FIFO, device, folder or symlink rather than a regular file."""


class TooLargeError(ValueError):
    """The file contains more bytes than the caller accepts."""


def read_regular(path: Path, max_bytes: int) -> bytes:
    """Return a regular file's contents, up to `max_bytes`.

    The file is opened without following symlinks and without blocking, and
    checked through the open descriptor, so a path swapped for a FIFO, a device
    or a link between a check and the read can neither block nor mislead.
    """
    _before("read", path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError("not a regular file")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise TooLargeError(f"over {max_bytes} bytes")
    return data


def read_json(path: Path) -> Any:
    """Return a file's decoded JSON; raises OSError or ValueError."""
    return json.loads(read_bytes(path))


def rename(src: Path, dst: Path, *, durable: bool, sync_dir: bool = True) -> None:
    """Move `src` to `dst`; raises FileNotFoundError when another process moved it first.

    With `sync_dir` False the caller fsyncs both folders once for a batch.
    """
    _before("rename", f"{src} -> {dst}")
    os.rename(src, dst)
    if durable and sync_dir:
        folders = [dst.parent] if src.parent == dst.parent else [dst.parent, src.parent]
        _fsync_after_rename(folders)


def link(src: Path, dst: Path) -> None:
    """Give `src` a second name; raises FileExistsError rather than replace `dst`."""
    _before("link", f"{src} -> {dst}")
    os.link(src, dst)


def unlink(path: Path, *, durable: bool, missing_ok: bool = False,
           sync_dir: bool = True) -> bool:
    """Remove a file; return False when it was already gone and `missing_ok` is set."""
    _before("unlink", path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise
        return False
    if durable and sync_dir:
        fsync_dir(path.parent)
    return True


def listdir(path: Path) -> list[str]:
    """Return the names in a folder, or an empty list when it does not exist."""
    _before("listdir", path)
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def touch(path: Path) -> bool:
    """Set a file's modification time to now; return False when it is gone."""
    _before("touch", path)
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True
