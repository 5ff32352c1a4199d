from __future__ import annotations

from pathlib import Path

import pytest

from napari_dinotrack.io.paths import ResultLayout


def test_default_layout(tmp_path: Path) -> None:
    video = tmp_path / "videos" / "mouse.day1.mp4"
    layout = ResultLayout(video)
    assert layout.video_path == video
    assert layout.stem == layout.video_stem == "mouse.day1"
    assert layout.folder == tmp_path / "videos" / "mouse.day1"
    assert layout.frame_json(42) == layout.folder / "mouse.day1_000000042.json"
    assert layout.frame_png(42) == layout.folder / "mouse.day1_000000042.png"
    assert layout.tracks_csv == layout.folder / "mouse.day1_tracks.csv"
    assert layout.masks_dir == layout.folder / "mouse.day1_masks"
    assert layout.config_json == layout.folder / "mouse.day1_tracker_config.json"
    assert not layout.folder.exists()
    assert layout.frame_files() == {}
    assert layout.ensure_folder() == layout.folder
    assert layout.folder.is_dir()


def test_frame_of_and_frame_files(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "m.mp4")
    layout.ensure_folder()
    for frame in (10, 2, 300):
        layout.frame_json(frame).write_text("{}")
    layout.frame_png(2).write_bytes(b"")
    (layout.folder / "m_tracker_config.json").write_text("{}")
    (layout.folder / "other_000000005.json").write_text("{}")
    (layout.folder / "m_12.json").write_text("{}")
    assert layout.frame_of(layout.frame_json(7)) == 7
    assert layout.frame_of("x/m_000000007.png") == 7
    assert layout.frame_of("m_tracks.csv") is None
    assert layout.frame_of("other_000000005.json") is None
    assert layout.frame_of("m_0000000070.json") is None
    files = layout.frame_files()
    assert list(files) == [2, 10, 300]
    assert files[10] == layout.frame_json(10)


def test_result_folder_uses_video_stem_when_empty(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "clip.avi", tmp_path / "results")
    assert layout.folder == tmp_path / "results"
    assert layout.frame_json(0).name == "clip_000000000.json"


def test_result_folder_adopts_single_existing_prefix(tmp_path: Path) -> None:
    folder = tmp_path / "annolid_out"
    folder.mkdir()
    (folder / "annolid_out_000000000.json").write_text("{}")
    (folder / "annolid_out_000000010.json").write_text("{}")
    (folder / "annolid_out_000000010.png").write_bytes(b"")
    layout = ResultLayout(tmp_path / "clip.mp4", folder)
    assert layout.video_stem == "clip"
    assert layout.stem == "annolid_out"
    assert list(layout.frame_files()) == [0, 10]
    assert layout.tracks_csv.name == "annolid_out_tracks.csv"


def test_result_folder_with_mixed_prefixes_keeps_video_stem(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a_000000000.json").write_text("{}")
    (folder / "b_000000000.json").write_text("{}")
    layout = ResultLayout(tmp_path / "clip.mp4", folder)
    assert layout.stem == "clip"


def test_bad_frame_numbers(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "m.mp4")
    with pytest.raises(ValueError):
        layout.frame_json(-1)
    with pytest.raises(ValueError):
        layout.frame_json(1.5)  # type: ignore[arg-type]
