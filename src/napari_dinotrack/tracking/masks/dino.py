"""Mask propagation by DINO feature affinity: no second network, only the features at hand.

Each patch of the new frame looks up its most similar patches near the same place in a few
reference frames (the seed and the last propagated ones) and takes their instance labels,
weighted by similarity (:mod:`.tiles`). That gives soft labels on the patch grid, which are blended with the
previous frame's masks (moved by their last motion), resampled to the video's pixels, refined
with per-instance colour histograms when the frame is given, and cleaned with a
connected-component pass. The cost is a small fraction of a DINO backbone's.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...backbone.base import WorkGeometry
from ...vectors import unit
from .base import LostInstanceFallback, exclusive_masks
from .colour import best_label, colour_histograms, colour_scores
from .tiles import ReferenceBank

__all__ = ["DinoMaskPropagator"]


class DinoMaskPropagator:
    """Mask propagation by local feature affinity on the backbone's patch grid.

    Each patch of the new frame takes the instance labels of its ``topk`` most similar patches
    within ``radius`` patches in the reference frames (the seed plus the last ``memory``
    propagated frames), softmax-weighted by cosine similarity. The patch-level labels are mixed
    with the previous frame's layout (``continuity``), resampled to native pixels and, when the
    RGB frame is passed to :meth:`step`, refined with per-instance colour histograms so that
    boundaries land on pixels rather than patches. Each instance then keeps only the connected
    components that continue its previous mask.

    Parameters
    ----------
    radius:
        How far (in patches) a patch may have moved since a reference frame.
    memory:
        Number of most recent propagated frames used as references besides the seed.
    topk:
        Reference patches whose labels are blended for each patch.
    temperature:
        Softmax temperature on cosine similarity; smaller trusts the best match more.
    max_fallback_frames:
        Frames a lost instance keeps its last good mask before it becomes empty.
    min_area_frac:
        A mask smaller than this fraction of the instance's last good area counts as lost.
    continuity:
        Weight of the previous frame's masks in the patch-level prior (0 = features only).
    refine:
        Use the frame's colours to place boundaries at pixel precision (needs ``frame``).
    band_weight:
        Prior given to the one-patch band around each instance, which colour may then claim.
    colour_cap:
        Largest colour log-likelihood advantage (nats); bounds how far colour can overrule the prior.
    prior_floor:
        Smallest prior probability, so colour can still claim pixels the patch labels missed.
    colour_smoothing:
        Pseudo-count added to every colour-histogram bin.
    tile:
        Patches per side of the query tiles the affinity is computed in (speed/memory trade-off only).
    """

    def __init__(
        self,
        radius: int = 6,
        memory: int = 3,
        topk: int = 10,
        temperature: float = 0.05,
        max_fallback_frames: int = 5,
        min_area_frac: float = 0.05,
        continuity: float = 0.5,
        refine: bool = True,
        band_weight: float = 0.3,
        colour_cap: float = 5.0,
        prior_floor: float = 1e-3,
        colour_smoothing: float = 1.0,
        tile: int = 8,
    ):
        if radius < 0 or memory < 0 or topk < 1 or temperature <= 0 or tile < 1:
            raise ValueError("radius/memory >= 0, topk/tile >= 1 and temperature > 0 required")
        if not 0.0 <= continuity < 1.0:
            raise ValueError(f"continuity must be in [0, 1), got {continuity}")
        self.radius = int(radius)
        self.memory = int(memory)
        self.topk = int(topk)
        self.temperature = float(temperature)
        self.continuity = float(continuity)
        self.refine = bool(refine)
        self.band_weight = float(band_weight)
        self.colour_cap = float(colour_cap)
        self.prior_floor = float(prior_floor)
        self.colour_smoothing = float(colour_smoothing)
        self.tile = int(tile)
        self._fallback = LostInstanceFallback(max_fallback_frames, min_area_frac)
        self._geometry: WorkGeometry | None = None
        self._device: torch.device | None = None
        self._bank: ReferenceBank | None = None  # slot 0: the seed; then the last `memory` frames, in a ring
        self._colours: list[np.ndarray | None] = []  # each slot's colour histograms
        self._stepped = 0
        self._prev = np.zeros((0, 0, 0), bool)
        self._prev_patch: torch.Tensor | None = None

    @property
    def max_fallback_frames(self) -> int:
        return self._fallback.max_frames

    @property
    def n_instances(self) -> int:
        return len(self._prev)

    @property
    def n_references(self) -> int:
        """Reference frames held now: the seed and the propagated frames remembered since."""
        return 0 if self._bank is None else sum(self._bank.filled)

    # --- public API -----------------------------------------------------------------------
    @torch.no_grad()
    def reset(
        self,
        features: torch.Tensor,
        masks: torch.Tensor | np.ndarray,
        geometry: WorkGeometry,
        frame: np.ndarray | None = None,
    ) -> None:
        """Seed from (C, h, w) features, (I, H, W) native masks and, ideally, the seed's RGB frame.

        Drops all memory. Without ``frame`` the colour model starts from the first stepped frame.
        """
        feats = self._check_features(features, geometry)
        masks = torch.as_tensor(masks, device=feats.device)
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (geometry.native_height, geometry.native_width):
            raise ValueError(
                f"masks must be (I, {geometry.native_height}, {geometry.native_width}), got {tuple(masks.shape)}"
            )
        if self._bank is None or (self._geometry, self._device) != (geometry, feats.device):
            self._geometry, self._device = geometry, feats.device
            self._setup_geometry(geometry, feats.device)
        assert self._bank is not None
        self._prev = exclusive_masks(masks).cpu().numpy()
        box = _union_box(self._prev)
        self._prev_patch = self._patch_labels(self._prev, box)
        self._centroids = _centroids(self._prev, box)
        self._velocity = np.zeros_like(self._centroids)
        img = None if frame is None else _as_rgb(frame, geometry)
        self._bank.reset(feats.shape[0], len(self._prev) + 1)
        self._colours = [None] * self._bank.slots
        self._stepped = 0
        self._remember(0, feats, self._prev_patch, img, self._prev)
        self._fallback.reset(self._prev)

    @torch.no_grad()
    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Propagate to the frame of ``features``; returns (I, H, W) bool native masks.

        Pass the frame's RGB image whenever it is at hand: without it boundaries are only as
        precise as the patch grid.
        """
        if self._bank is None or self._geometry is None or self._prev_patch is None:
            raise RuntimeError("DinoMaskPropagator.step called before reset")
        geo = self._geometry
        feats = self._check_features(features, geo)
        n = self.n_instances
        if n == 0:
            return torch.zeros((0, geo.native_height, geo.native_width), dtype=torch.bool, device=feats.device)
        img = None if frame is None else _as_rgb(frame, geo)
        use_colour = self.refine and img is not None

        soft = self._bank.propagate(feats, self.topk, self.temperature)  # (I+1, h, w), channel 0 = background
        if self.continuity > 0:
            # Where the features are ambiguous (look-alike animals, texture never seen before), the
            # last frame's layout is the best guess: animals move little between frames.
            soft = (1 - self.continuity) * soft + self.continuity * self._predicted_layout()
        if use_colour and self.band_weight > 0:
            # Patch labels lag behind fast edges by up to a patch; a weak "could be" band one patch
            # around each instance lets the colour evidence claim those pixels.
            near = F.max_pool2d(soft[None, 1:], 3, stride=1, padding=1)[0] * self.band_weight
            soft = torch.cat([soft[:1], torch.maximum(soft[1:], near)], dim=0)

        masks = np.zeros((n, geo.native_height, geo.native_width), bool)
        roi = self._roi(soft)
        if roi is not None:
            # Pixel work only inside the box where some instance is plausible: animals are
            # usually a small part of the frame.
            rows, cols = roi
            probs = F.grid_sample(
                soft[None],
                self._native_grid[:, rows, cols],
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )[0]
            scores = probs.cpu().numpy()  # (I+1, h_roi, w_roi)
            if use_colour and img is not None:
                labels = best_label(self._colour_scores(img[rows, cols], scores))
            else:
                labels = self._area_decode(scores.transpose(1, 2, 0), soft)
            for i in range(n):
                masks[i, rows, cols] = _keep_continuing(labels == i + 1, self._prev[i, rows, cols])

        box = _union_box(masks)
        patch = self._patch_labels(masks, box)
        if self.memory:
            # Memory holds what was actually seen, never fallback guesses, so a reused mask
            # cannot teach the propagator that a lost animal is still where it was.
            self._remember(1 + self._stepped % self.memory, feats, patch, img, masks)
        self._stepped += 1
        out = masks  # the reference above has taken what it needs from the masks as seen
        if self._fallback.apply(out):
            box = _union_box(out)
            patch = self._patch_labels(out, box)
        centroids = _centroids(out, box)
        # a re-detection far away is a jump, not a speed; cap it so one jump cannot fling the prior
        limit = self.radius * geo.patch_px
        self._velocity = np.clip(np.nan_to_num(centroids - self._centroids), -limit, limit)
        self._prev, self._prev_patch, self._centroids = out, patch, centroids
        return torch.from_numpy(out.copy()).to(feats.device)

    # --- geometry helpers -------------------------------------------------------------------
    @property
    def _geo(self) -> WorkGeometry:
        assert self._geometry is not None, "reset() sets the geometry before any helper runs"
        return self._geometry

    def _check_features(self, features: torch.Tensor, geometry: WorkGeometry) -> torch.Tensor:
        if features.ndim == 4 and features.shape[0] == 1:
            features = features[0]
        if features.ndim != 3 or tuple(features.shape[1:]) != (geometry.grid_height, geometry.grid_width):
            raise ValueError(
                f"features must be (C, {geometry.grid_height}, {geometry.grid_width}), got {tuple(features.shape)}"
            )
        # float32 whatever the backbone ran in: bf16 similarities are too coarse for a 0.05 temperature
        return unit(features.float(), dim=0)

    def _setup_geometry(self, geo: WorkGeometry, device: torch.device) -> None:
        gh, gw = geo.grid_height, geo.grid_width
        self._bank = ReferenceBank((gh, gw), self.tile, self.radius, 1 + self.memory, device)
        # Native pixel centre x + 0.5 lies at (x + 0.5) * scale / patch on the patch grid, where
        # grid_sample(align_corners=False) puts patch centres at k + 0.5.
        h, w = geo.native_height, geo.native_width
        k = geo.scale / geo.patch_size
        ys = ((torch.arange(h, device=device) + 0.5) * k / gh) * 2 - 1
        xs = ((torch.arange(w, device=device) + 0.5) * k / gw) * 2 - 1
        self._native_grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].float()
        # patch k covers native rows [k * patch_px, (k + 1) * patch_px); beyond the frame is background
        self._row_bins = _PoolBins(max(h, round(gh * geo.patch_px)), gh)
        self._col_bins = _PoolBins(max(w, round(gw * geo.patch_px)), gw)
        self._ring = max(1, round(geo.patch_px))
        self._ring_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * self._ring + 1,) * 2)

    def _patch_labels(self, masks: np.ndarray, box: tuple[int, int, int, int] | None) -> torch.Tensor:
        """(I, H, W) exclusive bool masks -> (I + 1, h, w) patch coverage, background first.

        ``box`` is :func:`_union_box` of ``masks``: only the patches over it are counted.
        """
        geo = self._geo
        cover = np.zeros((len(masks), geo.grid_height, geo.grid_width), np.float32)
        if box is not None:
            y0, y1, x0, x1 = box
            rows, cols = self._row_bins.over(y0, y1), self._col_bins.over(x0, x1)
            r0, c0 = self._row_bins.start[rows.start], self._col_bins.start[cols.start]
            r1 = min(self._row_bins.end[rows.stop - 1], geo.native_height)
            c1 = min(self._col_bins.end[cols.stop - 1], geo.native_width)
            # pixel counts per patch from a summed-area table of the box
            area = np.zeros((len(masks), r1 - r0 + 1, c1 - c0 + 1), np.int32)
            np.cumsum(masks[:, r0:r1, c0:c1], axis=1, dtype=np.int32, out=area[:, 1:, 1:])
            np.cumsum(area[:, 1:, 1:], axis=2, out=area[:, 1:, 1:])
            top, bottom = self._row_bins.edges(rows, r0, r1)
            left, right = self._col_bins.edges(cols, c0, c1)
            counts = area[:, bottom][:, :, right] - area[:, top][:, :, right]
            counts -= area[:, bottom][:, :, left] - area[:, top][:, :, left]
            # divided as adaptive average pooling divides, so the values are the same to the bit
            counts = counts.astype(np.float32)
            cover[:, rows, cols] = counts / self._row_bins.size[rows, None] / self._col_bins.size[cols]
        return _with_background(torch.from_numpy(cover).to(self._device))

    def _remember(
        self, slot: int, feats: torch.Tensor, labels: torch.Tensor, img: np.ndarray | None, masks: np.ndarray
    ) -> None:
        """Keep a frame as a reference in ``slot`` of the bank: its features, patch labels and colours."""
        assert self._bank is not None
        self._bank.store(slot, feats, labels)
        self._colours[slot] = (
            colour_histograms(img, masks, self._ring, self._ring_kernel) if (self.refine and img is not None) else None
        )

    def _predicted_layout(self) -> torch.Tensor:
        """Previous frame's patch labels, each instance shifted by its last frame-to-frame motion.

        Without the shift the continuity prior drags every mask back towards where the animal
        was, a lag of about one frame's motion that the feature evidence never catches up with.
        """
        prev = self._prev_patch
        assert prev is not None, "reset() sets the previous patch labels"
        if not np.any(self._velocity):
            return prev
        geo = self._geo
        h, w = geo.grid_height, geo.grid_width
        shift = torch.as_tensor(self._velocity / geo.patch_px, dtype=torch.float32, device=prev.device)  # (I, 2) y/x
        ys = torch.arange(h, device=prev.device, dtype=torch.float32) + 0.5
        xs = torch.arange(w, device=prev.device, dtype=torch.float32) + 0.5
        sy = (ys[None, :, None] - shift[:, 0, None, None]) / h * 2 - 1  # sample where the content came from
        sx = (xs[None, None, :] - shift[:, 1, None, None]) / w * 2 - 1
        grid = torch.stack(torch.broadcast_tensors(sx, sy), dim=-1)  # (I, h, w, 2) x/y
        inst = F.grid_sample(prev[1:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
        return _with_background(inst)

    def _roi(self, soft: torch.Tensor, threshold: float = 0.01) -> tuple[slice, slice] | None:
        """Native (rows, cols) box around every patch where an instance has some prior, or None."""
        support = soft[1:].amax(0) > threshold
        if not bool(support.any()):
            return None
        ys = torch.nonzero(support.any(1)).flatten()
        xs = torch.nonzero(support.any(0)).flatten()
        geo = self._geo
        # one patch of margin: bilinear resampling spreads a patch's prior halfway into its neighbours
        y0, y1 = int(ys[0]) - 1, int(ys[-1]) + 2
        x0, x1 = int(xs[0]) - 1, int(xs[-1]) + 2
        rows = slice(max(0, math.floor(y0 * geo.patch_px)), min(geo.native_height, math.ceil(y1 * geo.patch_px)))
        cols = slice(max(0, math.floor(x0 * geo.patch_px)), min(geo.native_width, math.ceil(x1 * geo.patch_px)))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return None
        return rows, cols

    # --- pixel-level decoding ----------------------------------------------------------------
    def _area_decode(self, probs: np.ndarray, soft: torch.Tensor, min_prob: float = 0.15) -> np.ndarray:
        """(h, w) labels from resampled patch probabilities, keeping each instance's area.

        Thresholding a resampled coverage map at 0.5 shaves off every convex corner, and since the
        result becomes the next frame's reference, masks shrink frame after frame. Instead each
        instance keeps its most probable pixels up to the area its patch coverage adds up to.
        """
        geo = self._geo
        areas = soft[1:].sum((1, 2)).cpu().numpy() * geo.patch_px**2
        inst = probs[..., 1:]
        best = inst.argmax(axis=2)
        labels = np.zeros(probs.shape[:2], np.int64)
        for i, area in enumerate(areas):
            p = np.where(best == i, inst[..., i], 0.0)
            n = round(float(area))
            if n <= 0:
                continue
            flat = p.ravel()
            thr = np.partition(flat, flat.size - n)[flat.size - n] if n < flat.size else 0.0
            labels[p >= max(thr, min_prob)] = i + 1
        return labels

    # --- pixel-level refinement --------------------------------------------------------------
    def _colour_scores(self, img: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Label scores (L, h, w) from the (L, h, w) prior ``probs`` and the seed's and recent frames' colours."""
        hists = [colour for colour in self._colours if colour is not None]
        return colour_scores(
            hists, img, probs, smoothing=self.colour_smoothing, cap=self.colour_cap, floor=self.prior_floor
        )


def _with_background(instances: torch.Tensor) -> torch.Tensor:
    """(I, h, w) instance coverage -> (I + 1, h, w) with the uncovered rest as channel 0."""
    background = (1.0 - instances.sum(0, keepdim=True)).clamp_(min=0.0)
    return torch.cat([background, instances], dim=0)


def _keep_continuing(mask: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """The connected component(s) of ``mask`` that touch ``prev``, else its largest one.

    Stray blobs elsewhere (a look-alike patch of floor, the other animal's edge) are dropped;
    the largest-component rule covers jumps and re-detection after a loss.
    """
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 2:
        return comp > 0
    touching = np.bincount(comp[prev], minlength=n)[1:] > 0
    if touching.any():
        return np.isin(comp, np.flatnonzero(touching) + 1)
    return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


class _PoolBins:
    """The ``n`` bins adaptive average pooling puts along an axis of ``length`` pixels."""

    def __init__(self, length: int, n: int):
        i = np.arange(n)
        self.start = (i * length) // n
        self.end = -((-(i + 1) * length) // n)
        self.size = (self.end - self.start).astype(np.float32)

    def over(self, lo: int, hi: int) -> slice:
        """The bins that overlap pixels ``lo``..``hi - 1``."""
        return slice(int(np.searchsorted(self.end, lo, side="right")), int(np.searchsorted(self.start, hi)))

    def edges(self, bins: slice, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Where ``bins`` start and end in a summed-area table of pixels ``lo``..``hi - 1`` (padding adds nothing)."""
        return np.clip(self.start[bins] - lo, 0, hi - lo), np.clip(self.end[bins] - lo, 0, hi - lo)


def _union_box(masks: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), end exclusive, of the box around every pixel of ``masks``; None if empty."""
    rows = np.flatnonzero(masks.any(axis=2).any(axis=0))
    if not len(rows):
        return None
    cols = np.flatnonzero(masks[:, rows[0] : rows[-1] + 1].any(axis=1).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _centroids(masks: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """(I, 2) y/x centroid of each mask, NaN for empty ones; ``box`` is :func:`_union_box` of ``masks``."""
    out = np.full((len(masks), 2), np.nan)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    crop = masks[:, y0:y1, x0:x1]
    area = np.count_nonzero(crop, axis=(1, 2))
    # integer moments, so the centroids are exact whatever the box
    m01 = np.count_nonzero(crop, axis=2) @ np.arange(y0, y1)
    m10 = np.count_nonzero(crop, axis=1) @ np.arange(x0, x1)
    found = area > 0
    out[found, 0] = m01[found] / area[found]
    out[found, 1] = m10[found] / area[found]
    return out


def _as_rgb(frame: np.ndarray | torch.Tensor, geo: WorkGeometry) -> np.ndarray:
    img = frame.cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if img.shape[:2] != (geo.native_height, geo.native_width) or img.ndim not in (2, 3):
        raise ValueError(f"frame is {img.shape}, expected ({geo.native_height}, {geo.native_width}, 3)")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img.astype(np.uint8, copy=False)
