"""What a new user ran into when first trying the dock, each pinned down by a test."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.io.labelme import frame_source, read_frame, write_manual, write_prediction
from napari_dinotrack.io.mask_store import MaskStore
from napari_dinotrack.io.paths import ResultLayout


@pytest.fixture
def pair_video(tmp_path: Path) -> Path:
    """A 12-frame clip of two animals with a manual seed (``animal1``, ``animal2``) on frame 0."""
    from napari_dinotrack.synthetic import make_clip

    clip = make_clip(n_frames=12, height=96, width=128, n_instances=2)
    video = clip.write(tmp_path / "pair.mp4")
    write_manual(ResultLayout(video), clip.annotation(0))
    return video


def _pace(monkeypatch, seconds: float) -> None:
    """Pace the engine like a real video (these tiny frames take milliseconds)."""
    from napari_dinotrack.pipeline import DinoKeypointVideoProcessor

    real_iter = DinoKeypointVideoProcessor.iter_results

    def paced(self, *args, **kwargs):
        for result in real_iter(self, *args, **kwargs):
            time.sleep(seconds)
            yield result

    monkeypatch.setattr(DinoKeypointVideoProcessor, "iter_results", paced)


@pytest.fixture
def slow_engine(monkeypatch):
    _pace(monkeypatch, 0.08)


def _consistent(layout: ResultLayout) -> list[int]:
    from napari_dinotrack.io.tables import read_tracks_csv

    frames = sorted(layout.frame_files())
    for f in frames:
        json.loads(layout.frame_json(f).read_text())
    rows = read_tracks_csv(layout.tracks_csv)
    assert sorted({r["frame"] for r in rows}) == frames and len(rows) == 4 * len(frames)
    return frames


# 1 -------------------------------------------------------------------------------------------------------------
def test_painted_label_values_map_to_the_keypoints_animals(
    make_napari_viewer_proxy, open_tracker, pair_video, monkeypatch
):
    import napari.utils.notifications as notifications

    warnings: list[str] = []
    monkeypatch.setattr(notifications, "show_warning", lambda msg: warnings.append(str(msg)))
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, pair_video, short_side=96)
    labels = viewer.add_labels(np.zeros((12, 96, 128), np.uint16), name="Labels")  # napari's "New labels layer"
    widget.layers_panel.masks.value = labels
    labels.brush_size = 5
    labels.paint((0, 30, 40), 1)
    labels.paint((0, 60, 40), 2)
    widget.save_current_frame()
    store = MaskStore(ResultLayout(pair_video).masks_dir)
    assert store.names() == ["animal1", "animal2"]
    masks = store.read_masks(0, ["animal1", "animal2"])
    assert masks[0, 30, 40] and masks[1, 60, 40] and not warnings
    assert "1 = animal1, 2 = animal2" in widget.layers_panel.mask_names.value  # the dock says so
    # a label that stands for no animal is called out
    labels.paint((0, 10, 100), 3)
    widget.save_current_frame()
    assert warnings and "instance3" in warnings[-1] and "no animal" in warnings[-1]
    assert "1 = animal1, 2 = animal2" in warnings[-1]
    widget.shutdown()


# 2 -------------------------------------------------------------------------------------------------------------
def test_closing_the_dock_stops_the_run_and_a_new_dock_waits_for_it(
    make_napari_viewer_proxy, sample_video, monkeypatch, qtbot
):
    from napari_dinotrack.napari.reader import read_video

    _pace(monkeypatch, 0.6)  # the frame in progress when the dock closes takes a while to finish
    viewer = make_napari_viewer_proxy()
    for data, kwargs, kind in read_video(str(sample_video)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-dinotrack", "DINO Keypoint Tracker")
    widget.backbone_panel.set_model("pixel:")
    widget.backbone_panel.short_side.value = 128
    old = widget.track()
    ended: list[float] = []
    old.finished.connect(lambda: ended.append(time.monotonic()))
    qtbot.waitUntil(lambda: widget.run is not None and widget.run.frames_done >= 2, timeout=20000)
    viewer.window.remove_dock_widget(dock)  # what the dock's × does
    assert widget.run.control.stop_requested

    _dock2, again = viewer.window.add_plugin_dock_widget("napari-dinotrack", "DINO Keypoint Tracker")
    again.backbone_panel.set_model("pixel:")
    again.backbone_panel.short_side.value = 128
    assert old.is_running  # still finishing its frame
    assert again.track() is None  # no second writer meanwhile: it waits, and says so
    assert "still stopping" in again.track_panel.status.value
    qtbot.waitUntil(lambda: again.run is not None, timeout=20000)
    from napari_dinotrack.napari.track_run import ACTIVE_RUNS

    assert ended and len(ACTIVE_RUNS) == 1  # it started once the old run had ended
    qtbot.waitUntil(lambda: not again.is_running, timeout=60000)
    assert widget.last_summary.get("stopped") is True and widget.last_summary["frames"] < 15
    assert "error" not in again.last_summary and again.last_summary["frames"] > 0
    assert _consistent(ResultLayout(sample_video)) == list(range(16))
    again.shutdown()


def test_a_folder_in_use_is_a_readable_message(
    make_napari_viewer_proxy, open_tracker, sample_video, wait_run, monkeypatch
):
    import napari.utils.notifications as notifications

    from napari_dinotrack.errors import FolderInUseError
    from napari_dinotrack.pipeline import DinoKeypointVideoProcessor

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    message = f"{ResultLayout(sample_video).folder} is being written by another run (process 4242); wait for it."

    def in_use(self, *args, **kwargs):
        raise FolderInUseError(message)
        yield

    monkeypatch.setattr(DinoKeypointVideoProcessor, "iter_results", in_use)
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    widget.track()
    wait_run(widget)
    assert errors == [message]
    assert widget.track_panel.status.value == f"⚠ {message}" and widget.track_panel.track.enabled
    widget.shutdown()


# 3 -------------------------------------------------------------------------------------------------------------
def test_heatmap_click_keeps_the_keypoints_layer_active_and_adds_no_point(
    make_napari_viewer_proxy, open_tracker, sample_video, qtbot
):
    from napari_dinotrack.napari.heatmap import HEATMAP_LAYER

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    points = widget.points_layer
    viewer.layers.selection.active = points
    points.mode = "add"
    widget.display_panel.heatmap.value = True
    assert points.mode == "select"  # a click now means "heatmap", not "add a point"
    widget.heatmap.request(0, 40.0, 60.0)
    qtbot.waitUntil(lambda: HEATMAP_LAYER in viewer.layers, timeout=15000)
    assert viewer.layers.selection.active.name == points.name  # the next drag still moves a point
    points.mode = "add"  # chosen by the user while the heatmap is on: the click is for the point
    event = type("Click", (), {"button": 1, "modifiers": (), "position": (0, 40.0, 60.0), "type": "mouse_press"})()
    assert list(widget.heatmap._on_mouse_drag(viewer, event)) == []  # not taken for a heatmap
    widget.shutdown()


# 4 -------------------------------------------------------------------------------------------------------------
def test_long_errors_wrap_without_widening_the_dock(
    make_napari_viewer, open_tracker, sample_video, wait_run, tmp_path, monkeypatch, qtbot
):
    viewer = make_napari_viewer(show=True)
    widget = open_tracker(viewer, sample_video, model="dinov3-vits16")  # weights missing offline
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    qtbot.wait(50)
    content = widget.collapsibles["Layers"].parentWidget()  # what the dock's scroll area shows
    before = content.minimumSizeHint().width()
    widget.track()
    wait_run(widget)
    qtbot.wait(50)
    source, status = widget.backbone_panel.source, widget.track_panel.status
    assert "huggingface.co/facebook/dinov3-vits16-pretrain-lvd1689m" in source.value  # the text as written
    assert content.minimumSizeHint().width() <= before  # no control is pushed out of sight
    assert content.minimumSizeHint().width() <= widget.width()
    from napari_dinotrack.napari.panels import PROBLEM_COLOUR

    for label in (source, status):  # problems in a warning colour
        assert PROBLEM_COLOUR in label.native.styleSheet()
    widget.track_panel.status.value = "Frame 3: 3/15 frames"
    assert PROBLEM_COLOUR not in status.native.styleSheet()
    widget.shutdown()


# 5 -------------------------------------------------------------------------------------------------------------
def test_only_masks_layers_of_the_video_size_can_be_picked(
    make_napari_viewer_proxy, open_tracker, sample_video, clip_shape
):
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    small = viewer.add_labels(np.zeros((1, 40, 50), np.uint8), name="small", translate=(0, 20, 30))
    assert small not in widget.layers_panel.masks.choices and widget.labels_layer is None
    assert "'small' is not the video's size" in widget.layers_panel.mask_names.value
    made = widget.new_masks_layer()
    assert made is not None and tuple(made.data.shape) == clip_shape and widget.labels_layer is made
    assert made in widget.layers_panel.masks.choices
    widget.shutdown()


# 6 -------------------------------------------------------------------------------------------------------------
def test_layer_pickers_show_renamed_layers(make_napari_viewer_proxy, open_tracker, sample_video):
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    widget.points_layer.name = "mouse points"
    combo = widget.layers_panel.points.native
    assert "mouse points" in [combo.itemText(i) for i in range(combo.count())]
    widget.shutdown()


def test_a_keypoints_layer_deleted_mid_run_comes_back_whole(
    make_napari_viewer_proxy, open_tracker, sample_video, clip_shape, slow_engine, wait_run, qtbot
):
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    widget.track()
    qtbot.waitUntil(lambda: widget.run is not None and widget.run.frames_done >= 5, timeout=20000)
    viewer.layers.remove(widget.points_layer)
    wait_run(widget)
    layer = widget.points_layer
    assert layer is not None and layer in viewer.layers
    assert sorted(set(np.round(layer.data[:, 0]).astype(int))) == list(range(clip_shape[0]))
    assert len(layer.data) == 4 * clip_shape[0] == len(layer.features)
    widget.shutdown()


# 7 -------------------------------------------------------------------------------------------------------------
def test_added_keypoints_are_saved_once_placed_and_not_selected(
    make_napari_viewer_proxy, open_tracker, tmp_path, qtbot
):
    from napari.layers.base import ActionType

    from napari_dinotrack.napari.keypoint_edits import SAVE_DEBOUNCE_MS
    from napari_dinotrack.synthetic import make_clip

    video = make_clip(n_frames=6, height=96, width=128).write(tmp_path / "fresh.mp4")
    layout = ResultLayout(video)
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, video)
    viewer.dims.set_current_step(0, 2)
    rows = widget.add_instance_keypoints()
    layer = widget.points_layer
    assert len(rows) == 4 and layer.selected_data == set()  # a drag moves one point, not the whole row
    qtbot.wait(SAVE_DEBOUNCE_MS + 300)
    assert not layout.frame_json(2).exists()  # the row at the view centre is no label
    layer.data[rows[0], 1:] = (20.0, 30.0)  # the user drags the first point into place
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(rows[0],), vertex_indices=((),))
    qtbot.waitUntil(lambda: layout.frame_json(2).exists(), timeout=SAVE_DEBOUNCE_MS + 2000)
    assert frame_source(layout.frame_json(2)) == "manual"
    nose = read_frame(layout.frame_json(2)).instances[0].keypoints[0]
    assert (nose.x, nose.y) == (30.0, 20.0)
    widget.shutdown()


# 8 -------------------------------------------------------------------------------------------------------------
def test_results_of_another_model_are_flagged_and_retracked(make_napari_viewer_proxy, open_tracker, wait_run, tmp_path):
    from napari_dinotrack.synthetic import make_clip

    clip = make_clip(n_frames=8, height=96, width=128)
    video = clip.write(tmp_path / "old.mp4")
    layout = ResultLayout(video)
    seed = clip.annotation(0)
    write_manual(layout, seed)
    for t in range(1, 8):  # tracked earlier with another backbone, all current for the run plan
        ann = clip.annotation(t)
        ann.source, ann.seed_frame, ann.seed_digest = "prediction", 0, seed.digest()
        ann.model, ann.short_side = "dinov2-small", 448
        write_prediction(layout, ann)
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, video, short_side=96)
    widget.track()
    wait_run(widget)
    status = widget.track_panel.status.value
    assert "up to date" not in status
    assert "7 tracked frames (1–7) were made with dinov2-small at short side 448" in status
    retrack = widget.track_panel.retrack
    assert not retrack.native.isHidden()
    retrack.clicked.emit()
    wait_run(widget)
    assert widget.last_summary["frames"] == 7 and widget.last_summary["other_model_frames"] == 0
    assert retrack.native.isHidden()
    assert read_frame(layout.frame_json(3)).model != "dinov2-small"
    widget.shutdown()


# 9 -------------------------------------------------------------------------------------------------------------
def test_menu_entry_end_frame_trajectory_colours_and_labels(
    make_napari_viewer_proxy, open_tracker, sample_video, clip_shape, wait_run
):
    from napari.plugins import menu_item_template
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest("napari-dinotrack")
    title = menu_item_template.format(manifest.display_name, manifest.contributions.widgets[0].display_name)
    assert title == "DINO Keypoint Tracker (napari-dinotrack)"

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    assert widget.track_panel.end_frame.max == clip_shape[0] - 1
    widget.track()
    wait_run(widget)
    points, tracks = widget.points_layer, widget.display.tracks_layer()
    nose_track = tracks.data[:, 0][tracks.features["keypoint"].to_numpy() == "nose"][0]
    nose_colour = tracks.track_colors[tracks.data[:, 0] == nose_track][0]
    nose_row = np.flatnonzero(
        (points.features["keypoint"] == "nose").to_numpy() & (points.features["source"] == "prediction").to_numpy()
    )[0]
    np.testing.assert_allclose(nose_colour, points.border_color[nose_row], atol=1e-6)
    assert "animal1:nose" in list(points.text.values)
    widget.shutdown()
