"""``napari-dinotrack render``: the overlay video has the video's frames, size and rate, and shows the keypoints."""

from __future__ import annotations

import numpy as np

from napari_dinotrack.cli import main
from napari_dinotrack.exchange.render import PALETTE
from napari_dinotrack.io.labelme import read_frame
from napari_dinotrack.io.video import VideoReader, probe_video


def test_overlay_video_shows_dots_and_rings(tracked, tmp_path, capsys):
    out = tmp_path / "overlay.mp4"
    (tracked.folder / "sample_mouse_skeleton.json").write_text('{"edges": [["nose", "tail_base"]]}')
    args = ["render", str(tracked.folder), "--out", str(out), "--radius", "4", "--trail", "0"]
    assert main(args) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert f"Wrote {out}" in captured.out
    assert f"{tracked.n_frames}/{tracked.n_frames} [" in captured.err  # the progress bar reached the end
    video, overlay = probe_video(tracked.video), probe_video(out)
    assert (overlay.n_frames, overlay.width, overlay.height) == (video.n_frames, video.width, video.height)
    assert overlay.fps == video.fps
    frame, instance, _ = tracked.hidden
    ann = read_frame(tracked.layout.frame_json(frame), frame)
    image = VideoReader(out).get_frame(frame).astype(int)
    original = VideoReader(tracked.video).get_frame(frame).astype(int)

    def around(img, x, y):
        return img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)

    for kp, colour in zip(ann.instance(instance).keypoints, PALETTE, strict=False):
        x, y = round(kp.x), round(kp.y)
        if kp.visible:  # a filled dot of the keypoint's colour
            assert np.abs(around(image, x, y) - colour).max() < 40, kp.name
        else:  # a ring of its colour around the untouched video
            assert np.abs(image[y, x + 4] - colour).max() < 60, kp.name
            assert np.abs(around(image, x, y) - around(original, x, y)).max() < 20, kp.name
    assert not list(tmp_path.glob(".*partial*"))


def test_render_needs_an_mp4_name(tracked, tmp_path, capsys):
    assert main(["render", str(tracked.video), "--out", str(tmp_path / "x.avi"), "--quiet"]) == 2
    assert "x.avi" in capsys.readouterr().err
