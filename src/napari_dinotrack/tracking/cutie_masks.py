"""Mask propagation with Cutie, a dedicated video object segmentation network (optional).

Used only when its package and a weights file are installed locally; nothing is ever downloaded
here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbone.base import WorkGeometry
from .mask_base import LostInstanceFallback, exclusive_masks

__all__ = ["CutieMaskPropagator", "cutie_available"]


def cutie_available() -> bool:
    """True when the optional ``cutie`` package can be imported (its weights are a separate file)."""
    return importlib.util.find_spec("cutie") is not None


class CutieMaskPropagator:
    """Thin wrapper around Cutie's ``InferenceCore`` (optional dependency, never downloaded).

    Pass a ready ``network`` (a loaded ``cutie.model.cutie.CUTIE`` with its ``cfg``) or the path
    of a local ``weights`` file (e.g. ``cutie-base-mega.pth``). Cutie segments images, so
    :meth:`reset` and :meth:`step` need the RGB ``frame``; the features are ignored.
    """

    def __init__(
        self,
        network: Any = None,
        weights: str | Path | None = None,
        device: str | torch.device | None = None,
        max_internal_size: int = 480,
        mem_every: int = 5,
        max_mem_frames: int = 5,
        max_fallback_frames: int = 5,
        min_area_frac: float = 0.05,
    ):
        if not cutie_available():
            raise ImportError(
                "Cutie mask propagation needs the optional 'cutie' package, which is not installed. "
                "Install Cutie (https://github.com/hkchengrex/Cutie) and its weights file yourself, "
                "or use mask propagation 'dino' (no extra download)."
            )
        from omegaconf import open_dict

        if network is None:
            if weights is None or not Path(weights).is_file():
                raise FileNotFoundError(
                    f"Cutie weights file not found: {weights!r}; pass weights=<local .pth> or a loaded network "
                    "(weights are never downloaded automatically)"
                )
            network = _load_cutie(Path(weights), torch.device(device or "cpu"))
        self.network = network
        self.device = next(network.parameters()).device
        with open_dict(network.cfg):
            network.cfg["max_internal_size"] = int(max_internal_size)
            network.cfg["mem_every"] = int(mem_every)
            network.cfg["max_mem_frames"] = int(max_mem_frames)
        self._fallback = LostInstanceFallback(max_fallback_frames, min_area_frac)
        self._processor: Any = None
        self._n = 0

    def reset(
        self,
        features: torch.Tensor,
        masks: torch.Tensor | np.ndarray,
        geometry: WorkGeometry,
        frame: np.ndarray | None = None,
    ) -> None:
        """Prime Cutie's memory with the seed ``frame`` and its masks (the frame is required)."""
        from cutie.inference.inference_core import InferenceCore

        if frame is None:
            raise ValueError("Cutie needs the seed frame's image: call reset(..., frame=rgb)")
        masks = exclusive_masks(torch.as_tensor(masks))
        self._n = len(masks)
        self._processor = InferenceCore(self.network, cfg=self.network.cfg)
        index = torch.zeros(masks.shape[1:], dtype=torch.long)
        for i in range(self._n):
            index[masks[i]] = i + 1
        with torch.inference_mode():
            self._processor.step(self._image(frame), index.to(self.device), objects=list(range(1, self._n + 1)))
        self._fallback.reset(masks.cpu().numpy())

    def step(self, features: torch.Tensor, frame: np.ndarray | None = None) -> torch.Tensor:
        """Segment ``frame`` from Cutie's memory; returns (I, H, W) bool masks on the features' device."""
        if self._processor is None:
            raise RuntimeError("CutieMaskPropagator.step called before reset")
        if frame is None:
            raise ValueError("Cutie needs each frame's image: call step(features, frame=rgb)")
        with torch.inference_mode():
            prob = self._processor.step(self._image(frame))  # (objects + 1, H, W), background first
        labels = prob.argmax(0).cpu().numpy()
        masks = np.stack([labels == i + 1 for i in range(self._n)]) if self._n else np.zeros((0, *labels.shape), bool)
        self._fallback.apply(masks)
        return torch.from_numpy(masks).to(features.device)

    def _image(self, frame: np.ndarray) -> torch.Tensor:
        img = torch.as_tensor(np.ascontiguousarray(frame), device=self.device)
        return img.permute(2, 0, 1).float().div_(255.0)


def _load_cutie(weights: Path, device: torch.device) -> Any:
    """Build Cutie from its packaged eval config and a local weights file."""
    from cutie.inference.utils.args_utils import get_dataset_cfg
    from cutie.model.cutie import CUTIE
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    with initialize_config_module(version_base="1.3.2", config_module="cutie.config"):
        cfg = compose(config_name="eval_config")
    with open_dict(cfg):
        cfg["weights"] = str(weights)
    get_dataset_cfg(cfg)
    network = CUTIE(cfg).to(device).eval()
    network.load_weights(torch.load(weights, map_location=device, weights_only=True))
    return network
