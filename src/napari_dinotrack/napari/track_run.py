"""One tracking run seen from the GUI thread: start the worker, show progress, report how it ended.

Threading rules (napari's): the engine runs in a ``thread_worker`` generator (``worker.py``) that
only yields batches of results; every layer change happens on the GUI thread, through
:class:`~napari_dinotrack.napari.live_display.LiveDisplay`.

One result folder, one run: :data:`ACTIVE_RUNS` knows the folders that a run of this session is
writing, whichever dock started it. A dock closed mid-run stops its run, but the run finishes its
current frame first; a dock opened meanwhile waits for it (:func:`wait_for_folder`) instead of
starting a second writer. Runs from other processes are kept out by the engine's folder lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from .panels import PROBLEM_SIGN
from .video_context import VideoContext
from .worker import RunControl, TrackJob, run_tracking

if TYPE_CHECKING:
    from ..pipeline import FrameResult
    from .backbones import BackboneCache
    from .live_display import LiveDisplay
    from .panels import TrackPanel

__all__ = [
    "ACTIVE_RUNS",
    "PROGRESS_MS",
    "RunHolder",
    "TrackRun",
    "check_frame_range",
    "folder_in_use",
    "wait_for_folder",
]

logger = logging.getLogger(__name__)

#: the progress bar and line are redrawn at most this often (a progress bar repaints itself at once)
PROGRESS_MS = 1000

#: result folder -> the run of this session writing it
ACTIVE_RUNS: dict[Path, TrackRun] = {}
_WAITING: dict[Path, list[Callable[[], None]]] = {}


def _key(folder: str | Path) -> Path:
    return Path(folder).expanduser().resolve()


def folder_in_use(folder: str | Path) -> bool:
    """Whether a run of this session is writing ``folder``."""
    return _key(folder) in ACTIVE_RUNS


def wait_for_folder(folder: str | Path, callback: Callable[[], None]) -> None:
    """Call ``callback`` (on the GUI thread) when the run writing ``folder`` has ended, or now if there is none."""
    key = _key(folder)
    if key not in ACTIVE_RUNS:
        callback()
    else:
        _WAITING.setdefault(key, []).append(callback)


def _release(folder: Path) -> None:
    ACTIVE_RUNS.pop(folder, None)
    for callback in _WAITING.pop(folder, []):
        try:
            callback()
        except Exception:  # a waiting dock that was closed meanwhile must not break the others
            logger.exception("starting a waiting run failed")


def check_frame_range(ctx: VideoContext, start_frame: int | None, end: int | None, seeds: list[int]) -> int | None:
    """The end frame to track to (None: the last); UserError when the range cannot be tracked.

    ``start_frame`` (None: from every manual frame) must be a labelled frame of the video;
    without it there must be manual ``seeds``.
    """
    if start_frame is not None:
        if not (0 <= start_frame < ctx.n_frames):
            raise UserError(f"Frame {start_frame} is outside the video (0–{ctx.n_frames - 1}).")
        if not ctx.layout.frame_json(start_frame).exists():
            raise UserError(
                f"Frame {start_frame} has no keypoints: add them (Seed tools) or go to a "
                "labelled frame before 'Track from here'."
            )
    elif not seeds:
        raise UserError(
            "No labelled frame yet: add keypoints on a frame (Seed tools), drag them into "
            "place and click 'Save frame as manual seed'."
        )
    end_frame = None if end is None else min(end, ctx.n_frames - 1)
    if end_frame is not None and start_frame is not None and end_frame < start_frame:
        raise UserError(f"The end frame ({end_frame}) is before the start frame ({start_frame}).")
    return end_frame


class TrackRun:
    """The worker of one run, its progress line, and its summary once it has ended.

    Args:
        job: what to track.
        folder: the result folder it writes.
        backbones: the shared backbone cache (the worker loads from it).
        display: shows the results as they arrive.
        panel: the Track panel (buttons, progress bar, status line).
        on_backbone_error: shows why the backbone could not be loaded.
        on_end: called with the summary when the run has ended (also after an error).
    """

    def __init__(
        self,
        job: TrackJob,
        folder: Path,
        backbones: BackboneCache,
        display: LiveDisplay,
        panel: TrackPanel,
        *,
        on_backbone_error: Callable[[str], None],
        on_end: Callable[[dict[str, Any]], None],
    ) -> None:
        self.job = job
        self.folder = _key(folder)
        self.control = RunControl()
        self.worker: Any = None
        self.running = False
        self.error: str | None = None
        self.frames_done = 0
        self.frames_written = 0
        self._backbones = backbones
        self._display = display
        self._panel = panel
        self._on_backbone_error = on_backbone_error
        self._on_end = on_end
        self._t0 = 0.0
        self._latest: FrameResult | None = None
        self._progress_timer: Any = None

    def start(self) -> Any:
        """Start the worker thread; returns the worker."""
        from napari.qt.threading import create_worker
        from qtpy.QtCore import QTimer

        self._progress_timer = QTimer()
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_MS)
        self._progress_timer.timeout.connect(self._show_latest)

        self._t0 = time.monotonic()
        worker = create_worker(run_tracking, self.job, self.control, self._backbones, _ignore_errors=True)
        worker.yielded.connect(self._on_results)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self.control.abort)  # napari's activity dock "cancel" (worker.quit)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.running = True
        ACTIVE_RUNS[self.folder] = self
        self._panel.set_running(True)
        self._panel.progress.value = 0
        start = self.job.start_frame
        where = f"frame {start}" if start is not None else "the seed frames"
        self._panel.status.value = f"Loading {self.job.backbone.model} and tracking from {where} …"
        worker.start()
        return worker

    def stop(self) -> None:
        """Stop after the current frame; what was tracked so far stays on disk."""
        self.control.request_stop()
        self._panel.status.value = "Stopping …"

    def _on_results(self, batch: list[FrameResult]) -> None:
        # a backward pass's results are not on disk (the forward pass merges and writes them): the
        # layers only ever show what a stop would leave
        shown = [r for r in batch if not r.provisional]
        if shown:
            self._display.add(shown)
        self._latest = batch[-1]
        self.frames_done = int(batch[-1].frames_done)
        self.frames_written = int(batch[-1].frames_written)
        if not self._progress_timer.isActive():
            self._progress_timer.start()

    def _show_latest(self) -> None:
        if self._latest is not None and self.running and not self.control.stop_requested:
            self._show_progress(self._latest)

    def _show_progress(self, r: FrameResult) -> None:
        self.frames_done = int(r.frames_done)
        total = max(1, int(r.frames_total))
        if self._panel.progress.max != total:
            self._panel.progress.max = total
        self._panel.progress.value = min(total, int(r.frames_done))
        fps = float(r.fps or 0.0)
        left = (total - r.frames_done) / fps if fps > 0 else float("nan")
        eta = "" if not np.isfinite(left) else f" · {_hms(left)} left"
        backward = " (backward pass)" if r.provisional else ""
        self._panel.status.value = f"Frame {r.frame}{backward}: {r.frames_done}/{total} steps · {fps:.1f} frames/s{eta}"

    def _on_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        from ..errors import BackboneUnavailableError, UserError

        exc = getattr(exc, "original", exc)  # unwrap WorkerError
        if isinstance(exc, BackboneUnavailableError):
            self._on_backbone_error(str(exc))
            msg = str(exc)
        elif isinstance(exc, UserError):
            msg = str(exc)
        else:
            logger.error("tracking failed", exc_info=exc)
            msg = f"Tracking failed: {exc}"
        self.error = msg
        self._panel.status.value = f"{PROBLEM_SIGN} {msg.splitlines()[0]}"
        show_error(msg)

    def _on_finished(self) -> None:
        self._progress_timer.stop()
        if self._latest is not None:
            self._show_progress(self._latest)
        self.running = False
        try:
            self._display.finish()
            self._panel.set_running(False)
            self._on_end(self._summarise())
        finally:
            _release(self.folder)

    def _summarise(self) -> dict[str, Any]:
        """The run's summary; also tells the user how it went (unless an error already did)."""
        from napari.utils.notifications import show_info

        if self.error is not None:
            return {"error": self.error}
        seconds = time.monotonic() - self._t0
        stopped = self.control.stop_requested
        done = self.frames_written
        other = self.control.other_model
        summary = {
            "stopped": stopped,
            "frames": done,
            "seconds": seconds,
            "refresh_max_ms": self._display.refresh_stats["max_ms"],
            "other_model_frames": len(other.frames) if other is not None else 0,
        }
        if other is not None:
            word = "No frame needed tracking, but" if done == 0 and not stopped else f"Tracked {done} frames;"
            self._panel.status.value = f"{PROBLEM_SIGN} {word} {other.describe()} Re-track them with this model?"
            self._panel.retrack.visible = True
            return summary
        if done == 0 and not stopped:
            self._panel.status.value = "Nothing to track: every frame is up to date."
            show_info("Nothing to track: every frame is up to date (correct a frame or use 'Track from here').")
            return summary
        word = "Stopped" if stopped else "Done"
        self._panel.status.value = f"{word}: {done} frames in {seconds:.1f} s."
        show_info(f"{word}: tracked {done} frames in {seconds:.1f} s.")
        return summary


class RunHolder:
    """Holds the current run's control outside the widget, so it can be stopped from ``destroyed``.

    When napari deletes the dock while a run is going, the widget's own methods can no longer be
    called; this plain object can, and the worker holds no widget.
    """

    def __init__(self) -> None:
        self.control: RunControl | None = None

    def stop(self, *_: Any) -> None:
        if self.control is not None:
            self.control.request_stop()


def _hms(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
