"""Track many videos at once with Dask: :func:`track_many` and the video list it takes."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import InputError
from ..runsettings import RunSettings
from ..tracking.config import TrackerConfig
from .jobs import FAILED, STOPPED, VideoJob, VideoResult
from .progress import BatchProgress
from .summary import BatchSummary

__all__ = ["collect_videos", "track_many"]

PathLike = str | os.PathLike[str]


def track_many(
    videos: Iterable[PathLike],
    settings: RunSettings | None = None,
    config: TrackerConfig | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    gpus_per_worker: int | None = None,
    summary_csv: PathLike | None = None,
    quiet: bool = False,
    on_frames: Callable[[str, int, int], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Track every video (one Dask task each) and return the summary; one failing video never stops the others.

    Each video is tracked by the normal tracker with its own seeds and resume rules: videos
    without a labelled frame are reported and skipped, finished videos are left alone, the rest
    resume where their results end. ``scheduler`` is the address of a running Dask scheduler
    (``tcp://host:8786``); without one a ``LocalCluster`` is started with ``workers`` processes
    of ``threads_per_worker`` videos at a time and ``gpus_per_worker`` GPUs each (defaults: one
    worker per GPU, else :data:`~.cluster.CPU_WORKERS`). ``on_frames(video, done,
    total)`` and ``on_result(result)`` report progress (from a background thread); setting
    ``stop`` ends every video after its current frame (status "stopped"; everything written
    stays and the next run resumes). ``say`` prints messages (default: stderr, above the progress bar).
    """
    from .cluster import GPU_DEVICES, connect, has_gpu_workers, local_layout, require_distributed

    require_distributed()
    if scheduler is not None and (workers, threads_per_worker, gpus_per_worker) != (None, None, None):
        raise InputError(
            "--workers, --threads-per-worker and --gpus-per-worker lay out a local cluster; "
            "with --scheduler the workers bring their own (dask worker --nthreads/--resources)"
        )
    settings = settings or RunSettings()
    config = config or TrackerConfig()
    paths = [str(Path(v).expanduser()) for v in videos]
    _check_exist(paths)
    layout = (
        None if scheduler is not None else local_layout(workers, threads_per_worker, gpus_per_worker, settings.device)
    )
    results: dict[int, VideoResult] = {}
    jobs: dict[int, VideoJob] = {}
    for i, (video, clash) in enumerate(_folder_clashes(paths)):
        if clash is not None:
            results[i] = VideoResult(
                video,
                FAILED,
                error=f"{video}: writes to the same result folder as {clash}; rename one of the two videos",
            )
        else:
            jobs[i] = VideoJob(video, settings, config)

    progress = BatchProgress(len(paths), quiet)
    say = say or progress.write
    try:
        for result in results.values():
            progress.finished(result)
            if on_result is not None:
                on_result(result)
        if jobs:
            say(f"Tracking {len(jobs)} video(s) on " + (layout.describe() if layout else f"the cluster at {scheduler}"))
            with connect(scheduler, layout, say) as client:
                say(f"Dask dashboard: {client.dashboard_link}")
                wants_gpu = settings.device in GPU_DEVICES and has_gpu_workers(client)
                results.update(_run(client, jobs, wants_gpu, progress, on_frames, on_result, stop))
    finally:
        progress.close()
    summary = BatchSummary([results[i] for i in range(len(paths))])
    if summary_csv is not None:
        summary.write_csv(summary_csv)
    return summary


