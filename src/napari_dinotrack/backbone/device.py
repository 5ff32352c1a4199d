"""Which torch device a backbone runs on, and in which precision.

``precision="auto"`` runs the model in bfloat16 on CUDA GPUs that support it (Ampere and newer;
float16 on older GPUs) and in float32 on CPU and Apple MPS: half precision roughly halves GPU
time and memory, while CPUs and MPS gain little from it and lose accuracy.

Importing this module does not import torch; it loads on first use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["default_dtype", "select_device"]

_GPU_INDEX = re.compile(r"(?:(?:cuda|gpu):?)?(\d+)|cuda|gpu")

_PRECISIONS = {
    "fp32": "float32", "float32": "float32", "float": "float32", "32": "float32",
    "fp16": "float16", "float16": "float16", "half": "float16", "16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}


def select_device(override: str | torch.device | None = None) -> torch.device:
    """The torch device to run on.

    ``override`` wins when given: ``"cpu"``, ``"cuda"`` / ``"gpu"`` (current CUDA device),
    ``"cuda:1"`` / ``"cuda1"``, a bare index ``"0"`` (= ``cuda:0``), ``"mps"``, or ``"auto"``
    (same as None). Without one: CUDA, then Apple MPS, then CPU. An unknown or unavailable
    override raises ValueError.
    """
    import torch

    if isinstance(override, torch.device):
        override = str(override)
    text = (override or "auto").strip().lower()
    cuda_ok = torch.cuda.is_available()
    mps_ok = _mps_available()
    if text == "auto":
        if cuda_ok:
            return torch.device("cuda", torch.cuda.current_device())
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not mps_ok:
            raise InputError("device 'mps' was requested but Apple MPS is not available here")
        return torch.device("mps")
    m = _GPU_INDEX.fullmatch(text)
    if m is None:
        raise InputError(
            f"unknown device {override!r}; use 'auto', 'cpu', 'cuda', 'cuda:N', 'N' (a GPU "
            "index) or 'mps'"
        )
    if not cuda_ok:
        raise InputError(
            f"device {override!r} was requested but CUDA is not available (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'cpu' or 'auto'"
        )
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError(f"device {override!r} was requested but only {count} CUDA GPU(s) exist")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    import torch

    # older torch builds have no torch.backends.mps at all
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def default_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype:
    """The model dtype for ``device``.

    ``"auto"``: bfloat16 on CUDA GPUs that support it (float16 on older ones), float32 on CPU
    and MPS. Explicit: ``"fp32"``, ``"fp16"``, ``"bf16"`` (and their long spellings).
    """
    import torch

    device = torch.device(device)
    text = (precision or "auto").strip().lower()
    if text == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if text not in _PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use 'auto', 'fp32', 'fp16' or 'bf16'")
    return getattr(torch, _PRECISIONS[text])
