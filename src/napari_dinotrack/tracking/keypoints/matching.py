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
    k, m, c = templates.shape
    if samples.shape[0] == 1:
        # one map shared by every keypoint: plain matrix products (a broadcast batched product
        # would copy the map once per keypoint)
        shared = samples[0].T  # (C, N)
        sims = (templates.reshape(k * m, c) @ shared).reshape(k, m, -1)
        recent = memory @ shared
    else:
        sims = torch.matmul(templates, samples.transpose(-1, -2))  # (K, M, N)
        recent = torch.matmul(samples, memory[:, :, None]).squeeze(-1)  # (K, N)
    best = sims.masked_fill(~template_valid[:, :, None], -2.0).max(dim=1).values
    return (1.0 - memory_weight) * best + memory_weight * recent
