"""In-memory annotation model shared by the engine, the file formats and the napari layers.

A frame holds instances (animals); an instance holds named keypoints and, optionally, an
outline polygon and/or a full-resolution mask. Everything a file carried that this model does
not interpret is kept in ``extra`` / ``other_shapes`` so that rewriting a user's file loses
nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Source = Literal["manual", "prediction"]


@dataclass
class Keypoint:
    """One named body part of one instance, in full-resolution video pixels."""

    name: str
    x: float
    y: float
    visible: bool = True
    score: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Instance:
    """One animal: its keypoints and optional outline (polygon, x/y columns) or mask (H, W)."""

    name: str
    keypoints: list[Keypoint] = field(default_factory=list)
    polygon: np.ndarray | None = None
    mask: np.ndarray | None = None
    group_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def keypoint(self, name: str) -> Keypoint | None:
        """Return the keypoint called ``name`` or None."""
        for kp in self.keypoints:
            if kp.name == name:
                return kp
        return None


@dataclass
class FrameAnnotation:
    """Everything known about one video frame.

    ``source`` tells a user's own labels ("manual") from tracker output ("prediction").
    Predictions remember the manual frame they were tracked forward from (``seed_frame``) and
    that frame's content digest (``seed_digest``), and, when tracked two ways, the manual frame
    they were tracked backward from (``end_frame``, ``end_digest``): that is how a later
    correction marks them stale. They may
    also record the backbone (``model``) and working ``short_side`` they were made with, so that
    results of another model can be told apart; both are None when unknown (older files).
    """

    frame: int
    image_height: int
    image_width: int
    instances: list[Instance] = field(default_factory=list)
    source: Source = "manual"
    seed_frame: int | None = None
    seed_digest: str | None = None
    end_frame: int | None = None
    end_digest: str | None = None
    model: str | None = None
    short_side: int | None = None
    other_shapes: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_manual(self) -> bool:
        return self.source == "manual"

    def instance(self, name: str) -> Instance | None:
        """Return the instance called ``name`` or None."""
        for inst in self.instances:
            if inst.name == name:
                return inst
        return None

    def keypoint_names(self) -> list[tuple[str, str]]:
        """(instance, keypoint) pairs in file order."""
        return [(inst.name, kp.name) for inst in self.instances for kp in inst.keypoints]

    def digest(self) -> str:
        """Stable hash of the labelled content (names, positions, visibility, outlines)."""
        payload = []
        for inst in self.instances:
            kps = [[kp.name, round(float(kp.x), 3), round(float(kp.y), 3), bool(kp.visible)] for kp in inst.keypoints]
            poly = None if inst.polygon is None else np.round(inst.polygon, 2).tolist()
            mask = None
            if inst.mask is not None:
                mask = hashlib.sha1(np.packbits(np.asarray(inst.mask, bool)).tobytes()).hexdigest()
            payload.append([inst.name, kps, poly, mask])
        text = json.dumps(payload, separators=(",", ":"))
        return hashlib.sha1(text.encode()).hexdigest()[:16]
