"""The model catalog and name resolution."""

from __future__ import annotations

import subprocess
import sys

import pytest

from napari_dinotrack.backbone.catalog import (
    DEFAULT_MODEL,
    ModelSpec,
    get_default_spec,
    list_models,
    resolve_model_name,
)


def test_catalog_content() -> None:
    models = list_models()
    assert models[0].key == DEFAULT_MODEL == get_default_spec().key
    repos = {m.repo_id: m for m in models}
    assert set(repos) == {
        "facebook/dinov3-vits16-pretrain-lvd1689m",
        "facebook/dinov3-vits16plus-pretrain-lvd1689m",
        "facebook/dinov3-vitb16-pretrain-lvd1689m",
        "facebook/dinov3-vitl16-pretrain-lvd1689m",
        "facebook/dinov3-vith16plus-pretrain-lvd1689m",
        "facebook/dinov2-small",
        "facebook/dinov2-base",
        "facebook/dinov2-large",
    }
    for m in models:
        assert isinstance(m, ModelSpec)
        assert m.gated == (m.family == "dinov3")
        assert m.family in {"dinov3", "dinov2"}
        assert m.patch_size == (16 if m.family == "dinov3" else 14)
        assert m.description
    assert len({m.key for m in models}) == len(models)
    assert get_default_spec().repo_id == "facebook/dinov3-vits16-pretrain-lvd1689m"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("dinov3-vits16", "dinov3-vits16"),
        ("VITS16", "dinov3-vits16"),
        ("dinov3-small", "dinov3-vits16"),
        ("dinov3_vits16", "dinov3-vits16"),
        ("facebook/dinov3-vits16-pretrain-lvd1689m", "dinov3-vits16"),
        ("dinov3-vits16-pretrain-lvd1689m", "dinov3-vits16"),
        ("  ViT-S/16 ", "dinov3-vits16"),
        ("vits16+", "dinov3-vits16plus"),
        ("vitb16", "dinov3-vitb16"),
        ("Facebook/DINOv3-ViTL16-Pretrain-LVD1689M", "dinov3-vitl16"),
        ("vith16plus", "dinov3-vith16plus"),
        ("dinov2-small", "dinov2-small"),
        ("dinov2_small", "dinov2-small"),
        ("facebook/dinov2-base", "dinov2-base"),
        ("dinov2-l", "dinov2-large"),
    ],
)
def test_resolve_aliases(name: str, key: str) -> None:
    spec = resolve_model_name(name)
    assert spec is not None and spec.key == key


def test_resolve_default_and_unknown() -> None:
    assert resolve_model_name(None) == get_default_spec()
    assert resolve_model_name("") == get_default_spec()
    assert resolve_model_name("nonexistent-model") is None
    assert resolve_model_name("facebook/dinov3-vit7b16-pretrain-lvd1689m") is None


def test_light_imports() -> None:
    """Listing models must not pay for torch/transformers."""
    code = (
        "import sys, napari_dinotrack.backbone.catalog, napari_dinotrack.backbone.loader, "
        "napari_dinotrack.cli; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
