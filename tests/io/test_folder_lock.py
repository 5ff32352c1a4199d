"""One run per result folder: the lock names its owner and never outlives a crashed run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from napari_dinotrack.errors import FolderInUseError, OutputError
from napari_dinotrack.io.folder_lock import FolderLock


def test_a_second_lock_is_refused_with_the_folder_and_the_owner(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderInUseError) as info:
            FolderLock(tmp_path).acquire()
        message = str(info.value)
        assert str(tmp_path) in message and f"process {os.getpid()}" in message
        assert FolderLock(tmp_path).owner().pid == os.getpid()
    assert FolderLock(tmp_path).owner() is None
    assert not (tmp_path / ".napari-dinotrack.lock").exists()  # released cleanly: nothing left
    with FolderLock(tmp_path):  # and free again
        pass


def test_a_killed_owner_leaves_the_file_but_not_the_lock(tmp_path):
    script = f"""
        import os
        from napari_dinotrack.io.folder_lock import FolderLock
        FolderLock({str(tmp_path)!r}).acquire()
        os._exit(9)
    """
    assert subprocess.run([sys.executable, "-c", textwrap.dedent(script)]).returncode == 9
    lock_file = tmp_path / ".napari-dinotrack.lock"
    assert lock_file.exists() and '"pid"' in lock_file.read_text()
    assert FolderLock(tmp_path).owner() is None
    with FolderLock(tmp_path) as lock:
        assert lock.held


def test_a_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OutputError) as info:
        FolderLock(folder).acquire()
    assert str(info.value).startswith(f"{folder}: cannot be written (Read-only file system)")


def test_a_planted_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / ".napari-dinotrack.lock").symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        FolderLock(folder).acquire()
    assert target.read_text() == "keep me"
