"""Mask propagation by DINO feature affinity: no second network, only the features at hand.

Each patch of the new frame looks up its most similar patches near the same place in a few
reference frames (the seed and the last propagated ones) and takes their instance labels,
weighted by similarity. That gives soft labels on the patch grid, which are blended with the
previous frame's masks (moved by their last motion), resampled to the video's pixels, refined
with per-instance colour histograms when the frame is given, and cleaned with a
connected-component pass. The cost is a small fraction of a DINO backbone's.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...backbone.base import WorkGeometry
from .base import LostInstanceFallback, exclusive_masks
from .colour import colour_histograms, colour_scores

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
        self._seed: _Reference | None = None
        self._recent: deque[_Reference] = deque(maxlen=self.memory)
        self._prev = np.zeros((0, 0, 0), bool)
        self._prev_patch: torch.Tensor | None = None

    @property
    def max_fallback_frames(self) -> int:
        return self._fallback.max_frames

    @property
    def n_instances(self) -> int:
        return len(self._prev)

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
        if (self._geometry, self._device) != (geometry, feats.device):
            self._geometry, self._device = geometry, feats.device
            self._setup_geometry(geometry, feats.device)
        masks = exclusive_masks(masks)
        self._prev = masks.cpu().numpy()
        self._prev_patch = self._patch_labels(masks)
        self._centroids = _centroids(self._prev)
        self._velocity = np.zeros_like(self._centroids)
        img = None if frame is None else _as_rgb(frame, geometry)
        self._seed = self._make_reference(feats, self._prev_patch, img, self._prev)
        self._recent.clear()
        self._fallback.reset(self._prev)

    @torch.no_grad()
    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Propagate to the frame of ``features``; returns (I, H, W) bool native masks.

        Pass the frame's RGB image whenever it is at hand: without it boundaries are only as
        precise as the patch grid.
        """
        if self._seed is None or self._geometry is None or self._prev_patch is None:
            raise RuntimeError("DinoMaskPropagator.step called before reset")
        geo = self._geometry
        feats = self._check_features(features, geo)
        n = self.n_instances
        if n == 0:
            return torch.zeros((0, geo.native_height, geo.native_width), dtype=torch.bool, device=feats.device)
        img = None if frame is None else _as_rgb(frame, geo)
        use_colour = self.refine and img is not None

        soft = self._propagate(feats)  # (I+1, h, w), channel 0 = background
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
            scores = probs.permute(1, 2, 0).cpu().numpy()  # (h_roi, w_roi, I+1)
            if use_colour and img is not None:
                labels = self._colour_scores(img[rows, cols], scores).argmax(axis=2)
            else:
                labels = self._area_decode(scores, soft)
            for i in range(n):
                masks[i, rows, cols] = _keep_continuing(labels == i + 1, self._prev[i, rows, cols])

        patch = self._patch_labels(torch.from_numpy(masks).to(feats.device))
        if self.memory:
            # Memory holds what was actually seen, never fallback guesses, so a reused mask
            # cannot teach the propagator that a lost animal is still where it was.
            self._recent.append(self._make_reference(feats, patch, img, masks))
        out = masks.copy()
        if self._fallback.apply(out):
            patch = self._patch_labels(torch.from_numpy(out).to(feats.device))
        centroids = _centroids(out)
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

    def _references(self) -> tuple[_Reference, ...]:
        """The seed, then the most recent propagated frames."""
        assert self._seed is not None, "reset() sets the seed reference"
        return (self._seed, *self._recent)

    def _check_features(self, features: torch.Tensor, geometry: WorkGeometry) -> torch.Tensor:
        if features.ndim == 4 and features.shape[0] == 1:
            features = features[0]
        if features.ndim != 3 or tuple(features.shape[1:]) != (geometry.grid_height, geometry.grid_width):
            raise ValueError(
                f"features must be (C, {geometry.grid_height}, {geometry.grid_width}), got {tuple(features.shape)}"
            )
        # float32 whatever the backbone ran in: bf16 similarities are too coarse for a 0.05 temperature
        return F.normalize(features.float(), dim=0, eps=1e-6)

    def _setup_geometry(self, geo: WorkGeometry, device: torch.device) -> None:
        gh, gw, t, r = geo.grid_height, geo.grid_width, self.tile, self.radius
        self._nty, self._ntx = math.ceil(gh / t), math.ceil(gw / t)
        win = t + 2 * r
        # query (a, b) of a tile vs key (u, v) of its window: displacement (u - r - a, v - r - b)
        a = torch.arange(t, device=device)
        u = torch.arange(win, device=device)
        d = u[None, :] - r - a[:, None]  # (t, win)
        dist2 = d[:, None, :, None] ** 2 + d[None, :, None, :] ** 2  # (t, t, win, win)
        local = (dist2 <= r * r).reshape(1, t * t, win * win)
        inside = self._windows(torch.ones((1, gh, gw), device=device)) > 0.5  # (N, 1, win*win)
        self._invalid = ~(local & inside)
        # Native pixel centre x + 0.5 lies at (x + 0.5) * scale / patch on the patch grid, where
        # grid_sample(align_corners=False) puts patch centres at k + 0.5.
        h, w = geo.native_height, geo.native_width
        k = geo.scale / geo.patch_size
        ys = ((torch.arange(h, device=device) + 0.5) * k / gh) * 2 - 1
        xs = ((torch.arange(w, device=device) + 0.5) * k / gw) * 2 - 1
        self._native_grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].float()
        # patch k covers native rows [k * patch_px, (k + 1) * patch_px); beyond the frame is background
        self._pool_size = (max(h, round(gh * geo.patch_px)), max(w, round(gw * geo.patch_px)))
        self._ring = max(1, round(geo.patch_px))
        self._ring_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * self._ring + 1,) * 2)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """(K, h, w) -> (N tiles, K, win * win): each query tile's key window, zero off the grid."""
        geo, t, r = self._geo, self.tile, self.radius
        win = t + 2 * r
        pad_b = self._nty * t - geo.grid_height
        pad_r = self._ntx * t - geo.grid_width
        xp = F.pad(x, (r, r + pad_r, r, r + pad_b))
        views = xp.unfold(1, win, t).unfold(2, win, t)  # (K, nty, ntx, win, win), no copy yet
        return views.permute(1, 2, 0, 3, 4).reshape(-1, x.shape[0], win * win)

    def _patch_labels(self, masks: torch.Tensor) -> torch.Tensor:
        """(I, H, W) exclusive bool masks -> (I + 1, h, w) patch coverage, background first."""
        geo = self._geo
        m = masks.float()[None]
        ph, pw = self._pool_size
        m = F.pad(m, (0, pw - m.shape[-1], 0, ph - m.shape[-2]))
        cover = F.adaptive_avg_pool2d(m, (geo.grid_height, geo.grid_width))[0]
        return _with_background(cover)

    def _make_reference(
        self, feats: torch.Tensor, labels: torch.Tensor, img: np.ndarray | None, masks: np.ndarray
    ) -> _Reference:
        # Windows are cut once, when a frame becomes a reference; it is then read `memory` times.
        keys = self._windows(feats)
        lab = self._windows(labels).transpose(1, 2).contiguous()  # (N, win*win, L)
        colour = (
            colour_histograms(img, masks, self._ring, self._ring_kernel) if (self.refine and img is not None) else None
        )
        return _Reference(keys, lab, colour)

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

    # --- propagation ------------------------------------------------------------------------
    def _propagate(self, feats: torch.Tensor) -> torch.Tensor:
        geo, t = self._geo, self.tile
        gh, gw = geo.grid_height, geo.grid_width
        c = feats.shape[0]
        hp, wp = self._nty * t, self._ntx * t
        q = F.pad(feats, (0, wp - gw, 0, hp - gh))
        q = q.view(c, self._nty, t, self._ntx, t).permute(1, 3, 2, 4, 0).reshape(-1, t * t, c)  # (N, t*t, C)
        n, tt = q.shape[0], q.shape[1]
        k = min(self.topk, self._invalid.shape[2])

        # top-k per reference, then top-k of those: same result as one top-k over all references
        # without ever holding every reference's affinities at once
        values, labels = [], []
        for ref in self._references():
            aff = torch.bmm(q, ref.keys)  # (N, t*t, win*win)
            aff.masked_fill_(self._invalid, _FAR)
            v, idx = aff.topk(k, dim=2)
            n_lab = ref.labels.shape[2]
            picked = ref.labels.gather(1, idx.reshape(n, tt * k, 1).expand(-1, -1, n_lab))
            values.append(v)
            labels.append(picked.view(n, tt, k, n_lab))
        v = torch.cat(values, dim=2)
        lab = torch.cat(labels, dim=2)
        if len(values) > 1:
            v, idx = v.topk(k, dim=2)
            lab = lab.gather(2, idx[..., None].expand(-1, -1, -1, lab.shape[3]))
        weights = torch.softmax(v / self.temperature, dim=2)  # masked entries get weight 0
        soft = (weights[..., None] * lab).sum(2)  # (N, t*t, L)
        n_lab = soft.shape[2]
        soft = soft.view(self._nty, self._ntx, t, t, n_lab).permute(4, 0, 2, 1, 3).reshape(n_lab, hp, wp)
        return soft[:, :gh, :gw].contiguous()

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
        """Label scores (h, w, L) from the prior ``probs`` and the seed's and recent frames' colours."""
        hists = [ref.colour for ref in self._references() if ref.colour is not None]
        return colour_scores(
            hists, img, probs, smoothing=self.colour_smoothing, cap=self.colour_cap, floor=self.prior_floor
        )


@dataclass
class _Reference:
    """One reference frame, pre-cut into the query tiles' windows."""

    keys: torch.Tensor  # (N, C, win*win)
    labels: torch.Tensor  # (N, win*win, I+1)
    colour: np.ndarray | None  # (I+1, bins) colour histograms, None without a frame


_FAR = -1e4  # "masked" similarity: exp(_FAR / temperature) underflows to exactly 0


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


def _centroids(masks: np.ndarray) -> np.ndarray:
    """(I, 2) y/x centroid of each mask, NaN for empty ones."""
    out = np.full((len(masks), 2), np.nan)
    for i, m in enumerate(masks):
        mom = cv2.moments(m.view(np.uint8), binaryImage=True)
        if mom["m00"] > 0:
            out[i] = (mom["m01"] / mom["m00"], mom["m10"] / mom["m00"])
    return out


def _as_rgb(frame: np.ndarray | torch.Tensor, geo: WorkGeometry) -> np.ndarray:
    img = frame.cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if img.shape[:2] != (geo.native_height, geo.native_width) or img.ndim not in (2, 3):
        raise ValueError(f"frame is {img.shape}, expected ({geo.native_height}, {geo.native_width}, 3)")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img.astype(np.uint8, copy=False)
