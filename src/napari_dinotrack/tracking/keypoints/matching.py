"""Scoring candidate positions for all keypoints at once: appearance, motion prior, masks, pairs."""

from __future__ import annotations

import re

import torch

NEG = -1e4  # "impossible" score; finite so that softmax and argmax stay well defined


def appearance_scores(
    samples: torch.Tensor, templates: torch.Tensor, template_valid: torch.Tensor,
    memory: torch.Tensor, memory_weight: float,
) -> torch.Tensor:
    """Cosine match of features against each keypoint's templates.

    samples: (1 or K, N, C) candidate features; templates: (K, M, C) from manual frames;
    memory: (K, C) running appearance. Returns (K, N): the best manual template blended with
    the running appearance, so manual frames anchor the match and recent looks adapt it.
    """
    sims = torch.matmul(templates, samples.transpose(-1, -2))  # (K, M, N)
    sims = sims.masked_fill(~template_valid[:, :, None], -2.0)
    best = sims.max(dim=1).values
    recent = torch.matmul(samples, memory[:, :, None]).squeeze(-1)  # (K, N), broadcasts a shared map
    return (1.0 - memory_weight) * best + memory_weight * recent


def motion_penalty(
    dist: torch.Tensor, soft_radius: torch.Tensor, relief: torch.Tensor, weight: float
) -> torch.Tensor:
    """Soft penalty growing with distance from the prediction: 0 at the prediction, ``weight`` far away."""
    return weight * relief[:, None] * (1.0 - torch.exp(-((dist / soft_radius[:, None]) ** 2)))


_SIDE = re.compile(r"^(left|right)[\s_\-]*(.*)$")


def symmetric_pairs(names: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Index pairs (left, right) of lowercase ``left*``/``right*`` keypoints of the same instance."""
    sides: dict[tuple[str, str, str], int] = {}
    for k, (inst, kp) in enumerate(names):
        m = _SIDE.match(kp)
        if m and m.group(2):
            sides[(inst, m.group(1), m.group(2))] = k
    return [(k, sides[(inst, "right", rest)]) for (inst, side, rest), k in sides.items()
            if side == "left" and (inst, "right", rest) in sides]


def cross_instance_pairs(names: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Index pairs of keypoints on different instances: two animals never share a body-part spot."""
    return [(a, b) for a in range(len(names)) for b in range(a + 1, len(names)) if names[a][0] != names[b][0]]


def resolve_collisions(
    scores: torch.Tensor, picks: torch.Tensor, centres: torch.Tensor, pairs: torch.Tensor, radius: float
) -> torch.Tensor:
    """Stop two exclusive keypoints from landing on the same spot.

    scores: (K, N) candidate scores, picks: (K,) chosen candidate index, centres: (N, 2),
    pairs: (P, 2). For every pair whose picks are closer than ``radius``, the keypoint with the
    weaker match gives way to its best candidate away from every spot it lost. Pure tensor work
    (no host round trip), deterministic also when a keypoint loses several pairs at once.
    """
    if pairs.numel() == 0:
        return picks
    a, b = pairs[:, 0], pairs[:, 1]
    for _ in range(2):  # a second round settles keypoints that moved into another clash
        best = scores.gather(1, picks[:, None])[:, 0]
        clash = (centres[picks[a]] - centres[picks[b]]).norm(dim=-1) < radius
        a_wins = best[a] >= best[b]
        loser = torch.where(a_wins, b, a)
        taken = centres[torch.where(a_wins, picks[a], picks[b])]  # (P, 2) spot the winner keeps
        near = ((centres[None] - taken[:, None]).norm(dim=-1) < radius) & clash[:, None]  # (P, N)
        excluded = torch.zeros_like(scores).index_add_(0, loser, near.to(scores.dtype)) > 0
        lost = excluded.any(dim=1)
        picks = torch.where(lost, scores.masked_fill(excluded, NEG).argmax(dim=1), picks)
    return picks


def keep_sides(
    picks_xy: torch.Tensor, prev_xy: torch.Tensor, pairs: torch.Tensor, pair_ok: torch.Tensor
) -> torch.Tensor:
    """Swap left/right picks whose left->right vector flipped since the last frame.

    picks_xy: (K, 2) proposed positions, prev_xy: (K, 2) previous positions, pairs: (P, 2),
    pair_ok: (P,) whether both partners were reliable in the previous frame. A real animal does
    not turn by more than 90 degrees between two frames, a swap does.
    """
    if pairs.numel() == 0:
        return picks_xy
    left, right = pairs[:, 0], pairs[:, 1]
    before = prev_xy[left] - prev_xy[right]
    now = picks_xy[left] - picks_xy[right]
    flipped = ((before * now).sum(-1) < 0) & pair_ok
    out = picks_xy.clone()
    out[left[flipped]] = picks_xy[right[flipped]]
    out[right[flipped]] = picks_xy[left[flipped]]
    return out
