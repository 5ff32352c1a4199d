"""Support points: textured spots on each animal whose optical flow tells how the animal moves.

A keypoint on the outline (a nose tip, an ear tip) has half its flow window on the floor, and a
keypoint on flat fur has none to follow; the fur around them usually has texture. Each frame a
lattice of spots inside each animal (its mask, or the hull of its parts drawn a little inwards)
is followed with the keypoints in one optical-flow call; a robust fit of their motion moves the
animal, and the spots nearest a keypoint move it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["background_points", "body_and_floor_looks", "support_points"]

HULL_SHRINK = 0.85  # draw the hull of the parts towards their centre: its rim is often floor
BODY_SHRINK = 0.6  # ... and further still where it must be fur
BACKGROUND_LATTICE = (5, 4)  # candidate background spots across the frame (columns, rows)
BACKGROUND_CLEARANCE = 0.5  # background spots stay this share of an animal's size (plus a spot step) clear of it


def support_points(
    positions: np.ndarray,
    instance_of: np.ndarray,
    n_instances: int,
    spacing: float,
    max_per_instance: int,
    shape: tuple[int, int],
    masks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lattice spots (S, 2) inside each animal and the animal (S,) of each.

    ``positions`` (K, 2) video px of the parts; ``masks`` (I, H, W) bool where known (an animal
    without a mask pixel falls back to its hull). Where two animals' regions overlap nobody can
    tell whose fur a spot is on (the one on top hides the other), so no spot is placed there.
    At most ``max_per_instance`` spots an animal, evenly thinned.
    """
    regions = [
        _region(positions[instance_of == i], spacing, shape, None if masks is None else masks[i])
        for i in range(n_instances)
    ]
    points, owners = [], []
    step = max(1, round(spacing))
    for i, region in enumerate(regions):
        if region is None:
            continue
        lo, inside = region
        ys, xs = np.mgrid[step // 2 : inside.shape[0] : step, step // 2 : inside.shape[1] : step]
        keep = inside[ys, xs]
        spots = np.stack([xs[keep] + lo[0], ys[keep] + lo[1]], axis=1).astype(np.float32)
        shared = np.zeros(len(spots), bool)
        for j, other in enumerate(regions):
            if j != i and other is not None:
                shared |= _inside(spots, *other)
        spots = spots[~shared]
        if len(spots) > max_per_instance:
            spots = spots[np.linspace(0, len(spots) - 1, max_per_instance).round().astype(int)]
        points.append(spots)
        owners.append(np.full(len(spots), i, np.int64))
    if not points:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
    return np.concatenate(points), np.concatenate(owners)


def background_points(
    positions: np.ndarray, instance_of: np.ndarray, n_instances: int, spacing: float, shape: tuple[int, int]
) -> np.ndarray:
    """Spots (B, 2) on a coarse lattice over the frame, clear of every animal: their flow is the floor's.

    ``positions`` (K, 2) video px of the parts and ``instance_of`` (K,) their animals. A lattice
    spot is dropped within half an animal's size (the longer side of the box of its parts) plus
    ``spacing`` of any of its parts: that keeps it off the body, tail and ears too.
    """
    h, w = shape
    cols, rows = BACKGROUND_LATTICE
    xs = (np.arange(cols) + 0.5) * (w / cols)
    ys = (np.arange(rows) + 0.5) * (h / rows)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    known = np.isfinite(positions).all(axis=1)
    if not known.any():
        return grid
    parts, owner = positions[known], instance_of[known]
    lo = np.full((n_instances, 2), np.inf, np.float32)
    hi = np.full((n_instances, 2), -np.inf, np.float32)
    np.minimum.at(lo, owner, parts)
    np.maximum.at(hi, owner, parts)
    reach = BACKGROUND_CLEARANCE * (hi - lo).max(axis=1)[owner] + spacing  # (K',)
    near = (np.abs(grid[:, None] - parts[None]) <= reach[None, :, None]).all(axis=-1).any(axis=1)
    return grid[~near]


def _region(
    own: np.ndarray, spacing: float, shape: tuple[int, int], mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """One animal's region: its mask, else the hull of its parts drawn inwards; (top-left x/y, bool array)."""
    import cv2

    h, w = shape
    own = own[np.isfinite(own).all(axis=1)]
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        lo = np.array([xs.min(), ys.min()])
        return lo, mask[lo[1] : ys.max() + 1, lo[0] : xs.max() + 1]
    if len(own) == 0:
        return None
    lo = np.floor(own.min(axis=0) - spacing).clip(0, [w - 1, h - 1]).astype(int)
    hi = np.ceil(own.max(axis=0) + spacing).clip(0, [w - 1, h - 1]).astype(int)
    region = np.zeros((hi[1] - lo[1] + 1, hi[0] - lo[0] + 1), np.uint8)
    centre = own.mean(axis=0)
    drawn = (centre + HULL_SHRINK * (own - centre) - lo).astype(np.float32)
    if len(drawn) >= 3:
        cv2.fillConvexPoly(region, np.round(cv2.convexHull(drawn.reshape(-1, 1, 2))).astype(np.int32), 1)
    thick = max(1, round(spacing))
    for a in range(len(drawn)):  # thin animals and one- or two-part animals still get spots
        for b in range(a + 1, len(drawn)):
            cv2.line(region, tuple(np.round(drawn[a]).astype(int)), tuple(np.round(drawn[b]).astype(int)), 1, thick)
    return lo, region.astype(bool)


def _inside(points: np.ndarray, lo: np.ndarray, region: np.ndarray) -> np.ndarray:
    x = np.round(points[:, 0]).astype(int) - lo[0]
    y = np.round(points[:, 1]).astype(int) - lo[1]
    ok = (x >= 0) & (y >= 0) & (x < region.shape[1]) & (y < region.shape[0])
    out = np.zeros(len(points), bool)
    out[ok] = region[y[ok], x[ok]]
    return out


def body_and_floor_looks(features, positions, instance_of, n_instances: int, patch: int):
    """The mean look (unit vectors) of each animal's body (I, C) and of the floor (C,) on a seed frame.

    ``features`` (C, h, w) on the run's device, ``positions`` (K, 2) working px of the seed's
    visible parts. The body is the patches inside the hull of an animal's parts drawn well
    inwards (plus the parts' own patches); the floor is every patch at least two patches away
    from all animals. Spots whose look is nearer the floor's than their animal's are not fur.
    """
    import cv2
    import torch
    import torch.nn.functional as F

    c, h, w = features.shape
    pos = positions.detach().cpu().numpy() / patch  # grid units
    inst = instance_of.detach().cpu().numpy()
    body = np.zeros((n_instances, h, w), np.uint8)
    near = np.zeros((h, w), np.uint8)
    for i in range(n_instances):
        own = pos[inst == i]
        if len(own) == 0:
            continue
        centre = own.mean(axis=0)
        for shrink, target in ((BODY_SHRINK, body[i]), (1.0, near)):
            drawn = np.round((centre + shrink * (own - centre)) * 16).astype(np.int32)  # 4 fractional bits
            if len(drawn) >= 3:
                cv2.fillConvexPoly(target, cv2.convexHull(drawn.reshape(-1, 1, 2)), 1, shift=4)
            for p in drawn:
                cv2.circle(target, (int(p[0]), int(p[1])), 8, 1, -1, shift=4)
    near = cv2.dilate(near, np.ones((5, 5), np.uint8))
    flat = features.reshape(c, -1)
    body_t = torch.from_numpy(body.reshape(n_instances, -1)).to(features.device).float()
    floor_t = torch.from_numpy((near == 0).reshape(-1)).to(features.device).float()
    body_look = F.normalize(body_t @ flat.T, dim=1, eps=1e-6)
    floor_look = F.normalize(flat @ floor_t, dim=0, eps=1e-6)
    return body_look, floor_look
