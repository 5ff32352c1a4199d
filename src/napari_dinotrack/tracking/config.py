"""TrackerConfig: every tracking knob with one-line help, valid range, presets and JSON round trip.

Distances named ``*_px`` are in native video pixels; search radii are in patches (one patch =
16 working pixels, i.e. ``16 / scale`` video pixels), as users of the reference tracker know them.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


def knob(default: Any, help: str, lo: float | None = None, hi: float | None = None,
         choices: tuple[str, ...] | None = None, group: str = "motion") -> Any:
    """A dataclass field whose metadata drives validation, tooltips and the GUI panels."""
    return field(default=default, metadata={"help": help, "min": lo, "max": hi,
                                            "choices": choices, "group": group})


@dataclass
class TrackerConfig:
    """All tracking parameters. Defaults suit a typical 30 fps rodent video."""

    # --- motion prior and search window -------------------------------------------------
    search_tighten: float = knob(0.85, "Scales the base search radius (2 patches); lower = tighter.", 0.1, 4.0)
    velocity_gain: float = knob(0.9, "How much recent speed widens the search window.", 0.0, 5.0)
    flow_gain: float | None = knob(
        None, "How much optical-flow speed widens the window (empty = velocity gain).", 0.0, 5.0)
    min_search_radius: float = knob(2.5, "Smallest search radius, in patches.", 0.5, 64.0)
    max_search_radius: float = knob(12.0, "Largest search radius, in patches.", 0.5, 128.0)
    miss_boost: float = knob(1.0, "Extra search radius per frame a keypoint has been lost, in patches.", 0.0, 16.0)
    motion_prior_weight: float = knob(0.3, "Penalty for matches far from the predicted position (0 = off).", 0.0, 2.0)
    motion_soft_radius_px: float = knob(
        20.0, "Distance from the prediction that is penalised softly, video px.", 1.0, 2000.0)
    motion_radius_factor: float = knob(1.5, "Soft radius is at least this times the search radius.", 0.1, 10.0)
    miss_relief: float = knob(1.0, "How quickly the motion penalty widens while a point is lost.", 0.0, 10.0)
    flow_relief: float = knob(0.0, "How much fast motion relaxes the motion penalty.", 0.0, 10.0)
    velocity_smoothing: float = knob(0.3, "Weight of the newest step in the velocity estimate.", 0.0, 1.0)
    use_optical_flow: bool = knob(True, "Predict motion with Lucas-Kanade optical flow (else velocity).")
    redetect_after: int = knob(3, "Search the whole frame after this many lost frames (0 = never).", 0, 10_000,
                               group="occlusion")

    # --- appearance, refinement, occlusion --------------------------------------------
    memory_weight: float = knob(0.3, "Share of the running appearance vs the manual templates.", 0.0, 0.9,
                                group="appearance")
    memory_momentum: float = knob(0.2, "How fast the running appearance follows confident matches.", 0.0, 1.0,
                                  group="appearance")
    max_templates: int = knob(16, "Manual frames whose appearance is remembered per keypoint.", 1, 256,
                              group="appearance")
    subpixel_temperature: float = knob(0.04, "Softness of the sub-pixel peak (similarity units).", 0.001, 1.0,
                                       group="appearance")
    lk_refine_weight: float = knob(0.5, "Blend towards the optical-flow point when both agree (0 = off).", 0.0, 1.0,
                                   group="appearance")
    min_similarity: float = knob(0.25, "Matches weaker than this are treated as occluded.", -1.0, 1.0,
                                 group="occlusion")
    occlusion_ratio: float = knob(0.6, "Occluded when similarity drops below this share of its usual level.",
                                  0.0, 1.0, group="occlusion")
    symmetry: bool = knob(True, "Keep left*/right* keypoint pairs from swapping sides.", group="occlusion")
    cycle_check: bool = knob(True, "Reject matches that, traced back one frame, lead somewhere else.",
                             group="occlusion")

    # --- masks ------------------------------------------------------------------------------
    clamp_to_mask: bool = knob(True, "Clamp keypoints to their instance mask.", group="mask")
    mask_snap_radius_px: float = knob(12.0, "How far a keypoint may be moved into its mask, video px.", 0.0, 500.0,
                                      group="mask")
    reject_outside_mask: bool = knob(True, "Mark a keypoint lost if its mask is farther than the snap radius.",
                                     group="mask")
    restrict_search_to_mask: bool = knob(False, "Search for keypoints only inside their instance mask.",
                                         group="mask")
    mask_propagation: str = knob("dino", "How instance masks follow the animals: DINO features, Cutie, or off.",
                                 choices=("dino", "cutie", "none"), group="mask")
    max_mask_fallback_frames: int = knob(5, "Frames a lost mask is reused before it is dropped.", 0, 1000,
                                         group="mask")

    # --- runtime ---------------------------------------------------------------------------
    batch_size: int = knob(8, "Frames per backbone batch.", 1, 256, group="runtime")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field that has a wrong type or is out of range."""
        for f in fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if value is None and f.default is None:
                continue
            expected = type(f.default) if f.default is not None else float
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if expected is bool and not isinstance(value, bool):
                raise ValueError(f"TrackerConfig.{f.name} must be true or false, got {value!r}")
            if expected in (int, float) and (isinstance(value, bool) or not isinstance(value, expected)):
                raise ValueError(f"TrackerConfig.{f.name} must be a {expected.__name__}, got {value!r}")
            if expected is str and not isinstance(value, str):
                raise ValueError(f"TrackerConfig.{f.name} must be text, got {value!r}")
            if meta.get("choices") and value not in meta["choices"]:
                raise ValueError(f"TrackerConfig.{f.name} must be one of {list(meta['choices'])}, got {value!r}")
            lo, hi = meta.get("min"), meta.get("max")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"TrackerConfig.{f.name} must be between {lo} and {hi}, got {value!r}")
        if self.min_search_radius > self.max_search_radius:
            raise ValueError(
                f"TrackerConfig.min_search_radius ({self.min_search_radius}) is larger than "
                f"max_search_radius ({self.max_search_radius})"
            )

    # --- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackerConfig:
        """Build from a dict, rejecting unknown keys with a did-you-mean hint."""
        if not isinstance(data, dict):
            raise ValueError(f"a tracker config must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ValueError(f"unknown tracker setting {key!r}{extra}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrackerConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> TrackerConfig:
        """Read a JSON config file; errors name the file and the problem."""
        from ..errors import InputError

        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: config file not found") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix or delete it") from None
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        from ..io.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def preset(cls, name: str) -> TrackerConfig:
        """A named starting point; see PRESETS."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**PRESETS[name])

    @staticmethod
    def help_for(name: str) -> str:
        return next(f.metadata["help"] for f in fields(TrackerConfig) if f.name == name)


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
