"""A weight-free backbone whose features are the patch's own colours.

It needs no download and its answers are predictable, so tests, the sample data and demos can
exercise the whole pipeline with it. Select it with the model name ``"pixel:"`` (optionally
``"pixel:<patch_size>"``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BackboneUnavailableError
from ..profiling import timed
from ..vectors import unit
from .base import WorkGeometry, register_backbone
from .preprocess import cell_means, to_working_tensor

GREY_BIAS = 0.05


class PixelBackbone:
    """Patch features = the patch's RGB (minus mid-grey) pooled to a 4 x 4 sub-grid, L2-normalised."""

    def __init__(self, patch_size: int = 16, device: str | torch.device | None = None):
        if patch_size % 4:
            raise ValueError(f"pixel backbone patch size must be a multiple of 4, got {patch_size}")
        self.name = f"pixel:{patch_size}"
        self.patch_size = patch_size
        self.feature_dim = 3 * 16 + 1
        self.device = torch.device(device or "cpu")

    def extract(self, frames: np.ndarray | torch.Tensor, geometry: WorkGeometry) -> torch.Tensor:
        cell = self.patch_size // 4
        with timed("preprocess"):
            if (geometry.work_height, geometry.work_width) == (geometry.native_height, geometry.native_width):
                means = cell_means(frames, geometry, cell, self.device)
            else:
                x = to_working_tensor(frames, geometry, self.device, torch.float32, normalize=False)
                means = F.avg_pool2d(x, cell)
        # centring on mid-grey makes unrelated colours dissimilar (raw RGB vectors are all alike)
        pooled = means - 0.5  # (B, 3, 4*gh, 4*gw)
        b, c, h4, w4 = pooled.shape
        gh, gw = h4 // 4, w4 // 4
        feats = pooled.reshape(b, c, gh, 4, gw, 4).permute(0, 1, 3, 5, 2, 4).reshape(b, 48, gh, gw)
        # a small constant component gives grey (near-zero) patches a fixed direction instead of
        # letting normalisation blow their noise up into a random, possibly matching, one
        bias = torch.full((b, 1, gh, gw), GREY_BIAS, device=feats.device)
        return unit(torch.cat([feats, bias], dim=1), dim=1, eps=1e-12)


MAX_PATCH = 256


def _make_pixel(argument: str = "", device: str | torch.device | None = None, **_: object):
    text = argument.strip()
    patch = int(text) if text.isascii() and text.isdigit() else None
    if text and (patch is None or not 4 <= patch <= MAX_PATCH or patch % 4):
        raise BackboneUnavailableError(
            f"pixel:{argument}: the number after 'pixel:' is the patch size in pixels and must be a multiple of 4 "
            f"from 4 to {MAX_PATCH}, e.g. pixel:8 or pixel:16 (or plain pixel: for 16).",
            model=f"pixel:{argument}",
        )
    return PixelBackbone(patch or 16, device=device)


register_backbone("pixel", _make_pixel)
