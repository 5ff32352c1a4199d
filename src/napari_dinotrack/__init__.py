"""napari-dinotrack: follow labelled animal keypoints through videos with DINO patch features.

Heavy modules (torch, transformers) load on first use, so ``import napari_dinotrack`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["DinoKeypointVideoProcessor", "TrackerConfig", "__version__"]

if TYPE_CHECKING:
    from .pipeline import DinoKeypointVideoProcessor
    from .tracking.config import TrackerConfig


def __getattr__(name: str) -> Any:
    if name == "DinoKeypointVideoProcessor":
        from .pipeline import DinoKeypointVideoProcessor

        return DinoKeypointVideoProcessor
    if name == "TrackerConfig":
        from .tracking.config import TrackerConfig

        return TrackerConfig
    raise AttributeError(name)
