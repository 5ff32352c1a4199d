"""The keypoint colours, shared by the napari layers and the rendered overlay videos.

Colour-blind safe: the Okabe-Ito colours (without black, which vanishes on dark video), then
Paul Tol's "bright" set; no red sits next to a green.
"""

from __future__ import annotations

__all__ = ["PALETTE", "rgb"]

PALETTE: tuple[str, ...] = (
    "#e69f00",
    "#56b4e9",
    "#009e73",
    "#f0e442",
    "#0072b2",
    "#d55e00",
    "#cc79a7",
    "#4477aa",
    "#66ccee",
    "#228833",
    "#ccbb44",
    "#ee6677",
    "#aa3377",
    "#bbbbbb",
)


def rgb(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b) in 0..255."""
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
