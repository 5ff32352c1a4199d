"""The backbone interface every feature extractor implements, the working geometry and a registry.

The tracker only ever sees ``Backbone.extract`` output: L2-normalised patch features of shape
(B, C, h, w) on ``Backbone.device``. Frames are resized once per run to a fixed working
geometry (short side = ``short_side``, aspect ratio kept, padded at the bottom/right to whole
patches), so every frame of a run shares one patch grid and one pixel scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import InputError


@dataclass(frozen=True)
class WorkGeometry:
    """How native video pixels map to the backbone's working image and patch grid."""

    native_height: int
    native_width: int
    scale: float
    work_height: int
    work_width: int
    patch_size: int

    @property
    def padded_height(self) -> int:
        return math.ceil(self.work_height / self.patch_size) * self.patch_size

    @property
    def padded_width(self) -> int:
        return math.ceil(self.work_width / self.patch_size) * self.patch_size

    @property
    def grid_height(self) -> int:
        return self.padded_height // self.patch_size

    @property
    def grid_width(self) -> int:
        return self.padded_width // self.patch_size

    @property
    def patch_px(self) -> float:
        """Size of one patch in native video pixels."""
        return self.patch_size / self.scale


def compute_geometry(height: int, width: int, short_side: int, patch_size: int) -> WorkGeometry:
    """Working geometry for a ``height`` x ``width`` video at ``short_side`` pixels.

    The short side becomes ``short_side`` (rounded to whole pixels, the long side keeps the
    aspect ratio); padding to whole patches happens later, so nothing is distorted or cropped.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if short_side < patch_size:
        raise InputError(
            f"the short side ({short_side} px) must be at least one patch of the model ({patch_size} px): "
            f"use a short side of {patch_size} or more, or a model with smaller patches"
        )
    scale = short_side / min(height, width)
    work_h = max(1, round(height * scale))
    work_w = max(1, round(width * scale))
    return WorkGeometry(height, width, scale, work_h, work_w, patch_size)


@runtime_checkable
class Backbone(Protocol):
    """What the tracker needs from a feature extractor."""

    name: str
    patch_size: int
    feature_dim: int
    device: torch.device

    def extract(self, frames: np.ndarray | torch.Tensor, geometry: WorkGeometry) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB frames -> (B, C, grid_h, grid_w) L2-normalised features."""
        ...


BackboneFactory = Callable[..., Backbone]
_REGISTRY: dict[str, BackboneFactory] = {}


def register_backbone(scheme: str, factory: BackboneFactory) -> None:
    """Make ``"<scheme>:<argument>"`` model names resolve to ``factory(argument, **options)``."""
    _REGISTRY[scheme] = factory


def lookup_backbone_factory(model_name: str) -> tuple[BackboneFactory, str] | None:
    """Return the registered factory and its argument for ``scheme:argument`` names, else None."""
    scheme, sep, argument = model_name.partition(":")
    if sep and scheme in _REGISTRY:
        return _REGISTRY[scheme], argument
    return None
