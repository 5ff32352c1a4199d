"""Which device and precision a backbone runs on."""

from __future__ import annotations

import pytest
import torch

from napari_dinotrack.backbone import device as device_choice
from napari_dinotrack.backbone.device import default_dtype, select_device


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_choice, "_mps_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(device_choice, "_mps_available", lambda: False)


def test_select_device_cpu_only(no_accelerator: None) -> None:
    assert select_device() == torch.device("cpu")
    assert select_device("auto") == torch.device("cpu")
    assert select_device(" CPU ") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("cuda", "cuda:0", "0", "gpu"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device(bad)
    with pytest.raises(ValueError, match="MPS"):
        select_device("mps")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")


def test_select_device_gpus(two_gpus: None) -> None:
    assert select_device() == torch.device("cuda", 0)
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("cuda") == torch.device("cuda", 0)
    assert select_device("0") == torch.device("cuda", 0)
    assert select_device("1") == torch.device("cuda", 1)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert select_device("cuda1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="only 2 CUDA"):
        select_device("cuda:2")


def test_select_device_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_choice, "_mps_available", lambda: True)
    assert select_device() == torch.device("mps")
    assert select_device("mps") == torch.device("mps")


def test_default_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_choice, "cpu_has_bf16", lambda: False)
    assert default_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(device_choice, "cpu_has_bf16", lambda: True)
    assert default_dtype(torch.device("cpu")) == torch.bfloat16  # "auto" uses native bf16
    assert default_dtype("cpu", "fp32") == torch.float32  # ... unless told not to
    assert default_dtype("mps") == torch.float32
    assert default_dtype("cpu", "bf16") == torch.bfloat16
    assert default_dtype("cpu", "FP16") == torch.float16
    assert default_dtype("cuda:0", "float32") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert default_dtype("cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert default_dtype("cuda:0") == torch.float16
    with pytest.raises(ValueError, match="precision"):
        default_dtype("cpu", "int8")


def test_cpu_bf16_needs_the_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    """bfloat16 only where the CPU has native bf16 instructions: elsewhere it would be emulated, slowly."""
    device_choice.cpu_has_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True, "avx2": True})
    assert not device_choice.cpu_has_bf16()
    device_choice.cpu_has_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert device_choice.cpu_has_bf16()  # and the probe product agrees with float32 (real kernels here)
    device_choice.cpu_has_bf16.cache_clear()
    monkeypatch.undo()
    device_choice.cpu_has_bf16.cache_clear()
