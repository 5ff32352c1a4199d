"""Unit vectors along one axis of a tensor.

``torch.nn.functional.normalize`` takes the norm with a general reduction that is several times
slower on a CPU than a sum of squares, most of all across the channels of a (C, h, w) feature map,
which the tracker normalises on every frame. Same result: ``x / max(|x|, eps)``.
"""

from __future__ import annotations

import torch

__all__ = ["unit"]


def unit(x: torch.Tensor, dim: int, eps: float = 1e-6) -> torch.Tensor:
    """``x`` scaled to unit length along ``dim``; vectors shorter than ``eps`` are divided by ``eps``."""
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True).clamp(min=eps * eps))
