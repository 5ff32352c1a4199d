"""How a run is set up (backbone, working resolution, device, precision, direction): one place for the defaults.

The command line, the Python API and the dock all take their defaults, choices and bounds from
:class:`RunSettings`. Tracking behaviour itself is :class:`~.tracking.config.TrackerConfig`.
"""

from __future__ import annotations

from typing import Literal

from .backbone.catalog import DEFAULT_MODEL
from .schema import Settings, setting

__all__ = ["DIRECTIONS", "MAX_SHORT_SIDE", "MIN_SHORT_SIDE", "PRECISIONS", "Direction", "RunSettings"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MIN_SHORT_SIDE = 32
MAX_SHORT_SIDE = 4096  # a ViT at a larger working size would need hundreds of GB

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Direction = Literal["both", "forward"]
DIRECTIONS: tuple[str, ...] = ("both", "forward")


class RunSettings(Settings):
    """The backbone and the working resolution of a run."""

    model: str = setting(
        DEFAULT_MODEL, "Backbone: catalog name, Hugging Face id, local folder or pixel:.", group="backbone"
    )
    direction: Direction = setting(
        "both",
        "both = frames between two manual frames are tracked from each end and merged, frames before "
        "the first manual frame backward; forward = forward from each manual frame only.",
        group="run",
    )
    short_side: int = setting(
        768,
        "Working resolution: the video's short side is resized to this many pixels.",
        ge=MIN_SHORT_SIDE,
        le=MAX_SHORT_SIDE,
        group="backbone",
    )
    device: str = setting("auto", "auto, cpu, cuda, cuda:N, N (a GPU index) or mps.", group="backbone")
    precision: Precision = setting(
        "auto", "Backbone precision: auto = bf16 on GPUs and on CPUs with bf16 support, else fp32.", group="backbone"
    )
