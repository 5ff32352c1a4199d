"""Merging a forward and a backward pass over the frames between two seeds.

Each pass is most reliable near the seed it started from. For every keypoint of a frame the two
positions are weighted by how close the frame is to each pass's seed and by how confident each
pass was; where both see the keypoint and agree they are averaged with those weights, where they
disagree the better-supported one wins, and where only one sees it that one is used. The
distance between the two (where both see it) is kept: a large one is worth a look.
"""

from __future__ import annotations

import numpy as np

from .keypoints.tracker import TrackOutput

__all__ = ["merge_passes"]

AGREE_PX = 8.0  # video px: passes closer than this are two views of one place


def merge_passes(
    forward: TrackOutput, backward: TrackOutput, frame: int, start: int, end: int
) -> tuple[TrackOutput, np.ndarray]:
    """The merged result of ``frame`` tracked forward from ``start`` and backward from ``end``.

    Returns the merged output and (K,) the distance between the passes in video px (0 where
    either pass lost the keypoint).
    """
    span = max(end - start, 1)
    near_start = (end - frame) / span  # 1 at the forward pass's seed, 0 at the backward one's
    w_fwd = near_start * np.where(forward.visible, np.maximum(forward.score, 1e-3), 0.0)
    w_bwd = (1.0 - near_start) * np.where(backward.visible, np.maximum(backward.score, 1e-3), 0.0)
    both = forward.visible & backward.visible
    apart = np.linalg.norm(forward.xy - backward.xy, axis=1)
    disagreement = np.where(both, apart, 0.0).astype(np.float32)

    total = w_fwd + w_bwd
    share = np.where(total > 0, w_fwd / np.maximum(total, 1e-9), near_start)
    blended = share[:, None] * forward.xy + (1.0 - share[:, None]) * backward.xy
    # disagreeing passes are not averaged into a spot between two places: the better-supported one wins
    pick_fwd = w_fwd >= w_bwd
    winner = np.where(pick_fwd[:, None], forward.xy, backward.xy)
    xy = np.where((both & (apart > AGREE_PX))[:, None], winner, blended)
    # neither pass sees it: the pass from the nearer seed says where it is carried
    nearer = forward.xy if near_start >= 0.5 else backward.xy
    xy = np.where((~forward.visible & ~backward.visible)[:, None], nearer, xy)
    visible = forward.visible | backward.visible
    score = np.where(
        visible, np.where(pick_fwd, forward.score, backward.score), np.maximum(forward.score, backward.score)
    )
    return TrackOutput(xy.astype(np.float32), visible, score.astype(np.float32)), disagreement
