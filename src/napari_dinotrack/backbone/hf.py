"""A transformers DINOv3 ViT / DINOv2 checkpoint as a :class:`~.base.Backbone`.

Cached weights are always tried first without any network access. The hub is contacted only if
that fails and neither ``HF_HUB_OFFLINE`` nor ``TRANSFORMERS_OFFLINE`` is set, after a quick
(3 s) reachability check of the hub endpoint, and with short hub time-outs, so a missing model is
reported within seconds instead of after minutes of retries. Only ``model.safetensors`` weights
are loaded and ``trust_remote_code`` is never used.

``extract`` returns features L2-normalised along the channel axis; on CPU they are always
float32, on a GPU they stay in the model's (half) precision to save memory and bandwidth -- call
``.float()`` if you need float32.

Importing this module does not import torch or transformers; they load on first use.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import hub
from .catalog import ModelSpec
from .device import default_dtype, select_device
from .weights import (
    SUPPORTED_MODEL_TYPES,
    BackboneUnavailableError,
    WeightLocation,
    cached_snapshot,
    first_line,
    has_weights,
    hub_failure_reason,
    locate,
    patch_size_of,
    unavailable,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .base import WorkGeometry

__all__ = ["DEFAULT_BATCH_SIZE", "HFDinoBackbone"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8


class HFDinoBackbone:
    """A transformers DINOv3 ViT / DINOv2 model as a :class:`~.base.Backbone`.

    Build it with :func:`~.loader.load_backbone` (or :meth:`from_name`). ``extract`` drops the
    special tokens (CLS + registers) and returns the patch grid, L2-normalised along channels.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        source: str = "",
        spec: ModelSpec | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        from .preprocess import IMAGENET_MEAN, IMAGENET_STD

        cfg = model.config
        if cfg.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"unsupported architecture {cfg.model_type!r}")
        self.name = name
        self.patch_size = int(patch_size_of(cfg.patch_size))
        self.feature_dim = int(cfg.hidden_size)
        self.device = device
        self.dtype = dtype
        self.family = SUPPORTED_MODEL_TYPES[cfg.model_type]
        self.num_special_tokens = 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.mean = tuple(mean) if mean is not None else IMAGENET_MEAN
        self.std = tuple(std) if std is not None else IMAGENET_STD
        self.source = source
        self.spec = spec
        self.batch_size = max(1, int(batch_size))
        # from_pretrained(dtype=...) already cast the weights and keeps some buffers (DINOv3's
        # RoPE frequencies) in float32 on purpose; cast only models built some other way
        if next(model.parameters()).dtype != dtype:
            model = model.to(dtype=dtype)
        self.model = model.to(device=device).eval()

    @classmethod
    def from_name(
        cls,
        name_or_path: str | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> HFDinoBackbone:
        """Locate and load a checkpoint (see :mod:`.weights` for where it is looked up)."""
        loc = locate(name_or_path)
        dev = select_device(device)
        dtype = default_dtype(dev, precision)
        t0 = time.perf_counter()
        model, folder, online = _load_model(loc, dtype)
        stats = _read_norm_stats(
            folder if os.path.isdir(folder) else None,
            loc.source if loc.kind == "hub" else None,
            loc.cache_dir,
            online,
        )
        if loc.kind == "hub":
            name = loc.spec.key if loc.spec is not None else loc.source
        else:
            name = (name_or_path or "").strip() or loc.source
        backbone = cls(
            model,
            name=name,
            device=dev,
            dtype=dtype,
            mean=stats[0] if stats else None,
            std=stats[1] if stats else None,
            source=folder,
            spec=loc.spec,
            batch_size=batch_size,
        )
        log.info(
            "loaded backbone %s from %s on %s (%s) in %.2f s",
            name,
            folder,
            dev,
            str(dtype).removeprefix("torch."),
            time.perf_counter() - t0,
        )
        return backbone

    def compile(self) -> HFDinoBackbone:
        """Run the model through ``torch.compile`` from now on; returns the backbone.

        The first batch of each new shape then takes a while to compile (88 s for ViT-S/16 on a
        2-core CPU, about 20 s on a GPU). Worth it on a GPU, where the reference probe ran
        ViT-S/16 1.6x faster in bf16 batches of 8; on a CPU it gained nothing measurable
        (docs/benchmarks.md).
        """
        import torch

        self.model = torch.compile(self.model)
        return self

    def __repr__(self) -> str:
        return (
            f"HFDinoBackbone(name={self.name!r}, patch_size={self.patch_size}, "
            f"feature_dim={self.feature_dim}, device={self.device}, dtype={self.dtype})"
        )

    def extract(
        self, frames: np.ndarray | torch.Tensor, geometry: WorkGeometry, batch_size: int | None = None
    ) -> torch.Tensor:
        """(B, H, W, 3) or (H, W, 3) uint8 RGB -> (B, C, grid_h, grid_w) unit-norm features.

        Frames go through the model ``batch_size`` at a time (default: the backbone's
        ``batch_size``). float32 on CPU, the model dtype on GPUs.
        """
        import torch

        from ..profiling import timed
        from ..vectors import unit
        from .preprocess import to_working_tensor

        if geometry.patch_size != self.patch_size:
            raise ValueError(
                f"geometry patch size {geometry.patch_size} does not match the backbone's "
                f"{self.patch_size}; build it with compute_geometry(..., backbone.patch_size)"
            )
        if frames.ndim == 3:
            frames = frames[None]
        out_dtype = torch.float32 if self.device.type == "cpu" else self.dtype
        gh, gw = geometry.grid_height, geometry.grid_width
        expected = gh * gw + self.num_special_tokens
        step = max(1, int(batch_size or self.batch_size))
        chunks = []
        with torch.inference_mode():
            for start in range(0, frames.shape[0], step):
                with timed("preprocess"):
                    x = to_working_tensor(
                        frames[start : start + step],
                        geometry,
                        self.device,
                        self.dtype,
                        mean=self.mean,
                        std=self.std,
                    )
                tokens = self.model(pixel_values=x).last_hidden_state
                if tokens.shape[1] != expected:
                    raise RuntimeError(
                        f"{self.name}: got {tokens.shape[1]} tokens for a {gh}x{gw} patch grid, "
                        f"expected {gh * gw} patches + {self.num_special_tokens} special tokens "
                        f"= {expected} (input {tuple(x.shape)})"
                    )
                patches = tokens[:, self.num_special_tokens :, :]
                # unit length along the last, contiguous axis before the channels move to the front
                grid = unit(patches.float(), dim=-1).reshape(x.shape[0], gh, gw, self.feature_dim).permute(0, 3, 1, 2)
                chunks.append(grid.to(out_dtype).contiguous())
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


# --------------------------------------------------------------------------- loading


def _load_model(loc: WeightLocation, dtype: torch.dtype) -> tuple[Any, str, bool]:
    """Load the transformers model for ``loc``: (model, folder it came from, used_network)."""
    if loc.kind == "folder":
        return _load_from_folder(loc, dtype), loc.source, False
    return _load_from_hub(loc, dtype)


def _load_from_folder(loc: WeightLocation, dtype: torch.dtype) -> Any:
    if not has_weights(Path(loc.source)):
        raise BackboneUnavailableError(
            f"Cannot load the backbone from the folder {loc.source!r}: it has no "
            "model.safetensors (only safetensors weights are loaded; convert or re-save "
            "the model with save_pretrained()).",
            loc.label,
        )
    try:
        return _from_pretrained(loc.source, {}, dtype, local_only=True)
    except BackboneUnavailableError:
        raise
    except Exception as exc:
        raise BackboneUnavailableError(
            f"Cannot load the backbone from the folder {loc.source!r}: {first_line(exc)}",
            loc.label,
        ) from exc


def _load_from_hub(loc: WeightLocation, dtype: torch.dtype) -> tuple[Any, str, bool]:
    """The cached snapshot if it loads, else a download: (model, folder, used_network)."""
    snap = cached_snapshot(loc.source, loc.cache_dir)
    local_error: BaseException | None = None
    if snap is not None:
        try:
            return _from_pretrained(loc.source, loc.kwargs, dtype, local_only=True), str(snap), False
        except BackboneUnavailableError:
            raise
        except Exception as exc:  # incomplete cache and the like: try the hub
            local_error = exc
    where = f"not in the Hugging Face cache ({loc.cache_dir})"
    offline = hub.offline_setting()
    if offline:
        raise unavailable(
            loc,
            f"its weights are {where} and {offline}=1 forbids downloading them.",
            local_error,
        )
    if not hub.reachable():
        raise unavailable(
            loc,
            f"its weights are {where} and the Hugging Face hub cannot be reached (no internet connection?).",
            local_error,
        )
    try:
        with hub.short_timeouts():
            model = _from_pretrained(loc.source, loc.kwargs, dtype, local_only=False)
    except BackboneUnavailableError:
        raise
    except Exception as exc:
        raise unavailable(loc, hub_failure_reason(exc, where), exc) from exc
    snap = cached_snapshot(loc.source, loc.cache_dir)
    return model, str(snap) if snap else loc.source, True


def _from_pretrained(source: str, kwargs: dict[str, Any], dtype: torch.dtype, *, local_only: bool) -> Any:
    from transformers import AutoConfig, AutoModel

    common = dict(kwargs, local_files_only=local_only, trust_remote_code=False)
    config = AutoConfig.from_pretrained(source, **common)
    model_type = getattr(config, "model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise BackboneUnavailableError(
            f"Cannot use {source!r} as a backbone: its architecture is {model_type!r}, but only "
            f"DINOv3 ViT and DINOv2 models are supported ({', '.join(SUPPORTED_MODEL_TYPES)}).",
            source,
        )
    return AutoModel.from_pretrained(source, config=config, dtype=dtype, use_safetensors=True, **common)


def _read_norm_stats(
    folder: str | None, repo_id: str | None, cache_dir: str | None, online: bool
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``image_mean``/``image_std`` from the checkpoint's preprocessor_config.json, if any."""
    path = _preprocessor_config(folder, repo_id, cache_dir, online)
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        mean = tuple(float(v) for v in data["image_mean"])
        std = tuple(float(v) for v in data["image_std"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        log.warning("ignoring %s: image_mean/image_std are not 3 positive values", path)
        return None
    return mean, std


def _preprocessor_config(folder: str | None, repo_id: str | None, cache_dir: str | None, online: bool) -> str | None:
    """Path of the checkpoint's preprocessor_config.json: in ``folder``, the cache, or (only if
    the weights were just downloaded anyway) freshly fetched from the hub."""
    if folder is not None and os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
        return os.path.join(folder, "preprocessor_config.json")
    if repo_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "preprocessor_config.json", cache_dir=cache_dir)
        if isinstance(found, str):
            return found
        if online:
            from huggingface_hub import hf_hub_download

            with hub.short_timeouts():
                return hf_hub_download(repo_id, "preprocessor_config.json", cache_dir=cache_dir)
    except Exception as exc:
        log.debug("no preprocessor_config.json for %s: %s", repo_id, exc)
    return None
