"""KeypointTracker: follows every keypoint of every animal from frame to frame, as batched tensor work.

One frame goes through five stages, each a handful of tensor operations over all K keypoints
and I animals at once:

1. **flow** - Lucas-Kanade optical flow of every keypoint (one call), kept only where it is
   forward-backward consistent on textured image;
2. **animals** - each animal's pose (centre, turn, size) is searched near the one its flow (or its
   recent motion) predicts, scoring the appearance of all its parts together through its shape
   model; two animals cannot take the same place; an animal lost for a while is searched for
   over the whole frame;
3. **parts** - each part is placed near where its animal's pose puts it: at its own optical flow
   while the appearance there does not clearly contradict it, else at the sub-pixel peak of its
   appearance nearby;
4. **decide** - visibility from the match similarity against the part's usual level, instance
   masks, and left/right parts kept on their sides of the animal;
5. **update** - pose, velocity, the parts' places in the shape model, and the running
   appearance (from confident matches only).

The only host round trips per frame are the optical-flow points and the outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...backbone.base import WorkGeometry
from ...io.annotations import FrameAnnotation
from ..config import TrackerConfig
from .flow import track_points
from .matching import NEG, appearance_scores, symmetric_pairs
from .pose import (
    apply_similarity,
    fit_similarity,
    local_motion,
    place_parts,
    pose_grid,
    robust_similarity,
    sample_maps,
    search_poses,
)
from .sampling import sample_features
from .state import TrackState
from .support import body_and_floor_looks, support_points

__all__ = ["KeypointTracker", "TrackOutput"]

LOCAL_STEPS_PER_PATCH = 4  # the parts' local search lattice: a quarter patch
POSE_STEPS_PER_PATCH = 2  # the animals' search lattice: half a patch
POSE_TURNS = 5  # candidate turns per frame, spread over +-max_turn
REDETECT_TURNS = 12
CYCLE_MARGIN = 0.1  # a spot traced back may prefer another spot of the last frame by at most this much
CONFIDENT_SCORE = 0.8  # matches at least this good (relative to usual) teach the running appearance
SHAPE_LEARNING = 0.3  # how fast a part's place in its animal follows what is seen
MAX_SIZE_STEP = 0.05  # an animal's apparent size changes by at most this much per frame
LOST_SPEED_DECAY = 0.8  # a lost animal slows down rather than sailing on
MAX_SEARCH_GROWTH = 4.0  # a lost animal's search window grows up to this many times
MAX_SPOTS = 128
FLOW_WINDOW_SHARE = 0.35  # optical-flow window: this share of the smallest animal's extent ...
FLOW_WINDOW_PX = (9, 21)  # ... within these bounds, video px  # support spots per animal for the optical flow
FLOW_TOLERANCE_PX = 1.5  # video px: flows further than this from their animal's motion are outliers
MIN_FLOW_SUPPORT = 3.0  # inlier flow weight an animal needs for its flow pose to count
SPOT_REACH = 0.25  # spots within this share of the animal's extent move a part with them
HEALTHY_FLOW_SHARE = 0.6  # a part whose nearby spots were this often followed is in plain view
OWN_FLOW_AGREEMENT_PX = 1.5  # video px (plus a share of the step): a part's own flow this close to its
OWN_FLOW_AGREEMENT_SHARE = 0.15  # spots' verdict is used as it is


@dataclass
class TrackOutput:
    """One frame's result in native video pixels, in the tracker's keypoint order."""

    xy: np.ndarray  # (K, 2) float32
    visible: np.ndarray  # (K,) bool
    score: np.ndarray  # (K,) float32 in [0, 1]


@dataclass
class _Flow:
    """This frame's optical flow in working px: of the parts, and of support spots on each animal."""

    parts: torch.Tensor  # (K, 2) where the flow takes each part
    parts_ok: torch.Tensor  # (K,) trustworthy
    spots: torch.Tensor  # (S, 2) support spots on the previous frame
    spots_to: torch.Tensor  # (S, 2) where the flow takes them
    spots_ok: torch.Tensor  # (S,)
    spot_instance: torch.Tensor  # (S,) long


@dataclass
class _Poses:
    centre: torch.Tensor  # (I, 2)
    angle: torch.Tensor  # (I,)
    fit: torch.Tensor  # (I,) appearance score of the pose
    lost: torch.Tensor  # (I,) bool: not found this frame (pose is the prediction)
    anchors: torch.Tensor  # (K, 2) where the pose (or the flow around each part) puts the parts
    from_flow: torch.Tensor  # (K,) bool: the anchor is a flow position, precise to a fraction of a pixel
    flow_healthy: torch.Tensor  # (K,) bool: most of the fur around the part could be followed


