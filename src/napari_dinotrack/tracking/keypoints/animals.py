"""Stage 2: where each animal is as a whole.

Each animal's pose is searched near the one its flow (or its recent motion) predicts, scoring the
appearance of all its parts together through its shape model. The flow's pose stands unless the
flow slipped and another pose clearly looks more like the animal. Two animals cannot take one
place; an animal lost for a while is looked for over the whole frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...backbone.base import WorkGeometry
from ..config import TrackerConfig
from .follow import MAX_REACH, FlowPose
from .pose import place_parts, sample_maps, search_poses
from .state import TrackState

REDETECT_TURNS = 12  # turns tried when an animal is looked for over the whole frame
LOST_SPEED_DECAY = 0.8  # a lost animal slows down rather than sailing on
SEARCH_GROWTH = 0.5  # a lost animal's search window grows by this share of the fastest step per frame


@dataclass
class Poses:
    """This frame's animals, and where they put the parts."""

    centre: torch.Tensor  # (I, 2)
    angle: torch.Tensor  # (I,)
    fit: torch.Tensor  # (I,) appearance score of the pose
    lost: torch.Tensor  # (I,) bool: not found this frame (the pose is the prediction)
    anchors: torch.Tensor  # (K, 2) where the pose (or the flow around each part) puts the parts
    from_flow: torch.Tensor  # (K,) bool: the anchor is a flow position, precise to a fraction of a pixel
    flow_healthy: torch.Tensor  # (K,) bool: most of the fur around the part could be followed


GridFn = Callable[[float, float], tuple[torch.Tensor, torch.Tensor]]


def find_animals(
    st: TrackState,
    cfg: TrackerConfig,
    geo: WorkGeometry,
    maps: torch.Tensor,
    moved: FlowPose | None,
    grid: GridFn,
    padded: tuple[int, int],
) -> Poses:
    """Every animal's pose this frame. ``maps`` (K, h, w): the parts' appearance scores."""
    n, inst, dev = st.n_instances, st.instance_of, st.pos.device
    pred_centre = st.centre + st.velocity
    pred_angle = st.angle + st.spin
    has_flow = strong = torch.zeros(n, dtype=torch.bool, device=dev)
    healthy = torch.zeros(len(st.names), dtype=torch.bool, device=dev)
    flow_anchors = place_parts(pred_centre, pred_angle, st.scale, st.offsets, inst)
    if moved is not None:
        has_flow, strong, healthy = moved.has_flow, moved.strong, moved.healthy
        flow_anchors = moved.anchors
        pred_centre = torch.where(has_flow[:, None], moved.centre, pred_centre)
        pred_angle = torch.where(has_flow, moved.angle, pred_angle)

    growth = (1.0 + SEARCH_GROWTH * st.lost_for).clamp(max=MAX_REACH)
    radius = cfg.max_speed_px * geo.scale * growth
    max_turn = math.radians(cfg.max_turn_deg)
    shifts, turns = grid(float(radius.max()), max_turn)
    penalty = cfg.motion_prior_weight * (
        (shifts.norm(dim=1)[None] / radius[:, None]) ** 2 + (turns[None] / max(max_turn, 1e-6)) ** 2
    )
    weights = st.trackable.float()
    centre, angle, fit, scored = search_poses(
        maps, pred_centre, pred_angle, st.scale, st.offsets, inst, weights, shifts, turns, radius, penalty, padded
    )
    # the flow's pose stands unless it no longer looks like the animal (the flow slipped or was taken
    # over) while another pose clearly does; appearance drifts as an animal turns away from its
    # templates, so a flow that follows most of its fur is never overruled. NaN (usual level unknown)
    # compares False.
    per_part = sample_maps(maps, flow_anchors[:, None], padded)[:, 0] * weights
    norm = torch.zeros(n, device=dev).index_add_(0, inst, weights).clamp(min=1e-6)
    flow_fit = torch.zeros(n, device=dev).index_add_(0, inst, per_part) / norm
    slipped = flow_fit < cfg.occlusion_ratio * st.usual_fit
    clearly = (fit >= 0.5 * (1.0 + cfg.occlusion_ratio) * st.usual_fit) & (fit > flow_fit + cfg.flow_trust)
    keep_flow = has_flow & (strong | ~(slipped & clearly))
    centre = torch.where(keep_flow[:, None], pred_centre, centre)
    angle = torch.where(keep_flow, pred_angle, angle)
    fit = torch.where(keep_flow, flow_fit, fit)
    scored = torch.where(keep_flow, flow_fit, scored)

    usual = torch.where(torch.isnan(st.usual_fit), fit, st.usual_fit)
    threshold = torch.maximum(torch.full_like(usual, cfg.min_similarity), cfg.occlusion_ratio * usual)
    # an animal whose fur the flow followed is not lost, however its parts look now
    lost = (~keep_flow & (fit < threshold)) | clashes(st, centre, scored)
    if cfg.redetect_after > 0:
        centre, angle, fit, lost = redetect(st, cfg, geo, maps, centre, angle, fit, lost, usual, padded)
    centre = torch.where(lost[:, None], st.centre + st.velocity * LOST_SPEED_DECAY, centre)
    angle = torch.where(lost, st.angle, angle)
    anchors = place_parts(centre, angle, st.scale, st.offsets, inst)
    from_flow = (keep_flow & ~lost)[inst]
    anchors = torch.where(from_flow[:, None], flow_anchors, anchors)
    return Poses(centre, angle, fit, lost, anchors, from_flow, from_flow & healthy)


