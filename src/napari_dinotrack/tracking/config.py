"""TrackerConfig: every tracking setting, described once (range, help text, GUI group), with presets.

Distances named ``*_px`` are in native video pixels; ``*_patches`` are in patches of the backbone
(16 working pixels for DINOv3, 14 for DINOv2; one patch is ``patch / scale`` video pixels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..schema import Settings, load_settings_file, setting, validate_settings

__all__ = ["PRESETS", "TrackerConfig"]


class TrackerConfig(Settings):
    """All tracking parameters. Defaults suit a typical 30 fps rodent video."""

    # --- motion ------------------------------------------------------------------------------
    max_speed_px: float = setting(
        40.0,
        "Largest step an animal makes between two frames, video px: how far it is searched for.",
        ge=1.0,
        le=5000.0,
        group="motion",
    )
    max_turn_deg: float = setting(
        24.0, "Largest turn an animal makes between two frames, degrees.", ge=0.0, le=180.0, group="motion"
    )
    part_motion_patches: float = setting(
        1.0,
        "How far a body part may move relative to its animal between two frames (a head turning), in patches.",
        ge=0.25,
        le=8.0,
        group="motion",
    )
    motion_prior_weight: float = setting(
        0.15, "Penalty for an animal pose far from the predicted one (0 = off).", ge=0.0, le=2.0, group="motion"
    )
    velocity_smoothing: float = setting(
        0.5, "Weight of the newest step in an animal's velocity.", ge=0.0, le=1.0, group="motion"
    )
    use_optical_flow: bool = setting(
        True, "Follow parts with Lucas-Kanade optical flow where it holds.", group="motion"
    )
    colour_bodies: bool = setting(
        True,
        "Move animals whose fur is too flat for the optical flow by aligning their colours frame to frame.",
        group="motion",
    )
    flow_trust: float = setting(
        0.1,
        "How much better the appearance nearby must match to overrule a part's optical flow (similarity units).",
        ge=0.0,
        le=2.0,
        group="motion",
    )

    # --- appearance ------------------------------------------------------------------------
    memory_weight: float = setting(
        0.3, "Share of the running appearance vs the manual templates.", ge=0.0, le=0.9, group="appearance"
    )
    memory_momentum: float = setting(
        0.2, "How fast the running appearance follows confident matches.", ge=0.0, le=1.0, group="appearance"
    )
    max_templates: int = setting(
        16, "Manual frames whose appearance is remembered per keypoint.", ge=1, le=256, group="appearance"
    )
    subpixel_temperature: float = setting(
        0.04, "Softness of the sub-pixel peak (similarity units).", ge=0.001, le=1.0, group="appearance"
    )

    # --- occlusion ------------------------------------------------------------------------
    min_similarity: float = setting(
        0.25, "Matches weaker than this are treated as hidden.", ge=-1.0, le=1.0, group="occlusion"
    )
    occlusion_ratio: float = setting(
        0.6, "Hidden when the match drops below this share of its usual level.", ge=0.0, le=1.0, group="occlusion"
    )
    redetect_after: int = setting(
        5, "Search the whole frame for an animal lost this many frames (0 = never).", ge=0, le=10_000, group="occlusion"
    )
    symmetry: bool = setting(True, "Keep left*/right* keypoint pairs on their sides of the animal.", group="occlusion")

    # --- masks ------------------------------------------------------------------------------
    clamp_to_mask: bool = setting(True, "Clamp keypoints to their instance mask.", group="mask")
    mask_snap_radius_px: float = setting(
        12.0, "How far a keypoint may be moved into its mask, video px.", ge=0.0, le=500.0, group="mask"
    )
    reject_outside_mask: bool = setting(
        True, "Mark a keypoint lost if its mask is farther than the snap radius.", group="mask"
    )
    restrict_search_to_mask: bool = setting(
        False, "Search for keypoints only inside their instance mask.", group="mask"
    )
    mask_propagation: Literal["dino", "none"] = setting(
        "dino", "How instance masks follow the animals: DINO features, or off (seed masks only).", group="mask"
    )
    max_mask_fallback_frames: int = setting(
        5, "Frames a lost mask is reused before it is dropped.", ge=0, le=1000, group="mask"
    )

    # --- runtime ---------------------------------------------------------------------------
    batch_size: int = setting(8, "Frames per backbone batch.", ge=1, le=256, group="runtime")

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
        "max_speed_px": 120.0,
        "max_turn_deg": 60.0,
        "part_motion_patches": 2.0,
        "motion_prior_weight": 0.05,
        "velocity_smoothing": 0.3,
    },
    "fast_small_animals": {
        "max_speed_px": 60.0,
        "max_turn_deg": 40.0,
        "part_motion_patches": 0.75,
        "mask_snap_radius_px": 8.0,
    },
}
