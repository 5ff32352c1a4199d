"""Weight location rules, loading and load errors of the backbone loader."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from napari_dinotrack.backbone import hub
from napari_dinotrack.backbone.base import Backbone
from napari_dinotrack.backbone.catalog import resolve_model_name
from napari_dinotrack.backbone.device import cpu_has_bf16
from napari_dinotrack.backbone.loader import (
    BackboneUnavailableError,
    HFDinoBackbone,
    available_locally,
    load_backbone,
    locate_weights,
)
from napari_dinotrack.backbone.pixel import PixelBackbone

VITS16 = "facebook/dinov3-vits16-pretrain-lvd1689m"


def _fake_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> Path:
    """Lay out ``model_dir`` as a hub cache entry of ``repo_id``; returns the snapshot folder."""
    entry = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = entry / "snapshots" / commit
    shutil.copytree(model_dir, snap)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    return snap


# ------------------------------------------------------------------------------ loading


def test_load_local_folder(tiny_dinov3_dir: Path) -> None:
    t0 = time.perf_counter()
    bb = load_backbone(str(tiny_dinov3_dir), device="cpu")
    assert time.perf_counter() - t0 < 10
    assert isinstance(bb, HFDinoBackbone) and isinstance(bb, Backbone)
    assert (bb.patch_size, bb.feature_dim, bb.num_special_tokens) == (16, 64, 5)
    assert bb.family == "dinov3"
    assert bb.name == str(tiny_dinov3_dir)
    # precision "auto": bfloat16 on CPUs that compute it natively
    assert bb.device == torch.device("cpu") and bb.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert not bb.model.training
    assert bb.mean == (0.485, 0.456, 0.406) and bb.std == (0.229, 0.224, 0.225)
    # a Path works too, and so does a dinov2 folder
    assert load_backbone(tiny_dinov3_dir).feature_dim == 64
    assert locate_weights(str(tiny_dinov3_dir)) == (str(tiny_dinov3_dir), {})
    assert available_locally(str(tiny_dinov3_dir)) == str(tiny_dinov3_dir)


def test_load_dinov2_folders(tiny_dinov2_dir: Path, tiny_dinov2_reg_dir: Path) -> None:
    bb = load_backbone(str(tiny_dinov2_dir))
    assert (bb.patch_size, bb.feature_dim, bb.num_special_tokens, bb.family) == (14, 64, 1, "dinov2")
    reg = load_backbone(str(tiny_dinov2_reg_dir))
    assert (reg.patch_size, reg.num_special_tokens) == (14, 5)


def test_precision_bf16_on_cpu(tiny_dinov3_dir: Path) -> None:
    bb = load_backbone(str(tiny_dinov3_dir), device="cpu", precision="bf16")
    assert bb.dtype == torch.bfloat16
    assert next(bb.model.parameters()).dtype == torch.bfloat16


def test_preprocessor_config_mean_std(tiny_dinov3_dir: Path, copy_model) -> None:
    folder = copy_model(tiny_dinov3_dir, "with-prep")
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    )
    bb = load_backbone(str(folder))
    assert bb.mean == (0.5, 0.5, 0.5) and bb.std == (0.25, 0.25, 0.25)


def test_location_env_is_model_folder(tiny_dinov3_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DINOV3_LOCATION", str(tiny_dinov3_dir))
    for name in (None, "dinov3-vits16", "vits16"):  # the default model takes the folder
        bb = load_backbone(name)
        assert bb.feature_dim == 64 and bb.source == str(tiny_dinov3_dir)
    assert available_locally(resolve_model_name("vits16")) == str(tiny_dinov3_dir)
    # a different named model does not silently use a folder with another architecture
    with pytest.raises(BackboneUnavailableError, match="not 'vitb16'"):
        load_backbone("vitb16")
    assert available_locally(resolve_model_name("vitb16")) is None


def test_location_env_folder_matching_architecture(tmp_path: Path, monkeypatch) -> None:
    from transformers import DINOv3ViTConfig

    # a folder with an arbitrary name whose config has the ViT-B/16 architecture
    cfg = DINOv3ViTConfig(
        hidden_size=768,
        intermediate_size=64,
        num_hidden_layers=12,
        num_attention_heads=2,
        patch_size=16,
        num_register_tokens=4,
    )
    folder = tmp_path / "my-weights"
    folder.mkdir()
    (folder / "config.json").write_text(cfg.to_json_string())
    (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("DINOV3_LOCATION", str(folder))
    assert locate_weights("vitb16") == (str(folder), {})
    assert locate_weights("vitl16")[0] == "facebook/dinov3-vitl16-pretrain-lvd1689m"
    assert locate_weights("vits16plus")[0] == "facebook/dinov3-vits16plus-pretrain-lvd1689m"


@pytest.mark.parametrize(
    "relative",
    [
        "models/dinov3-vits16-pretrain-lvd1689m",
        "models/facebook/dinov3-vits16-pretrain-lvd1689m",
        "models/dinov3-vits16",
    ],
)
def test_location_env_parent_folder(
    tiny_dinov3_dir: Path, copy_model, tmp_path: Path, monkeypatch, relative: str
) -> None:
    folder = copy_model(tiny_dinov3_dir, relative)
    monkeypatch.setenv("DINOV3_LOCATION", str(tmp_path / "models"))
    assert locate_weights("dinov3-vits16") == (str(folder), {})
    bb = load_backbone("facebook/dinov3-vits16-pretrain-lvd1689m")
    assert bb.feature_dim == 64 and bb.source == str(folder)
    assert available_locally(resolve_model_name("vits16")) == str(folder)
    assert available_locally(resolve_model_name("vitb16")) is None


def test_location_env_hub_cache(tiny_dinov3_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "mycache"
    snap = _fake_hub_cache(cache, VITS16, tiny_dinov3_dir)
    monkeypatch.setenv("DINOV3_LOCATION", str(cache))
    assert locate_weights("vits16") == (VITS16, {"cache_dir": str(cache)})
    assert available_locally(resolve_model_name("vits16")) == str(snap)
    bb = load_backbone("vits16")
    assert bb.feature_dim == 64 and bb.name == "dinov3-vits16" and bb.source == str(snap)
    # an HF_HOME-style folder (cache in hub/) works as well
    monkeypatch.setenv("DINOV3_LOCATION", str(tmp_path))
    shutil.move(cache, tmp_path / "hub")
    assert locate_weights("vits16") == (VITS16, {"cache_dir": str(tmp_path / "hub")})


def test_default_hub_cache(tiny_dinov3_dir: Path, _offline_empty_hub: Path) -> None:
    cache = _offline_empty_hub / "hub"
    assert locate_weights("vits16") == (VITS16, {"cache_dir": str(cache)})
    assert available_locally(resolve_model_name("vits16")) is None
    snap = _fake_hub_cache(cache, VITS16, tiny_dinov3_dir)
    assert available_locally(resolve_model_name("vits16")) == str(snap)
    assert load_backbone("dinov3-small").feature_dim == 64


# ------------------------------------------------------------------------------ errors


def test_offline_error_is_fast_and_helpful() -> None:
    t0 = time.perf_counter()
    with pytest.raises(BackboneUnavailableError) as info:
        load_backbone("facebook/dinov3-vits16-pretrain-lvd1689m")
    assert time.perf_counter() - t0 < 10
    msg = str(info.value)
    assert VITS16 in msg
    assert "DINOV3_LOCATION" in msg and "dinov2" in msg
    assert "hf auth login" in msg and "HF_TOKEN" in msg and "HF_HUB_OFFLINE" in msg
    assert info.value.model == VITS16


def test_unreachable_hub_error_is_fast(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "reachable", lambda *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(BackboneUnavailableError, match="cannot be reached") as info:
        load_backbone("vitb16")
    assert time.perf_counter() - t0 < 10
    assert "facebook/dinov3-vitb16-pretrain-lvd1689m" in str(info.value)


@pytest.mark.parametrize("path", ["/nonexistent/dinov3-model", "./missing-model-dir", "~/no/such/model/folder"])
def test_missing_local_path(path: str) -> None:
    with pytest.raises(BackboneUnavailableError, match="no such folder") as info:
        load_backbone(path)
    assert path in str(info.value)


def test_bad_local_folders(tmp_path: Path, tiny_dinov3_dir: Path, copy_model) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackboneUnavailableError, match=r"no config\.json") as info:
        load_backbone(str(empty))
    assert str(empty) in str(info.value)
    afile = tmp_path / "weights.bin"
    afile.write_bytes(b"x")
    with pytest.raises(BackboneUnavailableError, match="is a file"):
        load_backbone(str(afile))
    no_weights = copy_model(tiny_dinov3_dir, "no-weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(BackboneUnavailableError, match="safetensors"):
        load_backbone(str(no_weights))
    broken = copy_model(tiny_dinov3_dir, "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BackboneUnavailableError, match="broken"):
        load_backbone(str(broken))


def test_unsupported_architecture(tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTModel

    folder = tmp_path / "vit"
    ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=16,
        )
    ).save_pretrained(folder)
    with pytest.raises(BackboneUnavailableError, match="architecture"):
        load_backbone(str(folder))


def test_unknown_name() -> None:
    with pytest.raises(BackboneUnavailableError, match="Unknown backbone model 'nonexistent-model'"):
        load_backbone("nonexistent-model")


def test_pixel_scheme_and_passthrough() -> None:
    px = load_backbone("pixel:")
    assert isinstance(px, PixelBackbone) and px.patch_size == 16
    assert load_backbone("pixel:8", device="cpu").patch_size == 8
    assert load_backbone(px) is px
    with pytest.raises(TypeError):
        load_backbone(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown device"):
        load_backbone("pixel:", device="tpu")


def test_half_precision_keeps_float32_buffers(tiny_dinov3_dir: Path) -> None:
    bb = load_backbone(str(tiny_dinov3_dir), device="cpu", precision="bf16")
    assert bb.model.rope_embeddings.inv_freq.dtype == torch.float32