def clashes(st: TrackState, centre: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """(I,) animals whose pose lands on another animal that matched better: they are hidden under it."""
    n, dev = st.n_instances, st.pos.device
    if n < 2:
        return torch.zeros(n, dtype=torch.bool, device=dev)
    dist = (centre[:, None] - centre[None]).norm(dim=-1)
    near = dist < 0.5 * torch.minimum(st.extent[:, None], st.extent[None]) * st.scale[:, None]
    near.fill_diagonal_(False)
    order = torch.arange(n, device=dev)
    weaker = (scored[:, None] < scored[None]) | ((scored[:, None] == scored[None]) & (order[:, None] > order[None]))
    return (near & weaker).any(dim=1)


def redetect(
    st: TrackState,
    cfg: TrackerConfig,
    geo: WorkGeometry,
    maps: torch.Tensor,
    centre: torch.Tensor,
    angle: torch.Tensor,
    fit: torch.Tensor,
    lost: torch.Tensor,
    usual: torch.Tensor,
    padded: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Animals lost for ``redetect_after`` frames are looked for over the whole frame, at any turn."""
    long_lost = lost & (st.lost_for + 1 >= cfg.redetect_after)
    if not bool(long_lost.any()):  # one host sync, only on frames with a long-lost animal
        return centre, angle, fit, lost
    dev, p = st.pos.device, geo.patch_size
    gy, gx = torch.meshgrid(
        torch.arange(geo.grid_height, device=dev, dtype=torch.float32),
        torch.arange(geo.grid_width, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    spots = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1) * p + p / 2
    turns = torch.arange(REDETECT_TURNS, device=dev, dtype=torch.float32) * (2 * math.pi / REDETECT_TURNS)
    shifts = spots[:, None].expand(-1, REDETECT_TURNS, -1).reshape(-1, 2)
    turn = turns[None].expand(len(spots), -1).reshape(-1)
    n = st.n_instances
    found_centre, found_angle, found_fit, _ = search_poses(
        maps,
        torch.zeros(n, 2, device=dev),
        torch.zeros(n, device=dev),
        st.scale,
        st.offsets,
        st.instance_of,
        st.trackable.float(),
        shifts,
        turn,
        torch.full((n,), float("inf"), device=dev),
        torch.zeros(n, len(shifts), device=dev),
        padded,
    )
    regain = torch.maximum(torch.full_like(usual, cfg.min_similarity), 0.5 * (1.0 + cfg.occlusion_ratio) * usual)
    taken = ((found_centre[:, None] - centre[None]).norm(dim=-1) < st.extent[None] * st.scale[None]) & ~lost[None]
    taken.fill_diagonal_(False)
    found = long_lost & (found_fit >= regain) & ~taken.any(dim=1)
    return (
        torch.where(found[:, None], found_centre, centre),
        torch.where(found, found_angle, angle),
        torch.where(found, found_fit, fit),
        lost & ~found,
    )
