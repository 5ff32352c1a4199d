"""Proofreading in the dock: suspicious frames, the score plot, colours, shortcuts and identity swaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.io.labelme import read_frame, write_manual, write_prediction
from napari_dinotrack.io.paths import ResultLayout

N_FRAMES = 20


@pytest.fixture
def proofread_clip(tmp_path: Path) -> Path:
    """Two animals; frame 0 manual, 1..19 predicted: a jump on 7 (and back on 8), a low score on 12, lost on 15."""
    from napari_dinotrack.synthetic import make_clip

    clip = make_clip(n_frames=N_FRAMES, height=96, width=128, n_instances=2)
    video = clip.write(tmp_path / "pair.mp4")
    layout = ResultLayout(video)
    seed = clip.annotation(0)
    write_manual(layout, seed)
    for t in range(1, N_FRAMES):
        ann = clip.annotation(t)
        ann.source, ann.seed_frame, ann.seed_digest = "prediction", 0, seed.digest()
        for inst in ann.instances:
            for kp in inst.keypoints:
                kp.visible, kp.score = True, 0.9
        if t == 7:
            ann.instances[0].keypoints[0].x += 40.0
        if t == 12:
            ann.instances[1].keypoints[3].score = 0.1
        if t == 15:
            ann.instances[1].keypoints[1].visible = False
        write_prediction(layout, ann)
    return video


def _press(viewer, key: str) -> None:
    """What napari does for a key press: call the viewer's binding."""
    from napari.utils.key_bindings import coerce_keybinding

    viewer.keymap[coerce_keybinding(key)](viewer)


def _rows(layer, frame: int, instance: str, keypoint: str) -> np.ndarray:
    feats = layer.features
    return np.flatnonzero(
        (np.round(layer.data[:, 0]) == frame)
        & (feats["instance"] == instance).to_numpy()
        & (feats["keypoint"] == keypoint).to_numpy()
    )


def test_next_and_previous_suspicious_frame(make_napari_viewer_proxy, open_tracker, proofread_clip: Path):
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, proofread_clip)
    panel = widget.proofread_panel
    assert panel.count.value == "4 suspicious frames (2 jumps, 1 low score, 1 lost point)."
    assert widget.proofreader.next_suspicious() == 7 and widget.current_frame() == 7
    assert panel.here.value.startswith("Frame 7: animal1 nose: jump of")
    panel.next.clicked.emit()
    assert widget.current_frame() == 8
    _press(viewer, "N")  # the keyboard shortcut does the same
    assert widget.current_frame() == 12 and "low score 0.10" in panel.here.value
    _press(viewer, "N")
    assert widget.current_frame() == 15 and "animal2 leftear: lost" in panel.here.value
    assert widget.proofreader.next_suspicious() is None and "No suspicious frame after frame 15" in panel.here.value
    _press(viewer, "Shift-N")
    assert widget.current_frame() == 12
    # thresholds are the engine's settings: a lower bar for low scores drops frame 12
    panel.min_score.value = 0.05
    assert 12 not in widget.proofreader.frames
    widget.shutdown()


def test_corrections_update_the_list(make_napari_viewer_proxy, open_tracker, proofread_clip: Path, qtbot):
    from napari.layers.base import ActionType

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, proofread_clip)
    layer = widget.points_layer
    assert 7 in widget.proofreader.frames
    row = _rows(layer, 7, "animal1", "nose")[0]
    layer.data[row, 2] -= 40.0  # the user drags the nose back
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(int(row),), vertex_indices=((),))
    qtbot.waitUntil(lambda: 7 not in widget.proofreader.frames, timeout=3000)
    assert 8 not in widget.proofreader.frames  # the jump back is gone too
    widget.shutdown()


def test_score_plot_follows_the_selected_keypoint_and_a_click_jumps(
    make_napari_viewer_proxy, open_tracker, proofread_clip: Path, qtbot
):
    from qtpy.QtCore import QPoint, Qt

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, proofread_clip)
    layer = widget.points_layer
    plot = widget.proofread_panel.plot
    layer.selected_data = {int(_rows(layer, 3, "animal2", "tail_base")[0])}
    assert widget.proofread_panel.keypoint.value == "animal2:tail_base"
    assert plot.title == "animal2:tail_base" and list(plot.problems) == [12]
    assert plot.score[12] == pytest.approx(0.1) and plot.score[3] == pytest.approx(0.9)
    assert np.isnan(plot.speed[0]) and plot.max_speed > 0
    widget.proofread_panel.keypoint.value = "animal1:nose"
    assert sorted(plot.problems) == [7, 8] and plot.speed[7] > 30
    plot.resize(300, 100)
    x = int(plot._plot_rect().left() + (plot._plot_rect().width() - 1) * 10 / (N_FRAMES - 1))
    qtbot.mouseClick(plot, Qt.MouseButton.LeftButton, pos=QPoint(x, 50))
    assert widget.current_frame() == 10 and plot.current == 10
    plot.grab()  # paints without error
    widget.shutdown()


