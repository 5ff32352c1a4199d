"""KeypointTracker: follows every keypoint of every animal from frame to frame, as batched tensor work.

Optical flow leads, appearance checks it. One frame goes through five stages, each a handful of
tensor operations over all K keypoints and I animals at once:

1. **follow** (:mod:`.follow`): one Lucas-Kanade call for every part and for a lattice of spots on
   each animal's fur; a robust fit per animal gives its motion, and the spots around each part
   carry it (a head turning carries its nose and ears round); spots that move with the floor
   (followed on spots clear of every animal) rather than with their animal are left out; an
   animal whose fur is too flat to follow is moved by aligning its colours (:mod:`.body_colour`),
   which also starts every point's search;
2. **animals** (:mod:`.animals`): each animal's pose (centre, turn, size) is checked against the
   appearance of all its parts together through its shape model; the flow's pose stands unless it
   slipped and another clearly looks more like the animal; two animals never take one place; an
   animal lost for a while is looked for over the whole frame;
3. **parts** (:mod:`.parts`): a part stays where its flow took it; parts of an animal the flow lost
   go to their appearance peak near where the pose puts them;
4. **decide** (:mod:`.parts`, :mod:`.mask_limits`): visibility from the flow's health and the
   appearance against the part's usual level, instance masks, left/right parts kept on their sides;
5. **update** (here): pose, velocity, the parts' places in the shape model, the usual similarity
   and the running appearance (from confident matches only).

Features are centred on each frame's mean before matching: what every patch shares (overall
colour and light) makes all patches look alike. The only host round trips per frame are the
optical-flow points and the outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...backbone.base import WorkGeometry
from ...io.annotations import FrameAnnotation
from ...io.names import left_right_pairs
from ...vectors import unit
from ..config import TrackerConfig
from .animals import LOST_SPEED_DECAY, Poses, find_animals
from .body_colour import colour_models
from .follow import MAX_SIZE_STEP, flow_pose, follow
from .mask_limits import allowed_patches, clamp_to_masks, snap_offsets
from .matching import NEG, appearance_scores
from .parts import keep_sides, place, seen
from .pose import fit_similarity, place_parts, pose_grid, rotate, rotation
from .sampling import sample_features
from .state import TrackState
from .support import body_and_floor_looks

__all__ = ["KeypointTracker", "TrackOutput"]

LOCAL_STEPS_PER_PATCH = 4  # the parts' local search lattice: a quarter patch
POSE_STEPS_PER_PATCH = 2  # the animals' search lattice: half a patch
POSE_TURNS = 5  # candidate turns per frame, spread over +-max_turn
CONFIDENT_SCORE = 0.8  # matches at least this good (relative to usual) teach the running appearance
SHAPE_LEARNING = 0.3  # how fast a part's place in its animal follows what is seen
SHAPE_FREEDOM = 0.35  # a part's place may stray this share of its animal's extent (+1 patch) from the seed's
FLOW_WINDOW_SHARE = 0.35  # optical-flow window: this share of the smallest animal's extent ...
FLOW_WINDOW_PX = (9, 21)  # ... within these bounds, video px


@dataclass
class TrackOutput:
    """One frame's result in native video pixels, in the tracker's keypoint order."""

    xy: np.ndarray  # (K, 2) float32
    visible: np.ndarray  # (K,) bool
    score: np.ndarray  # (K,) float32 in [0, 1]


class KeypointTracker:
    """Follows the keypoints of one seed annotation from frame to frame."""

    def __init__(self, config: TrackerConfig, geometry: WorkGeometry, device: torch.device | str = "cpu"):
        self.config = config
        self.geometry = geometry
        self.device = torch.device(device)
        g = geometry
        self._padded = (g.padded_height, g.padded_width)
        reach = config.part_motion_patches * g.patch_size
        step = g.patch_size / LOCAL_STEPS_PER_PATCH
        n = max(1, math.ceil(reach / step))
        span = torch.arange(-n, n + 1, device=self.device, dtype=torch.float32) * step
        oy, ox = torch.meshgrid(span, span, indexing="ij")
        local = torch.stack([ox.reshape(-1), oy.reshape(-1)], 1)
        local = local[local.norm(dim=1) <= reach + 1e-6]
        self._local_offsets = local[torch.argsort(local.norm(dim=1), stable=True)]  # the anchor first
        self._snap_offsets = snap_offsets(config.mask_snap_radius_px, self.device)
        self._template_bank: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
        self._grids: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._state: TrackState | None = None
        self._instance_host = np.zeros(0, np.int64)
        self._flow_window = FLOW_WINDOW_PX[1]
        self._prev_masks: np.ndarray | None = None

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

    def start(
        self,
        annotation: FrameAnnotation,
        features: torch.Tensor,
        gray: np.ndarray | None,
        image: np.ndarray | None = None,
    ) -> None:
        """(Re)start from ``annotation`` (a manual frame or a trusted earlier result) at its frame.

        ``image`` (H, W, 3) uint8 RGB of that frame teaches each animal's colours, which then move
        animals whose fur is too flat for the flow (``TrackerConfig.colour_bodies``).

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
        shown = np.array([kp.visible for inst in annotation.instances for kp in inst.keypoints], bool)
        pos = self._to_work(xy)
        features = _centred(features)
        templates, valid = self._template_tensor(names, annotation.frame, features.shape[0])
        trackable = valid.any(dim=1)
        visible = torch.from_numpy(shown).to(dev) & trackable
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
        looked = weight > 0
        body_look, floor_look = body_and_floor_looks(features, pos[looked], instance_of[looked], n_inst, p)

        self._instance_host = instance_of.cpu().numpy()
        # the flow window follows the smallest animal: a window larger than its body sees mostly floor
        smallest = float(extent.min()) / self.geometry.scale
        self._flow_window = int(np.clip(round(FLOW_WINDOW_SHARE * smallest) // 2 * 2 + 1, *FLOW_WINDOW_PX))
        self._prev_masks = None
        pairs = left_right_pairs(names) if self.config.symmetry else []
        zeros_i = torch.zeros(n_inst, device=dev)
        self._state = TrackState(
            names=names,
            instance_of=instance_of,
            n_instances=n_inst,
            trackable=trackable,
            pos=pos,
            pos_native=xy,
            visible=visible,
            misses=torch.where(visible, torch.zeros(k, device=dev), torch.ones(k, device=dev)),
            typical=torch.full((k,), float("nan"), device=dev),
            templates=templates,
            template_valid=valid,
            memory=torch.where(visible[:, None], here, fallback),
            offsets=offsets,
            seed_offsets=offsets.clone(),
            centre=centre,
            angle=zeros_i.clone(),
            scale=torch.ones(n_inst, device=dev),
            velocity=torch.zeros(n_inst, 2, device=dev),
            spin=zeros_i.clone(),
            lost_for=zeros_i.clone(),
            usual_fit=torch.full((n_inst,), float("nan"), device=dev),
            extent=extent,
            body_look=body_look,
            floor_look=floor_look,
            sym_pairs=torch.tensor(pairs, device=dev, dtype=torch.long).reshape(-1, 2),
            prev_gray=gray,
            prev_features=features,
        )
        if image is not None and self.config.colour_bodies and self.config.use_optical_flow:
            # only parts marked visible tell where the fur is
            self._state.body_colours = colour_models(image, xy[shown], self._instance_host[shown], n_inst)
            self._state.image = _own_copy(image)

    def _template_tensor(
        self, names: list[tuple[str, str]], frame: int, channels: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, M, C) templates, nearest manual frames first, and their validity mask."""
        k = len(names)
        # only as many slots as the best-known keypoint has: unused slots would cost a full match each
        m = max(
            1, min(self.config.max_templates, max((len(self._template_bank.get(key, {})) for key in names), default=1))
        )
        templates = torch.zeros(k, m, channels, device=self.device)
        valid = torch.zeros(k, m, dtype=torch.bool, device=self.device)
        for i, key in enumerate(names):
            bank = self._template_bank.get(key, {})
            for j, f in enumerate(sorted(bank, key=lambda f: (abs(f - frame), f))[:m]):
                templates[i, j] = bank[f]
                valid[i, j] = True
        return templates, valid

    # ------------------------------------------------------------------ tracking
    def step(
        self,
        features: torch.Tensor,
        gray: np.ndarray | None,
        masks: torch.Tensor | None = None,
        image: np.ndarray | None = None,
    ) -> TrackOutput:
        """Advance by one frame. ``masks``: (I, H, W) bool instance masks current for this frame;
        ``image``: (H, W, 3) uint8 RGB of the frame, for animals followed by their colours."""
        st, cfg, g = self.state, self.config, self.geometry
        if st.body_colours is not None:
            st.prev_image, st.image = st.image, None if image is None else _own_copy(image)
        feats = _centred(features)
        maps = self._score_maps(feats, masks)
        moved = None
        if cfg.use_optical_flow and st.prev_gray is not None and gray is not None and st.names:
            flow = follow(st, cfg, g, gray, self._flow_window, self._instance_host, self._prev_masks, self._padded)
            moved = flow_pose(st, g, flow)
        poses = find_animals(st, cfg, g, maps, moved, self._grid, self._padded)
        xy, similarity = place(st, cfg, g, feats, poses, self._local_offsets, self._match, self._padded)
        found = seen(st, cfg, g, feats, xy, similarity, poses, self._padded)
        if masks is not None and cfg.clamp_to_mask:
            xy, in_mask = clamp_to_masks(xy, masks, st.instance_of, g.scale, self._snap_offsets)
            if cfg.reject_outside_mask:
                found &= in_mask
        xy = keep_sides(st, xy, found, poses)
        typical = torch.where(torch.isnan(st.typical), torch.ones_like(st.typical), st.typical)
        score = torch.where(st.trackable, (similarity / typical).clamp(0.0, 1.0), torch.zeros_like(similarity))
        self._update(feats, xy, found, score, similarity, poses)
        st.prev_gray = gray
        st.prev_features = feats
        self._prev_masks = masks.cpu().numpy() if masks is not None else None
        # the frame's single host transfer: outputs, and the start points of the next optical flow
        out = torch.cat([st.pos / g.scale, found[:, None].float(), score[:, None]], dim=1).cpu().numpy()
        st.pos_native = out[:, :2].astype(np.float32)
        return TrackOutput(st.pos_native.copy(), out[:, 2] > 0.5, out[:, 3].astype(np.float32))

    def _score_maps(self, feats: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """(K, h, w) how well each patch matches each keypoint (templates blended with recent looks)."""
        st, g = self.state, self.geometry
        flat = feats.reshape(feats.shape[0], -1).transpose(0, 1)[None]  # (1, N, C)
        scores = self._match(flat)
        if masks is not None and self.config.restrict_search_to_mask:
            scores = scores.masked_fill(~allowed_patches(masks, st.instance_of, g), NEG)
        return scores.reshape(-1, g.grid_height, g.grid_width)

    def _match(self, samples: torch.Tensor) -> torch.Tensor:
        """Appearance scores (K, S) of samples (1 or K, S, C)."""
        st = self.state
        return appearance_scores(samples, st.templates, st.template_valid, st.memory, self.config.memory_weight)

    def _update(
        self,
        feats: torch.Tensor,
        xy: torch.Tensor,
        found: torch.Tensor,
        score: torch.Tensor,
        similarity: torch.Tensor,
        poses: Poses,
    ) -> None:
        """Stage 5: pose, velocity, shape model, usual similarity and running appearance."""
        st, cfg, g = self.state, self.config, self.geometry
        n, inst = st.n_instances, st.instance_of
        # the pose that best explains the parts seen, else the one found for the animal
        turn, size, mean_src, mean_dst, rigid = fit_similarity(
            st.offsets, xy, found.float(), inst, n, min_spread=float(g.patch_size)
        )
        any_seen = torch.zeros(n, device=self.device).index_add_(0, inst, found.float()) > 0
        rigid &= any_seen
        new_scale = torch.where(
            rigid,
            torch.minimum(torch.maximum(size, st.scale * (1 - MAX_SIZE_STEP)), st.scale * (1 + MAX_SIZE_STEP)),
            st.scale,
        )
        new_angle = torch.where(rigid, turn, poses.angle)
        fitted = mean_dst - new_scale[:, None] * rotate(rotation(new_angle), mean_src)
        new_centre = torch.where(any_seen[:, None], fitted, poses.centre)
        s = cfg.velocity_smoothing
        st.velocity = torch.where(
            poses.lost[:, None], st.velocity * LOST_SPEED_DECAY, (1 - s) * st.velocity + s * (new_centre - st.centre)
        )
        d_angle = torch.remainder(new_angle - st.angle + math.pi, 2 * math.pi) - math.pi
        st.spin = torch.where(poses.lost, st.spin * 0.5, (1 - s) * st.spin + s * d_angle)
        st.centre, st.angle, st.scale = new_centre, st.angle + d_angle, new_scale
        st.lost_for = torch.where(poses.lost, st.lost_for + 1, torch.zeros_like(st.lost_for))
        usual = torch.where(torch.isnan(st.usual_fit), poses.fit, 0.9 * st.usual_fit + 0.1 * poses.fit)
        st.usual_fit = torch.where(poses.lost, st.usual_fit, usual)

        # the parts' places in the shape model follow what is seen, within reach of the seed's
        confident = found & (score >= CONFIDENT_SCORE)
        rot_back = rotation(-st.angle)[inst]
        seen_offset = rotate(rot_back, xy - st.centre[inst]) / st.scale[inst, None]
        learned = st.offsets + SHAPE_LEARNING * (seen_offset - st.offsets)
        drift = learned - st.seed_offsets
        limit = (SHAPE_FREEDOM * st.extent[inst] + g.patch_size)[:, None]
        learned = st.seed_offsets + drift * (limit / drift.norm(dim=1, keepdim=True).clamp(min=1e-6)).clamp(max=1.0)
        st.offsets = torch.where(confident[:, None], learned, st.offsets)

        # a part not seen rides along with its animal
        st.pos = torch.where(found[:, None], xy, place_parts(st.centre, st.angle, st.scale, st.offsets, inst))
        st.misses = torch.where(found, torch.zeros_like(st.misses), st.misses + 1)
        blended = torch.where(torch.isnan(st.typical), similarity, 0.9 * st.typical + 0.1 * similarity)
        st.typical = torch.where(found, blended, st.typical).clamp(max=1.0)
        if cfg.memory_momentum > 0:
            here = sample_features(feats, st.pos, self._padded)
            updated = unit((1 - cfg.memory_momentum) * st.memory + cfg.memory_momentum * here, dim=-1)
            st.memory = torch.where(confident[:, None], updated, st.memory)
        st.visible = found

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
    """Features (C, h, w) minus the frame's mean feature, unit length again."""
    feats = features.float()
    return unit(feats - feats.mean(dim=(1, 2), keepdim=True), dim=0)


def _own_copy(image: np.ndarray) -> np.ndarray:
    """The frame kept for the next step: a reader's buffer may be refilled meanwhile."""
    return np.array(image, dtype=np.uint8, copy=True)


def _visible_keypoints(annotation: FrameAnnotation) -> tuple[list[tuple[str, str]], np.ndarray]:
    keys, xy = [], []
    for inst in annotation.instances:
        for kp in inst.keypoints:
            if kp.visible and np.isfinite(kp.x) and np.isfinite(kp.y):
                keys.append((inst.name, kp.name))
                xy.append(
                    (min(max(kp.x, 0.0), annotation.image_width - 1), min(max(kp.y, 0.0), annotation.image_height - 1))
                )
    return keys, np.asarray(xy, np.float32).reshape(-1, 2)
