"""The result writer's own work: outlines of the masks it writes."""

from __future__ import annotations

import cv2
import numpy as np

from napari_dinotrack.io.mask_store import mask_to_polygon
from napari_dinotrack.io.results import outline_of


def test_outlines_are_found_in_the_box_around_each_mask_and_come_out_the_same() -> None:
    """The writer outlines masks in a crop around them: exactly mask_to_polygon's outline, at the edges too."""
    rng = np.random.default_rng(3)
    masks = [np.zeros((40, 50), bool), np.ones((40, 50), bool)]  # empty, and touching every edge
    for _ in range(60):
        h, w = rng.integers(5, 120, 2)
        noise = rng.random((h, w)) < rng.uniform(0.05, 0.9)
        masks.append(cv2.GaussianBlur(noise.astype(np.float32), (0, 0), rng.uniform(0.5, 4)) > 0.5)
    for mask in masks:
        expected = mask_to_polygon(mask)
        got = outline_of(mask)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_ctrl_c_while_the_writer_closes_still_leaves_the_table_right(tmp_path, monkeypatch) -> None:
    """A Ctrl-C that lands in the final tidy-up is held until the table says what the JSONs say."""
    import dataclasses

    import pytest

    from napari_dinotrack.io.labelme import read_frame
    from napari_dinotrack.io.paths import ResultLayout
    from napari_dinotrack.io.results import ResultWriter
    from napari_dinotrack.io.table_index import TracksTable
    from napari_dinotrack.io.tables import HEADER_LINE, csv_block
    from napari_dinotrack.synthetic import make_clip

    (tmp_path / "v.mp4").write_bytes(b"not a video")
    layout = ResultLayout(tmp_path / "v.mp4")
    seed = make_clip(n_frames=1, n_instances=2).annotation(0)
    real_end_run = TracksTable.end_run

    def interrupted_end_run(self):
        monkeypatch.setattr(TracksTable, "end_run", real_end_run)
        self._appender.close()  # halfway through: the rows are flushed, the table not yet tidied
        self._appender = None
        raise KeyboardInterrupt

    monkeypatch.setattr(TracksTable, "end_run", interrupted_end_run)
    writer = ResultWriter(layout, 1, 5)
    for frame in (3, 1, 2, 5, 4):
        writer.put(dataclasses.replace(seed, frame=frame, source="prediction"))
    with pytest.raises(KeyboardInterrupt):
        writer.close()
    expected = HEADER_LINE + "\n" + "".join(csv_block(read_frame(p, f)) for f, p in layout.frame_files().items())
    assert layout.tracks_csv.read_text(encoding="utf-8") == expected
