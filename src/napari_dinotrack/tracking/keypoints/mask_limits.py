"""What instance masks allow: the patches a part may be searched on, and clamping parts into their mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...backbone.base import WorkGeometry


def allowed_patches(masks: torch.Tensor, instance_of: torch.Tensor, geo: WorkGeometry) -> torch.Tensor:
    """(K, N) patches each keypoint may land on: its animal's mask, with one patch of slack."""
    m = F.interpolate(masks.float()[None], size=(geo.work_height, geo.work_width), mode="area")[0]
    m = F.pad(m, (0, geo.padded_width - geo.work_width, 0, geo.padded_height - geo.work_height))
    cover = F.max_pool2d(F.avg_pool2d(m[None], geo.patch_size)[0][None], 3, 1, 1)[0] > 0
    cover = cover.reshape(masks.shape[0], -1)
    has_mask = cover.any(dim=1)
    return cover[instance_of] | ~has_mask[instance_of][:, None]


def snap_offsets(radius_px: float, device: torch.device) -> torch.Tensor:
    """Pixel offsets within ``radius_px``, nearest first: the first one inside a mask wins."""
    r = int(radius_px)
    span = torch.arange(-r, r + 1, device=device)
    oy, ox = torch.meshgrid(span, span, indexing="ij")
    snap = torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=1).float()
    snap = snap[snap.norm(dim=1) <= r + 1e-6]
    return snap[torch.argsort(snap.norm(dim=1), stable=True)]


def clamp_to_masks(
    xy: torch.Tensor, masks: torch.Tensor, instance_of: torch.Tensor, scale: float, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (K, 2) working px outside their mask moved to its nearest pixel within the snap offsets.

    Returns the positions and whether each point is in (or could be moved into) its mask; a point
    whose animal has no mask this frame is left alone and counts as inside.
    """
    h, w = masks.shape[-2:]
    native = xy / scale
    cand = native.round()[:, None] + offsets[None]
    cx = cand[..., 0].clamp(0, w - 1).long()
    cy = cand[..., 1].clamp(0, h - 1).long()
    inside = masks[instance_of[:, None], cy, cx]  # (K, S)
    first = inside.float().argmax(dim=1)
    found = inside.any(dim=1)
    has_mask = masks.reshape(masks.shape[0], -1).any(dim=1)[instance_of]
    snapped = cand[torch.arange(len(first), device=xy.device), first]
    moved = found & ~inside[:, 0] & has_mask
    return torch.where(moved[:, None], snapped, native) * scale, found | ~has_mask
