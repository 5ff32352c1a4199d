"""The dock's keyboard shortcuts, bound on the viewer while the dock is open.

The keys were chosen among those napari's Points and Labels layers leave free, so they work
whichever of the plugin's layers is selected. Each one is also shown in its button's tooltip
(:func:`with_key`) and listed in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari

__all__ = ["SHORTCUTS", "Shortcut", "bind_shortcuts", "with_key"]


@dataclass(frozen=True)
class Shortcut:
    """A key (napari's spelling, e.g. ``Shift-N``) and what it does."""

    key: str
    action: str
    description: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("N", "next_suspicious", "Go to the next suspicious frame"),
    Shortcut("Shift-N", "previous_suspicious", "Go to the previous suspicious frame"),
    Shortcut("H", "toggle_hidden", "Mark the selected keypoints hidden / visible"),
    Shortcut("Shift-S", "save_frame", "Save this frame as a manual seed"),
    Shortcut("T", "track_from_here", "Track from this frame"),
)


def key_of(action: str) -> str:
    """The key bound to ``action``."""
    return next(s.key for s in SHORTCUTS if s.action == action)


def with_key(tooltip: str, action: str) -> str:
    """A tooltip that ends with the action's key, e.g. ``"… [N]"``."""
    return f"{tooltip} [{key_of(action)}]"


def bind_shortcuts(viewer: napari.viewer.Viewer, actions: Mapping[str, Callable[[], Any]]) -> Callable[[], None]:
    """Bind every :data:`SHORTCUTS` key whose action is in ``actions`` on ``viewer``; returns the unbinder."""
    bound: list[str] = []
    for shortcut in SHORTCUTS:
        action = actions.get(shortcut.action)
        if action is None:
            continue
        viewer.bind_key(shortcut.key, _callback(action), overwrite=True)
        bound.append(shortcut.key)

    def unbind() -> None:
        for key in bound:
            viewer.bind_key(key, None, overwrite=True)
        bound.clear()

    return unbind


def _callback(action: Callable[[], Any]) -> Callable[[Any], None]:
    def on_key(_viewer: Any) -> None:
        action()

    return on_key
