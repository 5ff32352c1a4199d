"""Settings of the exchange tools (clean-up filters, overlay video), light to import for the command line."""

from __future__ import annotations

from pydantic import model_validator

from ..schema import Settings, setting

__all__ = ["FORMATS", "INDIVIDUALS", "MAX_WINDOW", "SUFFIXES", "CleanupSettings", "RenderSettings"]

#: export formats: DeepLabCut, SLEAP, NWB (ndx-pose), movement's netCDF
FORMATS: tuple[str, ...] = ("dlc", "sleap", "nwb", "netcdf")
#: one file for all animals, or one per animal
INDIVIDUALS: tuple[str, ...] = ("together", "split")
#: accepted output suffixes per format
SUFFIXES: dict[str, tuple[str, ...]] = {
    "dlc": (".h5", ".csv"),
    "sleap": (".h5", ".slp"),
    "nwb": (".nwb",),
    "netcdf": (".nc",),
}

#: longest smoothing window and gap (frames) the settings accept
MAX_WINDOW = 1001


class CleanupSettings(Settings):
    """What :func:`~napari_dinotrack.exchange.cleanup.clean` does; every step is off by default."""

    min_confidence: float = setting(
        0.0, "Drop points whose score is below this (0 keeps every point).", ge=0.0, le=1.0, group="cleanup"
    )
    max_gap: int = setting(
        0,
        "Fill gaps of up to this many frames by linear interpolation (0: no filling).",
        ge=0,
        le=MAX_WINDOW,
        group="cleanup",
    )
    median_window: int = setting(
        0, "Rolling median over this many frames (0: off; an odd number >= 3).", ge=0, le=MAX_WINDOW, group="cleanup"
    )
    savgol_window: int = setting(
        0,
        "Savitzky–Golay smoothing over this many frames (0: off; odd, > the order).",
        ge=0,
        le=MAX_WINDOW,
        group="cleanup",
    )
    savgol_order: int = setting(2, "Polynomial order of the Savitzky–Golay filter.", ge=0, le=9, group="cleanup")

    @model_validator(mode="after")
    def _windows(self) -> CleanupSettings:
        for name in ("median_window", "savgol_window"):
            value = getattr(self, name)
            if value and (value < 3 or value % 2 == 0):
                raise ValueError(f"{name} must be 0 (off) or an odd number >= 3, got {value}")
        if self.savgol_window and self.savgol_window <= self.savgol_order:
            raise ValueError(
                f"savgol_window ({self.savgol_window}) must be larger than savgol_order ({self.savgol_order})"
            )
        return self

    @property
    def active(self) -> bool:
        """Whether any step is switched on."""
        return bool(self.min_confidence or self.max_gap or self.median_window or self.savgol_window)

    def summary(self) -> str:
        """The steps that are on, e.g. ``"score >= 0.5, gaps <= 3, median 5"`` (``"none"`` when off)."""
        steps = []
        if self.min_confidence:
            steps.append(f"score >= {self.min_confidence:g}")
        if self.max_gap:
            steps.append(f"gaps <= {self.max_gap}")
        if self.median_window:
            steps.append(f"median {self.median_window}")
        if self.savgol_window:
            steps.append(f"Savitzky-Golay {self.savgol_window}/{self.savgol_order}")
        return ", ".join(steps) or "none"


class RenderSettings(Settings):
    """How :func:`~napari_dinotrack.exchange.render.render_video` draws the overlay."""

    trail: int = setting(
        10, "Frames of trail drawn behind each keypoint (0: no trails).", ge=0, le=1000, group="render"
    )
    radius: int = setting(
        0, "Dot radius in video pixels (0: 1/50 of the frame's short side, 3 to 12).", ge=0, le=100, group="render"
    )
    line_width: int = setting(2, "Width of skeleton lines and rings, in video pixels.", ge=1, le=20, group="render")
    quality: int = setting(8, "H.264 quality, 1 (small file) to 10 (near lossless).", ge=1, le=10, group="render")
