"""One loaded backbone per process and run setting, shared by every video that process tracks."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..backbone.base import Backbone
    from ..runsettings import RunSettings

__all__ = ["ModelCache"]


class ModelCache:
    """Backbones keyed by (model, device, precision); each is loaded once, on first use (thread-safe).

    ``loads`` counts the models this cache has loaded, which is how a batch shows that a worker
    loaded its model once and not once per video.
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], Backbone] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, settings: RunSettings, device: str | None = None) -> tuple[Backbone, bool]:
        """The backbone for ``settings`` on ``device`` (default: the settings' own), and whether it was loaded now."""
        device = device or settings.device
        key = (settings.model, device, settings.precision)
        # one lock for all keys: two threads of one worker never load the same large model twice
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                return model, False
            from ..backbone.loader import load_backbone

            model = load_backbone(
                settings.model, device=None if device == "auto" else device, precision=settings.precision
            )
            self._models[key] = model
            self.loads += 1
            return model, True

    def clear(self) -> None:
        """Forget every model (their memory is freed once no video uses them)."""
        with self._lock:
            self._models.clear()
