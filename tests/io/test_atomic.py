"""Atomic writes: errors name the target, and what a killed write leaves is cleaned up later."""

from __future__ import annotations

import errno
import os

import pytest

from napari_dinotrack.errors import OutputError, UserError
from napari_dinotrack.io import atomic
from napari_dinotrack.io.atomic import atomic_write_text, remove_stale_temp_files
from napari_dinotrack.io.processes import host_tag


def test_a_full_disk_names_the_target_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "clip_tracks.csv"
    target.write_text("old")

    def full(fh, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_data", full)
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "new")
    assert isinstance(info.value, UserError) and isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOSPC
    assert str(info.value).startswith(f"{target}: cannot be written: the disk is full")
    assert ".tmp" not in str(info.value)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["clip_tracks.csv"]


def test_a_folder_in_place_of_the_file(tmp_path):
    (tmp_path / "clip_tracks.csv").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path / "clip_tracks.csv", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["clip_tracks.csv"]


def test_a_read_only_folder_names_the_file_not_the_temp_file(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", read_only)
    with pytest.raises(OutputError) as info:
        atomic_write_text(tmp_path / "clip_000000001.json", "{}")
    assert str(info.value).startswith(f"{tmp_path / 'clip_000000001.json'}: cannot be written (Permission denied)")
    assert ".tmp" not in str(info.value)


def test_only_stale_temp_files_of_our_own_targets_are_removed(tmp_path):
    here = host_tag()
    ours = {"clip_000000001.json", "clip_tracks.csv"}
    names = {
        f".clip_000000001.json.dt{here}-999999999-0a1b2c3d.tmp": True,  # ours, its process is gone
        ".clip_tracks.csv.0123456789ab.tmp": True,  # ours, from an older version
        f".clip_tracks.csv.dt{here}-{os.getpid()}-0a1b2c3d.tmp": False,  # ours, being written right now
        f".notes.txt.dt{here}-999999999-0a1b2c3d.tmp": False,  # someone else's target
        ".clip_000000001.json.dtabcdef-999999999-0a1b2c3d.tmp": False,  # another machine, recent
        "clip_000000001.json.tmp": False,
        "scratch.tmp": False,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temp_files(tmp_path, ours.__contains__)
    assert sorted(p.name for p in removed) == sorted(n for n, stale in names.items() if stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, stale in names.items() if not stale)


def test_batched_folder_syncs_keep_each_file_whole_before_it_takes_its_name(tmp_path, monkeypatch):
    """Inside FolderSyncs every file is fsync'ed before the rename; the folder once, when the block ends."""
    events: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: events.append("fsync file"))
    monkeypatch.setattr(atomic, "_fsync_dir", lambda folder: events.append(f"fsync folder {folder.name}"))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b)))
    with atomic.FolderSyncs(interval_s=3600):
        for k in range(3):
            atomic_write_text(tmp_path / f"clip_00000000{k}.json", f"frame {k}")
            assert (tmp_path / f"clip_00000000{k}.json").read_text() == f"frame {k}"  # visible at once
    assert events == ["fsync file", "rename"] * 3 + [f"fsync folder {tmp_path.name}"]
    events.clear()
    atomic_write_text(tmp_path / "clip_tracks.csv", "x")  # outside the block: the folder right away
    assert events == ["fsync file", "rename", f"fsync folder {tmp_path.name}"]
