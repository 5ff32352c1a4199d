"""Unit vectors for feature maps: the same as torch's normalize, and never NaN on a blank patch."""

import torch
import torch.nn.functional as F

from napari_dinotrack.vectors import unit


def test_unit_matches_torch_normalize_across_channels_of_a_feature_map():
    features = torch.randn(49, 30, 40, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(unit(features, dim=0), F.normalize(features, dim=0, eps=1e-6), atol=1e-6)
    assert torch.allclose(unit(features, dim=-1), F.normalize(features, dim=-1, eps=1e-6), atol=1e-6)


def test_a_blank_patch_stays_zero_instead_of_becoming_nan():
    features = torch.randn(8, 4, 4)
    features[:, 1, 2] = 0.0
    out = unit(features, dim=0)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, 1, 2], torch.zeros(8))
    assert torch.allclose(out.norm(dim=0)[0, 0], torch.tensor(1.0))
