"""Generated videos with a saved seed frame, and a tiny random DINOv3 checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic import SyntheticClip, make_clip


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("DINOV3_LOCATION", raising=False)


@pytest.fixture
def labelled_clip(tmp_path: Path):
    """Factory: make_clip(**kwargs) written to tmp_path with one frame's ground truth (frame 0) saved as the seed."""

    def make(
        name: str = "clip", polygons: bool = False, seed_frame: int = 0, **kwargs
    ) -> tuple[SyntheticClip, Path, ResultLayout]:
        clip = make_clip(**kwargs)
        video = clip.write(tmp_path / f"{name}.mp4")
        layout = ResultLayout(video)
        layout.ensure_folder()
        write_manual(layout, clip.annotation(seed_frame, with_polygons=polygons))
        return clip, video, layout

    return make


@pytest.fixture(scope="session")
def tiny_dinov3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from napari_dinotrack.synthetic.models import TINY_DINOV3, save_random_dinov3

    folder = tmp_path_factory.mktemp("tiny-dinov3")
    return save_random_dinov3(folder, **TINY_DINOV3)


def expected_table(layout: ResultLayout) -> str:
    """The tracks table the frame JSONs of a result folder call for, byte for byte."""
    from napari_dinotrack.io.labelme import read_frame
    from napari_dinotrack.io.tables import HEADER_LINE, csv_block

    blocks = [csv_block(read_frame(path, frame)) for frame, path in layout.frame_files().items()]
    return HEADER_LINE + "\n" + "".join(blocks)


@pytest.fixture
def table_matches_jsons():
    """Assert that the folder's tracks table says exactly what its JSONs say."""

    def check(layout: ResultLayout) -> None:
        assert layout.tracks_csv.read_text(encoding="utf-8") == expected_table(layout)

    return check
