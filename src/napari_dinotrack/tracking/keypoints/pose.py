"""Where each animal is as a whole: its pose (centre, turn, size) and the parts' places in it.

Every animal carries a small shape model: each of its keypoints sits at an offset from the
animal's centre, in the animal's own frame. A pose (centre, angle, scale) puts every part in the
image at once, so evidence for the whole animal is pooled: one part whose patch ties with its
neighbours cannot slide along the body while the others hold it in place.

All functions work on every keypoint of every animal at once (tensors on one device).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .sampling import to_grid_coords

__all__ = [
    "apply_similarity",
    "fit_similarity",
    "owner_rows",
    "pair_terms",
    "place_parts",
    "pose_grid",
    "rotation",
    "sample_maps",
    "search_poses",
    "similarity_from_moments",
]


def rotation(angle: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) rotation matrices for angles (...,) in radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c, -s, s, c], -1).unflatten(-1, (2, 2))


def rotate(rot: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Points (..., 2) turned by rotation matrices (..., 2, 2)."""
    # column by column: many tiny batched matrix products are far slower than two scaled adds
    return rot[..., 0] * xy[..., :1] + rot[..., 1] * xy[..., 1:]


def place_parts(
    centre: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, offsets: torch.Tensor, instance_of: torch.Tensor
) -> torch.Tensor:
    """(K, 2) image positions of the parts for the poses (I, 2), (I,), (I,) and offsets (K, 2)."""
    rot = rotation(angle)[instance_of]  # (K, 2, 2)
    return centre[instance_of] + scale[instance_of, None] * rotate(rot, offsets)


