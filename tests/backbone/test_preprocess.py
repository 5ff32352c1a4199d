"""Frames to the backbone's input: the batch shortcuts give exactly what frame-by-frame conversion gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.preprocess import IMAGENET_MEAN, IMAGENET_STD, cell_means, to_working_tensor

CPU = torch.device("cpu")


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    frames = np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    frames.flags.writeable = False  # like cached video frames
    return frames


@pytest.mark.parametrize(("h", "w", "cell"), [(48, 64, 4), (50, 67, 4), (37, 45, 2), (64, 96, 8)])
def test_pixel_cell_means_are_average_pooling_to_the_bit(h, w, cell):
    """Straight from 8 bits, padding included, the same numbers as pooling the float image."""
    frames = _frames(3, h, w)
    geometry = compute_geometry(h, w, min(h, w), 4 * cell)
    expected = F.avg_pool2d(to_working_tensor(frames, geometry, CPU, normalize=False), cell)
    got = cell_means(frames, geometry, cell, CPU)
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_frames_at_the_working_size_are_scaled_and_normalised_per_element():
    frames = _frames(2, 50, 67)
    geometry = compute_geometry(50, 67, 50, 16)  # no resize, padded to 64 x 80
    out = to_working_tensor(frames, geometry, CPU)
    assert out.shape == (2, 3, 64, 80) and out.is_contiguous()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = torch.from_numpy(frames.copy()).permute(0, 3, 1, 2).float() / 255.0
    assert torch.equal(out[:, :, :50, :67], (x - mean) / std)
    assert not out[:, :, 50:].any() and not out[:, :, :, 67:].any()
    one_by_one = torch.cat([to_working_tensor(f, geometry, CPU, torch.bfloat16) for f in frames])
    assert torch.equal(to_working_tensor(frames, geometry, CPU, torch.bfloat16), one_by_one)


def test_cell_means_want_the_working_size():
    frames = _frames(1, 48, 64)
    with pytest.raises(ValueError, match="working size"):
        cell_means(frames, compute_geometry(48, 64, 32, 16), 4, CPU)
