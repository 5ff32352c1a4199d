"""The pose math the tracker's flow stage rests on: similarity fits and the local motion of parts."""

from __future__ import annotations

import math

import torch

from napari_dinotrack.tracking.keypoints.flow_fits import fit_flow
from napari_dinotrack.tracking.keypoints.pose import apply_similarity, fit_similarity, rotation


def _similar(points: torch.Tensor, angle: float, scale: float, shift: tuple[float, float]) -> torch.Tensor:
    rot = rotation(torch.tensor(angle))
    return scale * points @ rot.T + torch.tensor(shift)


def _two_animals(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Forty spots on each of two animals, far apart in a large frame (as in working pixels)."""
    first = torch.rand(40, 2, generator=generator) * 60 + torch.tensor([700.0, 500.0])
    second = torch.rand(40, 2, generator=generator) * 60 + torch.tensor([90.0, 80.0])
    return torch.cat([first, second]), torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(40, dtype=torch.long)])


def test_fit_recovers_each_animals_turn_scale_and_shift():
    src, owner = _two_animals(torch.Generator().manual_seed(0))
    dst = torch.cat([_similar(src[:40], 0.3, 1.04, (5.0, -3.0)), _similar(src[40:], -0.2, 0.97, (-2.0, 8.0))])
    angle, scale, _, _, measured = fit_similarity(src, dst, torch.ones(80), owner, 2, min_spread=16.0)
    assert torch.allclose(angle, torch.tensor([0.3, -0.2]), atol=1e-4)
    assert torch.allclose(scale, torch.tensor([1.04, 0.97]), atol=1e-4)
    assert measured.all()
    moved = apply_similarity(src, owner, *fit_similarity(src, dst, torch.ones(80), owner, 2, 16.0)[:4])
    assert (moved - dst).norm(dim=1).max() < 0.02


def test_fit_tells_only_a_shift_from_bunched_points_and_nothing_without_weight():
    src = torch.tensor([[100.0, 100.0], [101.0, 100.0], [300.0, 300.0], [340.0, 300.0]])
    dst = src + torch.tensor([4.0, 2.0])
    dst[1] = torch.tensor([104.0, 103.0])  # a bunched pair cannot tell a turn from noise
    owner = torch.tensor([0, 0, 1, 1])
    weights = torch.tensor([1.0, 1.0, 0.0, 0.0])
    angle, scale, mean_src, mean_dst, measured = fit_similarity(src, dst, weights, owner, 2, min_spread=16.0)
    assert measured.tolist() == [False, False]
    assert angle.tolist() == [0.0, 0.0] and scale.tolist() == [1.0, 1.0]
    assert torch.allclose(mean_dst[0] - mean_src[0], torch.tensor([3.5, 2.5]))
    assert torch.equal(mean_src[1], torch.zeros(2)) and torch.equal(mean_dst[1], torch.zeros(2))
    moved = apply_similarity(src, owner, angle, scale, mean_src, mean_dst)
    assert torch.allclose(moved[2:], src[2:])  # an animal with no evidence stays put


def _fit_flow(parts, part_owner, spots, spots_to, spot_owner, n_instances, spot_ok=None, sigma=6.0):
    """The flow stage's fits with the parts' own flow lost, so only the spots speak."""
    k = len(parts)
    ok = torch.ones(len(spots), dtype=torch.bool) if spot_ok is None else spot_ok
    return fit_flow(
        torch.cat([parts, spots]),
        torch.cat([parts, spots_to]),
        torch.cat([torch.zeros(k, dtype=torch.bool), ok]),
        torch.cat([part_owner, spot_owner]),
        torch.arange(k + len(spots)) >= k,
        parts,
        part_owner,
        n_instances,
        torch.full((k,), sigma),
        min_spread=16.0,
        tolerance=1.5,
    )


def test_animal_fit_ignores_spots_that_move_unlike_their_animal():
    src, owner = _two_animals(torch.Generator().manual_seed(1))
    dst = torch.cat([_similar(src[:40], 0.1, 1.0, (6.0, 1.0)), _similar(src[40:], 0.0, 1.0, (-3.0, 0.0))])
    floor = torch.arange(0, 40, 5)  # a fifth of the first animal's spots sit on the floor and stay put
    dst[floor] = src[floor]
    fur = torch.ones(80, dtype=torch.bool)
    fur[floor] = False
    plain = fit_similarity(src, dst, torch.ones(80), owner, 2, 16.0)
    dragged = apply_similarity(src, owner, *plain[:4])
    assert (dragged[fur] - dst[fur]).norm(dim=1).max() > 1.0  # the floor drags a plain least-squares fit
    parts = torch.stack([src[:40].mean(0), src[40:].mean(0)])
    fits = _fit_flow(parts, torch.tensor([0, 1]), src, dst, owner, 2)
    assert abs(fits.turn[0] - 0.1) < 2e-3 and abs(fits.turn[1]) < 2e-3
    moved = apply_similarity(src, owner, fits.turn, fits.size, fits.mean_src, fits.mean_dst)
    assert (moved[fur] - dst[fur]).norm(dim=1).max() < 0.3
    assert 31.0 < fits.inliers[0] < 32.5 and 39.0 < fits.inliers[1] <= 40.0  # the floor spots lost their weight


def test_part_fit_carries_a_turning_head_round_while_the_body_holds_still():
    body = torch.stack(torch.meshgrid(torch.arange(0.0, 80, 6), torch.arange(0.0, 30, 6), indexing="xy"), -1)
    body = body.reshape(-1, 2) + torch.tensor([400.0, 300.0])
    head_centre = torch.tensor([470.0, 312.0])
    turn = rotation(torch.tensor(0.25))
    on_head = (body - head_centre).norm(dim=1) < 14
    moved = torch.where(on_head[:, None], (body - head_centre) @ turn.T + head_centre, body)
    parts = torch.tensor([[480.0, 312.0], [410.0, 312.0]])  # nose, tail base
    fits = _fit_flow(parts, torch.zeros(2, dtype=torch.long), body, moved, torch.zeros(len(body), dtype=torch.long), 1)
    nose_expected = (parts[0] - head_centre) @ turn.T + head_centre
    assert (fits.parts[0] - nose_expected).norm() < 0.5
    assert (fits.parts[1] - parts[1]).norm() < 0.2
    assert (fits.part_support > 1).all() and torch.allclose(fits.followed, torch.ones(2))


def test_part_fit_leaves_parts_without_spots_and_reports_followed_share():
    spots = torch.tensor([[100.0, 100.0], [106.0, 100.0], [100.0, 106.0], [106.0, 106.0]])
    parts = torch.tensor([[103.0, 103.0], [500.0, 500.0]])
    fits = _fit_flow(
        parts,
        torch.tensor([0, 1]),
        spots,
        spots + torch.tensor([2.0, -1.0]),
        torch.zeros(4, dtype=torch.long),
        2,
        spot_ok=torch.tensor([True, True, False, False]),
        sigma=8.0,
    )
    assert torch.allclose(fits.parts[0], torch.tensor([105.0, 102.0]), atol=1e-3)
    assert torch.equal(fits.parts[1], parts[1])  # another animal's spots never move it
    assert fits.part_support[1] == 0 and fits.followed[1] == 0
    assert math.isclose(float(fits.followed[0]), 0.5, abs_tol=1e-6)
    assert fits.turn[1] == 0 and fits.size[1] == 1  # an animal with nothing followed keeps its pose


def test_rim_spots_that_move_with_the_floor_do_not_hold_a_part_back():
    xs, ys = torch.meshgrid(torch.arange(400.0, 460, 6), torch.arange(300.0, 324, 6), indexing="xy")
    spots = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
    rim = spots[:, 0] >= 448  # their windows see the textured floor, which stands still
    spots_to = torch.where(rim[:, None], spots, spots + torch.tensor([5.0, 0.0]))
    nose = torch.tensor([[462.0, 309.0]])
    owner = torch.zeros(len(spots), dtype=torch.long)
    points, points_to = torch.cat([nose, spots]), torch.cat([nose, spots_to])
    ok = torch.cat([torch.tensor([False]), torch.ones(len(spots), dtype=torch.bool)])
    args = (points, points_to, ok, torch.cat([owner[:1], owner]), torch.arange(len(points)) >= 1, nose)
    rest = (torch.zeros(1, dtype=torch.long), 1, torch.tensor([6.0]), 16.0, 1.5)
    blind = fit_flow(*args, *rest)
    seeing = fit_flow(*args, *rest, floor_step=torch.zeros(2), floor_known=torch.tensor(True))
    assert (blind.parts[0] - nose[0])[0] < 2.5  # the floor under the rim holds the nose back
    assert torch.equal(seeing.floor[1:], rim)
    assert (seeing.parts[0] - nose[0] - torch.tensor([5.0, 0.0])).norm() < 0.5
    assert abs(seeing.turn[0]) < 1e-3 and (seeing.mean_dst - seeing.mean_src - torch.tensor([5.0, 0.0])).norm() < 1e-3
    still = fit_flow(
        points,
        points,
        ok,
        torch.cat([owner[:1], owner]),
        args[4],
        nose,
        *rest,
        floor_step=torch.zeros(2),
        floor_known=torch.tensor(True),
    )
    assert not still.floor.any()  # an animal standing still moves with the floor: nothing is set aside
