"""How the plugin's layers look: small style dataclasses giving napari's layer keyword arguments.

* :class:`KeypointsStyle`: the keypoints Points layer, coloured by keypoint name;
* :class:`TracksStyle`: the trajectories Tracks layer;
* :func:`keypoints_layer_data`: annotations as a ready-to-add Points LayerDataTuple (the reader's).

Kept apart from the widget so the look can be changed, and tested, without a viewer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..io.annotations import FrameAnnotation
from .convert import annotations_to_points, feature_defaults, keypoint_order

__all__ = ["PALETTE", "KeypointsStyle", "TracksStyle", "keypoints_layer_data", "point_size_for"]

#: Colour-blind-friendly palette (Okabe-Ito, then Tableau) cycled over keypoint names.
PALETTE: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#4363d8", "#ffe119", "#f58231", "#911eb4", "#46f0f0",
    "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#aaffc3",
)


def point_size_for(height: int, width: int) -> float:
    """A marker size (video pixels) that reads well: ~1/40 of the short side, 3 to 14 px."""
    short = min(int(height), int(width))
    return float(np.clip(short / 40.0, 3.0, 14.0)) if short > 0 else 9.0


def _colour_for(index: int, palette: Sequence[str]) -> str:
    return palette[index % len(palette)]


@dataclass
class KeypointsStyle:
    """Look of the keypoints Points layer.

    Face and border are coloured by keypoint name: a fixed colour per name in the order of
    ``keypoint_names``, further names get the next palette colours in order of appearance.
    Hidden (occluded) keypoints keep their coloured border but get a transparent face, so they
    show as hollow rings. Colours are per-point arrays computed with numpy (see
    :meth:`colors`), which keeps updating a layer of 10^5 points cheap.
    """

    name: str = "keypoints"
    size: float = 9.0
    border_width: float = 0.2
    palette: tuple[str, ...] = PALETTE
    text_size: int = 9
    text_color: str = "white"
    opacity: float = 0.95
    hidden_face_alpha: float = 0.0
    keypoint_names: list[str] = field(default_factory=list)

    @property
    def first_name(self) -> str:
        """The name a new point gets by default: the first keypoint name (``point`` if none)."""
        return (self.keypoint_names or ["point"])[0]

    def colour_map(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Keypoint name -> hex colour (known names first, then ``names`` in order)."""
        all_names = list(self.keypoint_names)
        for n in names or ():
            if n not in all_names:
                all_names.append(n)
        return {n: _colour_for(i, self.palette) for i, n in enumerate(all_names)}

    def rgba(self, name: str, names: Iterable[str] | None = None) -> np.ndarray:
        """The RGBA colour (floats 0..1) of keypoint ``name``."""
        return _hex_to_rgba(self.colour_map([*(names or ()), name])[name])

    def colors(self, features: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-point ``(face, border)`` RGBA arrays ``(N, 4)`` for a features table."""
        if features is None or len(features) == 0:
            return np.zeros((0, 4)), np.zeros((0, 4))
        names = features["keypoint"].astype(str).to_numpy()
        codes, uniques = pd.factorize(names)
        cmap = self.colour_map(list(uniques))
        table = np.array([_hex_to_rgba(cmap[u]) for u in uniques]).reshape(-1, 4)
        border = table[codes]
        face = border.copy()
        if "visible" in features:
            hidden = ~features["visible"].to_numpy(dtype=bool)
            face[hidden, 3] = self.hidden_face_alpha
        return face, border

    def text(self) -> dict[str, Any]:
        """The ``text=`` argument: the keypoint name next to each point."""
        return {
            "string": "keypoint",
            "size": self.text_size,
            "color": self.text_color,
            "anchor": "upper_left",
            "translation": [0, -3, 3],
        }

    def as_kwargs(self, features: pd.DataFrame | None = None) -> dict[str, Any]:
        """Keyword arguments for ``viewer.add_points`` / ``napari.layers.Points``."""
        kwargs: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "border_width": self.border_width,
            "border_width_is_relative": True,
            "text": self.text(),
            "opacity": self.opacity,
            "feature_defaults": feature_defaults("animal", self.first_name),
        }
        if features is not None and len(features):
            face, border = self.colors(features)
            kwargs["face_color"] = face
            kwargs["border_color"] = border
        else:
            first = self.rgba(self.first_name)
            kwargs["face_color"] = first
            kwargs["border_color"] = first
        return kwargs


def _hex_to_rgba(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4)] + [1.0])


@dataclass
class TracksStyle:
    """Look of the trajectories Tracks layer."""

    name: str = "trajectories"
    tail_length: int = 15
    head_length: int = 0
    tail_width: float = 2.0
    colormap: str = "turbo"
    color_by: str = "track_id"
    opacity: float = 0.8
    blending: str = "translucent"

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``viewer.add_tracks`` / ``napari.layers.Tracks``."""
        return {
            "name": self.name,
            "tail_length": self.tail_length,
            "head_length": self.head_length,
            "tail_width": self.tail_width,
            "colormap": self.colormap,
            "color_by": self.color_by,
            "opacity": self.opacity,
            "blending": self.blending,
        }


def keypoints_layer_data(
    annotations: Mapping[int, FrameAnnotation],
    name: str = "keypoints",
    metadata: dict[str, Any] | None = None,
    style: KeypointsStyle | None = None,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A napari LayerDataTuple ``(data, kwargs, "points")`` for the keypoints of ``annotations``."""
    data, features = annotations_to_points(annotations)
    if style is None:
        style = KeypointsStyle(keypoint_names=keypoint_order(annotations))
        if annotations:
            first = next(iter(annotations.values()))
            style.size = point_size_for(first.image_height, first.image_width)
    style.name = name
    kwargs = style.as_kwargs(features)
    kwargs["features"] = features
    kwargs["metadata"] = dict(metadata or {})
    kwargs["ndim"] = 3
    kwargs["axis_labels"] = ("t", "y", "x")
    return data, kwargs, "points"
