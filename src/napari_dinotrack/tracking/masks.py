"""Instance masks that follow the animals through a video: pick a propagator by name.

The default, ``"dino"`` (:mod:`.dino_masks`), reuses the patch features the keypoint tracker
already computed, so no second network runs. ``"cutie"`` (:mod:`.cutie_masks`) wraps the Cutie
video segmentation network when its package and weights are installed locally. Both implement
:class:`MaskPropagator` and share the lost-instance fallback of :mod:`.mask_base`.
"""

from __future__ import annotations

from typing import Any

from .cutie_masks import CutieMaskPropagator, cutie_available
from .dino_masks import DinoMaskPropagator
from .mask_base import MaskPropagator

__all__ = [
    "CutieMaskPropagator",
    "DinoMaskPropagator",
    "MaskPropagator",
    "cutie_available",
    "make_propagator",
]


def make_propagator(kind: str | None, **options: Any) -> MaskPropagator | None:
    """``"dino"`` -> :class:`DinoMaskPropagator`, ``"cutie"`` -> :class:`CutieMaskPropagator`, ``"none"`` -> None."""
    key = (kind or "none").strip().lower()
    if key == "dino":
        return DinoMaskPropagator(**options)
    if key == "cutie":
        return CutieMaskPropagator(**options)
    if key in ("none", "off", ""):
        return None
    raise ValueError(f"unknown mask propagation {kind!r}; choose 'dino', 'cutie' or 'none'")
