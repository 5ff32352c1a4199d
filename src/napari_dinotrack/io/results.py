"""ResultWriter: writes each tracked frame (LabelMe JSON, CSV rows, masks) on its own thread.

The tracking loop hands frames over a bounded queue and never waits on the disk unless the disk
falls a whole queue behind. Each frame is written JSON first, then its table rows, so a crash
loses at most the frames still in the queue, and the run plan finds those stale next time. The
table is brought back in line with the JSONs when the writer closes, however the run ended
(finished, stopped, failed); after a kill, at the next run's start (:mod:`.table_index`).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from .annotations import FrameAnnotation
from .atomic import FolderSyncs
from .labelme import write_prediction
from .mask_store import MaskStore, mask_to_polygon
from .paths import ResultLayout
from .table_index import TracksTable, identity_of

if TYPE_CHECKING:
    from ..profiling import RunProfile

logger = logging.getLogger(__name__)

_DONE = object()


class ResultWriter:
    """Background writer for a run that (re)tracks frames ``first``..``last``.

    Their old rows leave the table when the writer opens and come back, from whatever JSON each
    frame has, when it closes. Use as a context manager or call ``close()``.
    """

    def __init__(
        self, layout: ResultLayout, first: int, last: int, max_pending: int = 64, profile: RunProfile | None = None
    ):
        layout.ensure_folder()
        self.layout = layout
        self._table = TracksTable(layout)
        self._table.begin_run(first, last)
        self._masks = MaskStore(layout.masks_dir)
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.frames_written = 0
        self._profile = profile
        self._done_sent = False
        self._table_done = False
        self._thread = threading.Thread(target=self._run, name="dinotrack-writer", daemon=True)
        self._thread.start()

    def put(
        self,
        annotation: FrameAnnotation,
        masks: np.ndarray | None = None,
        write_json: bool = True,
        write_rows: bool = True,
    ) -> None:
        """Queue one frame. Manual frames pass ``write_json=False``: their files are the user's."""
        self._raise_if_failed()
        self._queue.put((annotation, masks, write_json, write_rows))

    def _run(self) -> None:
        # the folders' fsyncs once a second (and when the writer stops), not once per file
        with FolderSyncs() as syncs:
            while True:
                try:
                    item = self._queue.get(timeout=syncs.interval_s)
                except queue.Empty:
                    syncs.flush()
                    continue
                if item is _DONE:
                    return
                if self._error is not None:
                    continue  # drain so that put() never blocks after a failure
                try:
                    t0 = time.perf_counter()
                    self._write(*item)
                    syncs.flush_if_due()
                    if self._profile is not None:
                        self._profile.add("write", item[0].frame, time.perf_counter() - t0)
                except BaseException as exc:
                    self._error = exc

    def _write(self, ann: FrameAnnotation, masks: np.ndarray | None, write_json: bool, write_rows: bool) -> None:
        if masks is not None:
            self._masks.write(ann.frame, masks, [inst.name for inst in ann.instances])
        written = False
        if write_json:
            if masks is not None:
                # a copy: the caller may still be reading the annotation on another thread
                instances = []
                for inst, mask in zip(ann.instances, masks, strict=True):
                    outline = outline_of(mask)
                    instances.append(dataclasses.replace(inst, polygon=outline if len(outline) >= 3 else None))
                ann = dataclasses.replace(ann, instances=instances)
            written = write_prediction(self.layout, ann)
        if write_rows:
            if written:
                self._table.append(ann, identity_of(self.layout.frame_json(ann.frame)))
            else:  # the frame's file is the user's: the table follows that file
                self._table.append_existing(ann.frame)
        self.frames_written += 1

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Flush everything queued, then make the table equal to the JSONs (sorted by frame).

        A Ctrl-C meanwhile waits until that is done (moments), then goes on: stopping halfway
        would leave the table behind the JSONs until the next run.
        """
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                self._finish()
                break
            except KeyboardInterrupt as exc:  # every step of _finish can be taken again
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        self._raise_if_failed()

    def _finish(self) -> None:
        if self._thread.is_alive():
            if not self._done_sent:
                self._queue.put(_DONE)
                self._done_sent = True
            self._thread.join()
        if self._table_done:
            return
        try:
            self._table.end_run()  # after an interrupted attempt: a plain sync, which repairs any state
        except Exception:
            self._table.abandon_run()
            if self._error is None:
                raise
            logger.warning("the tracks table could not be tidied; the next run repairs it", exc_info=True)
        self._table_done = True

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None or issubclass(exc_type, GeneratorExit):  # finished, stopped or closed early
            self.close()
            return
        try:  # the run's own error matters more than one met while tidying up after it
            self.close()
        except Exception:
            logger.warning("closing the result writer after an error failed", exc_info=True)


def outline_of(mask: np.ndarray) -> np.ndarray:
    """:func:`~.mask_store.mask_to_polygon` of ``mask``, worked out on the box around it.

    An animal covers a small part of the frame; its outline, found in a crop one pixel larger
    than its bounding box (no larger than the frame, so edges stay edges), is exactly the same at a
    fraction of the cost of searching the whole frame.
    """
    mask = np.asarray(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if mask.ndim != 2 or not len(rows):
        return mask_to_polygon(mask)
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = max(int(rows[0]) - 1, 0), max(int(cols[0]) - 1, 0)
    bottom, right = min(int(rows[-1]) + 2, mask.shape[0]), min(int(cols[-1]) + 2, mask.shape[1])
    outline = mask_to_polygon(mask[top:bottom, left:right])
    outline += np.array([left, top], np.float32)
    return outline
