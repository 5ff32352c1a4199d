"""Full-window screenshots of the dock, and live refreshes that stay incremental while tracking.

Screenshots go to a temporary folder; to refresh the ones in the docs, run
``DINOTRACK_SCREENSHOTS=docs/screenshots python -m pytest tests/napari/test_napari_screenshots.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _settle(qtbot, viewer, ms: int = 150) -> None:
    qtbot.wait(ms)
    viewer.reset_view()
    qtbot.wait(ms)


def test_screenshots_and_responsiveness(make_napari_viewer, wait_run, tick_monitor, tmp_path: Path, qtbot, capsys):
    from napari_dinotrack.napari.live_display import TRACKS_REFRESH_S
    from napari_dinotrack.napari.sample import SAMPLE_FRAMES, make_sample_data

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 980)
    for data, kwargs, kind in make_sample_data(tmp_path / "sample"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-dinotrack", "DINO Keypoint Tracker")
    assert widget.backbone_panel.model_name == "pixel:"  # pre-selected for the sample
    viewer.dims.set_current_step(0, 0)
    _settle(qtbot, viewer)
    shots = Path(os.environ.get("DINOTRACK_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(path=str(shots / "dock_widget.png"), canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[1] > 1000 and shot[..., :3].std() > 10

    # live refreshes are incremental: the seed's layer grows by the new rows, nothing is rebuilt whole
    points = widget.points_layer
    n_keypoints = len(points.data)
    tick_monitor.start()
    widget.track()
    wait_run(widget, timeout=60)
    tick_monitor.stop()
    summary, stats = widget.last_summary, widget.refresh_stats
    assert "error" not in summary, summary
    assert widget.points_layer is points and len(points.data) == len(points.features) == SAMPLE_FRAMES * n_keypoints
    assert stats["full_rebuilds"] == 0 and stats["rows_changed"] == n_keypoints  # the seed frame, shown again
    assert stats["rows_appended"] == (SAMPLE_FRAMES - 1) * n_keypoints
    assert 1 <= stats["count"] < SAMPLE_FRAMES - 1  # results arrive in batches
    # trajectories: at most one rebuild per TRACKS_REFRESH_S while running, plus the final one
    assert 1 <= stats["tracks_rebuilds"] <= 2 + summary["seconds"] / TRACKS_REFRESH_S
    assert len(widget.display.tracks_layer().data) == SAMPLE_FRAMES * n_keypoints - (~points.features["visible"]).sum()
    gaps = np.asarray(tick_monitor.gaps)
    with capsys.disabled():  # timings are reported, not asserted (benchmarks/bench_gui.py measures them)
        print(
            f"\n[responsiveness] run {summary['seconds']:.2f} s, {summary['frames']} frames; 20 ms timer: "
            f"{len(gaps)} ticks, max gap {gaps.max(initial=0):.0f} ms, p95 {np.percentile(gaps, 95):.0f} ms; "
            f"{stats['count']:.0f} refreshes, max {stats['max_ms']:.0f} ms, "
            f"{stats['tracks_rebuilds']:.0f} trajectory rebuilds"
        )

    viewer.dims.set_current_step(0, 25)
    widget.collapsibles["Motion prior & mask"].expand(animate=False)
    widget.collapsibles["Backbone"].collapse(animate=False)
    widget.collapsibles["Proofread"].collapse(animate=False)
    _settle(qtbot, viewer)
    viewer.screenshot(path=str(shots / "tracking.png"), canvas_only=False, flash=False)
    assert (shots / "tracking.png").stat().st_size > 10_000

    # proofreading: a wrong point dragged on frame 12 becomes a (diamond) manual point and a suspicious jump
    from napari.layers.base import ActionType

    nose12 = int(np.flatnonzero((np.round(points.data[:, 0]) == 12) & (points.features["keypoint"] == "nose"))[0])
    points.data[nose12, 1:] += (25.0, 30.0)
    points.events.data(value=points.data, action=ActionType.CHANGED, data_indices=(nose12,), vertex_indices=((),))
    widget.flush_edits()
    widget.proofreader.recheck()
    assert 12 in widget.proofreader.frames or 13 in widget.proofreader.frames
    widget.collapsibles["Motion prior & mask"].collapse(animate=False)
    for title in ("Layers", "Seed tools", "Display: trajectories & heatmap"):
        widget.collapsibles[title].collapse(animate=False)
    widget.collapsibles["Proofread"].expand(animate=False)
    points.selected_data = {nose12}
    widget.proofread_panel.colour_by.value = "animal"
    widget.proofread_panel.colour_by.value = "keypoint"
    viewer.dims.set_current_step(0, 0)
    widget.proofreader.next_suspicious()
    _settle(qtbot, viewer)
    viewer.screenshot(path=str(shots / "proofreading.png"), canvas_only=False, flash=False)
    assert (shots / "proofreading.png").stat().st_size > 10_000

    # two-way: Track re-tracks both sides of the corrected frame 12 (back to 0 and on to the end); where the
    # backward pass from the (wrong) nose disagrees with the forward one from frame 0, the frame is flagged
    from napari_dinotrack.io.labelme import load_annotations

    assert widget.track_panel.direction == "both"
    widget.track()
    wait_run(widget, timeout=60)
    assert "error" not in widget.last_summary, widget.last_summary
    assert widget.last_summary["frames"] == SAMPLE_FRAMES - 2  # every frame but the two manual ones
    anns = load_annotations(widget.video_context().layout)
    assert all((anns[f].seed_frame, anns[f].end_frame) == (0, 12) for f in range(1, 12))
    assert all((anns[f].seed_frame, anns[f].end_frame) == (12, None) for f in range(13, SAMPLE_FRAMES))
    widget.proofreader.recheck()
    flagged = {
        f for f, reasons in widget.proofreader.suspicions.items() if any(r.reason == "disagreement" for r in reasons)
    }
    assert flagged and flagged <= set(range(1, 12))
    viewer.dims.set_current_step(0, 0)
    widget.proofreader.next_suspicious()
    widget.collapsibles["Track"].expand(animate=False)
    _settle(qtbot, viewer)
    viewer.screenshot(path=str(shots / "twoway.png"), canvas_only=False, flash=False)
    assert (shots / "twoway.png").stat().st_size > 10_000

    # the similarity heatmap of the nose on frame 25
    from napari_dinotrack.napari.heatmap import HEATMAP_LAYER

    points = widget.points_layer
    nose = points.data[(points.data[:, 0] == 25) & (points.features["keypoint"] == "nose").to_numpy()][0]
    widget.collapsibles["Proofread"].collapse(animate=False)
    widget.collapsibles["Display: trajectories & heatmap"].expand(animate=False)
    viewer.dims.set_current_step(0, 25)
    widget.display_panel.heatmap.value = True
    widget.heatmap.request(25, float(nose[1]), float(nose[2]))
    qtbot.waitUntil(lambda: HEATMAP_LAYER in viewer.layers, timeout=15000)
    assert viewer.layers[HEATMAP_LAYER].data.shape[-2:] == widget.image_layer.data.shape[1:3]
    _settle(qtbot, viewer)
    viewer.screenshot(path=str(shots / "heatmap.png"), canvas_only=False, flash=False)
    widget.shutdown()
