"""One video of a batch: the normal tracker with the video's own seeds and resume rules.

:func:`track_video` is what a batch worker runs for each video. It never raises for a problem
with the video (no seed, a broken file, a bad label file, a crash in tracking): the outcome is a
:class:`VideoResult` row that names the file and the problem, so one bad video never stops the
others. It needs no cluster; the batch runner calls it on Dask workers.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..runsettings import RunSettings
from ..tracking.config import TrackerConfig

if TYPE_CHECKING:
    from ..io.paths import ResultLayout
    from .models import ModelCache

__all__ = ["CURRENT", "FAILED", "NO_SEED", "STATUSES", "STOPPED", "TRACKED", "VideoJob", "VideoResult", "track_video"]

TRACKED = "tracked"
CURRENT = "up to date"
NO_SEED = "no seed"
STOPPED = "stopped"
FAILED = "failed"
STATUSES = (TRACKED, CURRENT, NO_SEED, STOPPED, FAILED)
"""What happened to a video: tracked now, nothing was stale, skipped (no labelled frame), stopped, or an error."""

ProgressReport = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoJob:
    """What to track: a video (its results go to its own result folder) and the settings of the batch."""

    video: str
    settings: RunSettings = field(default_factory=RunSettings)
    config: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass
class VideoResult:
    """One row of the batch summary."""

    video: str
    status: str
    frames: int = 0  # frames tracked in this run
    seconds: float = 0.0
    mean_score: float | None = None  # mean score of the video's tracked keypoints (all its predicted frames)
    error: str = ""
    worker: str = ""
    model_loaded: bool = False  # this video's worker loaded the backbone for it (its first video)
    started: float = 0.0  # wall-clock time (time.time()) the video started on its worker

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 and self.frames else 0.0

    @property
    def ok(self) -> bool:
        """Tracked, or already up to date."""
        return self.status in (TRACKED, CURRENT)


def track_video(
    job: VideoJob,
    models: ModelCache,
    device: str | None = None,
    progress: ProgressReport | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> VideoResult:
    """Track the stale frames of ``job.video`` (resume rules of the run plan) and describe the outcome.

    ``models`` provides the backbone, loaded once per process; ``device`` overrides the
    settings' device (a batch worker's own GPU). ``progress(done, total)`` is called per frame;
    when ``should_stop()`` turns true the run ends after the current frame, its files complete.
    """
    start = time.perf_counter()
    result = VideoResult(job.video, FAILED, started=time.time())
    try:
        if should_stop is not None and should_stop():
            result.status, result.error = STOPPED, f"{job.video}: stopped before it started"
        else:
            _track(job, models, device, progress, should_stop, result)
    except UserError as exc:
        result.status, result.error = FAILED, str(exc)
    except Exception as exc:  # a bug must not end the batch; the row carries what a report needs
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result.status = FAILED
        result.error = (
            f"{job.video}: internal error {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
        )
    result.seconds = time.perf_counter() - start
    return result


def _track(
    job: VideoJob,
    models: ModelCache,
    device: str | None,
    progress: ProgressReport | None,
    should_stop: Callable[[], bool] | None,
    result: VideoResult,
) -> None:
    from ..io.labelme import manual_frames
    from ..pipeline import DinoKeypointVideoProcessor

    settings = job.settings
    device = device or settings.device

    def on_frame(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if should_stop is not None and should_stop():
            runner.stop()

    def processor(model):
        return DinoKeypointVideoProcessor(
            job.video,
            model_name=model,
            short_side=settings.short_side,
            device=device,
            runtime_config=job.config,
            progress_callback=on_frame,
            precision=settings.precision,
            direction=settings.direction,
        )

    planner = processor(settings.model)  # the model loads on first use: not for videos with nothing to do
    layout = planner.layout
    if not layout.folder.is_dir() or not manual_frames(layout):
        result.status = NO_SEED
        result.error = (
            f"{job.video}: no labelled frame in {layout.folder}; label one frame (napari: 'Save frame "
            "as seed', or a LabelMe JSON there) and run the batch again"
        )
        return
    if planner.plan() is None:
        result.status = CURRENT
    else:
        backbone, result.model_loaded = models.get(settings, device)
        runner = processor(backbone)
        summary = runner.process_video()
        result.frames = summary.frames_tracked
        result.status = TRACKED
        if summary.stopped:
            result.status = STOPPED
            result.error = f"{job.video}: stopped after {summary.frames_tracked} frames; run the batch again to resume"
    result.mean_score = mean_predicted_score(layout)


def mean_predicted_score(layout: ResultLayout) -> float | None:
    """Mean score of the visible tracked keypoints in a result folder's table (manual frames left out)."""
    from ..io.labelme import manual_frames
    from ..io.tables import read_tracks_csv

    if not os.path.exists(layout.tracks_csv):
        return None
    manual = set(manual_frames(layout))
    scores = [
        row["score"]
        for row in read_tracks_csv(layout.tracks_csv)
        if row["frame"] not in manual and row["visible"] and row["score"] is not None
    ]
    return math.fsum(scores) / len(scores) if scores else None
