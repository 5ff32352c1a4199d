"""Tracking a variable-frame-rate video: resume, --start-frame and later templates use the right frames."""

from __future__ import annotations

import numpy as np

from napari_dinotrack import DinoKeypointVideoProcessor
from napari_dinotrack.io.labelme import load_annotations, write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.video import VideoReader, probe_video
from napari_dinotrack.synthetic import make_clip

PIXEL = "pixel:8"
SHORT = 320


def median_error(clip, layout, frames) -> float:
    anns = load_annotations(layout, frames=frames)
    errs = [
        np.hypot(kp.x - clip.positions[inst.name, kp.name][f][0], kp.y - clip.positions[inst.name, kp.name][f][1])
        for f in frames
        for inst in anns[f].instances
        for kp in inst.keypoints
        if clip.visible[inst.name, kp.name][f]
    ]
    return float(np.median(errs))


def test_tracking_a_vfr_video_from_any_frame(tmp_path, vfr_video):
    clip = make_clip(n_frames=40, speed=3.0)
    video = vfr_video(clip.frames, tmp_path / "vfr.mp4")
    assert np.ptp(np.diff(probe_video(video).timestamps)) > 0.05  # the gaps really vary
    with VideoReader(video) as reader:  # the decoded frames are the clip's frames, in order
        decoded = np.stack([f for _, f in reader.iter_frames()])
    assert np.abs(decoded.astype(int) - clip.frames).mean() < 2

    layout = ResultLayout(video)
    layout.ensure_folder()
    write_manual(layout, clip.annotation(0))
    write_manual(layout, clip.annotation(25))  # a later manual frame: its templates are read by seeking
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    for result in processor.iter_results():
        if result.frame == 17:
            processor.stop()
    processor.process_video()  # resumes from frame 17 by seeking
    assert median_error(clip, layout, range(1, 40)) < 1.5

    summary = processor.process_video(start_frame=30)  # re-tracks from a frame found by seeking
    assert summary.frames_tracked == 9
    assert median_error(clip, layout, range(31, 40)) < 1.5
