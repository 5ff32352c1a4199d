"""The interface every mask propagator implements, and the rules they all follow.

Both rules live here so that every propagator obeys them the same way: seed masks are made
exclusive (one instance per pixel), and a lost instance reuses its last good mask, unchanged,
for a few frames before it is dropped. The reference tracker dilated the reused mask on every
fallback frame, so it kept growing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ...backbone.base import WorkGeometry

__all__ = ["LostInstanceFallback", "MaskPropagator", "exclusive_masks"]


@runtime_checkable
class MaskPropagator(Protocol):
    """Carries per-instance masks from a seed frame to the following frames.

    Instance order is the order of the masks given to :meth:`reset`; :meth:`step` returns
    masks in the same order.
    """

    def reset(
        self,
        features: torch.Tensor,
        masks: torch.Tensor,
        geometry: WorkGeometry,
        frame: np.ndarray | None = None,
    ) -> None:
        """(Re)start from a seed: (C, h, w) features, (I, H, W) bool native masks, its frame.

        Called on the seed frame and on every manual correction; all earlier state is dropped.
        """
        ...

    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Masks (I, H, W) bool at native resolution for the next frame, on the features' device."""
        ...


class LostInstanceFallback:
    """Reuse an instance's last good mask for ``max_frames`` frames while it is lost, then drop it.

    The reused mask is the stored one, not a dilated copy, so it cannot grow frame after frame.
    """

    def __init__(self, max_frames: int, min_area_frac: float):
        self.max_frames = int(max_frames)
        self.min_area_frac = float(min_area_frac)
        self.last_good = np.zeros((0, 0, 0), bool)
        self.good_area = np.zeros(0, np.int64)
        self.missed = np.zeros(0, np.int64)

    def reset(self, masks: np.ndarray) -> None:
        self.last_good = masks.copy()
        self.good_area = _areas(masks)
        self.missed = np.zeros(len(masks), np.int64)

    def apply(self, masks: np.ndarray) -> bool:
        """Replace lost instances of ``masks`` (I, H, W) in place; True if any was replaced."""
        changed = False
        areas = _areas(masks)
        for i, area in enumerate(areas):
            # A sliver far smaller than the animal's last good size is noise, not the animal.
            if area > 0 and area >= self.min_area_frac * self.good_area[i]:
                self.last_good[i] = masks[i]
                self.good_area[i] = area
                self.missed[i] = 0
                continue
            self.missed[i] += 1
            if self.missed[i] <= self.max_frames:
                masks[i] = self.last_good[i]
                changed = True
            else:
                masks[i] = False
        return changed


def _areas(masks: np.ndarray) -> np.ndarray:
    """(I,) pixel count of each of (I, H, W) bool masks (one count per mask: NumPy's fast path)."""
    return np.array([np.count_nonzero(m) for m in masks], np.int64)


def exclusive_masks(masks: torch.Tensor) -> torch.Tensor:
    """Where instances overlap, keep the pixel for the lowest index only."""
    masks = masks.bool()
    return masks & (masks.to(torch.int32).cumsum(0) == 1)
