"""Generated clips with exact ground truth: moving textured animals with coloured body parts.

Used by the sample data, the tests and the benchmarks. Each animal is a textured ellipse that
walks along a smooth path and turns; its body parts are coloured dots in body coordinates, so
their true positions, visibility (an optional occluder bar hides them) and the true instance
masks are known for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.annotations import FrameAnnotation, Instance, Keypoint
from ..io.mask_store import mask_to_polygon

# body-frame offsets (forward, left) in units of the body half-length
BODY_PARTS: dict[str, tuple[float, float]] = {
    "nose": (1.0, 0.0),
    "leftear": (0.55, 0.42),
    "rightear": (0.55, -0.42),
    "tail_base": (-0.95, 0.0),
}
PART_COLOURS: dict[str, tuple[int, int, int]] = {
    "nose": (230, 40, 40),
    "leftear": (40, 200, 60),
    "rightear": (40, 90, 230),
    "tail_base": (240, 200, 30),
}


@dataclass
class SyntheticClip:
    """Frames plus ground truth. ``positions[name]`` is (T, 2) x/y, ``visible[name]`` (T,)."""

    frames: np.ndarray
    instance_names: list[str]
    part_names: list[str]
    positions: dict[tuple[str, str], np.ndarray]
    visible: dict[tuple[str, str], np.ndarray]
    masks: np.ndarray  # (T, I, H, W) bool
    fps: float = 10.0
    extras: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def annotation(self, frame: int, with_polygons: bool = False) -> FrameAnnotation:
        """The ground truth of ``frame`` as a manual annotation (a seed)."""
        h, w = self.frames.shape[1:3]
        instances = []
        for i, inst in enumerate(self.instance_names):
            kps = [
                Keypoint(
                    part,
                    float(self.positions[inst, part][frame, 0]),
                    float(self.positions[inst, part][frame, 1]),
                    bool(self.visible[inst, part][frame]),
                )
                for part in self.part_names
            ]
            polygon = mask_to_polygon(self.masks[frame, i], tolerance_frac=0.0) if with_polygons else None
            instances.append(Instance(inst, kps, polygon=polygon, group_id=i))
        return FrameAnnotation(frame, h, w, instances, source="manual")

    def write(self, path: str | Path, quality: int = 10) -> Path:
        """Encode the frames as an H.264 video at ``path`` (near-lossless by default)."""
        from ..io.video import write_video

        return write_video(path, self.frames, fps=self.fps, quality=quality, keyframe_interval=8)


def make_clip(
    n_frames: int = 24,
    height: int = 160,
    width: int = 224,
    n_instances: int = 1,
    speed: float = 3.0,
    body_length: float = 34.0,
    dot_radius: int = 4,
    occluder: tuple[int, int] | None = None,
    same_colour_ears: bool = False,
    crossing: bool = False,
    seed: int = 0,
) -> SyntheticClip:
    """Generate a clip.

    ``occluder=(first, last)`` puts a grey bar over the first animal's nose during those
    frames. ``crossing`` sends two animals towards each other so that their bodies touch.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = (40 + 25 * rng.random((height, width, 1))).astype(np.float32).repeat(3, axis=2)
    # fur: mid-grey brightness noise with a faint tint, unlike any body-part colour
    textures = [
        (128 + 60 * (rng.random((height, width, 1)) - 0.5)).astype(np.float32) * np.array(tint, np.float32)
        for tint in ((1.04, 1.0, 0.96), (0.96, 1.0, 1.04), (1.0, 1.04, 0.96))
    ]
    parts = list(BODY_PARTS)
    names = [f"animal{i + 1}" for i in range(n_instances)]
    colours = dict(PART_COLOURS)
    if same_colour_ears:
        colours["rightear"] = colours["leftear"]

    frames = np.zeros((n_frames, height, width, 3), np.uint8)
    masks = np.zeros((n_frames, n_instances, height, width), bool)
    positions = {(n, p): np.zeros((n_frames, 2), np.float32) for n in names for p in parts}
    visible = {(n, p): np.ones(n_frames, bool) for n in names for p in parts}
    half_len, half_wid = body_length / 2, body_length / 3.2

    for t in range(n_frames):
        img = background.copy()
        for i, name in enumerate(names):
            cx, cy, heading = _pose(i, n_instances, t, height, width, speed, crossing)
            fwd = np.array([np.cos(heading), np.sin(heading)], np.float32)
            left = np.array([np.sin(heading), -np.cos(heading)], np.float32)
            dx, dy = xx - cx, yy - cy
            u = dx * fwd[0] + dy * fwd[1]
            v = dx * left[0] + dy * left[1]
            body = (u / half_len) ** 2 + (v / half_wid) ** 2 <= 1.0
            img[body] = textures[i % len(textures)][body]
            masks[t, i] = body
            for part in parts:
                a, b = BODY_PARTS[part]
                px = cx + fwd[0] * a * half_len + left[0] * b * half_len * 0.9
                py = cy + fwd[1] * a * half_len + left[1] * b * half_len * 0.9
                positions[name, part][t] = (px, py)
                visible[name, part][t] = 0 <= px <= width - 1 and 0 <= py <= height - 1
                dot = (xx - px) ** 2 + (yy - py) ** 2 <= dot_radius**2
                img[dot] = colours[part]
        if occluder is not None and occluder[0] <= t <= occluder[1]:
            bar_x = positions[names[0], "nose"][t, 0]
            bar = np.abs(xx - bar_x) <= body_length * 0.45
            img[bar] = (128, 128, 128)
            for name in names:
                for part in parts:
                    px, py = positions[name, part][t]
                    row = int(np.clip(round(py), 0, height - 1))
                    col = int(np.clip(round(px), 0, width - 1))
                    if bar[row, col]:
                        visible[name, part][t] = False
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return SyntheticClip(frames, names, parts, positions, visible, masks)


def _pose(i: int, n: int, t: int, h: int, w: int, speed: float, crossing: bool):
    """Centre and heading of animal ``i`` at frame ``t``: a gentle curve, no wall contact."""
    if crossing:
        direction = 1.0 if i % 2 == 0 else -1.0
        start_x = w * (0.25 if direction > 0 else 0.75)
        cx = start_x + direction * speed * t
        cy = h * 0.5 + (i - 0.5) * 22 + 6 * np.sin(t / 5.0)
        heading = 0.0 if direction > 0 else np.pi
        return float(cx), float(cy), float(heading + 0.1 * np.sin(t / 4.0))
    row = (i + 1) / (n + 1)
    cx = w * 0.3 + speed * t
    cy = h * row + 10 * np.sin(t / 6.0 + i)
    heading = np.arctan2(10 / 6.0 * np.cos(t / 6.0 + i), speed)
    return float(cx), float(cy), float(heading)


def write_sample(
    folder: str | Path, n_frames: int = 40, height: int = 192, width: int = 256, n_instances: int = 1
) -> Path:
    """Write a sample video and its frame-0 manual seed (LabelMe JSON) into ``folder``; return the video."""
    from ..io.labelme import write_manual
    from ..io.paths import ResultLayout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clip = make_clip(n_frames=n_frames, height=height, width=width, n_instances=n_instances, speed=2.5)
    video = clip.write(folder / "sample_mouse.mp4")
    layout = ResultLayout(video)
    layout.ensure_folder()
    write_manual(layout, clip.annotation(0))
    return video