def _run(
    client,
    jobs: dict[int, VideoJob],
    wants_gpu: bool,
    progress: BatchProgress,
    on_frames: Callable[[str, int, int], None] | None,
    on_result: Callable[[VideoResult], None] | None,
    stop: threading.Event | None,
) -> dict[int, VideoResult]:
    from distributed import Event, as_completed

    from .worker import run_job

    batch_id = uuid.uuid4().hex[:8]
    topic = f"napari-dinotrack-progress-{batch_id}"
    stop_event = Event(f"napari-dinotrack-stop-{batch_id}", client=client)

    def frames_event(event) -> None:
        msg = event[1]
        progress.frames(msg["video"], msg["done"], msg["total"])
        if on_frames is not None:
            on_frames(msg["video"], msg["done"], msg["total"])

    client.subscribe_topic(topic, frames_event)
    futures = {}
    for i, job in jobs.items():
        # the key names the video on the dashboard; tasks declare a GPU when the cluster has them
        key = f"track-{Path(job.video).stem}-{uuid.uuid4().hex[:8]}"
        future = client.submit(
            run_job, job, topic, stop_event.name, key=key, pure=False, resources={"GPU": 1} if wants_gpu else None
        )
        futures[future] = i
    progress.start()
    results: dict[int, VideoResult] = {}
    watcher = _StopWatcher(stop, stop_event)
    try:
        for future in as_completed(futures):
            i = futures[future]
            results[i] = _outcome(future, jobs[i])
            progress.finished(results[i])
            if on_result is not None:
                on_result(results[i])
    except BaseException:
        stop_event.set()  # e.g. Ctrl-C: the workers of an external cluster end their videos too
        raise
    finally:
        watcher.close()
        client.unsubscribe_topic(topic)
    return results


def _outcome(future, job: VideoJob) -> VideoResult:
    """The task's own result, or a failed row when Dask could not run it (its workers died, it was cancelled)."""
    if future.status == "finished":
        return future.result()
    if future.cancelled():
        return VideoResult(
            job.video, STOPPED, error=f"{job.video}: cancelled before it finished; run the batch again to resume it"
        )
    exc = future.exception()
    return VideoResult(
        job.video,
        FAILED,
        error=f"{job.video}: {type(exc).__name__}: {exc} (the worker tracking it "
        "ended; run the batch again to resume it)",
    )


class _StopWatcher:
    """Passes ``stop`` on to the batch's Dask event, which every video checks as it goes."""

    def __init__(self, stop: threading.Event | None, stop_event) -> None:
        self._done = threading.Event()
        self._thread = None
        if stop is not None:

            def watch() -> None:
                while not self._done.wait(0.2):
                    if stop.is_set():
                        stop_event.set()
                        return

            self._thread = threading.Thread(target=watch, name="dinotrack-batch-stop", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._done.set()


def collect_videos(paths: Iterable[PathLike] = (), list_file: PathLike | None = None) -> list[str]:
    """Video paths from arguments (a folder stands for the videos in it) and a list file, without repeats.

    A list file has one video (or folder) per line; blank lines and ``#`` comments are skipped,
    and relative paths are relative to the list file's folder.
    """
    from ..io.video import VIDEO_SUFFIXES

    entries = [Path(p).expanduser() for p in paths]
    if list_file is not None:
        list_path = Path(list_file).expanduser()
        try:
            text = list_path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise InputError(f"cannot read the video list {list_path}: {exc.strerror or exc}") from None
        for line in map(str.strip, text.splitlines()):
            if line and not line.startswith("#"):
                entry = Path(line).expanduser()
                entries.append(entry if entry.is_absolute() else list_path.parent / entry)
    videos: list[str] = []
    seen: set[Path] = set()
    for entry in entries:
        found = (
            sorted(p for p in entry.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if entry.is_dir()
            else [entry]
        )
        if entry.is_dir() and not found:
            raise InputError(f"{entry} holds no videos ({', '.join(VIDEO_SUFFIXES)})")
        for video in found:
            key = video.resolve()
            if key not in seen:
                seen.add(key)
                videos.append(str(video))
    if not videos:
        raise InputError("no videos given: name video files or folders, or --list FILE (one video per line)")
    return videos


def _check_exist(paths: list[str]) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(
            f"video not found: {shown}. Check the paths (relative paths in a --list file are relative "
            "to the list's folder)"
        )


def _folder_clashes(paths: list[str]) -> list[tuple[str, str | None]]:
    """Each video with the earlier video whose result folder it would share (e.g. a.mp4 and a.avi), or None."""
    from ..io.paths import ResultLayout

    owner: dict[Path, str] = {}
    out = []
    for video in paths:
        folder = ResultLayout(video).folder.resolve()
        out.append((video, owner.get(folder)))
        owner.setdefault(folder, video)
    return out
