"""The optional packages of the ``[exchange]`` extra, imported on demand."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingExtraError

__all__ = ["EXTRA", "require"]

EXTRA = "exchange"
#: pip names of the modules the extra brings, where they differ from the module's name
_PACKAGES = {"sleap_io": "sleap-io", "ndx_pose": "ndx-pose"}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"movement.io.save_poses"``), or raise MissingExtraError naming the extra.

    ``purpose`` says what needed it ("Exporting to DeepLabCut"), so the message tells the user what
    they tried and what to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        raise MissingExtraError(_PACKAGES.get(top, top), EXTRA, purpose) from exc