def test_colour_by_animal_and_manual_low_score_styles(make_napari_viewer_proxy, open_tracker, proofread_clip: Path):
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, proofread_clip)
    widget.display_panel.trajectories.value = True
    layer = widget.points_layer
    feats = layer.features
    nose1, ear1 = _rows(layer, 3, "animal1", "nose")[0], _rows(layer, 3, "animal1", "leftear")[0]
    nose2 = _rows(layer, 3, "animal2", "nose")[0]
    assert np.allclose(layer.border_color[nose1], layer.border_color[nose2])  # by keypoint
    assert str(layer.symbol[_rows(layer, 0, "animal1", "nose")[0]].value) == "diamond"  # manual
    assert str(layer.symbol[_rows(layer, 12, "animal2", "tail_base")[0]].value) == "x"  # low score
    assert str(layer.symbol[nose1].value) == "disc"
    assert "{instance}" in layer.text.string.format  # labels name the animal
    widget.proofread_panel.colour_by.value = "animal"
    assert np.allclose(layer.border_color[nose1], layer.border_color[ear1])
    assert not np.allclose(layer.border_color[nose1], layer.border_color[nose2])
    tracks = widget.display.tracks_layer()
    colours = tracks.track_colors
    ids = tracks.data[:, 0].astype(int)
    animal_of_track = {int(t): inst for t, inst in zip(ids, tracks.features["instance"], strict=True)}
    first_a1 = colours[ids == next(t for t, a in animal_of_track.items() if a == "animal1")][0]
    np.testing.assert_allclose(first_a1, layer.border_color[nose1], atol=1e-6)
    assert len(feats) == len(layer.data)
    widget.shutdown()


def test_swap_identities_from_the_dock(make_napari_viewer_proxy, open_tracker, proofread_clip: Path):
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, proofread_clip)
    layer = widget.points_layer
    layout = ResultLayout(proofread_clip)
    before = read_frame(layout.frame_json(9))
    y1 = layer.data[_rows(layer, 9, "animal1", "nose")[0], 1]
    panel = widget.proofread_panel
    assert (panel.first.value, panel.second.value) == ("animal1", "animal2")
    panel.start.value, panel.end.value = 5, 9
    panel.swap.clicked.emit()
    assert panel.status.value.startswith("Swapped animal1 ↔ animal2 on 5 frames (5–9)")
    after = read_frame(layout.frame_json(9))
    assert after.instance("animal2").keypoints[0].y == pytest.approx(before.instance("animal1").keypoints[0].y)
    assert layer.data[_rows(layer, 9, "animal2", "nose")[0], 1] == pytest.approx(y1)  # the layer shows it
    assert read_frame(layout.frame_json(4)).instance("animal1").keypoints[0].y == pytest.approx(
        layer.data[_rows(layer, 4, "animal1", "nose")[0], 1], abs=1e-3
    )
    panel.start.value, panel.end.value = 0, 3
    panel.swap.clicked.emit()
    assert "Manual frames kept as labelled: 0" in panel.status.value
    widget.shutdown()


def test_shortcuts_are_bound_listed_in_tooltips_and_unbound_on_close(
    make_napari_viewer_proxy, open_tracker, proofread_clip: Path
):
    from napari_dinotrack.napari.shortcuts import SHORTCUTS

    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, proofread_clip)
    from napari.utils.key_bindings import coerce_keybinding

    keys = {coerce_keybinding(s.key) for s in SHORTCUTS}
    assert keys <= set(viewer.keymap)
    assert widget.proofread_panel.next.tooltip.endswith("[N]")
    assert widget.seed_panel.toggle_visible.tooltip.endswith("[H]")
    assert widget.seed_panel.save.tooltip.endswith("[Shift-S]")
    assert widget.track_panel.track_here.tooltip.endswith("[T]")
    layer = widget.points_layer
    row = int(_rows(layer, 0, "animal1", "nose")[0])
    layer.selected_data = {row}
    _press(viewer, "H")
    assert not layer.features["visible"][row]
    _press(viewer, "Shift-S")
    assert read_frame(ResultLayout(proofread_clip).frame_json(0)).instances[0].keypoints[0].visible is False
    widget.shutdown()
    assert not keys & set(viewer.keymap)
