"""A generated clip tracked once from its frame-0 ground truth, with the rest of its ground truth as a labels CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from napari_dinotrack.cli import main
from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic import SyntheticClip, make_clip


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@dataclass
class TrackedClip:
    clip: SyntheticClip
    video: Path
    layout: ResultLayout
    labels: Path


def write_labels_csv(clip: SyntheticClip, path: Path) -> Path:
    """The clip's ground truth as a labels CSV; hidden points have empty x and y."""
    lines = ["frame,instance,keypoint,x,y"]
    for frame in range(clip.n_frames):
        for inst in clip.instance_names:
            for part in clip.part_names:
                x, y = clip.positions[inst, part][frame]
                shown = clip.visible[inst, part][frame]
                lines.append(f"{frame},{inst},{part},{x:.3f},{y:.3f}" if shown else f"{frame},{inst},{part},,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tracked_clip(tmp_path_factory: pytest.TempPathFactory) -> TrackedClip:
    """Two animals, 12 frames, an occluder over animal1's nose on frames 6-8, tracked with the pixel backbone."""
    folder = tmp_path_factory.mktemp("tracked")
    clip = make_clip(n_frames=12, n_instances=2, occluder=(6, 8))
    video = clip.write(folder / "clip.mp4")
    layout = ResultLayout(video)
    layout.ensure_folder()
    write_manual(layout, clip.annotation(0))
    assert main(["track", str(video), "--model", "pixel:8", "--short-side", "320", "--quiet"]) == 0
    return TrackedClip(clip, video, layout, write_labels_csv(clip, folder / "labels.csv"))
