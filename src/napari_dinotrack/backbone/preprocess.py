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
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 RGB -> (B, 3, padded_h, padded_w) in ``dtype``.

    Frames are converted one at a time: each travels to the device as uint8 (4x less traffic
    than floats), becomes float and is resized right away (antialiased bilinear), so memory grows
    with the working size times the batch, not the native size times the batch (an 8K frame is
    400 MB as float32). The bottom/right padding is zero after normalisation, i.e. the dataset
    mean colour.
    """
    batch = frames if frames.ndim == 4 else frames[None]
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) RGB frames, got shape {tuple(frames.shape)}")
    if (batch.shape[1], batch.shape[2]) != (geometry.native_height, geometry.native_width):
        raise ValueError(
            f"frame size {batch.shape[2]}x{batch.shape[1]} does not match the run's "
            f"{geometry.native_width}x{geometry.native_height}"
        )
    work = (geometry.work_height, geometry.work_width)
    out = torch.zeros((batch.shape[0], 3, geometry.padded_height, geometry.padded_width), dtype=dtype, device=device)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    for i in range(batch.shape[0]):
        x = _frame_on_device(batch[i], device).permute(2, 0, 1)[None].to(torch.float32).div_(255.0)
        if work != (x.shape[2], x.shape[3]):
            x = F.interpolate(x, size=work, mode="bilinear", antialias=True, align_corners=False)
        if normalize:
            x = x.sub_(m).div_(s)
        out[i, :, : work[0], : work[1]] = x[0]
    return out


def _frame_on_device(frame: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """One (H, W, 3) uint8 frame as a tensor on ``device``."""
    if isinstance(frame, np.ndarray):
        # cached video frames are read-only; torch wants memory it may write to
        frame = np.ascontiguousarray(frame) if frame.flags.writeable else frame.copy()
    x = torch.as_tensor(frame)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
