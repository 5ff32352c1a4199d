"""Random-weight DINOv3 checkpoints written like downloaded ones.

No weights need downloading to exercise the real loading path (``load_backbone`` on a
``save_pretrained`` folder) or to time a model of a published size: the tests, the sample-free
benchmarks and the GPU script make their model here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["TINY_DINOV3", "save_random_dinov3"]

#: a ViT/16 small enough for tests: width 64, 2 blocks
TINY_DINOV3: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}


def save_random_dinov3(folder: str | os.PathLike[str], seed: int | None = None, **shape: Any) -> Path:
    """A DINOv3 ViT/16 with 4 register tokens and random weights, saved in ``folder``; returns it.

    Without ``shape`` it has ViT-S/16's size and cost; ``shape`` overrides ``DINOv3ViTConfig``
    fields (e.g. ``**TINY_DINOV3``). ``seed`` makes the weights the same on every call.
    """
    import torch
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    if seed is not None:
        torch.manual_seed(seed)
    DINOv3ViTModel(DINOv3ViTConfig(**{"num_register_tokens": 4, **shape})).save_pretrained(folder)
    return Path(folder)
