"""Instance masks that follow the animals through a video.

The default propagator reuses the patch features the keypoint tracker already computed: each
patch of the new frame looks up its most similar patches near the same place in a few reference
frames (the seed and the last propagated ones) and takes their instance labels, weighted by
similarity. That gives soft labels on the patch grid; they are resampled to the video's pixels,
snapped to image edges with a guided filter and cleaned with a connected-component pass. No second
network runs, so the cost is a small fraction of the backbone's.

Cutie (a dedicated video object segmentation network) can be used instead when its package and
weights are installed locally; nothing is ever downloaded here.

Lost instances reuse their last good mask, unchanged, for a few frames and are then dropped; the
reference tracker dilated the reused mask on every fallback frame, so it kept growing.
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque
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
        self.good_area = masks.reshape(len(masks), -1).sum(1)
        self.missed = np.zeros(len(masks), np.int64)

    def apply(self, masks: np.ndarray) -> np.ndarray:
        """Replace lost instances of ``masks`` (I, H, W) in place; returns it."""
        areas = masks.reshape(len(masks), -1).sum(1)
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
            else:
                masks[i] = False
        return masks


def _exclusive(masks: torch.Tensor) -> torch.Tensor:
    """Where instances overlap, keep the pixel for the lowest index only."""
    masks = masks.bool()
    return masks & (masks.to(torch.int32).cumsum(0) == 1)


# --------------------------------------------------------------------------------------------
# DINO feature label propagation


class DinoMaskPropagator:
    """Mask propagation by local feature affinity on the backbone's patch grid.

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
    refine:
        Snap the patch-level labels to image edges (guided filter on the frame, when given).
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
        refine: bool = True,
        tile: int = 8,
    ):
        if radius < 0 or memory < 0 or topk < 1 or temperature <= 0 or tile < 1:
            raise ValueError("radius/memory >= 0, topk/tile >= 1 and temperature > 0 required")
        self.radius = int(radius)
        self.memory = int(memory)
        self.topk = int(topk)
        self.temperature = float(temperature)
        self.refine = bool(refine)
        self.tile = int(tile)
        self._fallback = _Fallback(max_fallback_frames, min_area_frac)
        self._geometry: WorkGeometry | None = None
        self._seed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=self.memory)
        self._prev = np.zeros((0, 0, 0), bool)

    @property
    def max_fallback_frames(self) -> int:
        return self._fallback.max_frames

    @property
    def n_instances(self) -> int:
        return len(self._prev)

    # --- public API -----------------------------------------------------------------------
    def reset(
        self,
        features: torch.Tensor,
        masks: torch.Tensor | np.ndarray,
        geometry: WorkGeometry,
        frame: np.ndarray | None = None,
    ) -> None:
        """Seed from (C, h, w) features and (I, H, W) native masks; drops all memory."""
        feats = self._check_features(features, geometry)
        masks = torch.as_tensor(masks, device=feats.device)
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (geometry.native_height, geometry.native_width):
            raise ValueError(f"masks must be (I, {geometry.native_height}, {geometry.native_width}), "
                             f"got {tuple(masks.shape)}")
        self._geometry = geometry
        self._setup_geometry(geometry, feats.device)
        masks = _exclusive(masks)
        self._seed = self._make_reference(feats, self._patch_labels(masks))
        self._recent.clear()
        self._prev = masks.cpu().numpy()
        self._fallback.reset(self._prev)

    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Propagate to the frame of ``features``; returns (I, H, W) bool native masks."""
        if self._seed is None or self._geometry is None:
            raise RuntimeError("DinoMaskPropagator.step called before reset")
        geo = self._geometry
        feats = self._check_features(features, geo)
        n = self.n_instances
        if n == 0:
            return torch.zeros((0, geo.native_height, geo.native_width), dtype=torch.bool, device=feats.device)

        soft = self._propagate(feats)  # (I+1, h, w), channel 0 = background
        probs = F.grid_sample(soft[None], self._native_grid, mode="bilinear", padding_mode="border",
                              align_corners=False)[0]
        probs_np = probs.permute(1, 2, 0).contiguous().cpu().numpy()  # (H, W, I+1)
        if self.refine and frame is not None:
            probs_np = self._guided_filter(_as_gray(frame, geo), probs_np)
        labels = probs_np.argmax(axis=2)
        masks = np.stack([self._clean(labels == i + 1, self._prev[i]) for i in range(n)])

        # Memory remembers what was actually seen, not fallback guesses, so a reused mask never
        # teaches the propagator that the animal is still where it was lost.
        masks_dev = torch.from_numpy(masks).to(feats.device)
        if self.memory:
            self._recent.append(self._make_reference(feats, self._patch_labels(masks_dev)))
        out = self._fallback.apply(masks)
        self._prev = out
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
        inside = self._unfold(torch.ones((1, gh, gw), device=device)) > 0.5  # (N, 1, win*win)
        self._valid = local & inside
        # Native pixel centre (x + 0.5) sits at (x + 0.5) * scale / patch on the patch grid, whose
        # patch centres grid_sample(align_corners=False) places at k + 0.5.
        h, w = geo.native_height, geo.native_width
        k = geo.scale / geo.patch_size
        ys = ((torch.arange(h, device=device) + 0.5) * k / gh) * 2 - 1
        xs = ((torch.arange(w, device=device) + 0.5) * k / gw) * 2 - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) x/y
        self._native_grid = grid[None].float()
        # patch k covers native rows [k * patch_px, (k + 1) * patch_px); beyond the frame is background
        self._pool_size = (max(h, round(gh * geo.patch_px)), max(w, round(gw * geo.patch_px)))
        self._gf_radius = max(1, round(geo.patch_px * 0.5))

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        """(K, h, w) -> (N tiles, K, win * win): each tile's key window, zero outside the grid."""
        geo, t, r = self._geometry, self.tile, self.radius
        k = x.shape[0]
        pad_b = self._nty * t - geo.grid_height
        pad_r = self._ntx * t - geo.grid_width
        xp = F.pad(x[None], (r, r + pad_r, r, r + pad_b))
        win = t + 2 * r
        cols = F.unfold(xp, kernel_size=win, stride=t)  # (1, K * win * win, N)
        return cols.view(k, win * win, -1).permute(2, 0, 1).contiguous()

    def _patch_labels(self, masks: torch.Tensor) -> torch.Tensor:
        """(I, H, W) exclusive bool masks -> (I + 1, h, w) patch coverage, background first."""
        geo = self._geometry
        m = masks.float()[None]
        ph, pw = self._pool_size
        m = F.pad(m, (0, pw - m.shape[-1], 0, ph - m.shape[-2]))
        cover = F.adaptive_avg_pool2d(m, (geo.grid_height, geo.grid_width))[0]
        background = (1.0 - cover.sum(0, keepdim=True)).clamp_(min=0.0)
        return torch.cat([background, cover], dim=0)

    def _make_reference(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Unfolded once when the frame becomes a reference; it is then read `memory` times.
        return self._unfold(feats), self._unfold(labels).transpose(1, 2).contiguous()

    # --- propagation ------------------------------------------------------------------------
    def _propagate(self, feats: torch.Tensor) -> torch.Tensor:
        geo, t = self._geometry, self.tile
        gh, gw = geo.grid_height, geo.grid_width
        c = feats.shape[0]
        hp, wp = self._nty * t, self._ntx * t
        q = F.pad(feats, (0, wp - gw, 0, hp - gh))
        q = q.view(c, self._nty, t, self._ntx, t).permute(1, 3, 2, 4, 0).reshape(-1, t * t, c)  # (N, t*t, C)

        refs = [self._seed, *self._recent]
        aff = torch.cat([torch.bmm(q, keys) for keys, _ in refs], dim=2)  # (N, t*t, R * win*win)
        valid = self._valid.repeat(1, 1, len(refs))
        aff.masked_fill_(~valid, float("-inf"))
        labels = torch.cat([lab for _, lab in refs], dim=1)  # (N, R * win*win, L)

        k = min(self.topk, aff.shape[2])
        top, idx = aff.topk(k, dim=2)
        weights = torch.softmax(top / self.temperature, dim=2)  # -inf entries get weight 0
        n, tt, n_lab = idx.shape[0], idx.shape[1], labels.shape[2]
        picked = labels.gather(1, idx.reshape(n, tt * k, 1).expand(-1, -1, n_lab)).view(n, tt, k, n_lab)
        soft = (weights[..., None] * picked).sum(2)  # (N, t*t, L)
        soft = soft.view(self._nty, self._ntx, t, t, n_lab).permute(4, 0, 2, 1, 3).reshape(n_lab, hp, wp)
        return soft[:, :gh, :gw].contiguous()

    # --- pixel-level refinement --------------------------------------------------------------
    def _guided_filter(self, guide: np.ndarray, probs: np.ndarray, eps: float = 1e-3) -> np.ndarray:
        """Edge-aware smoothing of (H, W, L) label probabilities with a grey (H, W) guide.

        Locally fits probs ~ a * guide + b, so label boundaries move onto intensity edges within
        about half a patch, at the cost of a handful of O(1)-per-pixel box filters.
        """
        size = (2 * self._gf_radius + 1,) * 2

        def box(x: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)

        g = guide[..., None]
        mean_g = box(guide)[..., None]
        var_g = box(guide * guide)[..., None] - mean_g * mean_g
        mean_p = box(probs)
        cov = box(probs * g) - mean_g * mean_p
        a = cov / (var_g + eps)
        b = mean_p - a * mean_g
        return box(a) * g + box(b)

    def _clean(self, mask: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Drop specks and keep the component(s) that continue the previous mask."""
        m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _KERNEL3)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        if n <= 2:
            return comp > 0
        touching = np.bincount(comp[prev], minlength=n)[1:] > 0 if prev.any() else np.zeros(n - 1, bool)
        if touching.any():
            keep = np.flatnonzero(touching) + 1
        else:
            # no overlap (a jump, or the instance was lost): the biggest candidate is the best guess
            keep = [1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
        return np.isin(comp, keep)


_KERNEL3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


def _as_gray(frame: np.ndarray | torch.Tensor, geo: WorkGeometry) -> np.ndarray:
    img = frame.cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if img.shape[:2] != (geo.native_height, geo.native_width):
        raise ValueError(f"frame is {img.shape[1]}x{img.shape[0]}, expected {geo.native_width}x{geo.native_height}")
    gray = cv2.cvtColor(np.ascontiguousarray(img, np.uint8), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return gray.astype(np.float32) * (1.0 / 255.0)


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
        self._out_device = features.device

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
        return torch.from_numpy(self._fallback.apply(masks)).to(features.device)

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