def pose_grid(
    radius: float, step: float, angle_step: float, n_angles: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate pose changes: shifts on a square lattice within ``radius`` times angle changes.

    Returns shifts (P, 2) and angle changes (P,), the unchanged pose first.
    """
    n = max(0, math.ceil(radius / step))
    span = torch.arange(-n, n + 1, device=device, dtype=torch.float32) * step
    gy, gx = torch.meshgrid(span, span, indexing="ij")
    shifts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    shifts = shifts[shifts.norm(dim=1) <= radius + 1e-6]
    turns = torch.arange(-(n_angles // 2), n_angles // 2 + 1, device=device, dtype=torch.float32) * angle_step
    shift = shifts[:, None].expand(-1, len(turns), -1).reshape(-1, 2)
    turn = turns[None].expand(len(shifts), -1).reshape(-1)
    order = torch.argsort(shift.norm(dim=1) + turn.abs(), stable=True)
    return shift[order], turn[order]


def sample_maps(maps: torch.Tensor, xy: torch.Tensor, padded_hw: tuple[int, int]) -> torch.Tensor:
    """Values of per-keypoint score maps (K, h, w) at positions (K, S, 2) -> (K, S); 0 outside."""
    grid = to_grid_coords(xy.to(maps.dtype), padded_hw)[:, :, None, :]  # (K, S, 1, 2)
    out = F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0, :, 0]


def search_poses(
    maps: torch.Tensor,
    centre: torch.Tensor,
    angle: torch.Tensor,
    scale: torch.Tensor,
    offsets: torch.Tensor,
    instance_of: torch.Tensor,
    weights: torch.Tensor,
    shifts: torch.Tensor,
    turns: torch.Tensor,
    radius: torch.Tensor,
    penalty: torch.Tensor,
    padded_hw: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best pose of every animal near its predicted one.

    ``maps`` (K, h, w) are the parts' appearance scores; a candidate pose scores the weighted
    mean of its parts' scores minus ``penalty`` (I, P) for straying from the prediction.
    Candidates beyond an animal's ``radius`` (I,) are not considered. Returns the best centre
    (I, 2), angle (I,), its appearance score (I,) and its penalised score (I,).
    """
    n = centre.shape[0]
    cand_centre = centre[:, None] + shifts[None]  # (I, P, 2)
    cand_angle = angle[:, None] + turns[None]  # (I, P)
    rot = rotation(cand_angle)[instance_of]  # (K, P, 2, 2)
    local = scale[instance_of, None, None] * rotate(rot, offsets[:, None])
    xy = cand_centre[instance_of] + local  # (K, P, 2)
    per_part = sample_maps(maps, xy, padded_hw) * weights[:, None]
    total = torch.zeros(n, shifts.shape[0], device=maps.device).index_add_(0, instance_of, per_part)
    norm = torch.zeros(n, device=maps.device).index_add_(0, instance_of, weights).clamp(min=1e-6)
    appearance = total / norm[:, None]
    allowed = shifts.norm(dim=1)[None] <= radius[:, None] + 1e-6
    scored = torch.where(allowed, appearance - penalty, torch.full_like(appearance, -1e4))
    best = scored.argmax(dim=1)
    rows = torch.arange(n, device=maps.device)
    return cand_centre[rows, best], cand_angle[rows, best], appearance[rows, best], scored[rows, best]


def fit_similarity(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor,
    instance_of: torch.Tensor,
    n_instances: int,
    min_spread: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-animal least-squares similarity (turn, scale, shift) taking ``src`` (K, 2) to ``dst``.

    Returns the turn angle (I,), scale (I,), the source and destination weighted means (I, 2)
    and whether the turn and scale could be measured (I,): where the weighted parts are less
    than ``min_spread`` apart only a shift can be told (turn 0, scale 1). Animals with no
    weight get the identity.
    """
    owners = owner_rows(instance_of, n_instances)
    weighted = owners * weights.float()[None]
    ends = torch.cat([src, dst], dim=1)
    count = weighted.sum(dim=1)
    means = (weighted @ ends) / count.clamp(min=1e-6)[:, None]  # zero for an animal without weight
    dot, cross, spread, _ = (weighted @ pair_terms(ends - owners.T @ means)).unbind(1)
    cos, sin, measured = similarity_from_moments(dot, cross, spread, count, min_spread)
    return torch.atan2(sin, cos), torch.hypot(cos, sin), means[:, :2], means[:, 2:], measured


def similarity_from_moments(
    dot: torch.Tensor, cross: torch.Tensor, spread: torch.Tensor, count: torch.Tensor, min_spread: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The closed-form least-squares similarity from centred weighted moments of each animal's points.

    ``dot``, ``cross``: sums of w p.q and w p x q of the centred source and destination points;
    ``spread``: of w p.p; ``count``: of w. Returns scale times the cos and sin of the turn, and
    whether they could be told: where the points spread less than ``min_spread`` from their centre
    only a shift can (cos 1, sin 0).
    """
    measured = (count > 0) & (spread >= count * min_spread**2)
    per_spread = 1.0 / spread.clamp(min=1e-6)
    return torch.where(measured, dot * per_spread, 1.0), torch.where(measured, cross * per_spread, 0.0), measured


def owner_rows(instance_of: torch.Tensor, n_instances: int) -> torch.Tensor:
    """(I, N) one-hot rows: per-animal sums and gathers become small matrix products (few, cheap ops)."""
    animals = torch.arange(n_instances, device=instance_of.device)
    return (instance_of[None] == animals[:, None]).float()


def pair_terms(pairs: torch.Tensor) -> torch.Tensor:
    """Rows (x1, y1, x2, y2) -> (v1.v2, v1 x v2, v1.v1, v2.v2), as one pick, one product and one sum."""
    left, right, combine = _pair_product_plan(pairs.device)
    return (pairs.index_select(1, left) * pairs.index_select(1, right)) @ combine


@functools.lru_cache(maxsize=8)
def _pair_product_plan(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    left = torch.tensor([0, 1, 0, 1, 0, 1, 2, 3], device=device)
    right = torch.tensor([2, 3, 3, 2, 0, 1, 2, 3], device=device)
    # x1x2 + y1y2, x1y2 - y1x2, x1x1 + y1y1, x2x2 + y2y2
    combine = torch.tensor(
        [
            [1, 0, 0, 0],
            [1, 0, 0, 0],
            [0, 1, 0, 0],
            [0, -1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 1],
            [0, 0, 0, 1],
        ],
        device=device,
    ).float()
    return left, right, combine


def apply_similarity(
    xy: torch.Tensor,
    instance_of: torch.Tensor,
    angle: torch.Tensor,
    scale: torch.Tensor,
    mean_src: torch.Tensor,
    mean_dst: torch.Tensor,
) -> torch.Tensor:
    """Move points (N, 2) by their animal's fitted similarity."""
    rot = rotation(angle)[instance_of]
    return mean_dst[instance_of] + scale[instance_of, None] * rotate(rot, xy - mean_src[instance_of])
