"""Long generated videos for the benchmarks: animals walking to and fro, encoded as they are generated.

A short clip (see :func:`napari_dinotrack.synthetic.make_clip`) is played forwards and backwards
until the video has the frames asked for, so the animals stay in view and move smoothly however
long it is, and the frames never all sit in memory.
"""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np

from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic import make_clip


def write_walk_video(
    path: Path, n_frames: int, height: int, width: int, loop: int = 100, polygons: bool = False, speed: float = 1.0
) -> Path:
    """Write an ``n_frames`` video of two animals to ``path`` with its frame-0 seed (with outlines if asked)."""
    clip = make_clip(n_frames=loop, height=height, width=width, n_instances=2, speed=speed)
    order = np.concatenate([np.arange(loop), np.arange(loop - 2, 0, -1)])
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=30.0,
        codec="libx264",
        quality=10,
        pix_fmt_out="yuv444p",
        macro_block_size=1,
        output_params=["-g", "8"],
    )
    writer.send(None)  # start the encoder
    try:
        for t in range(n_frames):
            writer.send(np.ascontiguousarray(clip.frames[order[t % len(order)]]))
    finally:
        writer.close()
    layout = ResultLayout(path)
    layout.ensure_folder()
    write_manual(layout, clip.annotation(0, with_polygons=polygons))
    return path
