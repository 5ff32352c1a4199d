"""Export, import, clean-up, skeleton and render in napari: writers through ``viewer.layers.save``, the label
reader, and the dock's "Export · import · clean-up · render" panel.

To refresh the README's screenshots of this panel, run
``DINOTRACK_SCREENSHOTS=docs/screenshots python -m pytest tests/napari/test_napari_exchange.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.io.labelme import load_annotations, manual_frames
from napari_dinotrack.io.paths import ResultLayout


def _folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def _tracked(viewer, open_tracker, wait_run, video: Path):
    widget = open_tracker(viewer, video)
    widget.track()
    wait_run(widget, timeout=60)
    assert "error" not in widget.last_summary, widget.last_summary
    return widget


def _dlc_labels(path: Path, frames: dict[int, np.ndarray], n_frames: int) -> Path:
    """A DeepLabCut file written by movement: ``frames`` maps a frame to its (4, 2) keypoints."""
    from movement.io import load_poses, save_poses

    position = np.full((n_frames, 2, 4, 1), np.nan)
    for f, xy in frames.items():
        position[f, :, :, 0] = np.asarray(xy).T
    ds = load_poses.from_numpy(position, None, ["animal1"], ["nose", "leftear", "rightear", "tail_base"])
    save_poses.to_dlc_file(ds, path, split_individuals=False)
    return path


def test_keypoints_layer_saves_as_dlc_and_netcdf(
    make_napari_viewer, open_tracker, wait_run, sample_video, clip_shape, tmp_path
):
    import xarray as xr
    from movement.io import load_poses

    viewer = make_napari_viewer()
    widget = _tracked(viewer, open_tracker, wait_run, sample_video)
    layer = widget.points_layer
    hidden = 3
    layer.features.loc[2 * 4 + hidden, "visible"] = False  # frame 2's tail_base is hidden in the layer
    folder = ResultLayout(sample_video).folder
    before = _folder_state(folder)
    viewer.layers.selection = {layer}
    h5, nc, csv = tmp_path / "keypoints.h5", tmp_path / "keypoints.nc", tmp_path / "keypoints.csv"
    assert viewer.layers.save(str(h5), selected=True) == [str(h5)]  # the only .h5 writer for points: Ctrl+S works
    assert viewer.layers.save(str(nc), selected=True) == [str(nc)]
    assert viewer.layers.save(str(csv), selected=True, plugin="napari-dinotrack") == [str(csv)]
    assert _folder_state(folder) == before  # saving never touches the result folder or its manual frames

    for ds in (load_poses.from_dlc_file(h5), load_poses.from_dlc_file(csv), xr.open_dataset(nc)):
        assert ds.sizes["time"] == clip_shape[0]
        for (t, y, x), kp, visible in zip(
            layer.data, layer.features["keypoint"], layer.features["visible"], strict=True
        ):
            xy = ds["position"].isel(time=round(t)).sel(keypoints=kp, individuals="animal1").values
            if visible:
                np.testing.assert_allclose(xy, [x, y], atol=1e-3)
            else:
                assert np.isnan(xy).all()
    assert xr.open_dataset(nc).attrs["fps"] == pytest.approx(10.0)
    widget.shutdown()


def test_label_files_open_onto_the_video(make_napari_viewer_proxy, sample_video, clip_shape, tmp_path):
    from napari_dinotrack.io.labelme import read_frame

    n_frames = clip_shape[0]
    seed = read_frame(ResultLayout(sample_video).frame_json(0), 0).instances[0]
    xy = np.array([[kp.x, kp.y] for kp in seed.keypoints])
    labels = _dlc_labels(tmp_path / "CollectedData.h5", {4: xy, 9: xy + 2}, n_frames)
    viewer = make_napari_viewer_proxy()
    viewer.open(str(sample_video), plugin="napari-dinotrack")
    viewer.open(str(labels), plugin="napari-dinotrack")
    layer = viewer.layers["CollectedData labels"]
    assert sorted({round(t) for t in layer.data[:, 0]}) == [4, 9]
    assert list(layer.features["keypoint"][:4]) == ["nose", "leftear", "rightear", "tail_base"]
    np.testing.assert_allclose(layer.data[:4, 1:], xy[:, ::-1], atol=1e-6)  # rows are (t, y, x)
    # files that are no labels are left to other readers
    from napari_dinotrack.napari.label_reader import get_label_reader

    assert get_label_reader(str(ResultLayout(sample_video).tracks_csv)) is None
    assert get_label_reader(str(ResultLayout(sample_video).frame_json(0))) is None


def test_dock_panel_filters_exports_draws_imports_and_renders(
    make_napari_viewer, open_tracker, wait_run, qtbot, sample_video, clip_shape, tmp_path
):
    viewer = make_napari_viewer()
    widget = _tracked(viewer, open_tracker, wait_run, sample_video)
    tools, panel = widget.exchange, widget.exchange.panel
    raw = widget.points_layer
    raw_data = raw.data.copy()
    layout = ResultLayout(sample_video)
    n_frames = clip_shape[0]

    # clean-up: a separate, read-only layer beside the raw keypoints
    panel.cleanup_editors["median_window"].value = 5
    filtered = tools.show_filtered()
    assert filtered is not None and filtered.name == "sample_mouse keypoints filtered"
    assert not filtered.editable and widget.points_layer is raw
    np.testing.assert_array_equal(raw.data, raw_data)
    assert len(filtered.data) == int(raw.features["visible"].sum())  # smoothing fills no gap, drops no point
    assert "median 5" in panel.status.value
    panel.cleanup_editors["median_window"].value = 4
    assert tools.show_filtered() is None and "odd number" in panel.status.value  # shown, not raised

    # export from the dock (saved results, optionally filtered)
    panel.format.value = "dlc:.csv"
    panel.out.value = tmp_path / "from_dock.csv"
    assert tools.export() == [tmp_path / "from_dock.csv"]
    panel.format.value = "sleap:.slp"
    panel.out.line_edit.value = ""  # empty: the result folder's default name
    assert tools.export() == [layout.folder / "sample_mouse.slp"]

    # skeleton: stored in the result folder, drawn on every frame with both keypoints visible
    panel.skeleton.value = "nose-leftear, nose-tail_base"
    assert tools.save_skeleton() == layout.folder / "sample_mouse_skeleton.json"
    lines = tools.skeleton_layer()
    visible = raw.features["visible"].to_numpy(dtype=bool)

    def frames_with(kp):
        return set(np.round(raw.data[(raw.features["keypoint"] == kp).to_numpy() & visible, 0]).astype(int))

    both = len(frames_with("nose") & frames_with("leftear")) + len(frames_with("nose") & frames_with("tail_base"))
    assert lines is not None and both > n_frames and lines.data.shape == (both, 2, 3)

    # labels of another tool become manual seeds, shown at once
    seed = load_annotations(layout, [0])[0].instances[0]
    xy = np.array([[kp.x, kp.y] for kp in seed.keypoints])
    panel.label_file.value = _dlc_labels(tmp_path / "more.h5", {10: xy + 1}, n_frames)
    report = tools.import_labels()
    assert report is not None and report.frames == [10]
    assert manual_frames(layout) == [0, 10]
    rows = raw.features[np.round(raw.data[:, 0]) == 10]
    assert set(rows["source"]) == {"manual"}
    assert tools.import_labels() is None and "--overwrite" in panel.status.value  # frame 10 is manual now

    # the overlay video, rendered in a worker
    panel.trail.value = 6
    worker = tools.render()
    assert worker is not None
    qtbot.waitUntil(lambda: tools.render_worker is None, timeout=60_000)
    overlay = layout.folder / "sample_mouse_overlay.mp4"
    assert overlay.is_file() and panel.progress.value == panel.progress.max == n_frames
    assert str(overlay) in panel.status.value

    widget.shutdown()


def test_screenshots_of_the_filtered_layer_and_an_overlay_frame(make_napari_viewer, wait_run, qtbot, tmp_path):
    """The sample clip tracked in the dock, smoothed beside the raw keypoints, and one frame of its overlay video."""
    import cv2
    import imageio.v3 as iio

    from napari_dinotrack.io.video import VideoReader
    from napari_dinotrack.napari.sample import make_sample_data

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 980)
    for data, kwargs, kind in make_sample_data(tmp_path / "sample"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-dinotrack", "DINO Keypoint Tracker")
    viewer.dims.set_current_step(0, 0)
    widget.track()
    wait_run(widget, timeout=120)
    tools, panel = widget.exchange, widget.exchange.panel
    panel.cleanup_editors["savgol_window"].value = 9
    assert tools.show_filtered() is not None
    panel.skeleton.value = "nose-leftear, nose-rightear, leftear-tail_base, rightear-tail_base"
    assert tools.save_skeleton() is not None
    tools.render()
    qtbot.waitUntil(lambda: tools.render_worker is None, timeout=120_000)
    overlay = ResultLayout(widget.video_context().video_path).folder / "sample_mouse_overlay.mp4"
    assert overlay.is_file(), panel.status.value

    shots = Path(os.environ.get("DINOTRACK_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    for title, box in widget.collapsibles.items():
        box.expand(animate=False) if title.startswith("Export") else box.collapse(animate=False)
    viewer.dims.set_current_step(0, 30)
    qtbot.wait(200)
    viewer.reset_view()
    viewer.camera.zoom *= 2.5
    viewer.camera.center = (0, *widget.points_layer.data[widget.points_layer.data[:, 0] == 30, 1:].mean(axis=0))
    qtbot.wait(200)
    shot = viewer.screenshot(path=str(shots / "cleanup.png"), canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot[..., :3].std() > 10
    # the overlay's frame 30 around the animal, enlarged 4x
    frame = VideoReader(overlay).get_frame(30)
    y, x = np.round(widget.points_layer.data[widget.points_layer.data[:, 0] == 30, 1:].mean(axis=0)).astype(int)
    top, left = int(np.clip(y - 45, 0, frame.shape[0] - 90)), int(np.clip(x - 70, 0, frame.shape[1] - 120))
    detail = frame[top : top + 90, left : left + 120]
    iio.imwrite(shots / "overlay_frame.png", cv2.resize(detail, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST))
    widget.shutdown()
