"""The public entry point: :func:`load_backbone` turns a model name into a :class:`~.base.Backbone`.

The work is done in small modules, re-exported here so callers need only this one:
``device`` (which device and precision), ``weights`` (where the weights come from, and the
:class:`BackboneUnavailableError` that lists the remedies when they cannot be had), ``hub`` (the
Hugging Face cache, offline switches and short time-outs) and ``hf`` (:class:`HFDinoBackbone`,
loading a transformers model and extracting its patch features).

Importing this module does not import torch or transformers; they load on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .device import default_dtype, select_device
from .hf import DEFAULT_BATCH_SIZE, HFDinoBackbone
from .weights import ENV_LOCATION, BackboneUnavailableError, available_locally, locate_weights

if TYPE_CHECKING:
    import torch

    from .base import Backbone

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ENV_LOCATION",
    "BackboneUnavailableError",
    "HFDinoBackbone",
    "available_locally",
    "default_dtype",
    "load_backbone",
    "locate_weights",
    "select_device",
]


def load_backbone(
    model: str | os.PathLike[str] | Backbone | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Backbone:
    """The backbone called ``model``.

    * None -> :data:`~.catalog.DEFAULT_MODEL` (or the ``DINOV3_LOCATION`` model folder);
    * a :class:`~.base.Backbone` instance is returned unchanged;
    * ``"scheme:argument"`` names of registered backbones (e.g. ``"pixel:"``) go to their
      factory as ``factory(argument, device=..., precision=...)``;
    * anything else is a catalog key/alias, repo id or local folder, loaded as
      :class:`HFDinoBackbone` (see :mod:`.weights` for the lookup order).

    Raises :class:`BackboneUnavailableError` when the weights cannot be found or fetched and
    ValueError for a bad ``device``/``precision``.
    """
    from . import pixel  # noqa: F401  (registers "pixel:")
    from .base import Backbone, lookup_backbone_factory

    if model is not None and not isinstance(model, str | os.PathLike):
        if isinstance(model, Backbone):
            return model
        raise TypeError(f"model must be a name, a path or a Backbone, not {type(model).__name__}")
    name = os.fspath(model) if model is not None else None
    # a path is always a folder, even one whose name happens to contain a colon
    if name is not None and not isinstance(model, os.PathLike):
        found = lookup_backbone_factory(name.strip())
        if found is not None:
            factory, argument = found
            dev = select_device(device) if device is not None else None
            return factory(argument, device=dev, precision=precision)
    return HFDinoBackbone.from_name(name, device=device, precision=precision, batch_size=batch_size)
