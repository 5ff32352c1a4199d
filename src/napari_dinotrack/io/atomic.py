"""Crash-safe file writes.

The new content goes to a temporary file in the target's own folder (same file system), is
flushed and fsync'ed, and then replaces the target with :func:`os.replace`, which is atomic. A
reader therefore sees either the complete old file or the complete new one, never half of
either. If anything fails before the replace, the temporary file is removed and the target is
left untouched; the error (:class:`~napari_dinotrack.errors.OutputError`) names the target, never
the temporary file.

Inside :class:`FolderSyncs` (the result writer's thread runs in one) the fsync of the folder, which
makes the replace itself durable, waits for the next of its periodic flushes: the file's content is
still on the disk before it takes the target's name, so a power cut may cost the newest files (they
are tracked again) but never leaves a damaged one; a killed process loses nothing.

Only a hard kill between creating the temporary file and the replace leaves it behind. Its name,
``.<target name>.dt<host>-<pid>-<random>.tmp``, says which process made it, so
:func:`remove_stale_temp_files` can delete the ones whose process is gone, at the next run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ..errors import OutputError
from .processes import host_tag, pid_alive

__all__ = ["FolderSyncs", "atomic_write_bytes", "atomic_write_text", "output_error", "remove_stale_temp_files"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.dt(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")  # written before the name carried its process
FOREIGN_TEMP_AGE_S = 24 * 3600  # a temporary file from another machine is surely stale after a day
FOLDER_SYNC_INTERVAL_S = 1.0  # how long a replace may wait for its folder's fsync inside FolderSyncs
_batched = threading.local()  # this thread's FolderSyncs, if any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    The folder must exist. An existing target keeps its permission bits; a new one gets the
    usual ``0o666 & ~umask``. Any failure raises :class:`OutputError` naming ``path``.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.dt{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        # os.open with an explicit mode lets the umask apply, exactly like a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise output_error(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_data(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise output_error(target, exc) from None
        raise
    syncs: FolderSyncs | None = getattr(_batched, "syncs", None)
    if syncs is None:
        _fsync_dir(target.parent)
    else:
        syncs.add(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation) and return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _write_data(fh: BinaryIO, data: bytes) -> None:
    fh.write(data)


def output_error(target: Path, exc: OSError) -> OutputError:
    """The user-facing error for an ``OSError`` met while writing ``target``."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    folder = target.parent
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return OutputError(
            target,
            f"cannot be written: the disk is full ({reason})",
            f"Free some space on the drive holding {folder} (or choose another result folder "
            "with --out) and run again; everything written so far is kept.",
            code,
        )
    if code == errno.EISDIR or target.is_dir():
        return OutputError(
            target,
            "is a folder, so the file cannot be written there",
            "Move or rename that folder and run again.",
            code,
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            target,
            f"cannot be written ({reason})",
            f"Make sure you may write to {folder} and that {target.name} is not read-only or "
            "locked (e.g. `chattr -i`), or choose another result folder (--out).",
            code,
        )
    if code == errno.ENOENT and not folder.is_dir():
        return OutputError(
            target,
            f"cannot be written: its folder {folder} does not exist",
            "Create the folder or choose another one.",
            code,
        )
    return OutputError(target, f"cannot be written ({reason})", "Check the drive and the folder, then run again.", code)


def remove_stale_temp_files(folder: str | os.PathLike[str], owned: Callable[[str], bool]) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder``; return what was deleted.

    Only temporary files of a target that ``owned(name)`` claims are touched, and only when the
    process that made them is gone: on this machine its pid is no longer alive; from another
    machine it is more than a day old. Files of older versions (no process in their name) go too.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    here, now = host_tag(), time.time()
    for entry in entries:
        match = _TEMP.match(entry.name) or _LEGACY_TEMP.match(entry.name)
        if match is None or not owned(match.group("name")):
            continue
        if match.re is _LEGACY_TEMP:
            stale = True
        elif match.group("host") == here:
            stale = not pid_alive(int(match.group("pid")))
        else:
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_TEMP_AGE_S
            except OSError:
                continue
        if stale and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


class FolderSyncs:
    """While entered, this thread's atomic writes leave their folders' fsyncs to :meth:`flush`.

    A writer that replaces many files a second calls :meth:`flush_if_due` as it goes; leaving the
    block flushes whatever is pending, however it is left.
    """

    def __init__(self, interval_s: float = FOLDER_SYNC_INTERVAL_S) -> None:
        self.interval_s = float(interval_s)
        self._pending: set[Path] = set()
        self._flushed = time.monotonic()
        self._outer: FolderSyncs | None = None

    def add(self, folder: Path) -> None:
        """A file was just renamed into ``folder``."""
        self._pending.add(folder)

    def flush_if_due(self) -> None:
        """:meth:`flush` when the last one is ``interval_s`` ago."""
        if self._pending and time.monotonic() - self._flushed >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """fsync every folder written since the last flush."""
        pending, self._pending = self._pending, set()
        for folder in pending:
            _fsync_dir(folder)
        self._flushed = time.monotonic()

    def __enter__(self) -> FolderSyncs:
        self._outer = getattr(_batched, "syncs", None)
        _batched.syncs = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _batched.syncs = self._outer
        self.flush()


def _fsync_dir(folder: Path) -> None:
    """Best effort: make the rename itself durable (POSIX only, silently skipped elsewhere)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