class KeypointTracker:
    """Follows the keypoints of one seed annotation from frame to frame."""

    def __init__(self, config: TrackerConfig, geometry: WorkGeometry, device: torch.device | str = "cpu"):
        self.config = config
        self.geometry = geometry
        self.device = torch.device(device)
        g = geometry
        self._padded = (g.padded_height, g.padded_width)
        p = g.patch_size
        reach = config.part_motion_patches * p
        step = p / LOCAL_STEPS_PER_PATCH
        n = max(1, math.ceil(reach / step))
        span = torch.arange(-n, n + 1, device=self.device, dtype=torch.float32) * step
        oy, ox = torch.meshgrid(span, span, indexing="ij")
        local = torch.stack([ox.reshape(-1), oy.reshape(-1)], 1)
        local = local[local.norm(dim=1) <= reach + 1e-6]
        self._local_offsets = local[torch.argsort(local.norm(dim=1), stable=True)]  # centre first
        # pixel offsets within the snap radius, nearest first: the first one inside a mask wins
        r = int(config.mask_snap_radius_px)
        span = torch.arange(-r, r + 1, device=self.device)
        oy, ox = torch.meshgrid(span, span, indexing="ij")
        snap = torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=1).float()
        snap = snap[snap.norm(dim=1) <= r + 1e-6]
        self._snap_offsets = snap[torch.argsort(snap.norm(dim=1), stable=True)]
        self._template_bank: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
        self._grids: dict[tuple[float, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._state: TrackState | None = None
        self._instance_host = np.zeros(0, np.int64)
        self._flow_window = FLOW_WINDOW_PX[1]
        self._prev_masks: np.ndarray | None = None
        self._current = torch.zeros(0)

    # ------------------------------------------------------------------ seeding
    @property
    def state(self) -> TrackState:
        """The run's state; only after :meth:`start`."""
        if self._state is None:
            raise RuntimeError("KeypointTracker.step() was called before start(): start from a seed annotation first")
        return self._state

    @property
    def names(self) -> list[tuple[str, str]]:
        """(instance, keypoint) of every output row (empty before :meth:`start`)."""
        return self._state.names if self._state is not None else []

    def add_templates(self, features: torch.Tensor, annotation: FrameAnnotation) -> None:
        """Remember the appearance of every visible keypoint of a manual frame."""
        keys, xy = _visible_keypoints(annotation)
        if not keys:
            return
        vecs = sample_features(_centred(features), self._to_work(xy), self._padded)
        for key, vec in zip(keys, vecs, strict=True):
            self._template_bank.setdefault(key, {})[annotation.frame] = vec

    def start(self, annotation: FrameAnnotation, features: torch.Tensor, gray: np.ndarray | None) -> None:
        """(Re)start from ``annotation`` (a manual frame or a trusted earlier result) at its frame.

        Manual frames add their own appearance to the templates; templates from other manual
        frames that were added before are kept, so a correction teaches rather than erases.
        """
        if annotation.is_manual:
            self.add_templates(features, annotation)
        dev, p = self.device, self.geometry.patch_size
        names = annotation.keypoint_names()
        k = len(names)
        inst_names = [inst.name for inst in annotation.instances]
        n_inst = len(inst_names)
        instance_of = torch.tensor([inst_names.index(i) for i, _ in names], device=dev, dtype=torch.long)
        xy = np.array([[kp.x, kp.y] for inst in annotation.instances for kp in inst.keypoints], np.float32)
        xy = xy.reshape(k, 2)
        xy[:, 0] = np.clip(xy[:, 0], 0, annotation.image_width - 1)
        xy[:, 1] = np.clip(xy[:, 1], 0, annotation.image_height - 1)
        seen = np.array([kp.visible for inst in annotation.instances for kp in inst.keypoints], bool)
        pos = self._to_work(xy)
        features = _centred(features)
        templates, valid = self._template_tensor(names, annotation.frame, features.shape[0])
        trackable = valid.any(dim=1)
        visible = torch.from_numpy(seen).to(dev) & trackable
        here = sample_features(features, pos, self._padded)
        fallback = F.normalize(torch.where(valid[:, :, None], templates, 0).sum(1), dim=-1, eps=1e-6)

        # the shape model: parts relative to the centre of their animal's parts seen on the seed
        weight = visible.float() if bool(visible.any()) else torch.ones(k, device=dev)
        count = torch.zeros(n_inst, device=dev).index_add_(0, instance_of, weight)
        centre = torch.zeros(n_inst, 2, device=dev).index_add_(0, instance_of, pos * weight[:, None])
        centre = centre / count.clamp(min=1e-6)[:, None]
        offsets = pos - centre[instance_of]
        spread = torch.zeros(n_inst, device=dev).index_add_(0, instance_of, weight * (offsets**2).sum(1))
        extent = torch.sqrt(spread / count.clamp(min=1e-6)).clamp(min=float(p))

        self._instance_host = instance_of.cpu().numpy()
        # the flow window follows the smallest animal: a window larger than its body sees mostly floor
        smallest = float(extent.min()) / self.geometry.scale
        self._flow_window = int(np.clip(round(FLOW_WINDOW_SHARE * smallest) // 2 * 2 + 1, *FLOW_WINDOW_PX))
        self._prev_masks = None
        body_look, floor_look = body_and_floor_looks(features, pos[visible] if bool(visible.any()) else pos,
                                                     instance_of[visible] if bool(visible.any()) else instance_of,
                                                     n_inst, p)
        pairs = symmetric_pairs(names) if self.config.symmetry else []
        zeros_i = torch.zeros(n_inst, device=dev)
        self._state = TrackState(
            names=names, instance_of=instance_of, n_instances=n_inst, trackable=trackable,
            pos=pos, pos_native=xy, visible=visible,
            misses=torch.where(visible, torch.zeros(k, device=dev), torch.ones(k, device=dev)),
            typical=torch.full((k,), float("nan"), device=dev),
            templates=templates, template_valid=valid,
            memory=torch.where(visible[:, None], here, fallback),
            offsets=offsets, seed_offsets=offsets.clone(),
            centre=centre, angle=zeros_i.clone(), scale=torch.ones(n_inst, device=dev),
            velocity=torch.zeros(n_inst, 2, device=dev), spin=zeros_i.clone(), lost_for=zeros_i.clone(),
            usual_fit=torch.full((n_inst,), float("nan"), device=dev), extent=extent,
            body_look=body_look, floor_look=floor_look,
            sym_pairs=torch.tensor(pairs, device=dev, dtype=torch.long).reshape(-1, 2),
            prev_gray=gray, prev_features=features,
        )

    def _template_tensor(self, names: list[tuple[str, str]], frame: int,
                         channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, M, C) templates, nearest manual frames first, and their validity mask."""
        k = len(names)
        # only as many slots as the best-known keypoint has: unused slots would cost a full match each
        m = max(1, min(self.config.max_templates, max((len(self._template_bank.get(key, {})) for key in names),
                                                      default=1)))
        templates = torch.zeros(k, m, channels, device=self.device)
        valid = torch.zeros(k, m, dtype=torch.bool, device=self.device)
        for i, key in enumerate(names):
            bank = self._template_bank.get(key, {})
            for j, f in enumerate(sorted(bank, key=lambda f: (abs(f - frame), f))[:m]):
                templates[i, j] = bank[f]
                valid[i, j] = True
        return templates, valid

    # ------------------------------------------------------------------ tracking
    def step(self, features: torch.Tensor, gray: np.ndarray | None,
             masks: torch.Tensor | None = None) -> TrackOutput:
        """Advance by one frame. ``masks``: (I, H, W) bool instance masks current for this frame."""
        st = self.state
        feats = self._current = _centred(features)
        maps = self._score_maps(feats, masks)
        flow = self._flow(gray)
        poses = self._find_animals(maps, flow)
        xy, similarity = self._place_parts(feats, poses)
        xy, found, score = self._decide(xy, similarity, poses, masks)
        self._update(feats, xy, found, score, similarity, poses)
        st.prev_gray = gray
        st.prev_features = feats
        self._prev_masks = masks.cpu().numpy() if masks is not None else None
        # the frame's single host transfer: outputs, and the start points of the next optical flow
        out = torch.cat([st.pos / self.geometry.scale, found[:, None].float(), score[:, None]], dim=1).cpu().numpy()
        st.pos_native = out[:, :2].astype(np.float32)
        return TrackOutput(st.pos_native.copy(), out[:, 2] > 0.5, out[:, 3].astype(np.float32))

    # --- 1. appearance maps and optical flow
    def _score_maps(self, feats: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """(K, h, w) how well each patch matches each keypoint (templates blended with recent looks)."""
        st, cfg, g = self.state, self.config, self.geometry
        flat = feats.reshape(feats.shape[0], -1).transpose(0, 1)[None]  # (1, N, C)
        scores = appearance_scores(flat, st.templates, st.template_valid, st.memory, cfg.memory_weight)
        allowed = self._allowed_patches(masks)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, NEG)
        return scores.reshape(-1, g.grid_height, g.grid_width)

    def _flow(self, gray: np.ndarray | None) -> _Flow | None:
        st, cfg, g = self.state, self.config, self.geometry
        if not (cfg.use_optical_flow and st.prev_gray is not None and gray is not None and st.names):
            return None
        spots, owners = support_points(st.pos_native, self._instance_host, st.n_instances, g.patch_px / 3,
                                       MAX_SPOTS, gray.shape[:2], self._prev_masks)
        start = np.concatenate([st.pos_native, spots])
        # the search starts where each animal's recent motion leads: a running animal stays in reach
        step = (st.velocity / g.scale).cpu().numpy()
        guess = start + step[np.concatenate([self._instance_host, owners])]
        flow = track_points(st.prev_gray, gray, start, cfg.max_speed_px * MAX_SEARCH_GROWTH, guess,
                            self._flow_window)
        xy = torch.from_numpy(flow.points).to(self.device) * g.scale
        ok = torch.from_numpy(flow.ok).to(self.device)
        k = len(st.names)
        spots_work = torch.from_numpy(spots).to(self.device) * g.scale
        owners_t = torch.from_numpy(owners).to(self.device)
        # only spots that look like their animal's fur rather than the floor: a spot on the rim whose
        # window sees the floor would hold the animal back
        look = sample_features(st.prev_features, spots_work, self._padded)
        fur = (look * (st.body_look[owners_t] - st.floor_look[None])).sum(dim=1) > 0
        return _Flow(xy[:k], ok[:k] & st.visible, spots_work, xy[k:], ok[k:] & fur, owners_t)

    # --- 2. where each animal is
    def _find_animals(self, maps: torch.Tensor, flow: _Flow | None) -> _Poses:
        st, cfg, g = self.state, self.config, self.geometry
        n, inst, _p = st.n_instances, st.instance_of, g.patch_size
        pred_centre = st.centre + st.velocity
        pred_angle = st.angle + st.spin
        has_flow = strong = torch.zeros(n, dtype=torch.bool, device=self.device)
        healthy = torch.zeros(len(st.names), dtype=torch.bool, device=self.device)
        flow_anchors = place_parts(pred_centre, pred_angle, st.scale, st.offsets, inst)
        if flow is not None:
            flow_centre, flow_angle, flow_anchors, has_flow, strong, healthy = self._flow_pose(flow)
            pred_centre = torch.where(has_flow[:, None], flow_centre, pred_centre)
            pred_angle = torch.where(has_flow, flow_angle, pred_angle)

        growth = (1.0 + 0.5 * st.lost_for).clamp(max=MAX_SEARCH_GROWTH)
        radius = cfg.max_speed_px * g.scale * growth
        max_turn = math.radians(cfg.max_turn_deg)
        shifts, turns = self._grid(float(radius.max()), max_turn)
        penalty = cfg.motion_prior_weight * ((shifts.norm(dim=1)[None] / radius[:, None]) ** 2
                                             + (turns[None] / max(max_turn, 1e-6)) ** 2)
        weights = st.trackable.float()
        centre, angle, fit, scored = search_poses(maps, pred_centre, pred_angle, st.scale, st.offsets, inst,
                                                  weights, shifts, turns, radius, penalty, self._padded)
        # the flow's pose stands unless the appearance clearly prefers another one
        per_part = sample_maps(maps, flow_anchors[:, None], self._padded)[:, 0] * weights
        norm = torch.zeros(n, device=self.device).index_add_(0, inst, weights).clamp(min=1e-6)
        flow_fit = torch.zeros(n, device=self.device).index_add_(0, inst, per_part) / norm
        # ... and only where the flow's pose no longer looks like the animal (the flow slipped or was taken
        # over) while another pose clearly does; comparisons with NaN (usual level unknown) are False
        slipped = flow_fit < cfg.occlusion_ratio * st.usual_fit
        clearly = (fit >= 0.5 * (1.0 + cfg.occlusion_ratio) * st.usual_fit) & (fit > flow_fit + cfg.flow_trust)
        # (appearance drifts as an animal turns away from its templates; a flow that follows most of its fur
        # is not overruled by it)
        keep_flow = has_flow & (strong | ~(slipped & clearly))
        centre = torch.where(keep_flow[:, None], pred_centre, centre)
        angle = torch.where(keep_flow, pred_angle, angle)
        fit = torch.where(keep_flow, flow_fit, fit)
        scored = torch.where(keep_flow, flow_fit, scored)

        usual = torch.where(torch.isnan(st.usual_fit), fit, st.usual_fit)
        threshold = torch.maximum(torch.full_like(usual, cfg.min_similarity), cfg.occlusion_ratio * usual)
        # an animal whose fur the flow followed is not lost, however its parts look now
        lost = (~keep_flow & (fit < threshold)) | self._clashes(centre, scored)
        if cfg.redetect_after > 0:
            centre, angle, fit, lost = self._redetect(maps, centre, angle, fit, lost, usual)
        centre = torch.where(lost[:, None], st.centre + st.velocity * LOST_SPEED_DECAY, centre)
        angle = torch.where(lost, st.angle, angle)
        anchors = place_parts(centre, angle, st.scale, st.offsets, inst)
        from_flow = (keep_flow & ~lost)[inst]
        anchors = torch.where(from_flow[:, None], flow_anchors, anchors)
        return _Poses(centre, angle, fit, lost, anchors, from_flow, from_flow & healthy)

    def _flow_pose(self, flow: _Flow) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The poses the optical flow implies, each part's flow-borne position, and which animals had flow."""
        st, g = self.state, self.geometry
        n, inst, _k = st.n_instances, st.instance_of, len(st.names)
        src = torch.cat([st.pos, flow.spots])
        dst = torch.cat([flow.parts, flow.spots_to])
        owners = torch.cat([inst, flow.spot_instance])
        tolerance = FLOW_TOLERANCE_PX * g.scale
        turn, size, mean_src, mean_dst, _, weight = robust_similarity(
            src, dst, torch.cat([flow.parts_ok, flow.spots_ok]).float(), owners, n, float(g.patch_size), tolerance)
        size = size.clamp(1 - MAX_SIZE_STEP, 1 + MAX_SIZE_STEP)
        support = torch.zeros(n, device=self.device).index_add_(0, owners, weight)
        has_flow = support >= MIN_FLOW_SUPPORT
        tried = torch.zeros(n, device=self.device).index_add_(0, flow.spot_instance, torch.ones_like(flow.spots_ok,
                                                                                                        dtype=torch.float))
        followed_spots = torch.zeros(n, device=self.device).index_add_(0, flow.spot_instance, flow.spots_ok.float())
        strong = has_flow & (followed_spots >= HEALTHY_FLOW_SHARE * tried)
        rigid = apply_similarity(st.pos, inst, turn, size, mean_src, mean_dst)
        sigma = (SPOT_REACH * st.extent * st.scale).clamp(min=float(g.patch_size))[inst]
        # the spots around each part move it (a head turns its nose and ears round); its own flow is
        # more precise still where it agrees with them, and wrong where it does not (a rim point whose
        # window sees the floor stays behind)
        local, support_k, followed = local_motion(st.pos, inst, flow.spots, flow.spots_to, flow.spot_instance,
                                                  flow.spots_ok.float(), sigma, tolerance)
        anchors = torch.where((support_k >= MIN_FLOW_SUPPORT)[:, None], local, rigid)
        reach = OWN_FLOW_AGREEMENT_PX * g.scale + OWN_FLOW_AGREEMENT_SHARE * (anchors - st.pos).norm(dim=1)
        agrees = flow.parts_ok & ((flow.parts - anchors).norm(dim=1) <= reach)
        anchors = torch.where(agrees[:, None], flow.parts, anchors)
        all_inst = torch.arange(n, device=self.device)
        centre = apply_similarity(st.centre, all_inst, turn, size, mean_src, mean_dst)
        healthy = (support_k >= MIN_FLOW_SUPPORT) & (followed >= HEALTHY_FLOW_SHARE)
        return centre, st.angle + turn, anchors, has_flow, strong, healthy | agrees

    def _clashes(self, centre: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """(I,) animals whose pose lands on another animal that matched better: they are hidden under it."""
        st = self.state
        n = st.n_instances
        if n < 2:
            return torch.zeros(n, dtype=torch.bool, device=self.device)
        dist = (centre[:, None] - centre[None]).norm(dim=-1)
        near = dist < 0.5 * torch.minimum(st.extent[:, None], st.extent[None]) * st.scale[:, None]
        near.fill_diagonal_(False)
        weaker = scored[:, None] < scored[None]
        tie_later = (scored[:, None] == scored[None]) & (torch.arange(n, device=self.device)[:, None]
                                                          > torch.arange(n, device=self.device)[None])
        return (near & (weaker | tie_later)).any(dim=1)

    def _redetect(self, maps, centre, angle, fit, lost, usual):
        """Animals lost for ``redetect_after`` frames are looked for over the whole frame."""
        st, cfg, g = self.state, self.config, self.geometry
        long_lost = lost & (st.lost_for + 1 >= cfg.redetect_after)
        if not bool(long_lost.any()):  # one host sync, only for the rare frames with a long-lost animal
            return centre, angle, fit, lost
        p = g.patch_size
        gy, gx = torch.meshgrid(torch.arange(g.grid_height, device=self.device, dtype=torch.float32),
                                torch.arange(g.grid_width, device=self.device, dtype=torch.float32), indexing="ij")
        spots = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1) * p + p / 2
        turns = torch.arange(REDETECT_TURNS, device=self.device, dtype=torch.float32) * (2 * math.pi / REDETECT_TURNS)
        shifts = spots[:, None].expand(-1, REDETECT_TURNS, -1).reshape(-1, 2)
        turn = turns[None].expand(len(spots), -1).reshape(-1)
        zero = torch.zeros(st.n_instances, 2, device=self.device)
        big = torch.full((st.n_instances,), float("inf"), device=self.device)
        none = torch.zeros(st.n_instances, len(shifts), device=self.device)
        c2, a2, f2, _ = search_poses(maps, zero, st.angle * 0, st.scale, st.offsets, st.instance_of,
                                     st.trackable.float(), shifts, turn, big, none, self._padded)
        regain = torch.maximum(torch.full_like(usual, self.config.min_similarity),
                               0.5 * (1.0 + cfg.occlusion_ratio) * usual)
        others = ~lost
        taken = ((c2[:, None] - centre[None]).norm(dim=-1) < st.extent[None] * st.scale[None]) & others[None]
        taken.fill_diagonal_(False)
        found = long_lost & (f2 >= regain) & ~taken.any(dim=1)
        return (torch.where(found[:, None], c2, centre), torch.where(found, a2, angle),
                torch.where(found, f2, fit), lost & ~found)

    # --- 3. where each part is
    def _place_parts(self, feats: torch.Tensor, poses: _Poses) -> tuple[torch.Tensor, torch.Tensor]:
        """Each part at its anchor, or at the appearance peak nearby where that clearly matches better."""
        st, cfg, p = self.state, self.config, self.geometry.patch_size
        lattice = poses.anchors[:, None] + self._local_offsets[None]  # (K, L, 2); the anchor itself first
        local = self._match(sample_features(feats, lattice, self._padded))  # (K, L)
        _, best_at = local.max(dim=1)
        at_anchor = local[:, 0]
        rows = torch.arange(len(best_at), device=self.device)
        near = (lattice - lattice[rows, best_at][:, None]).norm(dim=-1) <= 0.5 * p
        weights = torch.softmax((local / cfg.subpixel_temperature).masked_fill(~near, NEG), dim=1)
        peak = (weights[..., None] * lattice).sum(dim=1)
        at_peak = self._match(sample_features(feats, peak, self._padded)[:, None])[:, 0]
        # a part carried by the flow stays there: its appearance peak nearby is no better evidence, for a
        # rim part's patch holds floor that stays behind when the animal moves on
        move = ~poses.from_flow & ~poses.lost[st.instance_of]
        return torch.where(move[:, None], peak, poses.anchors), torch.where(move, at_peak, at_anchor)

    def _match(self, samples: torch.Tensor) -> torch.Tensor:
        """Appearance scores (K, S) of per-keypoint samples (K, S, C)."""
        st = self.state
        return appearance_scores(samples, st.templates, st.template_valid, st.memory, self.config.memory_weight)

    # --- 4. what to trust
    def _decide(self, xy: torch.Tensor, similarity: torch.Tensor, poses: _Poses, masks: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        st, cfg, g = self.state, self.config, self.geometry
        unknown = torch.isnan(st.typical)
        typical = torch.where(unknown, torch.ones_like(st.typical), st.typical)
        threshold = torch.where(unknown, torch.full_like(typical, cfg.min_similarity),
                                (cfg.occlusion_ratio * typical).clamp(min=cfg.min_similarity))
        # hysteresis: a hidden keypoint must match clearly better than the loss threshold to come back
        regain = torch.where(unknown, threshold, 0.5 * (1.0 + cfg.occlusion_ratio) * typical)
        inside = ((xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= g.work_width - 1)
                  & (xy[:, 1] <= g.work_height - 1))
        # seen: the fur around it was followed and it does not look unlike itself, or, without that support,
        # it matches nearly as well as usual (as a hidden part must to come back)
        looks_right = similarity >= regain
        followed = poses.flow_healthy & st.visible & (similarity >= 0.0)
        found = st.trackable & inside & ~poses.lost[st.instance_of] & (looks_right | followed)
        # a part placed by its look alone must look most like its own last place when traced back one
        # frame: a look-alike (another part, another animal) matches some other spot better there
        found &= poses.from_flow | ~st.visible | self._traces_back(xy)
        if masks is not None and cfg.clamp_to_mask:
            xy, in_mask = self._clamp_to_masks(xy, masks)
            if cfg.reject_outside_mask:
                found &= in_mask
        if st.sym_pairs.numel():
            xy = self._keep_sides(xy, found, poses)
        score = torch.where(st.trackable, (similarity / typical).clamp(0.0, 1.0), torch.zeros_like(similarity))
        return xy, found, score

    def _traces_back(self, xy: torch.Tensor) -> torch.Tensor:
        """(K,) whether each spot, looked up in the previous frame, matches the part's last place best."""
        st = self.state
        prev = st.prev_features
        desc = sample_features(self._current, xy, self._padded)
        best_anywhere = (desc @ prev.reshape(prev.shape[0], -1)).max(dim=1).values
        at_last_place = (desc * sample_features(prev, st.pos, self._padded)).sum(dim=1)
        return at_last_place >= best_anywhere - CYCLE_MARGIN

    def _keep_sides(self, xy: torch.Tensor, found: torch.Tensor, poses: _Poses) -> torch.Tensor:
        """Swap left/right parts that landed on each other's side of their animal."""
        st = self.state
        left, right = st.sym_pairs[:, 0], st.sym_pairs[:, 1]
        expected = place_parts(poses.centre, poses.angle, st.scale, st.offsets, st.instance_of)
        crossed = ((xy[left] - xy[right]) * (expected[left] - expected[right])).sum(-1) < 0
        flipped = crossed & found[left] & found[right]
        out = xy.clone()
        out[left[flipped]] = xy[right[flipped]]
        out[right[flipped]] = xy[left[flipped]]
        return out

    # --- 5. remember
    def _update(self, feats: torch.Tensor, xy: torch.Tensor, found: torch.Tensor, score: torch.Tensor,
                similarity: torch.Tensor, poses: _Poses) -> None:
        st, cfg, g = self.state, self.config, self.geometry
        n, inst = st.n_instances, st.instance_of
        # the pose that best explains the parts seen, else the one searched for
        turn, size, mean_src, mean_dst, rigid = fit_similarity(st.offsets, xy, found.float(), inst, n,
                                                               min_spread=float(g.patch_size))
        seen = torch.zeros(n, device=self.device).index_add_(0, inst, found.float()) > 0
        rigid &= seen
        new_scale = torch.where(rigid, torch.minimum(torch.maximum(size, st.scale * (1 - MAX_SIZE_STEP)),
                                                     st.scale * (1 + MAX_SIZE_STEP)), st.scale)
        new_angle = torch.where(rigid, turn, poses.angle)
        fitted_centre = mean_dst - new_scale[:, None] * torch.einsum("iab,ib->ia", _rot(new_angle), mean_src)
        new_centre = torch.where(seen[:, None], fitted_centre, poses.centre)
        step = new_centre - st.centre
        s = cfg.velocity_smoothing
        st.velocity = torch.where(poses.lost[:, None], st.velocity * LOST_SPEED_DECAY,
                                  (1 - s) * st.velocity + s * step)
        d_angle = torch.remainder(new_angle - st.angle + math.pi, 2 * math.pi) - math.pi
        st.spin = torch.where(poses.lost, st.spin * 0.5, (1 - s) * st.spin + s * d_angle)
        st.centre, st.angle, st.scale = new_centre, st.angle + d_angle, new_scale
        st.lost_for = torch.where(poses.lost, st.lost_for + 1, torch.zeros_like(st.lost_for))
        usual = torch.where(torch.isnan(st.usual_fit), poses.fit, 0.9 * st.usual_fit + 0.1 * poses.fit)
        st.usual_fit = torch.where(poses.lost, st.usual_fit, usual)

        # the parts' places in the shape model follow what is seen, within reach of the seed's
        rot_back = _rot(-st.angle)[inst]
        seen_offset = torch.einsum("kab,kb->ka", rot_back, xy - st.centre[inst]) / st.scale[inst, None]
        learned = st.offsets + SHAPE_LEARNING * (seen_offset - st.offsets)
        drift = learned - st.seed_offsets
        limit = (0.35 * st.extent[inst] + g.patch_size)[:, None]
        learned = st.seed_offsets + drift * (limit / drift.norm(dim=1, keepdim=True).clamp(min=1e-6)).clamp(max=1.0)
        st.offsets = torch.where((found & (score >= CONFIDENT_SCORE))[:, None], learned, st.offsets)

        carried = place_parts(st.centre, st.angle, st.scale, st.offsets, inst)
        st.pos = torch.where(found[:, None], xy, carried)
        st.misses = torch.where(found, torch.zeros_like(st.misses), st.misses + 1)
        blended = torch.where(torch.isnan(st.typical), similarity, 0.9 * st.typical + 0.1 * similarity)
        st.typical = torch.where(found, blended, st.typical).clamp(max=1.0)
        if cfg.memory_momentum > 0:
            confident = found & (score >= CONFIDENT_SCORE)
            here = sample_features(feats, st.pos, self._padded)
            updated = F.normalize((1 - cfg.memory_momentum) * st.memory + cfg.memory_momentum * here, dim=-1,
                                  eps=1e-6)
            st.memory = torch.where(confident[:, None], updated, st.memory)
        st.visible = found

    # ------------------------------------------------------------------ masks
    def _allowed_patches(self, masks: torch.Tensor | None) -> torch.Tensor | None:
        """(K, N) patches each keypoint may land on when the search is restricted to its mask."""
        if masks is None or not self.config.restrict_search_to_mask:
            return None
        g, st = self.geometry, self.state
        m = F.interpolate(masks.float()[None], size=(g.work_height, g.work_width), mode="area")[0]
        m = F.pad(m, (0, g.padded_width - g.work_width, 0, g.padded_height - g.work_height))
        cover = F.max_pool2d(F.avg_pool2d(m[None], g.patch_size)[0][None], 3, 1, 1)[0] > 0  # one patch of slack
        cover = cover.reshape(masks.shape[0], -1)
        has_mask = cover.any(dim=1)
        return cover[st.instance_of] | ~has_mask[st.instance_of][:, None]

    def _clamp_to_masks(self, xy: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move points outside their instance mask to the nearest mask pixel within the snap radius."""
        st = self.state
        s = self.geometry.scale
        h, w = masks.shape[-2:]
        native = xy / s
        cand = native.round()[:, None] + self._snap_offsets[None]
        cx = cand[..., 0].clamp(0, w - 1).long()
        cy = cand[..., 1].clamp(0, h - 1).long()
        inside = masks[st.instance_of[:, None], cy, cx]  # (K, S)
        first = inside.float().argmax(dim=1)
        found = inside.any(dim=1)
        has_mask = masks.reshape(masks.shape[0], -1).any(dim=1)[st.instance_of]
        already = inside[:, 0]
        snapped = cand[torch.arange(len(first), device=self.device), first]
        moved = found & ~already & has_mask
        new_native = torch.where(moved[:, None], snapped, native)
        return new_native * s, found | ~has_mask

    # ------------------------------------------------------------------ helpers
    def _grid(self, radius: float, max_turn: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate pose changes within ``radius`` working px (cached per radius)."""
        step = self.geometry.patch_size / POSE_STEPS_PER_PATCH
        key = (round(radius / step), int(max_turn * 1000))
        if key not in self._grids:
            angle_step = 2 * max_turn / max(1, POSE_TURNS - 1)
            self._grids[key] = pose_grid(key[0] * step, step, angle_step, POSE_TURNS, self.device)
        return self._grids[key]

    def _to_work(self, xy: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(xy, dtype=torch.float32, device=self.device).reshape(-1, 2) * self.geometry.scale


def _centred(features: torch.Tensor) -> torch.Tensor:
    """Features (C, h, w) minus the frame's mean feature, unit length again.

    What every patch shares (the overall colour and light, a backbone's common direction)
    makes all patches look alike; without it a match is decided by what tells patches apart.
    """
    feats = features.float()
    return F.normalize(feats - feats.mean(dim=(1, 2), keepdim=True), dim=0, eps=1e-6)


def _rot(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _visible_keypoints(annotation: FrameAnnotation) -> tuple[list[tuple[str, str]], np.ndarray]:
    keys, xy = [], []
    for inst in annotation.instances:
        for kp in inst.keypoints:
            if kp.visible and np.isfinite(kp.x) and np.isfinite(kp.y):
                keys.append((inst.name, kp.name))
                xy.append((min(max(kp.x, 0.0), annotation.image_width - 1),
                           min(max(kp.y, 0.0), annotation.image_height - 1)))
    return keys, np.asarray(xy, np.float32).reshape(-1, 2)
