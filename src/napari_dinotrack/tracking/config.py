"""TrackerConfig: every tracking setting, described once (range, help text, GUI group), with presets.

Distances named ``*_px`` are in native video pixels; search radii are in patches of the
backbone (16 working pixels for DINOv3, 14 for DINOv2; one patch is ``patch / scale`` video pixels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator

from ..errors import ConfigError
from ..schema import Settings, load_settings_file, setting, validate_settings

__all__ = ["PRESETS", "TrackerConfig"]


class TrackerConfig(Settings):
    """All tracking parameters. Defaults suit a typical 30 fps rodent video."""

    # --- motion prior and search window -------------------------------------------------
    search_tighten: float = setting(0.85, "Scales the base search radius (2 patches); lower = tighter.",
                                    ge=0.1, le=4.0, group="motion")
    velocity_gain: float = setting(0.9, "How much recent speed widens the search window.", ge=0.0, le=5.0,
                                   group="motion")
    flow_gain: float | None = setting(None, "How much optical-flow speed widens the window (empty = velocity gain).",
                                      ge=0.0, le=5.0, group="motion")
    min_search_radius: float = setting(2.5, "Smallest search radius, in patches.", ge=0.5, le=64.0, group="motion")
    max_search_radius: float = setting(12.0, "Largest search radius, in patches.", ge=0.5, le=128.0, group="motion")
    miss_boost: float = setting(1.0, "Extra search radius per frame a keypoint has been lost, in patches.",
                                ge=0.0, le=16.0, group="motion")
    motion_prior_weight: float = setting(0.3, "Penalty for matches far from the predicted position (0 = off).",
                                         ge=0.0, le=2.0, group="motion")
    motion_soft_radius_px: float = setting(20.0, "Distance from the prediction that is penalised softly, video px.",
                                           ge=1.0, le=2000.0, group="motion")
    motion_radius_factor: float = setting(1.5, "Soft radius is at least this times the search radius.",
                                          ge=0.1, le=10.0, group="motion")
    miss_relief: float = setting(1.0, "How quickly the motion penalty widens while a point is lost.",
                                 ge=0.0, le=10.0, group="motion")
    flow_relief: float = setting(0.0, "How much fast motion relaxes the motion penalty.", ge=0.0, le=10.0,
                                 group="motion")
    velocity_smoothing: float = setting(0.3, "Weight of the newest step in the velocity estimate.",
                                        ge=0.0, le=1.0, group="motion")
    use_optical_flow: bool = setting(True, "Predict motion with Lucas-Kanade optical flow (else velocity).",
                                     group="motion")

    # --- appearance, refinement ---------------------------------------------------------
    memory_weight: float = setting(0.3, "Share of the running appearance vs the manual templates.",
                                   ge=0.0, le=0.9, group="appearance")
    memory_momentum: float = setting(0.2, "How fast the running appearance follows confident matches.",
                                     ge=0.0, le=1.0, group="appearance")
    max_templates: int = setting(16, "Manual frames whose appearance is remembered per keypoint.",
                                 ge=1, le=256, group="appearance")
    subpixel_temperature: float = setting(0.04, "Softness of the sub-pixel peak (similarity units).",
                                          ge=0.001, le=1.0, group="appearance")
    lk_refine_weight: float = setting(0.5, "Blend towards the optical-flow point when both agree (0 = off).",
                                      ge=0.0, le=1.0, group="appearance")

    # --- occlusion ------------------------------------------------------------------------
    redetect_after: int = setting(3, "Search the whole frame after this many lost frames (0 = never).",
                                  ge=0, le=10_000, group="occlusion")
    min_similarity: float = setting(0.25, "Matches weaker than this are treated as occluded.", ge=-1.0, le=1.0,
                                    group="occlusion")
    occlusion_ratio: float = setting(0.6, "Occluded when similarity drops below this share of its usual level.",
                                     ge=0.0, le=1.0, group="occlusion")
    symmetry: bool = setting(True, "Keep left*/right* keypoint pairs from swapping sides.", group="occlusion")
    cycle_check: bool = setting(True, "Reject matches that, traced back one frame, lead somewhere else.",
                                group="occlusion")

    # --- masks ------------------------------------------------------------------------------
    clamp_to_mask: bool = setting(True, "Clamp keypoints to their instance mask.", group="mask")
    mask_snap_radius_px: float = setting(12.0, "How far a keypoint may be moved into its mask, video px.",
                                         ge=0.0, le=500.0, group="mask")
    reject_outside_mask: bool = setting(True, "Mark a keypoint lost if its mask is farther than the snap radius.",
                                        group="mask")
    restrict_search_to_mask: bool = setting(False, "Search for keypoints only inside their instance mask.",
                                            group="mask")
    mask_propagation: Literal["dino", "none"] = setting(
        "dino", "How instance masks follow the animals: DINO features, or off (seed masks only).", group="mask")
    max_mask_fallback_frames: int = setting(5, "Frames a lost mask is reused before it is dropped.",
                                            ge=0, le=1000, group="mask")

    # --- runtime ---------------------------------------------------------------------------
    batch_size: int = setting(8, "Frames per backbone batch.", ge=1, le=256, group="runtime")

    @model_validator(mode="after")
    def _radii_in_order(self) -> TrackerConfig:
        if self.min_search_radius > self.max_search_radius:
            raise ValueError(
                f"TrackerConfig.min_search_radius ({self.min_search_radius}) is larger than "
                f"max_search_radius ({self.max_search_radius})"
            )
        return self

    # --- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values of every setting."""
        return self.model_dump()

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def changed(self) -> dict[str, Any]:
        """Only the settings that differ from the defaults."""
        return self.model_dump(exclude_defaults=True)

    def replace(self, **changes: Any) -> TrackerConfig:
        """A validated copy with ``changes`` applied."""
        return TrackerConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> TrackerConfig:
        """Build from a mapping; ConfigError names an unknown or invalid setting (with a did-you-mean)."""
        return validate_settings(cls, data, where)

    @classmethod
    def load(cls, path: str | Path) -> TrackerConfig:
        """Read a JSON settings file; errors name the file and the problem."""
        return load_settings_file(cls, path)

    def save(self, path: str | Path) -> None:
        from ..io.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def preset(cls, name: str) -> TrackerConfig:
        """A named starting point; see PRESETS."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name])


PRESETS: dict[str, dict[str, Any]] = {
    "rodent_30fps": {},
    "low_fps_large_motion": {
        "min_search_radius": 4.0, "max_search_radius": 24.0, "velocity_gain": 1.2,
        "motion_prior_weight": 0.15, "motion_soft_radius_px": 60.0, "miss_boost": 2.0,
        "use_optical_flow": False,
    },
    "fast_small_animals": {
        "search_tighten": 0.65, "velocity_gain": 1.4, "flow_gain": 1.4, "min_search_radius": 1.0,
        "max_search_radius": 6.0, "motion_prior_weight": 0.2, "motion_soft_radius_px": 8.0,
        "motion_radius_factor": 1.6, "flow_relief": 0.25, "velocity_smoothing": 0.45,
        "mask_snap_radius_px": 8.0,
    },
}
