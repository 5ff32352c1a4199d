"""Appearance scores of candidate positions for all keypoints at once."""

from __future__ import annotations

import torch

NEG = -1e4  # "impossible" score; finite so that softmax and argmax stay well defined


def appearance_scores(
    samples: torch.Tensor,
    templates: torch.Tensor,
    template_valid: torch.Tensor,
    memory: torch.Tensor,
    memory_weight: float,
) -> torch.Tensor:
    """Cosine match of features against each keypoint's templates.

    samples: (1 or K, N, C) candidate features; templates: (K, M, C) from manual frames;
    memory: (K, C) running appearance. Returns (K, N): the best manual template blended with
    the running appearance, so manual frames anchor the match and recent looks adapt it.
    """
    sims = torch.matmul(templates, samples.transpose(-1, -2))  # (K, M, N)
    sims = sims.masked_fill(~template_valid[:, :, None], -2.0)
    best = sims.max(dim=1).values
    recent = torch.matmul(samples, memory[:, :, None]).squeeze(-1)  # (K, N), broadcasts a shared map
    return (1.0 - memory_weight) * best + memory_weight * recent
