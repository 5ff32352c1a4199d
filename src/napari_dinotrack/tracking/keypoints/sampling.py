"""Bilinear sampling of patch features at arbitrary working-pixel positions.

Feature cell (i, j) covers working pixels [j*p, (j+1)*p) x [i*p, (i+1)*p); with
``align_corners=False`` grid_sample treats the map the same way, so a position in working
pixels maps to normalised coordinates by dividing by the padded image size.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ...vectors import unit


def to_grid_coords(xy: torch.Tensor, padded_hw: tuple[int, int]) -> torch.Tensor:
    """Working-pixel (..., 2) x/y -> grid_sample coordinates in [-1, 1]."""
    h, w = padded_hw
    return xy * _grid_scale(w, h, xy.device, xy.dtype) - 1.0


@functools.lru_cache(maxsize=16)
def _grid_scale(width: int, height: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # made once: a tensor built from Python numbers on every call would be a host-to-device copy
    return torch.tensor([2.0 / width, 2.0 / height], device=device, dtype=dtype)


def sample_features(features: torch.Tensor, xy: torch.Tensor, padded_hw: tuple[int, int]) -> torch.Tensor:
    """Features (C, h, w) sampled at points ``xy`` (..., 2) -> (..., C), L2-normalised."""
    lead = xy.shape[:-1]
    grid = to_grid_coords(xy.reshape(1, -1, 1, 2).to(features.dtype), padded_hw)
    out = F.grid_sample(features[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out[0, :, :, 0].transpose(0, 1)  # (N, C)
    return unit(out.reshape(*lead, features.shape[0]), dim=-1)
