"""The background half of a tracking run: everything that happens in the worker thread.

:func:`run_tracking` is the generator napari's ``thread_worker`` runs: it loads the backbone,
runs the engine and yields batches of :class:`~napari_dinotrack.pipeline.FrameResult`. It touches
no Qt or napari object; the engine writes all result files itself. :class:`RunControl` is the
one object shared with the GUI thread (the stop switch).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .backbones import BackboneCache, BackboneChoice

if TYPE_CHECKING:
    from ..pipeline import FrameResult
    from ..proofreading.provenance import OtherModel
    from ..runsettings import Direction
    from ..tracking.config import TrackerConfig

__all__ = ["YIELD_EVERY_S", "RunControl", "TrackJob", "WorkerError", "run_tracking"]

#: the worker yields a batch at most this often
YIELD_EVERY_S = 0.05


@dataclass(frozen=True)
class TrackJob:
    """Everything one tracking run needs, captured on the GUI thread."""

    video_path: str
    result_folder: str | None
    backbone: BackboneChoice
    short_side: int
    config: TrackerConfig
    start_frame: int | None = None
    end_frame: int | None = None
    direction: Direction = "both"


class RunControl:
    """Thread-safe stop switch shared by the GUI and the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.processor: Any = None
        self.results: Generator[Any, None, None] | None = None
        self.stop_requested = False
        #: predictions made by another backbone or short side than this run's (set by the worker)
        self.other_model: OtherModel | None = None

    def attach(self, processor: Any) -> None:
        """Called by the worker once the processor exists (stops it at once if asked to)."""
        with self._lock:
            self.processor = processor
            stop = self.stop_requested
        if stop:
            processor.stop()

    def request_stop(self) -> None:
        """Ask the run to end after the current frame (safe from any thread)."""
        with self._lock:
            self.stop_requested = True
            proc = self.processor
        if proc is not None:
            proc.stop()

    def abort(self) -> None:
        """Stop now, also closing the results generator (napari's activity-dock "cancel")."""
        self.request_stop()
        if self.results is not None:
            with contextlib.suppress(Exception):
                self.results.close()


class WorkerError(Exception):
    """Carries a RuntimeError out of a generator worker.

    superqt's GeneratorWorker treats a RuntimeError raised by the generator as "the worker was
    deleted": it only warns and never emits ``errored`` or ``finished``. The engine's
    torch errors are RuntimeErrors, so they are wrapped.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def run_tracking(
    job: TrackJob, control: RunControl, backbones: BackboneCache, yield_every_s: float = YIELD_EVERY_S
) -> Iterator[list[FrameResult]]:
    """Generator run in the worker thread: load the backbone, track, yield batches of results.

    Touches no Qt or napari object. Results are batched (one yield per ``yield_every_s`` at
    most) so the GUI thread gets few, cheap events. Errors reach ``errored`` (RuntimeErrors
    wrapped in :class:`WorkerError`).
    """
    try:
        yield from _run_tracking(job, control, backbones, yield_every_s)
    except RuntimeError as exc:
        raise WorkerError(exc) from exc


def _run_tracking(
    job: TrackJob, control: RunControl, backbones: BackboneCache, yield_every_s: float
) -> Iterator[list[FrameResult]]:
    backbone = backbones.get(job.backbone)
    with contextlib.suppress(ImportError):
        import scipy.spatial  # noqa: F401  (napari's Tracks layer needs it: import it here, not on the GUI thread)
    if control.stop_requested:
        return
    from ..pipeline import DinoKeypointVideoProcessor

    processor = DinoKeypointVideoProcessor(
        job.video_path,
        job.result_folder,
        model_name=backbone,
        short_side=job.short_side,
        device=job.backbone.device_arg,
        runtime_config=job.config,
        direction=job.direction,
    )
    control.attach(processor)
    results = processor.iter_results(start_frame=job.start_frame, end_frame=job.end_frame)
    control.results = results
    batch: list[FrameResult] = []
    last = time.monotonic()
    try:
        for result in results:
            batch.append(result)
            if control.stop_requested:
                processor.stop()  # also covers a stop that came before the run had started
            now = time.monotonic()
            if now - last >= yield_every_s:
                yield batch
                batch, last = [], now
        if batch:
            yield batch
        if job.start_frame is None and not control.stop_requested:
            # "Track" leaves current results alone: were they made with this backbone and size?
            from ..proofreading.provenance import made_by_other_model

            control.other_model = made_by_other_model(processor.layout, backbone.name, job.short_side)
    finally:
        with contextlib.suppress(Exception):
            results.close()
