"""Parts on an animal's rim keep up with it when the floor around it is textured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.tracking.config import TrackerConfig
from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker

HEIGHT, WIDTH = 192, 256
BODY_RADIUS = 18  # px: a round, textured body ...
RIM_REACH = 28  # ... whose outer parts are marked beyond it, where their windows see mostly floor
STEP = 4.0  # px per frame, straight to the right
FRAMES = 20
PARTS = {
    "centre": (0, 0),
    "nose": (RIM_REACH, 0),
    "tail": (-RIM_REACH, 0),
    "left": (0, -RIM_REACH),
    "right": (0, RIM_REACH),
}


def _texture(rng: np.random.Generator, shape: tuple[int, int], mean: float) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    noise = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), 1.5)
    return (noise - noise.mean()) * 3 + mean


def _clip() -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) of a textured body walking over a textured floor, and its centre (T, 2)."""
    rng = np.random.default_rng(0)
    floor = _texture(rng, (HEIGHT, WIDTH), 90.0)
    fur = _texture(rng, (64, 64), 190.0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames, centres = [], []
    for t in range(FRAMES):
        cx, cy = 70 + STEP * t, HEIGHT / 2
        image = floor.copy()
        body = (xx - cx) ** 2 + (yy - cy) ** 2 <= BODY_RADIUS**2
        fx = np.clip(np.round(xx - cx + 32).astype(int), 0, 63)
        fy = np.clip(np.round(yy - cy + 32).astype(int), 0, 63)
        image[body] = fur[fy[body], fx[body]]
        frames.append(np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
        centres.append((cx, cy))
    return np.stack(frames), np.asarray(centres)


def test_rim_parts_are_not_left_behind_on_a_textured_floor():
    # the windows of the outer parts, and of the spots near them, hold mostly floor that stays put:
    # followed as they are, they hold the parts back while the body walks on
    frames, centres = _clip()
    backbone = load_backbone("pixel:")
    geometry = compute_geometry(HEIGHT, WIDTH, HEIGHT, backbone.patch_size)
    with torch.no_grad():
        features = backbone.extract(frames, geometry).float()
    gray = frames[..., 0]
    kps = [Keypoint(name, centres[0, 0] + dx, centres[0, 1] + dy) for name, (dx, dy) in PARTS.items()]
    tracker = KeypointTracker(TrackerConfig(), geometry)
    tracker.start(FrameAnnotation(0, WIDTH, HEIGHT, [Instance("mouse", kps)], source="manual"), features[0], gray[0])
    with torch.no_grad():
        for t in range(1, FRAMES):
            out = tracker.step(features[t], gray[t])
    truth = centres[-1] + np.asarray(list(PARTS.values()), np.float32)
    error = np.linalg.norm(out.xy - truth, axis=1)
    assert error.max() < 10.0, dict(zip(PARTS, error.round(1), strict=True))
