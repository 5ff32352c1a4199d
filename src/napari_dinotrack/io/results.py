"""ResultWriter: writes each tracked frame (LabelMe JSON, CSV rows, masks) on its own thread.

The tracking loop hands frames over a bounded queue and never waits on the disk unless the disk
falls a whole queue behind. Each frame is written JSON first, then its CSV rows, so a crash
loses at most the frames still in the queue, and the run plan finds those stale next time.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from .annotations import FrameAnnotation
from .atomic import atomic_write_text
from .labelme import write_prediction
from .mask_store import MaskStore, mask_to_polygon
from .paths import ResultLayout
from .tables import TracksCsvAppender, write_tracks_csv

_DONE = object()


class ResultWriter:
    """Background writer for one run. Use as a context manager or call ``close()``."""

    def __init__(self, layout: ResultLayout, kept: list[FrameAnnotation], max_pending: int = 64):
        layout.ensure_folder()
        self.layout = layout
        # the table restarts from the results that stay valid, so re-tracked frames never appear twice
        write_tracks_csv(layout.tracks_csv, kept)
        self._csv = TracksCsvAppender(layout.tracks_csv)
        self._masks = MaskStore(layout.masks_dir)
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.frames_written = 0
        self._thread = threading.Thread(target=self._run, name="dinotrack-writer", daemon=True)
        self._thread.start()

    def put(self, annotation: FrameAnnotation, masks: np.ndarray | None = None, write_json: bool = True,
            write_rows: bool = True) -> None:
        """Queue one frame. Manual frames pass ``write_json=False``: their files are the user's."""
        self._raise_if_failed()
        self._queue.put((annotation, masks, write_json, write_rows))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain so that put() never blocks after a failure
            try:
                self._write(*item)
            except BaseException as exc:
                self._error = exc

    def _write(self, ann: FrameAnnotation, masks: np.ndarray | None, write_json: bool, write_rows: bool) -> None:
        if masks is not None:
            self._masks.write(ann.frame, masks, [inst.name for inst in ann.instances])
        if write_json:
            if masks is not None:
                for inst, mask in zip(ann.instances, masks, strict=True):
                    outline = mask_to_polygon(mask)
                    inst.polygon = outline if len(outline) >= 3 else None
            write_prediction(self.layout, ann)
        if write_rows:
            self._csv.append(ann)
        self.frames_written += 1

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Flush everything queued, then leave the table sorted by frame."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._csv.close()
        _sort_table(self.layout.tracks_csv)
        self._raise_if_failed()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sort_table(path: Path) -> None:
    """Order the table by frame (stable, so instance/keypoint order within a frame is kept)."""
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    frames = [int(line.split(",", 1)[0]) for line in lines]
    if frames == sorted(frames):
        return
    order = sorted(range(len(lines)), key=frames.__getitem__)
    atomic_write_text(path, "\n".join([header, *(lines[i] for i in order)]) + "\n")
