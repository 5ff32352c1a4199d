"""Settings file: round trip, tolerance of damaged files, and the widget remembering its state."""

from __future__ import annotations

import json
from pathlib import Path

from napari_dinotrack.napari.settings import WidgetSettings, load_settings, save_settings, settings_path


def test_settings_path_follows_env(_isolated_settings: Path):
    assert settings_path() == _isolated_settings


def test_round_trip_and_bad_entries(_isolated_settings: Path):
    s = WidgetSettings(model="pixel:", short_side=320, tracker={"motion_prior_weight": 0.3})
    assert save_settings(s) == _isolated_settings
    assert load_settings() == s
    _isolated_settings.write_text(json.dumps({"short_side": "big", "unknown": 1, "device": "cpu"}))
    loaded = load_settings()
    assert loaded.short_side == WidgetSettings().short_side and loaded.device == "cpu"
    _isolated_settings.write_text("{not json")
    assert load_settings() == WidgetSettings()


def test_widget_remembers_settings(make_napari_viewer_proxy, _isolated_settings: Path):
    from napari_dinotrack.napari.widget import DinoTrackerWidget

    viewer = make_napari_viewer_proxy()
    widget = DinoTrackerWidget(viewer)
    widget.backbone_panel.set_model("pixel:")
    widget.backbone_panel.short_side.value = 448
    widget.backbone_panel.precision.value = "fp32"
    widget.config_panel.preset.value = "fast_small_animals"
    widget.config_panel.editors["motion_prior_weight"].value = 0.4
    widget.config_panel.editors["use_optical_flow"].value = False
    widget.seed_panel.names.value = "snout, tail"
    widget.display_panel.tail_length.value = 33
    widget.track_panel.both_ways.value = False
    widget.save_settings()
    saved = json.loads(_isolated_settings.read_text())
    assert saved["short_side"] == 448 and saved["tracker"]["motion_prior_weight"] == 0.4

    again = DinoTrackerWidget(viewer)  # a new session reads the file
    assert again.backbone_panel.model_name == "pixel:"
    assert again.backbone_panel.short_side.value == 448
    assert again.backbone_panel.precision.value == "fp32"
    cfg = again.config_panel.config()
    assert cfg.motion_prior_weight == 0.4 and cfg.use_optical_flow is False
    assert cfg.max_turn_deg == 40.0  # from the preset, kept as a changed value
    assert again.config_panel.preset.value == "custom"
    assert again.seed_panel.names.value == "snout, tail"
    assert again.display_panel.tail_length.value == 33
    assert again.track_panel.direction == "forward"
    again.shutdown()
    widget.shutdown()
    again.close()
    widget.close()
