"""A result folder written by hand: two animals walking right, predictions from a manual frame 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.io.labelme import write_manual, write_prediction
from napari_dinotrack.io.paths import ResultLayout

N_FRAMES = 20
PARTS = ("nose", "tail_base")


def _frame_annotation(
    t: int, source: str = "prediction", instances: tuple[str, ...] = ("animal1", "animal2"), **changes
) -> FrameAnnotation:
    """Animal ``i`` walks right 2 px per frame on row ``30 + 40 i``; ``changes[(inst, part)]`` overrides a keypoint."""
    out = []
    for i, name in enumerate(instances):
        kps = []
        for j, part in enumerate(PARTS):
            kp = Keypoint(part, 20.0 + 2.0 * t - 10.0 * j, 30.0 + 40.0 * i, True, 0.9)
            for attr, value in changes.get(f"{name}_{part}", {}).items():
                setattr(kp, attr, value)
            kps.append(kp)
        out.append(Instance(name, kps, group_id=i))
    ann = FrameAnnotation(t, 120, 160, out, source=source)
    if source == "prediction":
        ann.seed_frame, ann.seed_digest = 0, "seed"
    return ann


def _write_folder(layout: ResultLayout, annotations: dict[int, FrameAnnotation]) -> None:
    for ann in annotations.values():
        if ann.is_manual:
            write_manual(layout, ann)
        else:
            write_prediction(layout, ann)


@pytest.fixture
def frame_annotation():
    """``frame_annotation(t, source="prediction", animal1_nose={"x": 90.0}, ...)`` -> a FrameAnnotation."""
    return _frame_annotation


@pytest.fixture
def write_folder():
    """``write_folder(layout, annotations)``: manual frames as manual, the rest as predictions."""
    return _write_folder


@pytest.fixture
def layout(tmp_path: Path) -> ResultLayout:
    return ResultLayout(tmp_path / "walk.mp4")


@pytest.fixture
def walking() -> dict[int, FrameAnnotation]:
    """Frame 0 manual, 1..19 predicted from it (current for the run plan), nothing suspicious."""
    anns = {t: _frame_annotation(t, "manual" if t == 0 else "prediction") for t in range(N_FRAMES)}
    for t in range(1, N_FRAMES):
        anns[t].seed_digest = anns[0].digest()
    return anns
