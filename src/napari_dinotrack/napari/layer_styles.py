"""How the plugin's layers look: small style dataclasses giving napari's layer keyword arguments.

* :class:`KeypointsStyle`: the keypoints Points layer, coloured by keypoint name or by animal;
* :class:`TracksStyle`: the trajectories Tracks layer (each trajectory in its point's colour);
* :func:`keypoints_layer_data`: annotations as a ready-to-add Points LayerDataTuple (the reader's).

Kept apart from the widget so the look can be changed, and tested, without a viewer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..io.annotations import FrameAnnotation
from ..palette import PALETTE  # colour-blind safe, cycled over keypoint (or animal) names
from ..proofreading.suspicious import SuspicionSettings
from .convert import annotations_to_points, feature_defaults, keypoint_order

__all__ = ["PALETTE", "KeypointsStyle", "TracksStyle", "keypoints_layer_data", "point_size_for"]


def point_size_for(height: int, width: int) -> float:
    """A marker size (video pixels) that reads well: ~1/40 of the short side, 3 to 14 px."""
    short = min(int(height), int(width))
    return float(np.clip(short / 40.0, 3.0, 14.0)) if short > 0 else 9.0


def _colour_for(index: int, palette: Sequence[str]) -> str:
    return palette[index % len(palette)]


ColourBy = Literal["keypoint", "instance"]
#: symbols of the keypoints layer: confident predictions, manual (corrected) points, low-score predictions
PREDICTED_SYMBOL, MANUAL_SYMBOL, LOW_SCORE_SYMBOL = "disc", "diamond", "x"


@dataclass
class KeypointsStyle:
    """Look of the keypoints Points layer.

    Points are coloured by keypoint name or by animal (``colour_by``): a fixed colour per name in
    the order of ``keypoint_names`` (or of the animals as they appear), further names get the next
    palette colours, and a name keeps its colour once it has one. Hidden (occluded) keypoints keep
    their coloured border but get a transparent face, so they show as hollow rings. Manual
    (labelled or corrected) points are diamonds with a white border; predictions scoring below
    ``min_score`` are crosses with a faint face; confident predictions are discs. Colours and
    symbols are per-point arrays computed with numpy (see :meth:`colors`), which keeps updating a
    layer of 10^5 points cheap.
    """

    name: str = "keypoints"
    size: float = 9.0
    border_width: float = 0.2
    palette: tuple[str, ...] = PALETTE
    text_size: int = 9
    text_color: str = "white"
    opacity: float = 0.95
    hidden_face_alpha: float = 0.0
    low_score_face_alpha: float = 0.35
    keypoint_names: list[str] = field(default_factory=list)
    colour_by: ColourBy = "keypoint"
    min_score: float = field(default_factory=lambda: SuspicionSettings().min_score)
    _seen: dict[str, list[str]] = field(default_factory=lambda: {"keypoint": [], "instance": []}, repr=False)

    @property
    def first_name(self) -> str:
        """The name a new point gets by default: the first keypoint name (``point`` if none)."""
        return (self.keypoint_names or ["point"])[0]

    def colour_map(self, names: Iterable[str] | None = None, by: ColourBy = "keypoint") -> dict[str, str]:
        """Name -> hex colour: known keypoint names first, then names in the order they were first seen."""
        seen = self._seen[by]
        known = list(self.keypoint_names) if by == "keypoint" else []
        for n in names or ():
            if n not in known and n not in seen:
                seen.append(n)
        ordered = known + [n for n in seen if n not in known]
        return {n: _colour_for(i, self.palette) for i, n in enumerate(ordered)}

    def rgba(self, name: str, names: Iterable[str] | None = None) -> np.ndarray:
        """The RGBA colour (floats 0..1) of keypoint ``name``."""
        return _hex_to_rgba(self.colour_map([*(names or ()), name])[name])

    def colour_index(self, instances: Sequence[str] | np.ndarray, keypoints: Sequence[str] | np.ndarray) -> np.ndarray:
        """Palette index of each (instance, keypoint) row under the current ``colour_by``."""
        names = np.asarray(instances if self.colour_by == "instance" else keypoints).astype(str)
        if not len(names):
            return np.zeros(0, int)
        codes, uniques = pd.factorize(names)
        index = {n: i for i, n in enumerate(self.colour_map(list(uniques), self.colour_by))}
        return (np.array([index[u] for u in uniques]) % len(self.palette))[codes]

    def colors(self, features: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-point ``(face, border)`` RGBA arrays ``(N, 4)`` for a features table."""
        if features is None or len(features) == 0:
            return np.zeros((0, 4)), np.zeros((0, 4))
        table = np.array([_hex_to_rgba(c) for c in self.palette])
        border = table[
            self.colour_index(
                features["instance"].to_numpy() if "instance" in features else np.full(len(features), "animal"),
                features["keypoint"].to_numpy(),
            )
        ]
        face = border.copy()
        low = self._low_score(features)
        face[low, 3] = self.low_score_face_alpha
        if "visible" in features:
            face[~features["visible"].to_numpy(dtype=bool), 3] = self.hidden_face_alpha
        if "source" in features:
            border[(features["source"] == "manual").to_numpy()] = (1.0, 1.0, 1.0, 1.0)
        return face, border

    def symbols(self, features: pd.DataFrame | None) -> np.ndarray:
        """Per-point marker symbols: manual, low-score and confident points look different."""
        if features is None or len(features) == 0:
            return np.zeros(0, object)
        out = np.full(len(features), PREDICTED_SYMBOL, dtype=object)
        out[self._low_score(features)] = LOW_SCORE_SYMBOL
        if "source" in features:
            out[(features["source"] == "manual").to_numpy()] = MANUAL_SYMBOL
        return out

    def _low_score(self, features: pd.DataFrame) -> np.ndarray:
        if "score" not in features or "source" not in features:
            return np.zeros(len(features), bool)
        low = (features["score"].to_numpy(dtype=float) < self.min_score) & (features["source"] != "manual").to_numpy()
        if "visible" in features:
            low &= features["visible"].to_numpy(dtype=bool)
        return low

    def text(self) -> dict[str, Any]:
        """The ``text=`` argument: the animal and keypoint name next to each point."""
        return {
            "string": "{instance}:{keypoint}",
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
            kwargs["symbol"] = self.symbols(features)
        else:
            first = self.rgba(self.first_name)
            kwargs["face_color"] = first
            kwargs["border_color"] = first
        return kwargs

    def track_colours(
        self, instances: Sequence[str] | np.ndarray, keypoints: Sequence[str] | np.ndarray
    ) -> tuple[np.ndarray, Any]:
        """Per-vertex values and the napari colormap that draw each trajectory in its point's colour."""
        n = len(self.palette)
        values = (self.colour_index(instances, keypoints) + 0.5) / n
        return values, _palette_colormap(self.palette)


@functools.cache
def _palette_colormap(palette: tuple[str, ...]) -> Any:
    """A napari colormap giving palette colour ``i`` to the values in ``[i / n, (i + 1) / n)``; one per palette."""
    from napari.utils.colormaps import Colormap

    return Colormap(
        colors=np.array([_hex_to_rgba(c) for c in palette]),
        controls=np.linspace(0.0, 1.0, len(palette) + 1),
        interpolation="zero",
        name="dinotrack keypoints",
    )


def _hex_to_rgba(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i : i + 2], 16) / 255.0 for i in (0, 2, 4)] + [1.0])


@dataclass
class TracksStyle:
    """Look of the trajectories Tracks layer."""

    name: str = "trajectories"
    tail_length: int = 15
    head_length: int = 0
    tail_width: float = 2.0
    opacity: float = 0.8
    blending: str = "translucent"

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``viewer.add_tracks`` / ``napari.layers.Tracks``."""
        return {
            "name": self.name,
            "tail_length": self.tail_length,
            "head_length": self.head_length,
            "tail_width": self.tail_width,
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
