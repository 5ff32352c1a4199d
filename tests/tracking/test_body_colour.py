"""Animals of flat fur are moved by their colours: they keep up while walking along their own length."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.tracking.config import TrackerConfig
from napari_dinotrack.tracking.keypoints.body_colour import align_bodies, colour_models
from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker

cv2 = pytest.importorskip("cv2")

HEIGHT, WIDTH = 192, 320
HALF_LENGTH, HALF_WIDTH = 40, 12  # px: an elongated body of one flat colour
FUR = (200, 180, 120)
PARTS = {"nose": (HALF_LENGTH, 0), "tail": (-HALF_LENGTH, 0), "left": (0, -HALF_WIDTH), "right": (0, HALF_WIDTH)}
PARTS["centre"] = (0, 0)


def _floor(seed: int = 0) -> np.ndarray:
    """A textured teal floor: its texture is what the flow of rim spots sticks to."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH)).astype(np.float32), (0, 0), 2.0)
    shade = (noise - noise.mean()) * 4
    teal = np.array([60.0, 140.0, 130.0])
    return np.clip(teal[None, None] + shade[..., None], 0, 255).astype(np.uint8)


def _draw(floor: np.ndarray, centre: tuple[float, float], angle_deg: float) -> np.ndarray:
    image = floor.copy()
    scale = 16  # sub-pixel placement: OpenCV draws on a grid 16 times finer
    c = (round(centre[0] * scale), round(centre[1] * scale))
    cv2.ellipse(image, c, (HALF_LENGTH * scale, HALF_WIDTH * scale), angle_deg, 0, 360, FUR, -1, cv2.LINE_AA, 4)
    return image


def _parts(centre: tuple[float, float], angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (np.asarray(list(PARTS.values()), float) @ rot.T + np.asarray(centre)).astype(np.float32)


def test_a_body_is_aligned_by_its_colours_on_textured_floor():
    floor = _floor()
    before, after = _draw(floor, (120, 90), 10), _draw(floor, (127.5, 92), 14)
    parts = _parts((120, 90), 10)
    instance = np.zeros(len(parts), np.int64)
    tables = colour_models(before, parts, instance, 1)
    maps, _, found = align_bodies(before, after, tables, parts, instance, np.zeros((1, 2), np.float32), 20.0)
    assert found.tolist() == [True]
    moved = parts @ maps[0, :, :2].T + maps[0, :, 2]
    error = np.linalg.norm(moved - _parts((127.5, 92), 14), axis=1)
    assert error.max() < 1.0, error.round(2)


def test_no_outline_means_no_colour_step():
    # parts marked on plain floor: nothing in the region tells an animal from its surroundings
    floor = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    parts = _parts((120, 90), 0)
    instance = np.zeros(len(parts), np.int64)
    tables = colour_models(floor, parts, instance, 1)
    maps, _, found = align_bodies(floor, floor, tables, parts, instance, np.zeros((1, 2), np.float32), 20.0)
    assert found.tolist() == [False]
    np.testing.assert_array_equal(maps[0], np.eye(2, 3))


def _walk(colour_bodies: bool, frames: int = 24, step: float = 5.0) -> np.ndarray:
    """Error (parts,) after a flat-furred animal walks ``frames`` frames along its own length."""
    floor = _floor()
    centres = [(80 + step * t, HEIGHT / 2) for t in range(frames)]
    images = np.stack([_draw(floor, c, 0) for c in centres])
    backbone = load_backbone("pixel:")
    geometry = compute_geometry(HEIGHT, WIDTH, HEIGHT, backbone.patch_size)
    with torch.no_grad():
        features = backbone.extract(images, geometry).float()
    gray = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
    seed = _parts(centres[0], 0)
    kps = [Keypoint(name, float(x), float(y)) for name, (x, y) in zip(PARTS, seed, strict=True)]
    tracker = KeypointTracker(TrackerConfig(colour_bodies=colour_bodies), geometry)
    annotation = FrameAnnotation(0, WIDTH, HEIGHT, [Instance("mouse", kps)], source="manual")
    tracker.start(annotation, features[0], gray[0], images[0])
    with torch.no_grad():
        for t in range(1, frames):
            out = tracker.step(features[t], gray[t], image=images[t])
    return np.linalg.norm(out.xy - _parts(centres[-1], 0), axis=1)


def test_flat_fur_keeps_up_when_moved_by_its_colours():
    # the flow of a flat body sees only its long edges, which slide along themselves: it stays behind
    with_colours = _walk(True)
    without = _walk(False)
    assert with_colours.max() < 5.0, dict(zip(PARTS, with_colours.round(1), strict=True))
    assert without.max() > 2 * with_colours.max() + 5.0, dict(zip(PARTS, without.round(1), strict=True))
