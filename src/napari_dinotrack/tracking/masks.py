"""Instance masks that follow the animals through a video.

The default propagator reuses the patch features the keypoint tracker already computed: each
patch of the new frame looks up its most similar patches near the same place in a few reference
frames (the seed and the last propagated ones) and takes their instance labels, weighted by
similarity. That gives soft labels on the patch grid, which are blended with the previous frame's
masks (moved by their last motion), resampled to the video's pixels, refined with per-instance
colour histograms when the frame is given, and cleaned with a connected-component pass. No second
network runs; the cost is a small fraction of a DINO backbone's.

Cutie (a dedicated video object segmentation network) can be used instead when its package and
weights are installed locally; nothing is ever downloaded here.

Lost instances reuse their last good mask, unchanged, for a few frames and are then dropped; the
reference tracker dilated the reused mask on every fallback frame, so it kept growing.
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..backbone.base import WorkGeometry

__all__ = [
    "CutieMaskPropagator",
    "DinoMaskPropagator",
    "MaskPropagator",
    "cutie_available",
    "make_propagator",
]


@runtime_checkable
class MaskPropagator(Protocol):
    """Carries per-instance masks from a seed frame to the following frames.

    Instance order is the order of the masks given to :meth:`reset`; :meth:`step` returns
    masks in the same order.
    """

    def reset(
        self,
        features: torch.Tensor,
        masks: torch.Tensor,
        geometry: WorkGeometry,
        frame: np.ndarray | None = None,
    ) -> None:
        """(Re)start from a seed: (C, h, w) features, (I, H, W) bool native masks, its frame.

        Called on the seed frame and on every manual correction; all earlier state is dropped.
        """
        ...

    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Masks (I, H, W) bool at native resolution for the next frame, on the features' device."""
        ...


# --------------------------------------------------------------------------------------------
# lost-instance fallback shared by both propagators


class _Fallback:
    """Reuse an instance's last good mask for ``max_frames`` frames while it is lost, then drop it.

    The reused mask is the stored one, not a dilated copy, so it cannot grow frame after frame.
    """

    def __init__(self, max_frames: int, min_area_frac: float):
        self.max_frames = int(max_frames)
        self.min_area_frac = float(min_area_frac)
        self.last_good = np.zeros((0, 0, 0), bool)
        self.good_area = np.zeros(0, np.int64)
        self.missed = np.zeros(0, np.int64)

    def reset(self, masks: np.ndarray) -> None:
        self.last_good = masks.copy()
        self.good_area = masks.sum(axis=(1, 2))
        self.missed = np.zeros(len(masks), np.int64)

    def apply(self, masks: np.ndarray) -> bool:
        """Replace lost instances of ``masks`` (I, H, W) in place; True if any was replaced."""
        changed = False
        areas = masks.sum(axis=(1, 2))
        for i, area in enumerate(areas):
            # A sliver far smaller than the animal's last good size is noise, not the animal.
            if area > 0 and area >= self.min_area_frac * self.good_area[i]:
                self.last_good[i] = masks[i]
                self.good_area[i] = area
                self.missed[i] = 0
                continue
            self.missed[i] += 1
            if self.missed[i] <= self.max_frames:
                masks[i] = self.last_good[i]
                changed = True
            else:
                masks[i] = False
        return changed


def _exclusive(masks: torch.Tensor) -> torch.Tensor:
    """Where instances overlap, keep the pixel for the lowest index only."""
    masks = masks.bool()
    return masks & (masks.to(torch.int32).cumsum(0) == 1)


