"""Instance masks that follow the animals through a video: pick a propagator by name.

``"dino"`` (:mod:`.dino`) reuses the patch features the keypoint tracker already computed, so no
second network runs; it implements :class:`~.base.MaskPropagator` and uses the lost-instance
fallback of :mod:`.base`. ``"none"`` turns propagation off (seed masks still constrain the seed frame).
"""

from __future__ import annotations

from typing import Any

from .base import MaskPropagator
from .dino import DinoMaskPropagator

__all__ = [
    "DinoMaskPropagator",
    "MaskPropagator",
    "make_propagator",
]


def make_propagator(kind: str | None, **options: Any) -> MaskPropagator | None:
    """``"dino"`` -> :class:`DinoMaskPropagator`, ``"none"`` -> None."""
    key = (kind or "none").strip().lower()
    if key == "dino":
        return DinoMaskPropagator(**options)
    if key in ("none", "off", ""):
        return None
    raise ValueError(f"unknown mask propagation {kind!r}; choose 'dino' or 'none'")
