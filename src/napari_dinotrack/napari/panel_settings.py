"""What the dock remembers between sessions, read from its panels and shown in them again.

The file format and its validation are in ``settings.py``; this module only maps the panels'
editors to :class:`~napari_dinotrack.napari.settings.WidgetSettings` fields and back.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .settings import WidgetSettings

if TYPE_CHECKING:
    from ..tracking.config import TrackerConfig
    from .panels import BackbonePanel, DisplayPanel, SeedPanel, TrackerConfigPanel, TrackPanel

__all__ = ["read_panels", "show_in_panels", "tracker_config_from"]

logger = logging.getLogger(__name__)


def tracker_config_from(changed: dict[str, Any]) -> TrackerConfig:
    """The default TrackerConfig with saved ``changed`` values; unknown keys dropped, defaults if invalid."""
    from ..tracking.config import TrackerConfig

    known = set(TrackerConfig.model_fields)
    try:
        return TrackerConfig.from_dict({k: v for k, v in changed.items() if k in known})
    except ConfigError as exc:
        logger.warning("saved tracker settings ignored: %s", exc)
        return TrackerConfig()


def read_panels(
    bp: BackbonePanel, cp: TrackerConfigPanel, sp: SeedPanel, dp: DisplayPanel, tp: TrackPanel
) -> WidgetSettings:
    """The panels' state as settings (only the tracker values that differ from the defaults)."""
    from ..tracking.config import TrackerConfig

    defaults = TrackerConfig().to_dict()
    tracker = {k: v for k, v in cp.values().items() if defaults.get(k) != v}
    return WidgetSettings(
        model=str(bp.model.value),
        local_folder=str(bp.folder.value or "") if bp.folder.value else "",
        short_side=int(bp.short_side.value),
        device=str(bp.device.value),
        precision=bp.precision.value,  # one of the combo's PRECISIONS; the settings model checks it
        preset=str(cp.preset.value),
        tracker=tracker,
        keypoint_names=sp.names.value,
        instance_name=sp.instance.value,
        show_trajectories=bool(dp.trajectories.value),
        tail_length=int(dp.tail_length.value),
        heatmap_opacity=float(dp.opacity.value),
        heatmap_from_seed=bool(dp.from_seed.value),
        direction=tp.direction,
    )


def show_in_panels(
    s: WidgetSettings, bp: BackbonePanel, cp: TrackerConfigPanel, sp: SeedPanel, dp: DisplayPanel, tp: TrackPanel
) -> None:
    """Show saved settings in the panels; values the editors cannot take are skipped or clipped."""
    if s.local_folder and s.local_folder not in (".", ""):
        bp.folder.value = Path(s.local_folder)
    with contextlib.suppress(ValueError):  # a model no longer offered
        bp.model.value = s.model
    bp.short_side.value = int(max(bp.short_side.min, min(bp.short_side.max, s.short_side)))
    if s.device in bp.device.choices:
        bp.device.value = s.device
    if s.precision in bp.precision.choices:
        bp.precision.value = s.precision
    cp.set_config(tracker_config_from(s.tracker))
    with cp.preset.changed.blocked():
        cp.preset.value = cp.matching_preset()
    sp.names.value = s.keypoint_names
    sp.instance.value = s.instance_name
    dp.trajectories.value = s.show_trajectories
    dp.tail_length.value = max(1, s.tail_length)
    dp.opacity.value = min(1.0, max(0.0, s.heatmap_opacity))
    dp.from_seed.value = s.heatmap_from_seed
    tp.both_ways.value = s.direction == "both"
