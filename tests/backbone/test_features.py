"""Patch features of HFDinoBackbone on tiny random DINOv3 / DINOv2 checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import HFDinoBackbone, load_backbone

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish content plus noise, so resizing matters
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) % 256)], axis=-1)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        noise = rng.integers(-40, 40, size=(h, w, 3))
        out[i] = np.clip(base + noise + 20 * i, 0, 255).astype(np.uint8)
    return out


def _manual_features(bb: HFDinoBackbone, frames: np.ndarray, geom) -> torch.Tensor:
    """An independent reimplementation: resize, normalise, pad, forward, slice, normalise."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(geom.work_height, geom.work_width), mode="bilinear", antialias=True, align_corners=False)
    x = (x - MEAN) / STD
    p = bb.patch_size
    ph = -(-geom.work_height // p) * p
    pw = -(-geom.work_width // p) * p
    x = F.pad(x, (0, pw - geom.work_width, 0, ph - geom.work_height))
    with torch.no_grad():
        h = bb.model(pixel_values=x).last_hidden_state
    specials = 1 + int(getattr(bb.model.config, "num_register_tokens", 0) or 0)
    grid = h[:, specials:].reshape(len(frames), ph // p, pw // p, -1).permute(0, 3, 1, 2)
    return F.normalize(grid, dim=1)


# float32 on purpose: these tests compare against a float32 reimplementation ("auto" may pick bf16 on this CPU)
@pytest.fixture(scope="module")
def v3(tiny_dinov3_dir: Path) -> HFDinoBackbone:
    return load_backbone(str(tiny_dinov3_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def v2(tiny_dinov2_dir: Path) -> HFDinoBackbone:
    return load_backbone(str(tiny_dinov2_dir), device="cpu", precision="fp32")


@pytest.mark.parametrize(
    ("h", "w", "short", "grid"),
    [
        (121, 161, 64, (4, 6)),  # 64 x 85 -> padded 64 x 96
        (161, 121, 64, (6, 4)),  # portrait
        (768, 1024, 128, (8, 11)),  # 128 x 171 -> padded 128 x 176
        (768, 1024, 768, (48, 64)),  # exact multiples, no resize
        (33, 47, 20, (2, 2)),  # tiny frame, short side not a patch multiple
    ],
)
def test_shapes_and_norm_dinov3(v3: HFDinoBackbone, h: int, w: int, short: int, grid: tuple[int, int]) -> None:
    geom = compute_geometry(h, w, short, v3.patch_size)
    feats = v3.extract(_frames(2 if short < 768 else 1, h, w), geom)
    assert feats.shape == (2 if short < 768 else 1, 64, *grid)
    assert (geom.grid_height, geom.grid_width) == grid
    assert feats.dtype == torch.float32 and feats.device == torch.device("cpu")
    norms = feats.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)


@pytest.mark.parametrize(("h", "w", "grid"), [(121, 161, (5, 7)), (161, 121, (7, 5)), (300, 90, (16, 5))])
def test_dinov2_non_square(v2: HFDinoBackbone, h: int, w: int, grid: tuple[int, int]) -> None:
    geom = compute_geometry(h, w, 64, v2.patch_size)
    frames = _frames(2, h, w, seed=3)
    feats = v2.extract(frames, geom)
    assert feats.shape == (2, 64, *grid)
    assert torch.allclose(feats.norm(dim=1), torch.ones(2, *grid), atol=1e-4)
    torch.testing.assert_close(feats, _manual_features(v2, frames, geom), atol=1e-4, rtol=1e-4)


def test_dinov2_registers(tiny_dinov2_reg_dir: Path) -> None:
    bb = load_backbone(str(tiny_dinov2_reg_dir), device="cpu", precision="fp32")
    geom = compute_geometry(121, 161, 64, bb.patch_size)
    frames = _frames(1, 121, 161)
    torch.testing.assert_close(bb.extract(frames, geom), _manual_features(bb, frames, geom), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("h", "w", "short"), [(121, 161, 64), (768, 1024, 128)])
def test_matches_manual_forward_dinov3(v3: HFDinoBackbone, h: int, w: int, short: int) -> None:
    geom = compute_geometry(h, w, short, v3.patch_size)
    frames = _frames(2, h, w, seed=1)
    torch.testing.assert_close(v3.extract(frames, geom), _manual_features(v3, frames, geom), atol=1e-4, rtol=1e-4)


def test_batched_equals_per_frame(tiny_dinov3_dir: Path) -> None:
    bb = load_backbone(str(tiny_dinov3_dir), device="cpu", precision="fp32")
    geom = compute_geometry(121, 161, 64, bb.patch_size)
    frames = _frames(5, 121, 161, seed=2)
    bb.batch_size = 2  # 3 chunks: 2 + 2 + 1
    batched = bb.extract(frames, geom)
    single = torch.cat([bb.extract(f, geom) for f in frames])  # (H, W, 3) inputs
    assert batched.shape == single.shape == (5, 64, 4, 6)
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    bb.batch_size = 8
    torch.testing.assert_close(bb.extract(torch.from_numpy(frames), geom), batched, atol=1e-4, rtol=0)
    # a run's batch size, given per call, wins over the backbone's own
    sizes = []
    hook = bb.model.register_forward_hook(
        lambda _m, args, kwargs, _out: sizes.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    try:
        torch.testing.assert_close(bb.extract(frames, geom, batch_size=4), batched, atol=1e-4, rtol=0)
    finally:
        hook.remove()
    assert sizes == [4, 1]


def test_bf16_on_cpu_returns_float32(tiny_dinov3_dir: Path, v3: HFDinoBackbone) -> None:
    bb = load_backbone(str(tiny_dinov3_dir), device="cpu", precision="bf16")
    geom = compute_geometry(121, 161, 64, bb.patch_size)
    frames = _frames(1, 121, 161)
    feats = bb.extract(frames, geom)
    assert feats.dtype == torch.float32
    cos = (feats * v3.extract(frames, geom)).sum(dim=1)
    assert cos.min() > 0.98


def test_preprocessor_stats_are_used(tiny_dinov3_dir: Path, v3: HFDinoBackbone) -> None:
    geom = compute_geometry(121, 161, 64, v3.patch_size)
    frames = _frames(1, 121, 161)
    other = HFDinoBackbone(
        v3.model, name="x", device=v3.device, dtype=v3.dtype, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
    )
    assert not torch.allclose(other.extract(frames, geom), v3.extract(frames, geom), atol=1e-3)


def test_errors(v3: HFDinoBackbone) -> None:
    with pytest.raises(ValueError, match="patch size"):
        v3.extract(_frames(1, 121, 161), compute_geometry(121, 161, 64, 14))
    geom = compute_geometry(121, 161, 64, 16)
    with pytest.raises(ValueError, match="does not match"):
        v3.extract(_frames(1, 120, 161), geom)
    broken = HFDinoBackbone(v3.model, name="broken", device=v3.device, dtype=v3.dtype)
    broken.num_special_tokens = 1  # pretend there are no registers
    with pytest.raises(RuntimeError, match="special tokens"):
        broken.extract(_frames(1, 121, 161), geom)
