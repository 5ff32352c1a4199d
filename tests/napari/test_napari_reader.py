"""The reader and the sample data: right layers for a video, its result folder and its masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_dinotrack.io.labelme import write_prediction
from napari_dinotrack.io.mask_store import MaskStore
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.napari.reader import get_reader, read_result_folder, read_video
from napari_dinotrack.synthetic import make_clip


def test_get_reader_is_picky(tmp_path: Path, sample_video: Path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "empty")) is None
    assert get_reader([str(sample_video), str(sample_video)]) is None
    assert get_reader(str(sample_video)) is read_video
    assert get_reader([str(sample_video)]) is read_video
    assert get_reader(str(sample_video.with_suffix(""))) is read_result_folder


def test_video_with_results_and_masks(sample_video: Path, clip_shape):
    n_frames, height, width = clip_shape
    layout = ResultLayout(sample_video)
    clip = make_clip(n_frames=n_frames, height=height, width=width, n_instances=1, speed=2.5)
    pred = clip.annotation(1)
    pred.seed_frame, pred.seed_digest = 0, clip.annotation(0).digest()
    assert write_prediction(layout, pred)
    MaskStore(layout.masks_dir).write(1, clip.masks[1], ["animal1"])

    layers = read_video(str(sample_video))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "points", "labels"]
    video, vkw, _ = layers[0]
    assert vkw["rgb"] is True and vkw["name"] == "sample_mouse"
    assert video.shape == (n_frames, height, width, 3) and video.dtype == np.uint8
    assert np.asarray(video[1]).shape == (height, width, 3)  # lazily decoded
    assert vkw["metadata"]["dinotrack"]["video_path"] == str(sample_video)

    points, pkw, _ = layers[1]
    assert points.shape == (8, 3) and sorted(set(points[:, 0])) == [0, 1]
    assert list(pkw["features"]["source"][:4]) == ["manual"] * 4
    assert list(pkw["features"]["source"][4:]) == ["prediction"] * 4
    labels, _, _ = layers[2]
    assert labels.shape == (n_frames, height, width)
    assert np.asarray(labels[1]).max() == 1 and np.asarray(labels[0]).max() == 0


def test_video_without_results(tmp_path: Path):
    clip = make_clip(n_frames=4, height=64, width=80)
    video = clip.write(tmp_path / "plain.mp4")
    layers = read_video(str(video))
    assert [kind for _, _, kind in layers] == ["image"]


def test_result_folder_gives_points_only(sample_video: Path):
    folder = sample_video.with_suffix("")
    layers = read_result_folder(str(folder))
    assert [kind for _, _, kind in layers] == ["points"]
    data, kwargs, _ = layers[0]
    assert data.shape == (4, 3)
    meta = kwargs["metadata"]["dinotrack"]
    assert meta["video_path"] == str(sample_video)  # the sibling video is found
    assert meta["result_folder"] == str(folder)


def test_sample_data_layers(tmp_path: Path):
    from napari_dinotrack.napari.sample import make_sample_data

    layers = make_sample_data(tmp_path / "s")
    assert [kind for _, _, kind in layers] == ["image", "points"]
    hints = layers[0][1]["metadata"]["dinotrack"]["suggest"]
    assert hints["model"] == "pixel:"  # no cached DINOv3 weights in the test environment
    assert (tmp_path / "s" / "sample_mouse" / "sample_mouse_000000000.json").is_file()


def test_plugin_manifest_contributions():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-dinotrack")
    widgets = manifest.contributions.widgets
    assert [w.display_name for w in widgets] == ["DINO Keypoint Tracker"]
    patterns = manifest.contributions.readers[0].filename_patterns
    assert {"*.mp4", "*.avi", "*.mov", "*.mkv"} <= set(patterns)
    assert manifest.contributions.readers[0].accepts_directories
    assert manifest.contributions.sample_data[0].key == "synthetic_mouse"


def test_open_through_napari(make_napari_viewer_proxy, sample_video: Path, tmp_path: Path, monkeypatch):
    import tempfile

    viewer = make_napari_viewer_proxy()
    viewer.open(str(sample_video), plugin="napari-dinotrack")
    assert [layer.name for layer in viewer.layers] == ["sample_mouse", "sample_mouse keypoints"]
    assert viewer.layers["sample_mouse"].rgb

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the sample goes to a fresh temporary folder
    viewer.layers.clear()
    viewer.open_sample("napari-dinotrack", "synthetic_mouse")
    assert [layer.name for layer in viewer.layers] == ["sample_mouse", "sample_mouse keypoints"]
    assert viewer.layers["sample_mouse"].data.shape[0] == 40
