"""The dock's "Track a folder" panel: the folder's other videos tracked by a background Dask batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_dinotrack.io.labelme import load_annotations, write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic import make_clip

pytest.importorskip("distributed", reason="the folder batch needs the [batch] extra (dask.distributed)")


def test_the_other_videos_of_the_folder_are_tracked_in_the_background(
    make_napari_viewer_proxy, open_tracker, sample_video: Path, qtbot
):
    folder = sample_video.parent
    clip = make_clip(n_frames=12, height=96, width=128, speed=2.5)
    labelled = clip.write(folder / "mouse1.mp4")
    write_manual(ResultLayout(labelled), clip.annotation(0))
    unlabelled = clip.write(folder / "mouse2.mp4")
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video, short_side=64)
    panel = widget.batch_panel

    panel.run()
    assert panel.is_running and panel.stop_button.enabled and not panel.start.enabled
    assert [line.value for line in panel.lines] == ["mouse1.mp4: waiting", "mouse2.mp4: waiting"]
    qtbot.waitUntil(lambda: panel.summary is not None, timeout=180_000)

    assert str(panel.folder.value) == str(folder)  # the current video's folder
    lines = [line.value for line in panel.lines]
    assert lines[0] == f"mouse1.mp4: tracked 11 frames ({panel.summary.results[0].fps:.1f} frames/s)"
    assert lines[1].startswith("⚠ mouse2.mp4: no seed") and "label one frame" in lines[1]
    assert panel.status.value == "2 videos: 1 tracked, 1 no seed"
    assert sorted(load_annotations(ResultLayout(labelled))) == list(range(12))
    assert not ResultLayout(unlabelled).folder.exists()
    # the video in the viewer is the user's to track: the batch left it alone
    assert sorted(load_annotations(ResultLayout(sample_video))) == [0]
    assert panel.start.enabled and not panel.stop_button.enabled
    widget.shutdown()


def test_a_folder_without_other_videos_says_so(make_napari_viewer_proxy, open_tracker, sample_video: Path):
    viewer = make_napari_viewer_proxy()
    panel = open_tracker(viewer, sample_video).batch_panel
    panel.run()
    assert not panel.is_running
    assert panel.status.value == f"⚠ {sample_video.parent} holds no other videos."
