"""KeypointTracker: per-frame matching of every keypoint of every instance, as batched tensor work.

One frame = one pass of a handful of tensor operations over all K keypoints: appearance scores
against the manual templates and the running appearance, a motion prior centred on the optical
flow (or velocity) prediction, an integer peak, a sub-pixel soft-argmax on bilinearly sampled
features around it, occlusion and mask checks, and the state update. The only host round trip
per frame is the positions that the optical flow and the outputs need anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...backbone.base import WorkGeometry
from ...io.annotations import FrameAnnotation
from ..config import TrackerConfig
from .flow import track_points
from .matching import (
    NEG,
    appearance_scores,
    cross_instance_pairs,
    keep_sides,
    motion_penalty,
    resolve_collisions,
    symmetric_pairs,
)
from .sampling import patch_centres, sample_features

REFINE_STEPS_PER_PATCH = 8  # sub-pixel search lattice: an eighth of a patch
REFINE_REACH = 5  # lattice steps either side of the chosen patch centre: the peak lies in that patch
EXCLUSION_PATCHES = 1.5  # two exclusive keypoints must pick patch centres at least this far apart
CONFIDENT_SCORE = 0.6  # only matches at least this good update the running appearance
CYCLE_MARGIN = 0.1  # a match traced back may prefer another spot by at most this much similarity
MIN_SCALE_STEP, MAX_SCALE_STEP = 0.8, 1.25  # an animal's apparent size changes little between frames


@dataclass
class _Motion:
    """This frame's motion estimate, in working pixels."""

    pred: torch.Tensor  # (K, 2) predicted positions
    flow_xy: torch.Tensor | None  # (K, 2) optical-flow positions, when flow ran
    flow_ok: torch.Tensor | None  # (K,) where the flow is trustworthy
    speed: torch.Tensor  # (K,) recent speed, video px per frame
    flow_speed: torch.Tensor  # (K,) optical-flow step, video px


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
        self._centres = patch_centres((g.grid_height, g.grid_width), g.patch_size, self.device).reshape(-1, 2)
        step = g.patch_size / REFINE_STEPS_PER_PATCH
        offs = torch.arange(-REFINE_REACH, REFINE_REACH + 1, device=self.device) * step
        oy, ox = torch.meshgrid(offs, offs, indexing="ij")
        self._refine_offsets = torch.stack([ox, oy], dim=-1).reshape(-1, 2)
        # pixel offsets within the snap radius, nearest first: the first one inside a mask wins
        r = int(config.mask_snap_radius_px)
        span = torch.arange(-r, r + 1, device=self.device)
        oy, ox = torch.meshgrid(span, span, indexing="ij")
        snap = torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=1).float()
        snap = snap[snap.norm(dim=1) <= r + 1e-6]
        self._snap_offsets = snap[torch.argsort(snap.norm(dim=1), stable=True)]
        self._template_bank: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
        self.names: list[tuple[str, str]] = []
        self.prev_gray: np.ndarray | None = None
        self.prev_features: torch.Tensor | None = None

    # ------------------------------------------------------------------ seeding
    def add_templates(self, features: torch.Tensor, annotation: FrameAnnotation) -> None:
        """Remember the appearance of every visible keypoint of a manual frame."""
        keys, xy = _visible_keypoints(annotation)
        if not keys:
            return
        vecs = sample_features(features.float(), self._to_work(xy), self._padded)
        for key, vec in zip(keys, vecs, strict=True):
            self._template_bank.setdefault(key, {})[annotation.frame] = vec

    def start(self, annotation: FrameAnnotation, features: torch.Tensor, gray: np.ndarray | None) -> None:
        """(Re)start from ``annotation`` (a manual frame or a trusted earlier result) at its frame.

        Manual frames add their own appearance to the templates; templates from other manual
        frames that were added before are kept, so a correction teaches rather than erases.
        """
        if annotation.is_manual:
            self.add_templates(features, annotation)
        cfg, dev = self.config, self.device
        self.frame = annotation.frame
        self.names = annotation.keypoint_names()
        k = len(self.names)
        inst_names = [inst.name for inst in annotation.instances]
        self.instance_of = torch.tensor([inst_names.index(i) for i, _ in self.names], device=dev, dtype=torch.long)
        xy = np.array([[kp.x, kp.y] for inst in annotation.instances for kp in inst.keypoints], np.float32)
        xy = xy.reshape(k, 2)
        xy[:, 0] = np.clip(xy[:, 0], 0, annotation.image_width - 1)
        xy[:, 1] = np.clip(xy[:, 1], 0, annotation.image_height - 1)
        visible = np.array([kp.visible for inst in annotation.instances for kp in inst.keypoints], bool)
        self.pos = self._to_work(xy)
        self._pos_host = xy
        self._n_instances = len(annotation.instances)
        self.vel = torch.zeros(k, 2, device=dev)
        self.misses = torch.zeros(k, device=dev)
        self.typical = torch.full((k,), float("nan"), device=dev)

        templates, valid = self._template_tensor(annotation.frame, features.shape[0])
        self.templates, self.template_valid = templates, valid
        self.trackable = valid.any(dim=1)
        self.visible = torch.from_numpy(visible).to(dev) & self.trackable
        # a keypoint that is not visible at the start is searched for everywhere right away
        self.misses = torch.where(self.visible, self.misses, float(max(cfg.redetect_after, 1)))
        here = sample_features(features.float(), self.pos, self._padded)
        fallback = F.normalize(torch.where(valid[:, :, None], templates, 0).sum(1), dim=-1, eps=1e-6)
        self.memory = torch.where(self.visible[:, None], here, fallback)

        pairs = symmetric_pairs(self.names) if cfg.symmetry else []
        self._sym_pairs = torch.tensor(pairs, device=dev, dtype=torch.long).reshape(-1, 2)
        exclusive = pairs + cross_instance_pairs(self.names)
        self._exclusive_pairs = torch.tensor(exclusive, device=dev, dtype=torch.long).reshape(-1, 2)
        self.prev_gray = gray
        self.prev_features = features.float()

    def _template_tensor(self, frame: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, M, C) templates, nearest manual frames first, and their validity mask."""
        k = len(self.names)
        # only as many slots as the best-known keypoint has: unused slots would cost a full match each
        m = max(1, min(self.config.max_templates, max((len(self._template_bank.get(key, {})) for key in self.names),
                                                      default=1)))
        templates = torch.zeros(k, m, channels, device=self.device)
        valid = torch.zeros(k, m, dtype=torch.bool, device=self.device)
        for i, key in enumerate(self.names):
            bank = self._template_bank.get(key, {})
            for j, f in enumerate(sorted(bank, key=lambda f: (abs(f - frame), f))[:m]):
                templates[i, j] = bank[f]
                valid[i, j] = True
        return templates, valid

    # ------------------------------------------------------------------ tracking
    def step(self, features: torch.Tensor, gray: np.ndarray | None,
             masks: torch.Tensor | None = None) -> TrackOutput:
        """Advance by one frame. ``masks``: (I, H, W) bool instance masks current for this frame."""
        feats = features.float()
        motion = self._predict(gray)
        picks = self._pick(feats, motion, masks)
        new_xy, similarity = self._refine(feats, picks)
        cfg, p = self.config, self.geometry.patch_size
        if motion.flow_xy is not None and cfg.lk_refine_weight > 0:
            agree = motion.flow_ok & ((motion.flow_xy - new_xy).norm(dim=1) < 0.5 * p)
            new_xy = torch.where(agree[:, None], new_xy + cfg.lk_refine_weight * (motion.flow_xy - new_xy), new_xy)
        new_xy, found, score = self._decide(feats, new_xy, similarity, masks)
        self._update(feats, new_xy, found, score, similarity)
        self.prev_gray = gray
        self.prev_features = feats
        # the frame's single host transfer: outputs, and the start points of the next optical flow
        out = torch.cat([self.pos / self.geometry.scale, found[:, None].float(), score[:, None]], dim=1).cpu().numpy()
        self._pos_host = out[:, :2].astype(np.float32)
        return TrackOutput(self._pos_host.copy(), out[:, 2] > 0.5, out[:, 3].astype(np.float32))

    def _predict(self, gray: np.ndarray | None) -> _Motion:
        """Where each keypoint should be now: optical flow where it holds, else constant velocity."""
        cfg, s = self.config, self.geometry.scale
        pred = self.pos + self.vel
        flow_step = torch.zeros_like(self.misses)
        flow_xy, flow_ok = None, None
        if cfg.use_optical_flow and self.prev_gray is not None and gray is not None and len(self.names):
            flow = track_points(self.prev_gray, gray, self._pos_host, cfg.max_search_radius * self.geometry.patch_px)
            flow_xy = torch.from_numpy(flow.points).to(self.device) * s
            flow_ok = torch.from_numpy(flow.ok).to(self.device) & self.visible
            pred = torch.where(flow_ok[:, None], flow_xy, pred)
            flow_step = torch.where(flow_ok, (flow_xy - self.pos).norm(dim=1), flow_step)
        return _Motion(pred, flow_xy, flow_ok, self.vel.norm(dim=1) / s, flow_step / s)

    def _pick(self, feats: torch.Tensor, motion: _Motion, masks: torch.Tensor | None) -> torch.Tensor:
        """(K,) best patch per keypoint: appearance minus motion penalty inside the search window."""
        cfg, g = self.config, self.geometry
        p, patch_native, misses = g.patch_size, g.patch_px, self.misses
        flow_gain = cfg.velocity_gain if cfg.flow_gain is None else cfg.flow_gain
        base = max(cfg.min_search_radius, 2.0 * cfg.search_tighten)
        speed = (cfg.velocity_gain * motion.speed + flow_gain * motion.flow_speed) / patch_native
        moving = (base + speed).clamp(cfg.min_search_radius, cfg.max_search_radius)
        radius = (moving + cfg.miss_boost * misses).clamp(cfg.min_search_radius, cfg.max_search_radius)
        redetect = (misses >= cfg.redetect_after) if cfg.redetect_after > 0 else torch.zeros_like(self.visible)
        # the penalty follows the motion, not the miss-boosted window: a window at its maximum would
        # otherwise flatten it, and a re-detected part could take its look-alike on the other animal
        soft = torch.maximum(torch.full_like(radius, cfg.motion_soft_radius_px * g.scale),
                             cfg.motion_radius_factor * moving * p)
        # while lost, the penalty widens rather than fades: among look-alikes the nearest still wins
        soft = soft * torch.sqrt(1.0 + cfg.miss_relief * misses)
        relief = 1.0 / (1.0 + cfg.flow_relief * (motion.speed + motion.flow_speed) / patch_native)

        flat = feats.reshape(feats.shape[0], -1).transpose(0, 1)[None]  # (1, N, C)
        appearance = appearance_scores(flat, self.templates, self.template_valid, self.memory, cfg.memory_weight)
        dist = (self._centres[None] - motion.pred[:, None]).norm(dim=-1)  # (K, N)
        scores = appearance - motion_penalty(dist, soft, relief, cfg.motion_prior_weight)
        outside = (dist > (radius * p)[:, None]) & ~redetect[:, None]
        allowed = self._allowed_patches(masks)
        if allowed is not None:
            outside |= ~allowed
        scores = scores.masked_fill(outside, NEG)
        # neighbouring patches count as the same spot; with the short sub-pixel reach the refined
        # positions of exclusive keypoints then stay apart too
        return resolve_collisions(scores, scores.argmax(dim=1), self._centres, self._exclusive_pairs,
                                  EXCLUSION_PATCHES * p)

    def _refine(self, feats: torch.Tensor, picks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sub-pixel positions (K, 2) and their match similarity (K,).

        A soft-argmax of the appearance match on a fine lattice of interpolated features,
        restricted to the neighbourhood of its best point so the window edges cannot bias it; the
        motion prior already chose the peak and must not drag the position towards the prediction.
        """
        cfg = self.config
        fine_xy = self._centres[picks][:, None] + self._refine_offsets[None]  # (K, S, 2)
        fine_feats = sample_features(feats, fine_xy, self._padded)
        fine_app = appearance_scores(fine_feats, self.templates, self.template_valid, self.memory, cfg.memory_weight)
        best = fine_xy[torch.arange(len(picks), device=self.device), fine_app.argmax(dim=1)]
        near = (fine_xy - best[:, None]).norm(dim=-1) <= 0.5 * self.geometry.patch_size
        weights = torch.softmax((fine_app / cfg.subpixel_temperature).masked_fill(~near, NEG), dim=1)
        return (weights[..., None] * fine_xy).sum(dim=1), fine_app.max(dim=1).values

    def _typical(self) -> torch.Tensor:
        """Each keypoint's usual match similarity (1 until it has one)."""
        return torch.where(torch.isnan(self.typical), torch.ones_like(self.typical), self.typical)

    def _decide(self, feats: torch.Tensor, new_xy: torch.Tensor, similarity: torch.Tensor,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Which matches to trust: (positions after mask and side checks, found, score in [0, 1])."""
        cfg = self.config
        unknown = torch.isnan(self.typical)
        typical = self._typical()
        threshold = torch.where(unknown, torch.full_like(typical, cfg.min_similarity),
                                (cfg.occlusion_ratio * typical).clamp(min=cfg.min_similarity))
        # hysteresis: a lost keypoint must match clearly better than the loss threshold to come back
        regain = torch.where(unknown, threshold, 0.5 * (1.0 + cfg.occlusion_ratio) * typical)
        found = self.trackable & (similarity >= torch.where(self.visible, threshold, regain))
        if cfg.cycle_check and self.prev_features is not None:
            found &= self._traces_back(feats, new_xy) | ~self.visible
        if masks is not None and cfg.clamp_to_mask:
            new_xy, in_mask = self._clamp_to_masks(new_xy, masks)
            if cfg.reject_outside_mask:
                found &= in_mask
        if self._sym_pairs.numel():
            a, b = self._sym_pairs[:, 0], self._sym_pairs[:, 1]
            pair_ok = found[a] & found[b]  # compared with the last known sides, even after an occlusion
            new_xy = keep_sides(new_xy, self.pos, self._sym_pairs, pair_ok)
        score = torch.where(self.trackable, (similarity / typical).clamp(0.0, 1.0), torch.zeros_like(similarity))
        return new_xy, found, score

    def _update(self, feats: torch.Tensor, new_xy: torch.Tensor, found: torch.Tensor, score: torch.Tensor,
                similarity: torch.Tensor) -> None:
        """Positions, velocities, miss counts, usual similarity and running appearance after this frame."""
        cfg, pos = self.config, self.pos
        smoothed = (1 - cfg.velocity_smoothing) * self.vel + cfg.velocity_smoothing * (new_xy - pos)
        # a lost keypoint rides along with the visible parts of its own animal, so its prediction and
        # its reported position stay on the body instead of freezing where it vanished
        body_step = self._carried(pos, new_xy, found & self.visible) - pos
        self.vel = torch.where(found[:, None], torch.where(self.visible[:, None], smoothed, torch.zeros_like(smoothed)),
                               body_step)
        self.pos = torch.where(found[:, None], new_xy, pos + body_step)
        self.misses = torch.where(found, torch.zeros_like(self.misses), self.misses + 1)
        blended = torch.where(torch.isnan(self.typical), similarity, 0.9 * self._typical() + 0.1 * similarity)
        self.typical = torch.where(found, blended, self.typical).clamp(max=1.0)
        if cfg.memory_momentum > 0:
            confident = found & (score >= CONFIDENT_SCORE)
            here = sample_features(feats, self.pos, self._padded)
            updated = F.normalize((1 - cfg.memory_momentum) * self.memory + cfg.memory_momentum * here, dim=-1,
                                  eps=1e-6)
            self.memory = torch.where(confident[:, None], updated, self.memory)
        self.visible = found

    def _traces_back(self, feats: torch.Tensor, new_xy: torch.Tensor) -> torch.Tensor:
        """(K,) whether each match, looked up in the previous frame, leads back to where the keypoint was.

        A jump onto a look-alike elsewhere (another part, the other animal, an occluder) matches
        some other spot of the previous frame clearly better than the keypoint's own last place;
        a look-alike twin (the other ear) does not count against it, since both spots tie.
        """
        desc = sample_features(feats, new_xy, self._padded)  # (K, C)
        prev = self.prev_features
        best_anywhere = (desc @ prev.reshape(prev.shape[0], -1)).max(dim=1).values
        at_last_place = (desc * sample_features(prev, self.pos, self._padded)).sum(dim=1)
        return at_last_place >= best_anywhere - CYCLE_MARGIN

    def _carried(self, before: torch.Tensor, after: torch.Tensor, reliable: torch.Tensor) -> torch.Tensor:
        """(K, 2) where every keypoint lands if it moves rigidly with the reliable parts of its animal.

        Per instance, a least-squares similarity transform (turn, scale, shift) from the reliable
        keypoints' steps; with a single reliable keypoint just its shift, with none no motion.
        """
        n, inst = self._n_instances, self.instance_of
        w = reliable.float()
        count = torch.zeros(n, device=self.device).index_add_(0, inst, w)
        safe = count.clamp(min=1.0)[:, None]
        mean_before = torch.zeros(n, 2, device=self.device).index_add_(0, inst, before * w[:, None]) / safe
        mean_after = torch.zeros(n, 2, device=self.device).index_add_(0, inst, after * w[:, None]) / safe
        p = before - mean_before[inst]
        q = after - mean_after[inst]
        dot = torch.zeros(n, device=self.device).index_add_(0, inst, w * (p * q).sum(1))
        cross = torch.zeros(n, device=self.device).index_add_(0, inst, w * (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]))
        spread = torch.zeros(n, device=self.device).index_add_(0, inst, w * (p * p).sum(1))
        # a turn is only trusted from parts at least a patch apart, and the size changes slowly
        turns = (count >= 2) & (spread >= count * self.geometry.patch_size**2)
        cos = torch.where(turns, dot / spread.clamp(min=1e-6), torch.ones_like(dot))
        sin = torch.where(turns, cross / spread.clamp(min=1e-6), torch.zeros_like(dot))
        size = torch.sqrt(cos**2 + sin**2).clamp(min=1e-6)
        bounded = size.clamp(MIN_SCALE_STEP, MAX_SCALE_STEP) / size
        cos, sin = (cos * bounded)[inst], (sin * bounded)[inst]
        turned = torch.stack([cos * p[:, 0] - sin * p[:, 1], sin * p[:, 0] + cos * p[:, 1]], dim=1)
        carried = mean_after[inst] + turned
        return torch.where((count[inst] > 0)[:, None], carried, before)

    # ------------------------------------------------------------------ masks
    def _allowed_patches(self, masks: torch.Tensor | None) -> torch.Tensor | None:
        """(K, N) patches each keypoint may land on when the search is restricted to its mask."""
        if masks is None or not self.config.restrict_search_to_mask:
            return None
        g = self.geometry
        m = F.interpolate(masks.float()[None], size=(g.work_height, g.work_width), mode="area")[0]
        m = F.pad(m, (0, g.padded_width - g.work_width, 0, g.padded_height - g.work_height))
        cover = F.max_pool2d(F.avg_pool2d(m[None], g.patch_size)[0][None], 3, 1, 1)[0] > 0  # one patch of slack
        cover = cover.reshape(masks.shape[0], -1)
        has_mask = cover.any(dim=1)
        per_kp = cover[self.instance_of] | ~has_mask[self.instance_of][:, None]
        return per_kp

    def _clamp_to_masks(self, xy: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move points outside their instance mask to the nearest mask pixel within the snap radius."""
        s = self.geometry.scale
        h, w = masks.shape[-2:]
        offsets = self._snap_offsets
        native = xy / s
        cand = native.round()[:, None] + offsets[None]
        cx = cand[..., 0].clamp(0, w - 1).long()
        cy = cand[..., 1].clamp(0, h - 1).long()
        inside = masks[self.instance_of[:, None], cy, cx]  # (K, S)
        first = inside.float().argmax(dim=1)
        found = inside.any(dim=1)
        has_mask = masks.reshape(masks.shape[0], -1).any(dim=1)[self.instance_of]
        already = inside[:, 0]
        snapped = cand[torch.arange(len(first), device=self.device), first]
        moved = found & ~already & has_mask
        new_native = torch.where(moved[:, None], snapped, native)
        return new_native * s, found | ~has_mask

    # ------------------------------------------------------------------ helpers
    def _to_work(self, xy: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(xy, dtype=torch.float32, device=self.device).reshape(-1, 2) * self.geometry.scale


def _visible_keypoints(annotation: FrameAnnotation) -> tuple[list[tuple[str, str]], np.ndarray]:
    keys, xy = [], []
    for inst in annotation.instances:
        for kp in inst.keypoints:
            if kp.visible and np.isfinite(kp.x) and np.isfinite(kp.y):
                keys.append((inst.name, kp.name))
                xy.append((min(max(kp.x, 0.0), annotation.image_width - 1),
                           min(max(kp.y, 0.0), annotation.image_height - 1)))
    return keys, np.asarray(xy, np.float32).reshape(-1, 2)
