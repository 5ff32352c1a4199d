"""Where each animal is as a whole: its pose (centre, turn, size) and the parts' places in it.

Every animal carries a small shape model: each of its keypoints sits at an offset from the
animal's centre, in the animal's own frame. A pose (centre, angle, scale) puts every part in the
image at once, so evidence for the whole animal is pooled: one part whose patch ties with its
neighbours cannot slide along the body while the others hold it in place.

All functions work on every keypoint of every animal at once (tensors on one device).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .sampling import to_grid_coords

__all__ = [
    "apply_similarity",
    "fit_similarity",
    "local_motion",
    "place_parts",
    "pose_grid",
    "robust_similarity",
    "rotation",
    "sample_maps",
    "search_poses",
]


def rotation(angle: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) rotation matrices for angles (...,) in radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c, -s, s, c], -1).unflatten(-1, (2, 2))


def rotate(rot: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Points (..., 2) turned by rotation matrices (..., 2, 2)."""
    return (rot @ xy.unsqueeze(-1)).squeeze(-1)


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
    dev = src.device
    w = weights.float()
    # one scatter for the weights and both weighted sums, one for the three moments: few, larger ops
    firsts = torch.zeros(n_instances, 5, device=dev).index_add_(
        0, instance_of, torch.cat([w[:, None], src * w[:, None], dst * w[:, None]], dim=1)
    )
    count = firsts[:, 0]
    safe = count.clamp(min=1e-6)[:, None]
    mean_src, mean_dst = firsts[:, 1:3] / safe, firsts[:, 3:5] / safe
    p = src - mean_src[instance_of]
    q = dst - mean_dst[instance_of]
    moments = torch.stack([(p * q).sum(1), p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0], (p * p).sum(1)], dim=1)
    dot, cross, spread = (
        torch.zeros(n_instances, 3, device=dev).index_add_(0, instance_of, w[:, None] * moments).unbind(1)
    )
    turns = (count > 0) & (spread >= count * min_spread**2)
    angle = torch.where(turns, torch.atan2(cross, dot), torch.zeros_like(dot))
    scale = torch.where(turns, torch.sqrt(dot**2 + cross**2) / spread.clamp(min=1e-6), torch.ones_like(dot))
    none = count <= 0
    mean_src = torch.where(none[:, None], torch.zeros_like(mean_src), mean_src)
    mean_dst = torch.where(none[:, None], torch.zeros_like(mean_dst), mean_dst)
    return angle, scale, mean_src, mean_dst, turns


def robust_similarity(
    src: torch.Tensor,
    dst: torch.Tensor,
    weights: torch.Tensor,
    instance_of: torch.Tensor,
    n_instances: int,
    min_spread: float,
    tolerance: float,
    iterations: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`fit_similarity` that down-weights points moving unlike the rest of their animal.

    Points whose residual exceeds ``tolerance`` (working px) lose weight (Cauchy), so spots on
    the floor or on another animal do not drag the fit. Returns the fit and each point's final
    weight (N,).
    """
    w = weights.float()
    fit = fit_similarity(src, dst, w, instance_of, n_instances, min_spread)
    for _ in range(iterations):
        moved = apply_similarity(src, instance_of, *fit[:4])
        residual = (moved - dst).norm(dim=1)
        w = weights.float() / (1.0 + (residual / tolerance) ** 2)
        fit = fit_similarity(src, dst, w, instance_of, n_instances, min_spread)
    return (*fit, w)


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


def local_motion(
    parts: torch.Tensor,
    part_instance: torch.Tensor,
    spots: torch.Tensor,
    spots_to: torch.Tensor,
    spot_instance: torch.Tensor,
    weights: torch.Tensor,
    sigma: torch.Tensor,
    tolerance: float,
    iterations: int = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the spots around each part take it: (K, 2) new positions, (K,) support weight, and
    (K,) the share of the nearby spots that could be followed (low under an occluder).

    A weighted fit per part (shift and turn), with the spots of its own animal weighted by a
    Gaussian of their distance (``sigma`` (K,) working px): a turning head carries its nose and
    ears round though the torso does not turn. Spots that move unlike the others around the same
    part (on the floor at the rim, on a tail swinging past) lose weight (Cauchy, ``tolerance``
    working px). A turn measured from spots bunched on one side would swing the part wildly, so
    it counts only as far as the spots spread around the part. Parts without support stay put.
    """
    if spots.shape[0] == 0:
        zeros = torch.zeros(parts.shape[0], device=parts.device)
        return parts.clone(), zeros, zeros
    d2 = ((parts[:, None] - spots[None]) ** 2).sum(-1)
    near = torch.exp(-0.5 * d2 / sigma[:, None] ** 2) * (part_instance[:, None] == spot_instance[None])
    prior = near * weights[None]
    w = prior
    for step in range(iterations + 1):
        support = w.sum(dim=1)
        safe = support.clamp(min=1e-6)[:, None]
        src_mean = (w[..., None] * spots[None]).sum(1) / safe
        dst_mean = (w[..., None] * spots_to[None]).sum(1) / safe
        p = spots[None] - src_mean[:, None]  # (K, S, 2)
        q = spots_to[None] - dst_mean[:, None]
        dot = (w * (p * q).sum(-1)).sum(1)
        cross = (w * (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0])).sum(1)
        spread = (w * (p * p).sum(-1)).sum(1)
        confidence = spread / (spread + support.clamp(min=1e-6) * (0.3 * sigma) ** 2)
        rot = rotation(torch.atan2(cross, dot) * confidence)
        if step < iterations:
            predicted = dst_mean[:, None] + p @ rot.transpose(-1, -2)
            residual = (predicted - spots_to[None]).norm(dim=-1)
            w = prior / (1.0 + (residual / tolerance) ** 2)
    moved = dst_mean + rotate(rot, parts - src_mean)
    followed = prior.sum(dim=1) / near.sum(dim=1).clamp(min=1e-6)
    return torch.where((support > 0)[:, None], moved, parts), prior.sum(dim=1), followed
