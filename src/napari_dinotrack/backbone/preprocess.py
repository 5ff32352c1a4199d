"""Frames -> backbone input, entirely in torch (no torchvision) and on the target device."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import WorkGeometry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_working_tensor(
    frames: np.ndarray | torch.Tensor,
    geometry: WorkGeometry,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    normalize: bool = True,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 RGB -> (B, 3, padded_h, padded_w) in ``dtype``.

    The uint8 frames travel to the device first (4x less traffic than floats); resizing uses
    antialiased bilinear interpolation; the bottom/right padding is zero after normalisation,
    i.e. the dataset mean colour.
    """
    if isinstance(frames, np.ndarray):
        # cached video frames are read-only; torch wants memory it may write to
        frames = np.ascontiguousarray(frames) if frames.flags.writeable else frames.copy()
    x = torch.as_tensor(frames)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) RGB frames, got shape {tuple(x.shape)}")
    if (x.shape[1], x.shape[2]) != (geometry.native_height, geometry.native_width):
        raise ValueError(
            f"frame size {x.shape[2]}x{x.shape[1]} does not match the run's "
            f"{geometry.native_width}x{geometry.native_height}"
        )
    if device.type == "cuda" and x.device.type == "cpu":
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    if (geometry.work_height, geometry.work_width) != (x.shape[2], x.shape[3]):
        x = F.interpolate(
            x, size=(geometry.work_height, geometry.work_width), mode="bilinear",
            antialias=True, align_corners=False,
        )
    if normalize:
        m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        s = torch.tensor(std, device=device).view(1, 3, 1, 1)
        x = (x - m) / s
    pad_h = geometry.padded_height - geometry.work_height
    pad_w = geometry.padded_width - geometry.work_width
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x.to(dtype)
