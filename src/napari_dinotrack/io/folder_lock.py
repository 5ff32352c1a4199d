"""One run at a time per result folder.

A run holds an operating-system lock on ``<folder>/.napari-dinotrack.lock`` (``flock`` on POSIX,
``msvcrt.locking`` on Windows) and writes its owner (process, machine, start time, command) into
it. The operating system drops the lock when the process ends, however it ends, so a run that
crashed or was killed never leaves the folder stuck: the file stays, but whoever comes next gets
the lock and overwrites the owner. A second run while the first is alive gets
:class:`~napari_dinotrack.errors.FolderInUseError` naming the folder and that run.

Where the file system offers no locks at all (some network mounts), the recorded owner decides:
the folder is in use while that process is alive on this machine.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from ..errors import FolderInUseError, OutputError
from .paths import LOCK_NAME
from .processes import host_name, pid_alive

__all__ = ["FolderLock", "LockOwner"]

# Windows locks byte ranges against reading too: lock a byte far past the owner text, which stays readable
_WINDOWS_LOCK_OFFSET = 1 << 30
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.ENOSYS)


@dataclass(frozen=True)
class LockOwner:
    """The run that holds (or last held) a folder's lock."""

    pid: int
    host: str
    started: str  # local time, ISO 8601
    command: str

    @classmethod
    def this_process(cls) -> LockOwner:
        return cls(
            os.getpid(),
            host_name(),
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300],
        )

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, started {self.started}" + (
            f", command: {self.command}" if self.command else ""
        )

    def alive(self) -> bool:
        """Whether the owner still runs (a process on another machine is assumed to)."""
        return self.host != host_name() or pid_alive(self.pid)


class FolderLock:
    """The right to write one result folder, held from :meth:`acquire` to :meth:`release`.

    Use as a context manager. Two locks on one folder exclude each other also within one
    process (two docks, two threads).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock; FolderInUseError when another live run has it, OutputError when it cannot be written."""
        if self._fd is not None:
            return self
        for _ in range(20):  # retried only when the file was replaced under us
            fd = self._open()
            try:
                locked = _try_lock(fd)
                if locked is False:
                    raise self._in_use(_read_owner(fd))
                if locked is None:  # no locks on this file system: trust the recorded owner
                    owner = _read_owner(fd)
                    if owner is not None and owner.alive() and owner.pid != os.getpid():
                        raise self._in_use(owner)
                if not _same_file(fd, self.path):
                    # the previous holder removed the file after we opened it: lock the new one
                    _close(fd)
                    continue
                _write_owner(fd, LockOwner.this_process())
            except OSError as exc:
                _close(fd)
                if isinstance(exc, OutputError):
                    raise
                raise OutputError(
                    self.path,
                    f"cannot be written ({exc.strerror or exc})",
                    "Check the drive holding the result folder.",
                    exc.errno,
                ) from None
            except BaseException:
                _close(fd)
                raise
            self._fd = fd
            return self
        raise FolderInUseError(
            f"{self.folder}: its lock file {LOCK_NAME} keeps changing; another run is starting "
            "there. Wait for it, or choose another result folder (--out)."
        )

    def release(self) -> None:
        """Give the lock up (idempotent). The file is removed where the system allows it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        if os.name != "nt":  # Windows cannot remove an open file
            with contextlib.suppress(OSError):
                if _same_file(fd, self.path):
                    os.unlink(self.path)
        _close(fd)

    def owner(self) -> LockOwner | None:
        """Who holds the lock now, or None when nobody does."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            owner = _read_owner(fd)
            if self._fd is None and owner is not None:
                probe = _try_lock(fd, shared=True)
                if probe is True:
                    _unlock(fd)
                    return None
                if probe is None and not owner.alive():
                    return None
            return owner
        finally:
            _close(fd)

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(
                    self.path, "is a symbolic link", "Remove it; the lock must be a plain file.", exc.errno
                ) from None
            raise OutputError(
                self.folder,
                f"cannot be written ({exc.strerror or exc})",
                "Choose a result folder you may write to (--out), or make this one writable.",
                exc.errno,
            ) from None

    def _in_use(self, owner: LockOwner | None) -> FolderInUseError:
        who = owner.describe() if owner is not None else "another process"
        return FolderInUseError(
            f"{self.folder} is being written by another tracking run ({who}). Wait for it to finish or stop it, "
            "or write to another result folder (--out)."
        )

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _try_lock(fd: int, shared: bool = False) -> bool | None:
    """True: locked; False: somebody else holds it; None: this file system has no locks."""
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        else:
            import fcntl

            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return None
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", -1)):
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)  # closing drops the lock too


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_owner(fd: int) -> LockOwner | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8"))
        return LockOwner(int(data["pid"]), str(data["host"]), str(data["started"]), str(data.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_owner(fd: int, owner: LockOwner) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(asdict(owner)).encode("utf-8"))
