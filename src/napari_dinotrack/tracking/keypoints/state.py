"""What one tracking run remembers from frame to frame, in one place."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TrackState:
    """The state of a run, created by :meth:`KeypointTracker.start`.

    Keypoint tensors have K rows in :attr:`names` order; animal tensors have I rows in the
    seed's instance order. Positions are in working pixels unless named ``*_native``.
    """

    names: list[tuple[str, str]]  # (instance, keypoint) of every row
    instance_of: torch.Tensor  # (K,) long: each keypoint's animal
    n_instances: int
    trackable: torch.Tensor  # (K,) bool: has an appearance to look for
    pos: torch.Tensor  # (K, 2) where each keypoint is (or, while hidden, is carried to)
    pos_native: np.ndarray  # (K, 2) the same in video pixels, on the host: the optical flow starts there
    visible: torch.Tensor  # (K,) bool
    misses: torch.Tensor  # (K,) frames since last seen
    typical: torch.Tensor  # (K,) usual match similarity; NaN until known
    templates: torch.Tensor  # (K, M, C) appearance on the manual frames, nearest first
    template_valid: torch.Tensor  # (K, M) bool
    memory: torch.Tensor  # (K, C) running appearance from confident frames
    offsets: torch.Tensor  # (K, 2) each part's place in its animal's own frame
    seed_offsets: torch.Tensor  # (K, 2) the same on the seed frame: parts stay near these
    centre: torch.Tensor  # (I, 2) each animal's centre
    angle: torch.Tensor  # (I,) its turn since the seed, radians
    scale: torch.Tensor  # (I,) its apparent size relative to the seed
    velocity: torch.Tensor  # (I, 2) recent step of the centre per frame
    spin: torch.Tensor  # (I,) recent turn per frame
    lost_for: torch.Tensor  # (I,) frames the animal as a whole has not been found
    usual_fit: torch.Tensor  # (I,) usual appearance score of the whole animal; NaN until known
    extent: torch.Tensor  # (I,) typical distance of the parts from the centre (>= one patch)
    body_look: torch.Tensor  # (I, C) each animal's fur on the seed frame
    floor_look: torch.Tensor  # (C,) the floor's
    sym_pairs: torch.Tensor  # (P, 2) left/right keypoint pairs
    prev_gray: np.ndarray | None
    prev_features: torch.Tensor
    body_colours: list[np.ndarray | None] | None = None  # each animal's fur against the floor, by colour
    prev_image: np.ndarray | None = None  # (H, W, 3) RGB, kept only with body_colours
    image: np.ndarray | None = None
