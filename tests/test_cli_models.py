"""The ``napari-dinotrack models`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_dinotrack.cli import build_parser, main


@pytest.fixture(autouse=True)
def _offline_empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("DINOV3_LOCATION", raising=False)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from napari_dinotrack.synthetic.models import TINY_DINOV3, save_random_dinov3

    folder = tmp_path_factory.mktemp("cli") / "tiny-dinov3"
    return save_random_dinov3(folder, **TINY_DINOV3)


def test_models_lists_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dinov3-vits16" in out and "facebook/dinov3-vits16-pretrain-lvd1689m" in out
    assert "dinov2-small" in out and "not downloaded" in out and "gated" in out


def test_models_json(capsys: pytest.CaptureFixture[str], tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["default"] == "dinov3-vits16"
    rows = {r["key"]: r for r in data["models"]}
    assert rows["dinov3-vits16"]["default"] and rows["dinov3-vits16"]["gated"]
    assert rows["dinov2-small"]["gated"] is False
    assert all(r["local_path"] is None for r in rows.values())
    # DINOV3_LOCATION pointing at a model folder makes the default model available
    monkeypatch.setenv("DINOV3_LOCATION", str(tiny_model_dir))
    assert main(["models", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert rows["dinov3-vits16"]["local_path"] == str(tiny_model_dir)


def test_check_local_folder(capsys: pytest.CaptureFixture[str], tiny_model_dir: Path) -> None:
    assert main(["models", "--check", str(tiny_model_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK") and "feature dim 64" in out and "patch size 16" in out
    assert main(["models", "--check", str(tiny_model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ok"] and info["feature_dim"] == 64 and info["patch_size"] == 16


@pytest.mark.parametrize("name", ["nonexistent-model", "/no/such/model/dir", "vits16"])
def test_check_unavailable(capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert main(["models", "--check", name]) == 2
    captured = capsys.readouterr()
    assert name in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_check_bad_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--check", "pixel:", "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["--version"]) == 0
    capsys.readouterr()
    assert "models" in build_parser().format_help()


def test_internal_error_exit_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import napari_dinotrack.backbone.catalog as catalog

    def boom() -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(catalog, "list_models", boom)
    assert main(["models"]) == 1
    assert "internal error: boom" in capsys.readouterr().err
