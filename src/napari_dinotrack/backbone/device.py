"""Which torch device a backbone runs on, and in which precision.

``precision="auto"`` runs the model in bfloat16 on CUDA GPUs that support it (Ampere and newer;
float16 on older GPUs) and on CPUs with native bfloat16 arithmetic (AVX-512 BF16 or AMX), and in
float32 on other CPUs and on Apple MPS. Half precision roughly halves GPU time and memory; on a
CPU with bfloat16 instructions ViT-S/16 runs about 1.4x faster with features within a cosine
similarity of 0.99 of float32, while CPUs without them would emulate it slowly
(docs/benchmarks.md, "bf16 on the CPU"). ``precision="fp32"`` opts out.

Importing this module does not import torch; it loads on first use.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["cpu_has_bf16", "default_dtype", "select_device"]

_GPU_INDEX = re.compile(r"(?:(?:cuda|gpu):?)?(\d+)|cuda|gpu")

_PRECISIONS = {
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "32": "float32",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "16": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
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
            f"unknown device {override!r}; use 'auto', 'cpu', 'cuda', 'cuda:N', 'N' (a GPU index) or 'mps'"
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


# CPU features that make bfloat16 matrix products native instead of emulated
_BF16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), checked once per process.

    torch reports the instruction sets; a tiny bfloat16 matrix product must then also run and
    agree with float32, so a build without bfloat16 kernels never gets chosen.
    """
    import torch

    get_capabilities = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    try:
        capabilities = get_capabilities() if get_capabilities is not None else {}
    except Exception:  # an unusual CPU torch cannot describe: no bfloat16 then
        return False
    if not any(capabilities.get(name) for name in _BF16_CPU_FEATURES):
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.rand(64, 64, generator=generator)
        b = torch.rand(64, 64, generator=generator)
        product = (a.bfloat16() @ b.bfloat16()).float()
    except RuntimeError:
        return False
    return bool(torch.allclose(product, a @ b, rtol=0.05, atol=0.05))


def default_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype:
    """The model dtype for ``device``.

    ``"auto"``: bfloat16 on CUDA GPUs that support it (float16 on older ones) and on CPUs with
    native bfloat16 (:func:`cpu_has_bf16`), else float32 (other CPUs, MPS). Explicit: ``"fp32"``,
    ``"fp16"``, ``"bf16"`` (and their long spellings).
    """
    import torch

    device = torch.device(device)
    text = (precision or "auto").strip().lower()
    if text == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_bf16():
            return torch.bfloat16
        return torch.float32
    if text not in _PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use 'auto', 'fp32', 'fp16' or 'bf16'")
    return getattr(torch, _PRECISIONS[text])
