"""Clean-up of tracked positions with movement's filters; the input is never changed.

In order: drop points whose score is below a threshold (``filter_by_confidence``), fill gaps of
up to N frames (``interpolate_over_time``), then smooth with a rolling median (``rolling_filter``)
and/or a Savitzky–Golay filter (``savgol_filter``). Smoothing never fills a gap and never drops a
point next to one: where a window holds a gap the point keeps its value from the step before.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from .extra import require
from .settings import CleanupSettings

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["CleanupSettings", "clean"]


def clean(ds: xr.Dataset, settings: CleanupSettings) -> xr.Dataset:
    """A copy of the poses dataset ``ds`` with the clean-up steps of ``settings`` applied to its positions.

    The confidence is kept as it was; ``attrs["cleanup"]`` records the steps.
    """
    out = ds.copy()
    if not settings.active:
        return out
    filtering = require("movement.filtering", "Cleaning up tracks")
    import xarray as xr

    # numbagg (xarray's default for rolling windows and gap lengths) compiles for ~20 s on first use;
    # bottleneck is compiled ahead and as fast here
    with xr.set_options(use_numbagg=False, use_bottleneck=True):
        position = _filtered(filtering, ds, settings)
    out["position"] = position
    out.attrs["cleanup"] = settings.summary()
    return out


def _filtered(filtering: ModuleType, ds: xr.Dataset, settings: CleanupSettings) -> xr.DataArray:
    position = ds["position"]
    if settings.min_confidence:
        position = filtering.filter_by_confidence(position, ds["confidence"], threshold=settings.min_confidence)
    if settings.max_gap:
        position = filtering.interpolate_over_time(position, max_gap=settings.max_gap)
    if settings.median_window:
        smoothed = filtering.rolling_filter(position, settings.median_window, statistic="median", min_periods=1)
        position = smoothed.where(position.notnull())
    if settings.savgol_window:
        smoothed = filtering.savgol_filter(
            position, settings.savgol_window, polyorder=settings.savgol_order, mode="nearest"
        )
        position = smoothed.fillna(position)
    return position
