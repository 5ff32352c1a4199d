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

    Frames that need resizing are converted one at a time: each travels to the device as uint8
    (4x less traffic than floats), becomes float and is resized right away (antialiased
    bilinear), so memory grows with the working size times the batch, not the native size times
    the batch (an 8K frame is 400 MB as float32). Frames already at the working size become
    float32 in place in the output, the whole batch at once. The bottom/right padding is zero
    after normalisation, i.e. the dataset mean colour.
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
    if work == (batch.shape[1], batch.shape[2]) and dtype == torch.float32:
        # no resize: one conversion of the batch straight into the output, channels first, then
        # the same element-wise steps as below on contiguous memory
        x = out[:, :, : work[0], : work[1]]
        x.copy_(_on_device(batch, device).permute(0, 3, 1, 2)).div_(255.0)
        if normalize:
            x.sub_(m).div_(s)
        return out
    for i in range(batch.shape[0]):
        x = torch.empty((1, 3, batch.shape[1], batch.shape[2]), dtype=torch.float32, device=device)
        x[0].copy_(_on_device(batch[i], device).permute(2, 0, 1)).div_(255.0)
        if work != (x.shape[2], x.shape[3]):
            x = F.interpolate(x, size=work, mode="bilinear", antialias=True, align_corners=False)
        if normalize:
            x = x.sub_(m).div_(s)
        out[i, :, : work[0], : work[1]] = x[0]
    return out


def cell_means(
    frames: np.ndarray | torch.Tensor, geometry: WorkGeometry, cell: int, device: torch.device
) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB at the working size -> (B, 3, padded_h / cell, padded_w / cell) float32 means.

    The same numbers as ``avg_pool2d(to_working_tensor(..., normalize=False), cell)``, to the bit,
    without the float image: each row of the cells becomes float on its own, and the cells' sums
    are taken in the order average pooling takes them (row by row, left to right).
    """
    batch = frames if frames.ndim == 4 else frames[None]
    if (batch.shape[1], batch.shape[2]) != (geometry.work_height, geometry.work_width):
        raise ValueError(
            f"frame size {batch.shape[2]}x{batch.shape[1]} is not the working size "
            f"{geometry.work_width}x{geometry.work_height}"
        )
    u = _on_device(batch, device)
    pad_bottom, pad_right = geometry.padded_height - batch.shape[1], geometry.padded_width - batch.shape[2]
    if pad_bottom or pad_right:
        u = F.pad(u, (0, 0, 0, pad_right, 0, pad_bottom))  # zeros, as the working tensor's padding
    n, ph, pw = u.shape[0], geometry.padded_height, geometry.padded_width
    cells = u.view(n, ph // cell, cell, pw // cell, cell, 3).permute(2, 4, 0, 5, 1, 3)  # (i, j, B, 3, rows, cols)
    row = torch.empty(cells.shape[1:], dtype=torch.float32, device=u.device)
    total = torch.empty(cells.shape[2:], dtype=torch.float32, device=u.device)
    for i in range(cell):
        row.copy_(cells[i]).div_(255.0)
        for j in range(cell):
            if i == 0 and j == 0:
                total.copy_(row[0])
            else:
                total += row[j]
    return total.div_(cell * cell)


def _on_device(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8 frames as a tensor on ``device``."""
    if isinstance(frames, np.ndarray):
        # cached video frames are read-only; torch wants memory it may write to
        frames = np.ascontiguousarray(frames) if frames.flags.writeable else frames.copy()
    x = torch.as_tensor(frames)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
