"""A tracked sample clip (weight-free ``pixel:`` backbone) with one keypoint a user marked hidden."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from napari_dinotrack.io.paths import ResultLayout

N_FRAMES = 12
HIDDEN = (5, "animal1", "nose")  # frame, instance, keypoint marked hidden after tracking


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("DINOV3_LOCATION", raising=False)


@dataclass
class Tracked:
    """A tracked clip: its video, its result folder, its length and the keypoint marked hidden."""

    video: Path
    layout: ResultLayout
    n_frames: int = N_FRAMES
    hidden: tuple[int, str, str] = HIDDEN

    @property
    def folder(self) -> Path:
        return self.layout.folder


def track_sample(folder: Path, n_frames: int = N_FRAMES, animals: int = 1) -> Tracked:
    """The generated sample clip tracked from its frame-0 seed, then one keypoint marked hidden on frame 5."""
    import dataclasses

    from napari_dinotrack.cli import main
    from napari_dinotrack.io.labelme import read_frame, write_manual
    from napari_dinotrack.io.tables import write_tracks_csv
    from napari_dinotrack.synthetic import write_sample

    video = write_sample(folder, n_frames=n_frames, n_instances=animals)
    assert main(["track", str(video), "--model", "pixel:", "--quiet"]) == 0
    layout = ResultLayout(video)
    frame, instance, keypoint = HIDDEN
    ann = read_frame(layout.frame_json(frame), frame)
    ann.instance(instance).keypoint(keypoint).visible = False  # as "Mark selected hidden" in the dock does
    write_manual(layout, dataclasses.replace(ann, source="manual"))
    from napari_dinotrack.io.labelme import load_annotations

    write_tracks_csv(layout.tracks_csv, load_annotations(layout).values())
    return Tracked(video, layout, n_frames)


@pytest.fixture
def track():
    """``track(folder, n_frames=12, animals=1)`` -> a freshly tracked sample clip (:class:`Tracked`)."""
    return track_sample


@pytest.fixture(scope="session")
def _tracked_once(tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    return track_sample(tmp_path_factory.mktemp("tracked"))


@pytest.fixture
def tracked(_tracked_once: Tracked, tmp_path: Path) -> Tracked:
    """A private copy of the tracked sample (video + result folder) in ``tmp_path``."""
    shutil.copy2(_tracked_once.video, tmp_path / _tracked_once.video.name)
    shutil.copytree(_tracked_once.folder, tmp_path / _tracked_once.folder.name)
    video = tmp_path / _tracked_once.video.name
    return Tracked(video, ResultLayout(video))
