"""How the optical flow moves each animal as a whole, and the fur around each of its parts.

Both are weighted least-squares fits of a turn plus a shift (an animal also changes size) to the
flow of many points, made robust by taking weight from points that move unlike the rest
(Cauchy). They are solved together as the rows of one weight matrix over the points: an animal's
row weighs its own points, a part's row the spots near it. Every fit is then one product of that
matrix with a few per-point terms, so the stage costs a few dozen tensor operations however many
animals, parts and spots there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .pose import owner_rows, pair_terms, similarity_from_moments

__all__ = ["FlowFits", "fit_flow"]

LOCAL_TURN_SPREAD = 0.3  # a part's turn counts fully once its spots spread this share of sigma around it


@dataclass
class FlowFits:
    """The flow's verdict on every animal (I rows) and every part (K rows), working px."""

    turn: torch.Tensor  # (I,) radians
    size: torch.Tensor  # (I,) scale change
    mean_src: torch.Tensor  # (I, 2) weighted centre of the animal's followed points, before ...
    mean_dst: torch.Tensor  # (I, 2) ... and after
    inliers: torch.Tensor  # (I,) weight of the animal's points that agree with its fit
    parts: torch.Tensor  # (K, 2) where the spots around each part take it (unmoved without spots)
    part_support: torch.Tensor  # (K,) weight of the followed spots around each part
    followed: torch.Tensor  # (K,) share of the spots around each part that could be followed
    floor: torch.Tensor  # (N,) bool: spots that moved with the floor, left out of every fit


def fit_flow(
    points: torch.Tensor,
    points_to: torch.Tensor,
    point_ok: torch.Tensor,
    point_instance: torch.Tensor,
    is_spot: torch.Tensor,
    parts: torch.Tensor,
    part_instance: torch.Tensor,
    n_instances: int,
    sigma: torch.Tensor,
    min_spread: float,
    tolerance: float,
    floor_step: torch.Tensor | None = None,
    floor_known: torch.Tensor | None = None,
    animal_rounds: int = 3,
    part_rounds: int = 2,
    body_step: torch.Tensor | None = None,
    body_known: torch.Tensor | None = None,
) -> FlowFits:
    """Fit every animal's similarity and every part's local motion to the flow of ``points`` (N, 2).

    ``points_to`` (N, 2) is where the flow took them, ``point_ok`` (N,) whether it could,
    ``point_instance`` (N,) whose they are and ``is_spot`` (N,) which are fur spots (the others
    are the parts' own points, which only count for their animal).

    An animal's fit tells a turn and a size only where its weighted points spread at least
    ``min_spread`` (working px) from their centre; otherwise a shift. A part's fit weighs its own
    animal's spots by a Gaussian of their distance (``sigma`` (K,) working px), so a turning
    head carries its nose and ears round though the torso does not turn; a turn measured from
    spots bunched on one side would swing the part wildly, so it counts only as far as they
    spread around it. Points whose residual exceeds ``tolerance`` (working px) lose weight,
    ``animal_rounds`` and ``part_rounds`` times.

    With the floor's own step (``floor_step`` (2,), the camera's, and ``floor_known`` () bool) a
    first, plain round also tells which spots are floor seen through their window rather than fur:
    a rim spot whose window holds textured floor stays behind with it, and where fur is flat such
    spots can be many, so a fit settles between fur and floor and holds the animal back a little
    every frame. A spot that moves with the floor while its animal's plain fit takes it clearly
    elsewhere is left out of every later round, of the animal's and of its parts' (``floor``).
    Where the animal stands still, floor and fit agree and nothing is set aside. Where the
    animal's whole-body step is known (``body_step`` (I, 2) working px, ``body_known`` (I,)) it
    takes the plain fit's place in that test: on flat fur the plain fit is itself held back.
    """
    n_animals, n_parts = n_instances, parts.shape[0]
    ok = point_ok.float()
    owners = owner_rows(point_instance, n_instances)  # (I, N)
    near_spot = ((parts[:, None] - points[None]) ** 2).sum(-1)
    near = torch.exp(-0.5 * near_spot / sigma[:, None] ** 2) * (
        (part_instance[:, None] == point_instance[None]) & is_spot[None]
    )
    prior = torch.cat([owners, near]) * ok[None]  # (I + K, N)

    # coordinates relative to their animal's centre keep the float32 moments exact: every row
    # weighs one animal's points only
    reference = owners @ points / owners.sum(dim=1, keepdim=True).clamp(min=1.0)
    point_reference = owners.T @ reference
    ends = torch.cat([points - point_reference, points_to - point_reference], dim=1)
    terms = torch.cat([torch.ones_like(ends[:, :1]), ends, pair_terms(ends)], dim=1)  # (N, 9)

    floor = torch.zeros_like(is_spot)
    if floor_step is not None and floor_known is not None:
        cos, sin, means, _ = _fit_rows(prior, terms, n_animals, min_spread, sigma)
        off_animal = (_squared_residuals(cos[:n_animals], sin[:n_animals], means[:n_animals], terms) * owners).sum(0)
        if body_step is not None and body_known is not None:
            by_body = ((points + body_step[point_instance] - points_to) ** 2).sum(1)
            off_animal = torch.where(body_known[point_instance], by_body, off_animal)
        from_floor = (points + floor_step - points_to).norm(dim=1)
        with_floor = floor_known & point_ok & is_spot & (from_floor < tolerance)
        floor = with_floor & (off_animal.sqrt() > from_floor + tolerance)
        kept = (~floor).float()[None]
        prior, near = prior * kept, near * kept

    rounds = max(animal_rounds, part_rounds)
    reweighted = torch.cat(
        [
            torch.full((n_animals,), animal_rounds, device=points.device),
            torch.full((n_parts,), part_rounds, device=points.device),
        ]
    )
    weights = prior
    for round_ in range(rounds + 1):
        cos, sin, means, support = _fit_rows(weights, terms, n_animals, min_spread, sigma)
        if round_ < rounds:
            residual = _squared_residuals(cos, sin, means, terms)
            weights = torch.where((reweighted > round_)[:, None], prior / (1.0 + residual / tolerance**2), weights)

    part_reference = reference[part_instance]
    part_means = means[n_animals:]
    local = (
        part_reference
        + part_means[:, 2:]
        + _turn(parts - part_reference - part_means[:, :2], cos[n_animals:], sin[n_animals:])
    )
    near_prior = prior[n_animals:].sum(dim=1)
    return FlowFits(
        turn=torch.atan2(sin[:n_animals], cos[:n_animals]),
        size=torch.hypot(cos[:n_animals], sin[:n_animals]),
        mean_src=reference + means[:n_animals, :2],
        mean_dst=reference + means[:n_animals, 2:],
        inliers=support[:n_animals],
        parts=torch.where((support[n_animals:] > 0)[:, None], local, parts),
        part_support=near_prior,
        followed=near_prior / near.sum(dim=1).clamp(min=1e-6),
        floor=floor,
    )


