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
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runsettings import RunSettings
from ..schema import setting

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


class WidgetSettings(RunSettings):
    """Everything the dock remembers: the run settings plus its own. ``tracker`` holds changed TrackerConfig values."""

    local_folder: str = setting("", "The model folder chosen with 'local folder…'.", group="backbone")
    preset: str = setting("custom", "The tracker preset shown in the dock.", group="tracker")
    tracker: dict[str, Any] = setting({}, "Tracker settings that differ from the defaults.", group="tracker")
    keypoint_names: str = setting(
        "nose, leftear, rightear, tail_base", "Keypoint names for new instances.", group="seed"
    )
    instance_name: str = setting("animal1", "Name of the next instance.", group="seed")
    show_trajectories: bool = setting(True, "Draw trajectories.", group="display")
    tail_length: int = setting(15, "Trajectory tail, frames.", ge=1, le=100_000, group="display")
    heatmap_opacity: float = setting(0.6, "Opacity of the similarity heatmap.", ge=0.0, le=1.0, group="display")
    heatmap_from_seed: bool = setting(False, "Compare clicks with the seed frame's patch.", group="display")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: Any) -> WidgetSettings:
        """Build from a dict, dropping (with a warning) unknown keys and values that are not valid."""
        out = cls()
        if not isinstance(data, dict):
            return out
        for name in cls.model_fields:
            if name not in data:
                continue
            value = data[name]
            if cls.model_fields[name].annotation is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            try:
                setattr(out, name, value)
            except ConfigError as exc:
                logger.warning("ignoring a remembered setting: %s", exc)
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
