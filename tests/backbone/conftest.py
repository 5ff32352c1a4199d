"""Fixtures for backbone tests: offline hub, an empty HF cache and tiny random DINO checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _offline_empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, an empty Hugging Face cache and no DINOV3_LOCATION for every test."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("DINOV3_LOCATION", raising=False)
    return home


def _save_tiny_dinov3(folder: Path) -> Path:
    from napari_dinotrack.synthetic.models import TINY_DINOV3, save_random_dinov3

    return save_random_dinov3(folder, **TINY_DINOV3)


def _save_tiny_dinov2(folder: Path, registers: bool = False) -> Path:
    from transformers import (
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14, image_size=56)
    if registers:
        Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=4, **kw)).save_pretrained(folder)
    else:
        Dinov2Model(Dinov2Config(**kw)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dinov3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained folder of a random 64-d, 2-layer DINOv3 ViT/16 with 4 registers."""
    return _save_tiny_dinov3(tmp_path_factory.mktemp("tiny") / "tiny-dinov3")


@pytest.fixture(scope="session")
def tiny_dinov2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained folder of a random 64-d, 2-layer DINOv2 ViT/14 (CLS token only)."""
    return _save_tiny_dinov2(tmp_path_factory.mktemp("tiny") / "tiny-dinov2")


@pytest.fixture(scope="session")
def tiny_dinov2_reg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DINOv2-with-registers checkpoint (CLS + 4 registers)."""
    return _save_tiny_dinov2(tmp_path_factory.mktemp("tiny") / "tiny-dinov2-reg", registers=True)


@pytest.fixture
def copy_model(tmp_path: Path):
    """Copy a model folder to ``tmp_path / relative`` and return the copy."""

    def _copy(src: Path, relative: str) -> Path:
        dst = tmp_path / relative
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst)
        return dst

    return _copy