# --------------------------------------------------------------------------------------------
# DINO feature label propagation


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
        self._fallback = _Fallback(max_fallback_frames, min_area_frac)
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
            raise ValueError(f"masks must be (I, {geometry.native_height}, {geometry.native_width}), "
                             f"got {tuple(masks.shape)}")
        if (self._geometry, self._device) != (geometry, feats.device):
            self._geometry, self._device = geometry, feats.device
            self._setup_geometry(geometry, feats.device)
        masks = _exclusive(masks)
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
            probs = F.grid_sample(soft[None], self._native_grid[:, rows, cols], mode="bilinear",
                                  padding_mode="border", align_corners=False)[0]
            scores = probs.permute(1, 2, 0).cpu().numpy()  # (h_roi, w_roi, I+1)
            if use_colour:
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
    def _check_features(self, features: torch.Tensor, geometry: WorkGeometry) -> torch.Tensor:
        if features.ndim == 4 and features.shape[0] == 1:
            features = features[0]
        if features.ndim != 3 or tuple(features.shape[1:]) != (geometry.grid_height, geometry.grid_width):
            raise ValueError(f"features must be (C, {geometry.grid_height}, {geometry.grid_width}), "
                             f"got {tuple(features.shape)}")
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
        geo, t, r = self._geometry, self.tile, self.radius
        win = t + 2 * r
        pad_b = self._nty * t - geo.grid_height
        pad_r = self._ntx * t - geo.grid_width
        xp = F.pad(x, (r, r + pad_r, r, r + pad_b))
        views = xp.unfold(1, win, t).unfold(2, win, t)  # (K, nty, ntx, win, win), no copy yet
        return views.permute(1, 2, 0, 3, 4).reshape(-1, x.shape[0], win * win)

    def _patch_labels(self, masks: torch.Tensor) -> torch.Tensor:
        """(I, H, W) exclusive bool masks -> (I + 1, h, w) patch coverage, background first."""
        geo = self._geometry
        m = masks.float()[None]
        ph, pw = self._pool_size
        m = F.pad(m, (0, pw - m.shape[-1], 0, ph - m.shape[-2]))
        cover = F.adaptive_avg_pool2d(m, (geo.grid_height, geo.grid_width))[0]
        background = (1.0 - cover.sum(0, keepdim=True)).clamp_(min=0.0)
        return torch.cat([background, cover], dim=0)

    def _make_reference(
        self, feats: torch.Tensor, labels: torch.Tensor, img: np.ndarray | None, masks: np.ndarray
    ) -> _Reference:
        # Windows are cut once, when a frame becomes a reference; it is then read `memory` times.
        keys = self._windows(feats)
        lab = self._windows(labels).transpose(1, 2).contiguous()  # (N, win*win, L)
        colour = self._colour_hist(img, masks) if (self.refine and img is not None) else None
        return _Reference(keys, lab, colour)

    def _predicted_layout(self) -> torch.Tensor:
        """Previous frame's patch labels, each instance shifted by its last frame-to-frame motion.

        Without the shift the continuity prior drags every mask back towards where the animal
        was, a lag of about one frame's motion that the feature evidence never catches up with.
        """
        prev = self._prev_patch
        if not np.any(self._velocity):
            return prev
        geo = self._geometry
        h, w = geo.grid_height, geo.grid_width
        shift = torch.as_tensor(self._velocity / geo.patch_px, dtype=torch.float32, device=prev.device)  # (I, 2) y/x
        ys = torch.arange(h, device=prev.device, dtype=torch.float32) + 0.5
        xs = torch.arange(w, device=prev.device, dtype=torch.float32) + 0.5
        sy = (ys[None, :, None] - shift[:, 0, None, None]) / h * 2 - 1  # sample where the content came from
        sx = (xs[None, None, :] - shift[:, 1, None, None]) / w * 2 - 1
        grid = torch.stack(torch.broadcast_tensors(sx, sy), dim=-1)  # (I, h, w, 2) x/y
        inst = F.grid_sample(prev[1:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
        background = (1.0 - inst.sum(0, keepdim=True)).clamp_(min=0.0)
        return torch.cat([background, inst], dim=0)

    def _roi(self, soft: torch.Tensor, threshold: float = 0.01) -> tuple[slice, slice] | None:
        """Native (rows, cols) box around every patch where an instance has some prior, or None."""
        support = soft[1:].amax(0) > threshold
        if not bool(support.any()):
            return None
        ys = torch.nonzero(support.any(1)).flatten()
        xs = torch.nonzero(support.any(0)).flatten()
        geo = self._geometry
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
        geo, t = self._geometry, self.tile
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
        for ref in (self._seed, *self._recent):
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
        geo = self._geometry
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
    def _colour_hist(self, img: np.ndarray, masks: np.ndarray) -> np.ndarray | None:
        """(I + 1, bins) colour histograms of each instance and of a one-patch ring around them all."""
        union = masks.any(0)
        if not union.any():
            return None
        ys = np.flatnonzero(union.any(1))
        xs = np.flatnonzero(union.any(0))
        box = (slice(max(0, ys[0] - self._ring), ys[-1] + self._ring + 1),
               slice(max(0, xs[0] - self._ring), xs[-1] + self._ring + 1))
        bins = _colour_bins(img[box])
        inside = union[box].astype(np.uint8)
        ring = (cv2.dilate(inside, self._ring_kernel) > 0) & (inside == 0)
        hists = np.empty((len(masks) + 1, _N_COLOUR_BINS), np.float32)
        hists[0] = np.bincount(bins[ring], minlength=_N_COLOUR_BINS)
        for i, m in enumerate(masks):
            hists[i + 1] = np.bincount(bins[m[box]], minlength=_N_COLOUR_BINS)
        return hists

    def _colour_scores(self, img: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Label scores (h, w, L): log prior + capped log colour likelihood.

        The prior decides where an instance can be and which instance it is; the colour
        histograms (seed + recent frames) move the boundary onto the pixels that look like the
        animal. The cap keeps colour alone from creating an animal where the prior rules it out.
        """
        hists = [ref.colour for ref in (self._seed, *self._recent) if ref.colour is not None]
        if not hists:
            return probs
        h = np.sum(hists, axis=0) + self.colour_smoothing
        loglik = np.log(h / h.sum(1, keepdims=True)).T.astype(np.float32)  # (bins, L)
        ll = loglik[_colour_bins(img)]  # (h, w, L)
        ll -= ll.max(axis=2, keepdims=True)
        np.maximum(ll, -self.colour_cap, out=ll)
        ll += np.log(np.maximum(probs, self.prior_floor))
        return ll


@dataclass
class _Reference:
    """One reference frame, pre-cut into the query tiles' windows."""

    keys: torch.Tensor  # (N, C, win*win)
    labels: torch.Tensor  # (N, win*win, I+1)
    colour: np.ndarray | None  # (I+1, bins) colour histograms, None without a frame


_FAR = -1e4  # "masked" similarity: exp(_FAR / temperature) underflows to exactly 0


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


_COLOUR_LEVELS = 16  # per channel: coarse enough to fill from one animal, fine enough to split fur from floor
_COLOUR_SHIFT = 4  # 256 // _COLOUR_LEVELS == 1 << _COLOUR_SHIFT
_N_COLOUR_BINS = _COLOUR_LEVELS**3


def _colour_bins(img: np.ndarray) -> np.ndarray:
    """(h, w) joint RGB histogram bin of every pixel of an (h, w, 3) uint8 image."""
    q = (img >> _COLOUR_SHIFT).astype(np.int32)
    return (q[..., 0] << (2 * _COLOUR_SHIFT)) | (q[..., 1] << _COLOUR_SHIFT) | q[..., 2]


# --------------------------------------------------------------------------------------------
# Cutie (optional)


def cutie_available() -> bool:
    """True when the optional ``cutie`` package can be imported (its weights are a separate file)."""
    return importlib.util.find_spec("cutie") is not None


class CutieMaskPropagator:
    """Thin wrapper around Cutie's ``InferenceCore`` (optional dependency, never downloaded).

    Pass a ready ``network`` (a loaded ``cutie.model.cutie.CUTIE`` with its ``cfg``) or the path
    of a local ``weights`` file (e.g. ``cutie-base-mega.pth``). Cutie segments images, so
    :meth:`reset` and :meth:`step` need the RGB ``frame``; the features are ignored.
    """

    def __init__(
        self,
        network: Any = None,
        weights: str | Path | None = None,
        device: str | torch.device | None = None,
        max_internal_size: int = 480,
        mem_every: int = 5,
        max_mem_frames: int = 5,
        max_fallback_frames: int = 5,
        min_area_frac: float = 0.05,
    ):
        if not cutie_available():
            raise ImportError(
                "Cutie mask propagation needs the optional 'cutie' package, which is not installed. "
                "Install Cutie (https://github.com/hkchengrex/Cutie) and its weights file yourself, "
                "or use mask propagation 'dino' (no extra download)."
            )
        from omegaconf import open_dict

        if network is None:
            if weights is None or not Path(weights).is_file():
                raise FileNotFoundError(
                    f"Cutie weights file not found: {weights!r}; pass weights=<local .pth> or a loaded network "
                    "(weights are never downloaded automatically)"
                )
            network = _load_cutie(Path(weights), torch.device(device or "cpu"))
        self.network = network
        self.device = next(network.parameters()).device
        with open_dict(network.cfg):
            network.cfg["max_internal_size"] = int(max_internal_size)
            network.cfg["mem_every"] = int(mem_every)
            network.cfg["max_mem_frames"] = int(max_mem_frames)
        self._fallback = _Fallback(max_fallback_frames, min_area_frac)
        self._processor: Any = None
        self._n = 0

    def reset(
        self,
        features: torch.Tensor,
        masks: torch.Tensor | np.ndarray,
        geometry: WorkGeometry,
        frame: np.ndarray | None = None,
    ) -> None:
        """Prime Cutie's memory with the seed ``frame`` and its masks (the frame is required)."""
        from cutie.inference.inference_core import InferenceCore

        if frame is None:
            raise ValueError("Cutie needs the seed frame's image: call reset(..., frame=rgb)")
        masks = _exclusive(torch.as_tensor(masks))
        self._n = len(masks)
        self._processor = InferenceCore(self.network, cfg=self.network.cfg)
        index = torch.zeros(masks.shape[1:], dtype=torch.long)
        for i in range(self._n):
            index[masks[i]] = i + 1
        with torch.inference_mode():
            self._processor.step(self._image(frame), index.to(self.device), objects=list(range(1, self._n + 1)))
        self._fallback.reset(masks.cpu().numpy())

    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Segment ``frame`` from Cutie's memory; returns (I, H, W) bool masks on the features' device."""
        if self._processor is None:
            raise RuntimeError("CutieMaskPropagator.step called before reset")
        if frame is None:
            raise ValueError("Cutie needs each frame's image: call step(features, frame=rgb)")
        with torch.inference_mode():
            prob = self._processor.step(self._image(frame))  # (objects + 1, H, W), background first
        labels = prob.argmax(0).cpu().numpy()
        masks = np.stack([labels == i + 1 for i in range(self._n)]) if self._n else np.zeros((0, *labels.shape), bool)
        self._fallback.apply(masks)
        return torch.from_numpy(masks).to(features.device)

    def _image(self, frame: np.ndarray) -> torch.Tensor:
        img = torch.as_tensor(np.ascontiguousarray(frame), device=self.device)
        return img.permute(2, 0, 1).float().div_(255.0)


def _load_cutie(weights: Path, device: torch.device) -> Any:
    """Build Cutie from its packaged eval config and a local weights file."""
    from cutie.inference.utils.args_utils import get_dataset_cfg
    from cutie.model.cutie import CUTIE
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    with initialize_config_module(version_base="1.3.2", config_module="cutie.config"):
        cfg = compose(config_name="eval_config")
    with open_dict(cfg):
        cfg["weights"] = str(weights)
    get_dataset_cfg(cfg)
    network = CUTIE(cfg).to(device).eval()
    network.load_weights(torch.load(weights, map_location=device, weights_only=True))
    return network


# --------------------------------------------------------------------------------------------


def make_propagator(kind: str | None, **options: Any) -> MaskPropagator | None:
    """``"dino"`` -> :class:`DinoMaskPropagator`, ``"cutie"`` -> :class:`CutieMaskPropagator`, ``"none"`` -> None."""
    key = (kind or "none").strip().lower()
    if key == "dino":
        return DinoMaskPropagator(**options)
    if key == "cutie":
        return CutieMaskPropagator(**options)
    if key in ("none", "off", ""):
        return None
    raise ValueError(f"unknown mask propagation {kind!r}; choose 'dino', 'cutie' or 'none'")
