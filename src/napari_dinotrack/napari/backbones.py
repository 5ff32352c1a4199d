"""Which backbone the dock uses, where its weights come from, and one loaded copy to share.

Nothing here imports torch or transformers at module level: :meth:`BackboneCache.get` is meant
to be called from a worker thread, where the first load (and the heavy imports) happen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..backbone.base import Backbone

__all__ = ["LOCAL_FOLDER", "PIXEL", "BackboneCache", "BackboneChoice", "describe_source", "model_choices"]

#: model-combo value of the weight-free backbone
PIXEL = "pixel:"
#: model-combo value that reveals the folder chooser
LOCAL_FOLDER = "local folder…"


def model_choices() -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the model combo: the catalog, ``pixel:``, a local folder."""
    from ..backbone.catalog import list_models

    out = []
    for spec in list_models():
        lock = " · licence + login" if spec.gated else ""
        out.append((f"{spec.key} ({spec.family} {spec.size}){lock}", spec.key))
    out.append(("pixel: (no weights; demo/test)", PIXEL))
    out.append(("local folder…", LOCAL_FOLDER))
    return out


@dataclass(frozen=True)
class BackboneChoice:
    """What to load: a catalog name, ``"pixel:"`` or a model folder; device; precision."""

    model: str
    device: str = "auto"
    precision: str = "auto"

    @property
    def device_arg(self) -> str | None:
        """The ``device=`` argument for the engine (None = automatic)."""
        return None if self.device in ("", "auto") else self.device


def describe_source(model: str) -> str:
    """One line telling the user where the weights of ``model`` come from (no network, no torch)."""
    if not model:
        return "Choose a model."
    if model.startswith(PIXEL.rstrip(":") + ":"):
        return "Built-in pixel-colour features: no weights, nothing to download (demo and tests)."
    from ..backbone.catalog import resolve_model_name
    from ..backbone.loader import available_locally, locate_weights
    from ..errors import BackboneUnavailableError

    path = Path(model).expanduser()
    if model == LOCAL_FOLDER:
        return "Choose a folder that holds config.json + model.safetensors (from save_pretrained)."
    spec = resolve_model_name(model)
    if spec is None and (path.is_absolute() or path.exists()):
        if (path / "config.json").is_file():
            return f"Weights: local folder {path}"
        return f"⚠ {path} has no config.json: choose the folder written by save_pretrained()."
    try:
        source, _ = locate_weights(model)
    except BackboneUnavailableError as exc:
        return f"⚠ {str(exc).splitlines()[0]}"
    local = available_locally(spec or model)
    if local:
        return f"Weights: found locally in {local}"
    if spec is not None and spec.gated:
        return (
            f"Weights: downloaded once from huggingface.co/{source} (gated: accept the licence on "
            "the model page and run `hf auth login` first), then cached."
        )
    return f"Weights: downloaded once from huggingface.co/{source}, then cached."


class BackboneCache:
    """Keeps the most recently loaded backbone, so Track and the heatmap share one copy.

    Thread-safe; loading happens in the calling thread (call it from a worker).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: BackboneChoice | None = None
        self._backbone: Backbone | None = None

    def get(self, choice: BackboneChoice) -> Backbone:
        """Load (or reuse) the backbone for ``choice``.

        Raises the engine's ``BackboneUnavailableError`` (weights missing) or ValueError
        (device / precision not available) with a message meant for the user.
        """
        with self._lock:
            if self._key == choice and self._backbone is not None:
                return self._backbone
            from ..backbone.loader import load_backbone

            # drop the previous model first so two big models never sit in memory together
            self._key, self._backbone = None, None
            backbone = load_backbone(choice.model, device=choice.device_arg, precision=choice.precision)
            self._key, self._backbone = choice, backbone
            return backbone

    def clear(self) -> None:
        """Forget the loaded backbone."""
        with self._lock:
            self._key, self._backbone = None, None