def _fit_rows(
    weights: torch.Tensor, terms: torch.Tensor, n_animals: int, min_spread: float, sigma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every row's closed-form fit: cos and sin (rows,), the means (rows, 4) and the total weight (rows,)."""
    sums = weights @ terms  # (rows, 9): weight, weighted ends, weighted products of the ends
    support = sums[:, 0]
    means = sums[:, 1:5] / support.clamp(min=1e-6)[:, None]
    # centred moments per row: dot and cross of the motion, spread of the points, total weight
    moments = torch.cat([sums[:, 5:8] - support[:, None] * pair_terms(means)[:, :3], support[:, None]], dim=1)
    dot, cross, spread, count = moments[:n_animals].unbind(1)
    animal_cos, animal_sin, _ = similarity_from_moments(dot, cross, spread, count, min_spread)
    part_cos, part_sin = _local_turns(moments[n_animals:], sigma)
    return torch.cat([animal_cos, part_cos]), torch.cat([animal_sin, part_sin]), means, support


def _local_turns(moments: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos and sin of each part's turn, damped where its spots bunch on one side."""
    dot, cross, spread, support = moments.unbind(1)
    spread = spread.clamp(min=0.0)
    confidence = spread / (spread + support.clamp(min=1e-6) * (LOCAL_TURN_SPREAD * sigma) ** 2)
    turn = torch.atan2(cross, dot) * confidence
    return torch.cos(turn), torch.sin(turn)


def _turn(xy: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Points (R, 2) turned (and scaled) by per-row cos and sin (R,)."""
    x, y = xy.unbind(-1)
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1)


def _squared_residuals(cos: torch.Tensor, sin: torch.Tensor, means: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
    """(rows, N) squared distance between where each row's fit takes each point and where the flow did.

    With the fit's matrix A = [[cos, -sin], [sin, cos]] and e = A ms - md, |A (s - ms) + md - d|^2
    expands to e.e + 2 e.d - 2 (A^T e).s - 2 cos s.d - 2 sin s x d + (cos^2 + sin^2) s.s + d.d:
    one product of per-row coefficients with the per-point terms.
    """
    e = _turn(means[:, :2], cos, sin) - means[:, 2:]
    coefficients = torch.cat(
        [
            (e * e).sum(dim=1, keepdim=True),
            -2.0 * _turn(e, cos, -sin),
            2.0 * e,
            -2.0 * torch.stack([cos, sin], dim=1),
            (cos * cos + sin * sin)[:, None],
            torch.ones_like(cos)[:, None],
        ],
        dim=1,
    )
    return (coefficients @ terms.T).clamp(min=0.0)
