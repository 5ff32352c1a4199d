"""An overlay video of the results: keypoints, skeleton and short trails drawn onto every frame.

Each keypoint name has its own colour; a visible keypoint is a filled dot, a hidden one (kept at
its last known place) a ring. The skeleton joins visible keypoints of the same animal, and each
keypoint trails its visible positions of the last few frames. Frames are decoded ahead
(:class:`~napari_dinotrack.io.video.VideoReader`), drawn with OpenCV and encoded to H.264 with the
ffmpeg that imageio-ffmpeg bundles; the file appears only when it is complete. Needs no movement.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..palette import PALETTE as HEX_PALETTE
from ..palette import rgb
from .dataset import KeypointRows, ResultSource, locate_results
from .settings import RenderSettings
from .skeleton import Edge, check_edges, read_skeleton

__all__ = [
    "PALETTE",
    "OverlayTracks",
    "RenderSettings",
    "default_render_path",
    "draw_frame",
    "iter_render",
    "render_video",
]

#: keypoint colours (RGB) in order of first appearance: the same colour-blind-safe cycle as the napari layer
PALETTE: tuple[tuple[int, int, int], ...] = tuple(rgb(colour) for colour in HEX_PALETTE)
_SKELETON_RGB = (235, 235, 235)
_OUTLINE_RGB = (20, 20, 20)

Progress = Callable[[int, int], None]


def default_render_path(source: ResultSource) -> Path:
    """Where an overlay goes unless told otherwise: ``<result folder>/<stem>_overlay.mp4``."""
    return source.layout.folder / f"{source.layout.stem}_overlay.mp4"


class OverlayTracks:
    """Every (animal, keypoint) as a track: positions (T, N, 2), and per frame whether it is labelled and visible."""

    def __init__(self, rows: KeypointRows, n_frames: int) -> None:
        pairs = list(dict.fromkeys(zip(rows.instance.tolist(), rows.keypoint.tolist(), strict=True)))
        self.pairs = pairs
        index = {pair: i for i, pair in enumerate(pairs)}
        col = np.array([index[p] for p in zip(rows.instance.tolist(), rows.keypoint.tolist(), strict=True)], int)
        keep = (rows.frame < n_frames) & np.isfinite(rows.x) & np.isfinite(rows.y)
        t, col = rows.frame[keep], col[keep]
        self.xy = np.full((n_frames, len(pairs), 2), np.nan)
        self.xy[t, col, 0], self.xy[t, col, 1] = rows.x[keep], rows.y[keep]
        self.present = np.zeros((n_frames, len(pairs)), bool)
        self.present[t, col] = True
        self.visible = np.zeros((n_frames, len(pairs)), bool)
        self.visible[t, col] = rows.visible[keep]
        names = list(dict.fromkeys(rows.keypoint.tolist()))
        self.colour = [PALETTE[names.index(kp) % len(PALETTE)] for _, kp in pairs]


def draw_frame(
    image: np.ndarray, tracks: OverlayTracks, t: int, edges: Sequence[Edge], settings: RenderSettings, radius: int
) -> np.ndarray:
    """Frame ``t`` (RGB, H x W x 3) with trails, skeleton and keypoints drawn on a copy."""
    out = np.ascontiguousarray(image).copy()
    shift = 4  # sub-pixel drawing: OpenCV takes fixed-point coordinates with this many fractional bits

    def fixed(xy: np.ndarray) -> tuple[int, int]:
        x, y = np.rint(xy * (1 << shift)).astype(int).tolist()
        return x, y

    if settings.trail:
        first = max(0, t - settings.trail)
        for j in range(len(tracks.pairs)):
            shown = tracks.visible[first : t + 1, j]
            if shown.sum() >= 2:
                pts = np.round(tracks.xy[first : t + 1, j][shown] * (1 << shift)).astype(np.int32)
                cv2.polylines(out, [pts], False, tracks.colour[j], 1, cv2.LINE_AA, shift)
    where = {pair: j for j, pair in enumerate(tracks.pairs)}
    for animal in dict.fromkeys(a for a, _ in tracks.pairs):
        for a, b in edges:
            ja, jb = where.get((animal, a)), where.get((animal, b))
            if ja is not None and jb is not None and tracks.visible[t, ja] and tracks.visible[t, jb]:
                cv2.line(
                    out,
                    fixed(tracks.xy[t, ja]),
                    fixed(tracks.xy[t, jb]),
                    _SKELETON_RGB,
                    settings.line_width,
                    cv2.LINE_AA,
                    shift,
                )
    for j in np.flatnonzero(tracks.present[t]).tolist():
        centre = fixed(tracks.xy[t, j])
        if tracks.visible[t, j]:
            cv2.circle(out, centre, radius << shift, tracks.colour[j], -1, cv2.LINE_AA, shift)
            cv2.circle(out, centre, radius << shift, _OUTLINE_RGB, 1, cv2.LINE_AA, shift)
        else:
            cv2.circle(out, centre, radius << shift, tracks.colour[j], settings.line_width, cv2.LINE_AA, shift)
    return out


def render_video(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    settings: RenderSettings | None = None,
    skeleton: Sequence[Edge] | None = None,
    video: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Draw the results of a result folder (or of a video's folder) onto the video; return the mp4 written.

    ``skeleton`` defaults to the one stored in the result folder; ``progress(done, total)`` is
    called after every frame.
    """
    frames = iter_render(path, out, settings=settings, skeleton=skeleton, video=video)
    while True:
        try:
            done, total = next(frames)
        except StopIteration as end:
            return end.value
        if progress is not None:
            progress(done, total)


def iter_render(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    settings: RenderSettings | None = None,
    skeleton: Sequence[Edge] | None = None,
    video: str | os.PathLike[str] | None = None,
) -> Generator[tuple[int, int], None, Path]:
    """:func:`render_video` as a generator: yields ``(frames done, total)``, returns the mp4 written.

    Closing the generator early stops the encoder and leaves no file behind.
    """
    import imageio_ffmpeg

    from ..io.labelme import load_annotations
    from ..io.video import VideoReader

    settings = settings or RenderSettings()
    source = locate_results(path, video)
    info = source.video
    if info is None:
        raise InputError(f"{source.layout.folder}: cannot find its video next to it; give it with --video")
    target = Path(out).expanduser() if out is not None else default_render_path(source)
    if target.suffix.lower() != ".mp4":
        raise InputError(f"{target}: the overlay video is written as H.264 .mp4; choose a name ending in .mp4")
    if not target.parent.is_dir():
        raise InputError(f"{target.parent}: the output folder does not exist")
    rows = KeypointRows.from_annotations(load_annotations(source.layout).values())
    tracks = OverlayTracks(rows, info.n_frames)
    edges = check_edges(
        skeleton if skeleton is not None else read_skeleton(source.layout),
        list(dict.fromkeys(rows.keypoint.tolist())),
        "skeleton",
    )
    radius = settings.radius or int(np.clip(round(min(info.height, info.width) / 50), 3, 12))
    partial = target.with_name(f".{target.stem}.partial.mp4")
    writer = imageio_ffmpeg.write_frames(
        str(partial),
        (info.width, info.height),
        fps=info.fps,
        codec="libx264",
        quality=settings.quality,
        macro_block_size=1,
        output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
    )  # yuv420p needs even sizes
    writer.send(None)
    try:
        with VideoReader(info.path) as reader:
            for t, frame in reader.iter_frames():
                writer.send(draw_frame(frame, tracks, t, edges, settings, radius))
                yield t + 1, info.n_frames
        writer.close()
        os.replace(partial, target)
    finally:
        writer.close()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target
