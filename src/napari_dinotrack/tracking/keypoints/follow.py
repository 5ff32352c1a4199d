"""Stage 1: what the optical flow says, of every part and of the fur around it, and the poses it implies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...backbone.base import WorkGeometry
from ..config import TrackerConfig
from .body_colour import align_bodies
from .flow import track_points
from .flow_fits import fit_flow
from .pose import apply_similarity
from .sampling import sample_features
from .state import TrackState
from .support import background_points, support_points

MAX_SPOTS = 128  # support spots per animal
SPOT_SPACING_PATCHES = 1 / 3  # lattice step of the spots, in patches
MAX_REACH = 4.0  # the flow may find a part up to this many times the fastest step away (a lost animal)
FLOW_TOLERANCE_PX = 1.5  # video px: flows further than this from their animal's motion are outliers
MIN_FLOW_SUPPORT = 3.0  # inlier flow weight an animal (or a part) needs for its flow to count
SPOT_REACH = 0.25  # spots within this share of the animal's extent move a part with them
HEALTHY_FLOW_SHARE = 0.6  # where this share of the spots was followed, the fur is in plain view
OWN_FLOW_AGREEMENT_PX = 1.5  # video px (plus a share of the step): a part's own flow this close to its
OWN_FLOW_AGREEMENT_SHARE = 0.15  # spots' verdict is used as it is
MAX_SIZE_STEP = 0.05  # an animal's apparent size changes by at most this much per frame
ROBUST_ROUNDS = 3  # reweighting rounds of the animals' robust fit after its first, plain one
MIN_FLOOR_SPOTS = 3  # background spots followed before the floor's step counts as known
BODY_REACH_PX = 20.0  # video px: a whole-body step this far from the animal's recent one is not believed


@dataclass
class Flow:
    """This frame's optical flow in working px: of the parts, and of support spots on each animal."""

    parts: torch.Tensor  # (K, 2) where the flow takes each part
    parts_ok: torch.Tensor  # (K,) trustworthy
    spots: torch.Tensor  # (S, 2) support spots on the previous frame
    spots_to: torch.Tensor  # (S, 2) where the flow takes them
    spots_ok: torch.Tensor  # (S,) followed, and fur rather than floor
    spot_instance: torch.Tensor  # (S,) long
    floor_step: torch.Tensor  # (2,) the floor's step (the camera's), median of background spots clear of every animal
    floor_known: torch.Tensor  # () bool: enough background spots were followed to tell it
    body_maps: torch.Tensor | None = None  # (I, 2, 3) each animal's rigid motion from its colours, video px
    body_known: torch.Tensor | None = None  # (I,) bool: that motion was found
    body_step: torch.Tensor | None = None  # (I, 2) working px: the step of each animal's parts' mean by it


@dataclass
class FlowPose:
    """The animals' poses and the parts' places as the flow has them."""

    centre: torch.Tensor  # (I, 2)
    angle: torch.Tensor  # (I,)
    anchors: torch.Tensor  # (K, 2) each part where the fur around it (or its own flow) takes it
    has_flow: torch.Tensor  # (I,) enough of the animal was followed to place it
    strong: torch.Tensor  # (I,) most of its fur was followed: appearance does not overrule it
    healthy: torch.Tensor  # (K,) the part is in plain view: the fur around it was followed


def follow(
    st: TrackState,
    cfg: TrackerConfig,
    geo: WorkGeometry,
    gray: np.ndarray,
    window: int,
    instance_host: np.ndarray,
    prev_masks: np.ndarray | None,
    padded: tuple[int, int],
) -> Flow:
    """One optical-flow call for every part and every support spot, from the previous frame to ``gray``."""
    assert st.prev_gray is not None, "the caller only follows when the previous frame's grey image is kept"
    dev = st.pos.device
    spots, owners = support_points(
        st.pos_native,
        instance_host,
        st.n_instances,
        geo.patch_px * SPOT_SPACING_PATCHES,
        MAX_SPOTS,
        gray.shape[:2],
        prev_masks,
    )
    ground = background_points(st.pos_native, instance_host, st.n_instances, geo.patch_px, gray.shape[:2])
    start = np.concatenate([st.pos_native, spots, ground])
    # the search starts where each animal's recent motion leads: a running animal stays in reach
    step = (st.velocity / geo.scale).cpu().numpy()
    body_maps = body_known = body_shift = None
    if st.body_colours is not None and st.prev_image is not None and st.image is not None:
        maps, body_step, known = align_bodies(
            st.prev_image, st.image, st.body_colours, st.pos_native, instance_host, step, BODY_REACH_PX
        )
        # the whole body's step starts every point's search: on flat fur the flow keeps what it is given
        step = np.where(known[:, None], body_step, step).astype(np.float32)
        body_maps, body_known = torch.from_numpy(maps).to(dev), torch.from_numpy(known).to(dev)
        body_shift = torch.from_numpy(body_step).to(dev) * geo.scale
    guess = start.copy()
    guess[: len(start) - len(ground)] += step[np.concatenate([instance_host, owners])]
    flow = track_points(st.prev_gray, gray, start, cfg.max_speed_px * MAX_REACH, guess, window)
    xy = torch.from_numpy(flow.points).to(dev) * geo.scale
    ok = torch.from_numpy(flow.ok).to(dev)
    k, s = len(st.names), len(spots)
    spots_work = torch.from_numpy(spots).to(dev) * geo.scale
    owners_t = torch.from_numpy(owners).to(dev)
    # only spots that look like their animal's fur rather than the floor: a spot on the rim whose
    # window sees the floor would hold the animal back
    look = sample_features(st.prev_features, spots_work, padded)
    fur = (look * (st.body_look[owners_t] - st.floor_look[None])).sum(dim=1) > 0
    # floor without texture is not followed, and holds no spot back either
    ground_ok = flow.ok[k + s :]
    ground_step = np.median(flow.points[k + s :][ground_ok] - ground[ground_ok], axis=0) if ground_ok.any() else (0, 0)
    floor = torch.tensor([*ground_step, ground_ok.sum() >= MIN_FLOOR_SPOTS], dtype=torch.float32, device=dev)
    return Flow(
        xy[:k],
        ok[:k] & st.visible,
        spots_work,
        xy[k : k + s],
        ok[k : k + s] & fur,
        owners_t,
        floor[:2] * geo.scale,
        floor[2] > 0,
        body_maps,
        body_known,
        body_shift,
    )


