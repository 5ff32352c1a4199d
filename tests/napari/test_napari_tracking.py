"""Tracking from the dock: live updates, stop, correction + "Track from here", a real (tiny) DINOv3."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.io.labelme import frame_source, manual_frames
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.tables import read_tracks_csv


def _check_files_consistent(layout: ResultLayout) -> list[int]:
    """Every frame JSON parses; the CSV has 4 rows for exactly the frames that have a JSON."""
    files = layout.frame_files()
    for path in files.values():
        data = json.loads(path.read_text())
        assert len([s for s in data["shapes"] if s["shape_type"] == "point"]) == 4
    rows = read_tracks_csv(layout.tracks_csv)
    by_frame: dict[int, int] = {}
    for row in rows:
        by_frame[int(row["frame"])] = by_frame.get(int(row["frame"]), 0) + 1
    assert sorted(by_frame) == sorted(files)
    assert set(by_frame.values()) == {4}
    return sorted(files)


@pytest.fixture
def paced_engine(monkeypatch):
    """A warm engine tracks these 16 tiny frames in well under a second: pace it like a real video."""
    from napari_dinotrack.pipeline import DinoKeypointVideoProcessor

    real_iter = DinoKeypointVideoProcessor.iter_results

    def paced(self, *args, **kwargs):
        for result in real_iter(self, *args, **kwargs):
            time.sleep(0.06)
            yield result

    monkeypatch.setattr(DinoKeypointVideoProcessor, "iter_results", paced)


def test_track_sample_live(
    make_napari_viewer_proxy, open_tracker, wait_run, sample_video: Path, clip_shape, paced_engine
):
    n_frames = clip_shape[0]
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    layer = widget.points_layer
    n_seed = len(layer.data)
    cp = widget.config_panel
    cp.preset.value = "fast_small_animals"
    cp.editors["batch_size"].value = 4
    cp.editors["max_templates"].value = 4
    cp.editors["use_optical_flow"].value = False
    seen: list[tuple[int, bool]] = []
    layer.events.data.connect(lambda e: seen.append((len(layer.data), widget.is_running)))
    batches: list[int] = []

    viewer.dims.set_current_step(0, 8)  # the frame on screen is shown as soon as it is tracked
    worker = widget.track()
    assert worker is not None and widget.track_panel.stop.enabled and not widget.track_panel.track.enabled
    worker.yielded.connect(lambda batch: batches.append(len(batch)))
    wait_run(widget)

    assert "error" not in widget.last_summary, widget.last_summary
    assert sum(batches) == n_frames and len(batches) >= 2  # the seed frame comes first
    assert any(running and n > n_seed for n, running in seen), seen  # rows appeared during the run
    assert layer.data.shape == (n_frames * 4, 3)
    assert sorted(set(layer.data[:, 0].astype(int))) == list(range(n_frames))
    assert (layer.features["source"] == "prediction").sum() == (n_frames - 1) * 4
    assert widget.track_panel.progress.value == n_frames - 1
    assert "frames/s" in widget.track_panel.status.value or "Done" in widget.track_panel.status.value
    assert widget.track_panel.track.enabled and not widget.track_panel.stop.enabled
    tracks = widget.display.tracks_layer()
    assert tracks is not None and len(np.unique(tracks.data[:, 0])) == 4
    assert viewer.layers.selection.active is not tracks  # adding the layer did not steal the selection
    layout = ResultLayout(sample_video)
    assert _check_files_consistent(layout) == list(range(n_frames))
    saved = json.loads(layout.config_json.read_text())
    assert saved["batch_size"] == 4 and saved["use_optical_flow"] is False
    # nothing is stale now: a second Track says so and changes nothing
    widget.track()
    wait_run(widget)
    assert widget.last_summary["frames"] == 0 and "up to date" in widget.track_panel.status.value
    widget.shutdown()


def test_stop_midway_keeps_files_intact(
    make_napari_viewer_proxy, open_tracker, wait_run, sample_video: Path, clip_shape, paced_engine
):
    n_frames = clip_shape[0]
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    widget.config_panel.editors["batch_size"].value = 2
    worker = widget.track()
    worker.yielded.connect(lambda _batch: widget.stop())
    wait_run(widget)
    assert widget.last_summary["stopped"] is True
    assert not worker.is_running and not widget.is_running
    frames = _check_files_consistent(ResultLayout(sample_video))
    assert 1 < len(frames) < n_frames
    assert frames == list(range(len(frames)))  # contiguous from the seed
    # resuming tracks only what is missing
    widget.track()
    wait_run(widget)
    assert widget.last_summary["frames"] == n_frames - len(frames)
    assert _check_files_consistent(ResultLayout(sample_video)) == list(range(n_frames))
    widget.shutdown()


def test_correct_and_track_from_here(make_napari_viewer_proxy, open_tracker, wait_run, sample_video: Path, clip_shape):
    from napari.layers.base import ActionType

    n_frames = clip_shape[0]
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    widget.track()
    wait_run(widget)
    layout = ResultLayout(sample_video)
    before = {t: layout.frame_json(t).read_bytes() for t in range(n_frames)}

    t = 6
    viewer.dims.set_current_step(0, t)
    layer = widget.points_layer
    rows = np.flatnonzero((layer.data[:, 0] == t) & (layer.features["keypoint"] == "nose").to_numpy())
    assert len(rows) == 1
    layer.data[rows[0], 1:] += (6.0, 6.0)  # the user drags the nose
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(int(rows[0]),), vertex_indices=((),))
    worker = widget.track_from_here()  # saves the pending correction first
    assert worker is not None
    assert frame_source(layout.frame_json(t)) == "manual" and t in manual_frames(layout)
    wait_run(widget)
    assert "error" not in widget.last_summary, widget.last_summary

    after = {f: layout.frame_json(f).read_bytes() for f in range(n_frames)}
    assert all(after[f] == before[f] for f in range(t))  # frames before t untouched
    assert all(after[f] != before[f] for f in range(t + 1, n_frames))  # re-tracked from the correction
    # the layer shows the new results
    nose = layer.data[(layer.data[:, 0] == t) & (layer.features["keypoint"] == "nose").to_numpy()][0]
    assert layer.features["source"][(layer.data[:, 0] == t)].eq("manual").all()
    saved = json.loads(layout.frame_json(t).read_text())
    saved_nose = next(s for s in saved["shapes"] if s["label"] == "nose")["points"][0]
    assert saved_nose == pytest.approx([nose[2], nose[1]], abs=1e-3)
    _check_files_consistent(layout)
    widget.shutdown()


def test_track_with_tiny_dinov3_from_local_folder(
    make_napari_viewer_proxy, open_tracker, wait_run, sample_video: Path, tmp_path: Path
):
    from napari_dinotrack.synthetic.models import TINY_DINOV3, save_random_dinov3

    folder = save_random_dinov3(tmp_path / "tiny-dinov3", **TINY_DINOV3)

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video, model=str(folder), short_side=128)
    assert widget.backbone_panel.model.value == "local folder…"
    assert f"local folder {folder}" in widget.backbone_panel.source.value
    widget.track_panel.to_end.value = False
    widget.track_panel.end_frame.value = 5
    widget.track()
    wait_run(widget)
    assert "error" not in widget.last_summary, widget.last_summary
    assert widget.last_summary["frames"] == 5
    layout = ResultLayout(sample_video)
    assert sorted(layout.frame_files()) == [0, 1, 2, 3, 4, 5]
    assert widget.backbones.get(widget.backbone_choice()).feature_dim == 64  # the one loaded for the run
    widget.shutdown()


def test_missing_weights_error_is_shown(
    make_napari_viewer_proxy, open_tracker, wait_run, sample_video: Path, tmp_path: Path, monkeypatch
):
    import napari.utils.notifications as notifications

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video, model="dinov3-vits16")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached, offline
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    widget.track()
    wait_run(widget)
    assert errors and "Cannot load the backbone model" in errors[-1]
    assert "HF_HUB_OFFLINE" in widget.backbone_panel.source.value
    assert "error" in widget.last_summary and widget.track_panel.track.enabled
    widget.shutdown()


def test_masks_follow_live_in_a_labels_layer(make_napari_viewer_proxy, open_tracker, wait_run, tmp_path: Path):
    from napari_dinotrack.io.labelme import write_manual
    from napari_dinotrack.io.mask_store import MaskStore
    from napari_dinotrack.synthetic import make_clip

    clip = make_clip(n_frames=10, height=96, width=128, n_instances=1)
    video = clip.write(tmp_path / "masked.mp4")
    layout = ResultLayout(video)
    write_manual(layout, clip.annotation(0, with_polygons=True))
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, video, short_side=96)
    assert widget.labels_layer is None
    viewer.dims.set_current_step(0, 0)
    widget.track()
    wait_run(widget)
    assert "error" not in widget.last_summary, widget.last_summary
    labels = widget.labels_layer
    assert labels is not None and labels.data.shape == (10, 96, 128)
    assert viewer.layers.index(widget.points_layer) == len(viewer.layers) - 1  # points stay on top
    store = MaskStore(layout.masks_dir)
    assert set(range(1, 10)) <= set(store.frames())
    assert np.asarray(labels.data[0]).max() > 0
    for t in (1, 5, 9):
        np.testing.assert_array_equal(np.asarray(labels.data[t]) > 0, store.read(t)[0] > 0)
    overlap = (np.asarray(labels.data[5]) > 0) & clip.masks[5, 0]
    assert overlap.sum() > 0.5 * clip.masks[5, 0].sum()

    # paint a correction on frame 5 (napari's own tool, undo included) and save it with the seed
    viewer.dims.set_current_step(0, 5)
    labels.selected_label = 1
    labels.brush_size = 3
    labels.paint((5, 2, 2), 1)
    assert labels.data[5, 2, 2] == 1
    labels.undo()
    assert labels.data[5, 2, 2] == 0
    labels.paint((5, 2, 2), 1)
    widget.save_current_frame()
    assert frame_source(layout.frame_json(5)) == "manual"
    assert store.read(5)[0][2, 2] == 1 and store.names() == ["animal1"]
    # the saved frame's outline is taken from the saved mask, so the tracker and LabelMe agree
    from napari_dinotrack.io.labelme import read_frame
    from napari_dinotrack.io.mask_store import polygon_to_mask

    outline = polygon_to_mask(read_frame(layout.frame_json(5)).instances[0].polygon, 96, 128)
    body = store.read_masks(5, ["animal1"])[0]
    assert (outline & body).sum() / (outline | body).sum() > 0.8
    widget.shutdown()


def test_label_glyphs_are_ready_before_the_run(
    make_napari_viewer_proxy, open_tracker, wait_run, sample_video: Path, clip_shape, qtbot, monkeypatch
):
    """The labels' characters are rendered when the keypoints layer is picked, not when a run first shows them.

    napari opens a video on its middle frame; its labels used to appear mid-run there, rendering
    every character at once and freezing the viewer for a moment.
    """
    from napari._vispy.utils.qt_font import QtTextureFont

    rendered: list[str] = []
    render = QtTextureFont._load_char
    monkeypatch.setattr(QtTextureFont, "_load_char", lambda font, char: (rendered.append(char), render(font, char)))
    middle = clip_shape[0] // 2
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    viewer.dims.set_current_step(0, middle)  # where napari opens a video: no labels yet
    qtbot.wait(50)  # the dock prepares the display once the keypoints layer is picked
    viewer.screenshot(canvas_only=True, flash=False)  # the viewer as on screen
    layer = widget.points_layer
    labels = set(layer.text.values)
    assert labels == {f"{i}:{k}" for i, k in zip(layer.features["instance"], layer.features["keypoint"], strict=True)}
    assert set("".join(labels)) <= set(rendered)

    before = len(rendered)
    widget.track()
    wait_run(widget)
    assert "error" not in widget.last_summary, widget.last_summary
    on_screen = np.round(layer.data[:, 0]) == middle
    assert set(layer.text.values[on_screen]) == labels  # the tracked frame shows every label
    viewer.screenshot(canvas_only=True, flash=False)  # draws them
    assert rendered[before:] == []  # ... without rendering a character
    widget.shutdown()
