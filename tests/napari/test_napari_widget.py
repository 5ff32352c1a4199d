"""The dock widget: panels generated from the config, seed tools, edits saved as manual frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.errors import ConfigError
from napari_dinotrack.io.labelme import frame_source, read_frame
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.schema import describe
from napari_dinotrack.tracking.config import PRESETS, TrackerConfig


def test_widget_modules_import_no_torch():
    code = (
        "import sys, napari_dinotrack.napari.widget, napari_dinotrack.napari.reader, "
        "napari_dinotrack.napari.sample, napari_dinotrack.napari.heatmap; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_dock_from_manifest(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-dinotrack", "DINO Keypoint Tracker")
    assert type(widget).__name__ == "DinoTrackerWidget"
    assert list(widget.collapsibles) == [
        "Layers",
        "Backbone",
        "Motion prior & mask",
        "Seed tools",
        "Track",
        "Proofread",
        "Display: trajectories & heatmap",
        "Export · import · clean-up · render",
        "Track a folder in the background",
    ]
    widget.shutdown()


def test_knobs_follow_field_metadata(make_napari_viewer_proxy):
    from napari_dinotrack.napari.widget import DinoTrackerWidget

    widget = DinoTrackerWidget(make_napari_viewer_proxy())
    panel = widget.config_panel
    for f in describe(TrackerConfig):
        editor = panel.editors[f.name]
        assert f.description in editor.tooltip
        if hasattr(editor, "min") and f.lo is not None:
            assert editor.min == pytest.approx(f.lo) and editor.max == pytest.approx(f.hi)
        if f.choices:
            assert list(editor.choices) == list(f.choices)
    assert panel.config() == TrackerConfig()
    assert panel.preset.value == "rodent_30fps"  # the defaults are that preset

    panel.preset.value = "low_fps_large_motion"
    assert panel.config() == TrackerConfig.preset("low_fps_large_motion")
    panel.editors["redetect_after"].value = 7
    assert panel.preset.value == "custom"
    panel.editors["max_speed_px"].value = 55.5
    assert panel.config().max_speed_px == 55.5 and panel.config().redetect_after == 7
    panel.reset.clicked.emit()  # "Reset to defaults"
    assert panel.config() == TrackerConfig() and panel.error.value == ""
    assert set(PRESETS) <= set(panel.preset.choices)
    widget.shutdown()


def test_backbone_panel_source_line(make_napari_viewer_proxy, tmp_path: Path):
    from napari_dinotrack.napari.widget import DinoTrackerWidget

    widget = DinoTrackerWidget(make_napari_viewer_proxy())
    bp = widget.backbone_panel
    bp.model.value = "dinov3-vits16"
    assert "huggingface.co/facebook/dinov3-vits16" in bp.source.value and "hf auth login" in bp.source.value
    bp.set_model("pixel:")
    assert "no weights" in bp.source.value and not bp.folder.visible
    bp.set_model(str(tmp_path))
    assert bp.model.value == "local folder…" and "config.json" in bp.source.value
    assert widget.backbone_choice().model == str(tmp_path)
    widget.shutdown()


def test_add_keypoints_and_save_seed(make_napari_viewer_proxy, open_tracker, tmp_path: Path, qtbot):
    from napari_dinotrack.synthetic import make_clip

    video = make_clip(n_frames=6, height=96, width=128).write(tmp_path / "fresh.mp4")
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, video)
    assert widget.points_layer is None  # no results yet
    viewer.dims.set_current_step(0, 2)
    widget.seed_panel.names.value = "nose, leftear, rightear, tail_base"
    widget.seed_panel.instance.value = "mouse"
    rows = widget.add_instance_keypoints()
    layer = widget.points_layer
    assert len(rows) == 4 and layer.data.shape == (4, 3) and set(layer.data[:, 0]) == {2}
    assert list(layer.features["keypoint"]) == ["nose", "leftear", "rightear", "tail_base"]
    assert (layer.data[:, 1:] >= 0).all() and (layer.data[:, 1] < 96).all() and (layer.data[:, 2] < 128).all()
    assert widget.add_instance_keypoints() == []  # nothing missing any more

    layer.selected_data = {0}
    widget.toggle_selected_visibility()
    assert not layer.features["visible"][0] and layer.face_color[0, 3] == 0  # hollow
    path = widget.save_current_frame()
    layout = ResultLayout(video)
    assert path == layout.frame_json(2) and frame_source(path) == "manual"
    ann = read_frame(path, 2)
    assert [i.name for i in ann.instances] == ["mouse"]
    assert [k.name for k in ann.instances[0].keypoints] == ["nose", "leftear", "rightear", "tail_base"]
    assert ann.instances[0].keypoints[0].visible is False
    widget.shutdown()


def test_user_edits_are_saved_as_manual_debounced(make_napari_viewer_proxy, open_tracker, sample_video: Path, qtbot):
    from napari.layers.base import ActionType

    from napari_dinotrack.napari.keypoint_edits import SAVE_DEBOUNCE_MS

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    layer = widget.points_layer
    layout = ResultLayout(sample_video)
    before = read_frame(layout.frame_json(0), 0)

    # a drag as napari reports it: data changed in place, then a CHANGED event for the moved rows
    layer.data[0, 1:] += (3.0, -4.0)
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(0,), vertex_indices=((),))
    assert widget.edits.dirty == {0}
    qtbot.waitUntil(lambda: not widget.edits.dirty, timeout=SAVE_DEBOUNCE_MS + 2000)
    after = read_frame(layout.frame_json(0), 0)
    nose0, nose1 = before.instances[0].keypoints[0], after.instances[0].keypoints[0]
    assert (nose1.x - nose0.x, nose1.y - nose0.y) == pytest.approx((-4.0, 3.0), abs=1e-3)

    # a point added on frame 3 makes frame 3 a manual frame; added points take the next missing name
    viewer.dims.set_current_step(0, 3)
    layer.add([[3, 40.0, 50.0]])
    assert layer.features["source"].iloc[-1] == "manual"
    assert layer.features["keypoint"].iloc[-1] == "nose" and layer.features["instance"].iloc[-1] == "animal1"
    layer.add([[3, 42.0, 52.0]])
    assert layer.features["keypoint"].iloc[-1] == "leftear"
    qtbot.waitUntil(lambda: layout.frame_json(3).exists(), timeout=SAVE_DEBOUNCE_MS + 2000)
    assert frame_source(layout.frame_json(3)) == "manual"
    # removing them again is saved too (the frame stays a manual frame, now empty)
    layer.selected_data = {len(layer.data) - 1, len(layer.data) - 2}
    layer.remove_selected()
    qtbot.waitUntil(lambda: not widget.edits.dirty, timeout=SAVE_DEBOUNCE_MS + 2000)
    assert read_frame(layout.frame_json(3), 3).instances == []
    json.loads(layout.frame_json(0).read_text())
    widget.shutdown()


def test_errors_become_notifications(make_napari_viewer_proxy, open_tracker, tmp_path: Path, monkeypatch):
    import napari.utils.notifications as notifications

    from napari_dinotrack.synthetic import make_clip

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    video = make_clip(n_frames=4, height=64, width=80).write(tmp_path / "unlabelled.mp4")
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, video)
    assert widget.track() is None
    assert errors and "No labelled frame" in errors[-1]
    assert widget.track(start_frame=2) is None and "no keypoints" in errors[-1]
    widget.seed_panel.instance.value = "m"
    widget.add_instance_keypoints()
    widget.save_current_frame()

    def bad_settings(self):
        raise ConfigError("TrackerConfig.max_speed_px: Input should be a finite number (got nan)")

    monkeypatch.setattr(type(widget.config_panel), "config", bad_settings)  # e.g. a settings file edited by hand
    assert widget.track() is None and "max_speed_px" in errors[-1]
    widget.shutdown()


def test_no_viewer_layers_is_a_clear_message(make_napari_viewer_proxy, monkeypatch):
    import napari.utils.notifications as notifications

    from napari_dinotrack.napari.widget import DinoTrackerWidget

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    widget = DinoTrackerWidget(make_napari_viewer_proxy())
    assert widget.track() is None and "Open a video" in errors[-1]
    np.testing.assert_equal(widget.current_frame(), 0)
    widget.shutdown()


def test_names_that_would_break_the_table_are_not_used(make_napari_viewer_proxy, open_tracker, tmp_path: Path):
    from napari_dinotrack.synthetic import make_clip

    video = make_clip(n_frames=4, height=64, width=80).write(tmp_path / "names.mp4")
    widget = open_tracker(make_napari_viewer_proxy(), video)
    widget.seed_panel.names.value = "nose, =HYPERLINK(1), @sum, tail\u2028base"
    widget.seed_panel.instance.value = "+mouse"
    status = widget.seed_panel.status.value
    assert "'=HYPERLINK(1)'" in status and "'@sum'" in status and "'+mouse'" in status and "formula" in status
    widget.seed_panel.instance.value = "mo\u2028use"
    assert "line break (U+2028)" in widget.seed_panel.status.value
    widget.add_instance_keypoints()
    assert list(widget.points_layer.features["keypoint"]) == ["nose", "tail", "base"]  # U+2028 separates names
    assert set(widget.points_layer.features["instance"]) == {"animal1"}
    path = widget.save_current_frame()
    assert [k.name for k in read_frame(path, 0).instances[0].keypoints] == ["nose", "tail", "base"]
    widget.shutdown()