def flow_pose(st: TrackState, geo: WorkGeometry, flow: Flow) -> FlowPose:
    """The poses the flow implies (a robust fit per animal) and each part's flow-borne place."""
    n, inst, dev = st.n_instances, st.instance_of, st.pos.device
    k = len(st.names)
    is_spot = torch.arange(k + flow.spots.shape[0], device=dev) >= k
    sigma = (SPOT_REACH * st.extent * st.scale).clamp(min=float(geo.patch_size))[inst]
    fits = fit_flow(
        torch.cat([st.pos, flow.spots]),
        torch.cat([flow.parts, flow.spots_to]),
        torch.cat([flow.parts_ok, flow.spots_ok]),
        torch.cat([inst, flow.spot_instance]),
        is_spot,
        st.pos,
        inst,
        n,
        sigma,
        float(geo.patch_size),
        FLOW_TOLERANCE_PX * geo.scale,
        floor_step=flow.floor_step,
        floor_known=flow.floor_known,
        animal_rounds=ROBUST_ROUNDS,
        body_step=flow.body_step,
        body_known=flow.body_known,
    )
    size = fits.size.clamp(1 - MAX_SIZE_STEP, 1 + MAX_SIZE_STEP)
    has_flow = fits.inliers >= MIN_FLOW_SUPPORT
    # spots found to be floor are neither the animal's fur followed nor fur lost
    floor = fits.floor[k:]
    tried = torch.zeros(n, device=dev).index_add_(0, flow.spot_instance, (~floor).float())
    followed_spots = torch.zeros(n, device=dev).index_add_(0, flow.spot_instance, (flow.spots_ok & ~floor).float())
    strong = has_flow & (followed_spots >= HEALTHY_FLOW_SHARE * tried)
    similarity = (fits.turn, size, fits.mean_src, fits.mean_dst)
    rigid = apply_similarity(st.pos, inst, *similarity)
    # the spots around each part move it (a head turns its nose and ears round); its own flow is more
    # precise still where it agrees with them, and wrong where it does not (a rim point whose window
    # sees the floor stays behind)
    carried = fits.part_support >= MIN_FLOW_SUPPORT
    anchors = torch.where(carried[:, None], fits.parts, rigid)
    reach = OWN_FLOW_AGREEMENT_PX * geo.scale + OWN_FLOW_AGREEMENT_SHARE * (anchors - st.pos).norm(dim=1)
    agrees = flow.parts_ok & ((flow.parts - anchors).norm(dim=1) <= reach)
    anchors = torch.where(agrees[:, None], flow.parts, anchors)
    centre = apply_similarity(st.centre, torch.arange(n, device=dev), *similarity)
    healthy = carried & (fits.followed >= HEALTHY_FLOW_SHARE)
    angle = st.angle + fits.turn
    if flow.body_maps is not None and flow.body_known is not None:
        # fur too flat to follow: the body's colours move the animal, except parts whose own flow holds
        body = flow.body_known & ~strong
        by_colour = body[inst] & ~(agrees & healthy)
        anchors = torch.where(by_colour[:, None], _moved(flow.body_maps[inst], st.pos, geo.scale), anchors)
        centre = torch.where(body[:, None], _moved(flow.body_maps, st.centre, geo.scale), centre)
        turn = torch.atan2(flow.body_maps[:, 1, 0], flow.body_maps[:, 0, 0])
        angle = torch.where(body, st.angle + turn, angle)
        has_flow = has_flow | body
    return FlowPose(centre, angle, anchors, has_flow, strong, healthy | agrees)


def _moved(maps: torch.Tensor, points: torch.Tensor, scale: float) -> torch.Tensor:
    """Working-px ``points`` (R, 2) through per-row affine maps (R, 2, 3) of video px."""
    native = points / scale
    return (torch.einsum("rij,rj->ri", maps[:, :, :2], native) + maps[:, :, 2]) * scale
