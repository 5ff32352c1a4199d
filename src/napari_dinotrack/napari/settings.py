"""The dock widget's settings, remembered between sessions in a small JSON file.

The file is ``$NAPARI_DINOTRACK_SETTINGS`` if that variable is set (tests point it into a
temporary folder), else ``settings.json`` in the per-user config folder
(``~/.config/napari-dinotrack/`` on Linux). A missing or damaged file gives the defaults; an
unknown or invalid entry is dropped, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS_ENV", "WidgetSettings", "load_settings", "save_settings", "settings_path"]

logger = logging.getLogger(__name__)

SETTINGS_ENV = "NAPARI_DINOTRACK_SETTINGS"
APP_NAME = "napari-dinotrack"


def settings_path() -> Path:
    """Where the settings live (see the module docstring)."""
    override = os.environ.get(SETTINGS_ENV)
    if override:
        return Path(override).expanduser()
    try:
        from platformdirs import user_config_dir

        return Path(user_config_dir(APP_NAME, appauthor=False)) / "settings.json"
    except ImportError:  # platformdirs comes with napari; this is only a fallback
        return Path.home() / ".config" / APP_NAME / "settings.json"


@dataclass
class WidgetSettings:
    """Everything the dock widget remembers. ``tracker`` holds non-default TrackerConfig values."""

    model: str = "dinov3-vits16"
    local_folder: str = ""
    short_side: int = 768
    device: str = "auto"
    precision: str = "auto"
    preset: str = "custom"
    tracker: dict[str, Any] = field(default_factory=dict)
    keypoint_names: str = "nose, leftear, rightear, tail_base"
    instance_name: str = "animal1"
    show_trajectories: bool = True
    tail_length: int = 15
    heatmap_opacity: float = 0.6
    heatmap_from_seed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WidgetSettings:
        """Build from a dict, dropping unknown keys and values of the wrong type."""
        out = cls()
        if not isinstance(data, dict):
            return out
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            default = getattr(out, f.name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                value = float(value) if ok else value
            else:
                ok = isinstance(value, type(default))
            if ok:
                setattr(out, f.name, value)
            else:
                logger.warning("ignoring setting %s=%r (expected %s)", f.name, value, type(default).__name__)
        return out


def load_settings(path: str | os.PathLike[str] | None = None) -> WidgetSettings:
    """Read the settings file; defaults when it is missing or unreadable."""
    path = Path(path) if path is not None else settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return WidgetSettings()
    except (OSError, ValueError) as exc:
        logger.warning("could not read %s (%s); using default settings", path, exc)
        return WidgetSettings()
    return WidgetSettings.from_dict(data)


def save_settings(settings: WidgetSettings, path: str | os.PathLike[str] | None = None) -> Path | None:
    """Write the settings file atomically; return its path, or None if it could not be written."""
    from ..io.atomic import atomic_write_text

    path = Path(path) if path is not None else settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        logger.warning("could not save settings to %s: %s", path, exc)
        return None
    return path
