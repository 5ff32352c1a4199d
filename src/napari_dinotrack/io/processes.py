"""Who is writing: this process's identity, and whether another process on this machine is still alive.

Lock files and temporary files carry the writer's host and process id, so that what a crashed
run left behind can be told from what a live one is still using.
"""

from __future__ import annotations

import hashlib
import os
import socket

__all__ = ["host_name", "host_tag", "pid_alive"]


def host_name() -> str:
    """This machine's name, as other processes on a shared folder see it."""
    return socket.gethostname() or "localhost"


def host_tag() -> str:
    """Six hex digits naming this machine, short enough for file names."""
    return hashlib.sha1(host_name().encode("utf-8", "replace")).hexdigest()[:6]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a process of another user counts)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:
    # os.kill(pid, 0) would terminate the process on Windows; ask the kernel instead
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return ctypes.get_last_error() == access_denied  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
