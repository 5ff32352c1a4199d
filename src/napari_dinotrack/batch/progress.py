"""Progress of a whole batch: videos done, frames per second and time left, on one tqdm line.

Workers report each running video's frames (done, total) as Dask events; finished videos
arrive as results. Time left counts the frames still to track in the videos that have started,
plus, for the videos not started yet, the mean length of those that have, at the batch's
current frame rate.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from .jobs import TRACKED, VideoResult

__all__ = ["BatchProgress"]


class BatchProgress:
    """Whole-batch progress on stderr (silent when ``quiet``); safe to feed from Dask's event thread."""

    def __init__(self, n_videos: int, quiet: bool = False) -> None:
        self.n_videos = n_videos
        self.quiet = quiet
        self.started: float | None = None  # set by start(): frames/s measures tracking, not cluster start-up
        self._frames: dict[str, tuple[int, int]] = {}  # video -> (done, total) of its current run
        self._finished = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._interval = 0.2 if sys.stderr.isatty() else 5.0
        self._shown = 0.0
        if not quiet:
            self._ensure_bar()

    # ------------------------------------------------------------------ inputs
    def start(self) -> None:
        """The videos have been handed to the cluster: the frame rate counts from now."""
        with self._lock:
            self.started = time.monotonic()

    def frames(self, video: str, done: int, total: int) -> None:
        """A running video has tracked ``done`` of its ``total`` frames."""
        with self._lock:
            if self.started is None:
                self.started = time.monotonic()
            self._frames[video] = (done, total)
            self._show(force=False)

    def finished(self, result: VideoResult) -> None:
        """A video is finished (whatever its status); its line goes above the bar."""
        with self._lock:
            self._finished += 1
            if result.frames:
                self._frames[result.video] = (result.frames, result.frames)
            else:
                self._frames.pop(result.video, None)
            if not self.quiet:
                self._ensure_bar().write(_result_line(result), file=sys.stderr)
            self._show(force=True)

    def write(self, text: str) -> None:
        """Print a message on stderr above the bar (even when quiet: messages are not progress)."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    # ------------------------------------------------------------------ numbers
    @property
    def frames_done(self) -> int:
        return sum(done for done, _ in self._frames.values())

    @property
    def fps(self) -> float:
        elapsed = 0.0 if self.started is None else time.monotonic() - self.started
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def seconds_left(self) -> float | None:
        """Estimated time to the end of the batch, or None while nothing is known."""
        fps = self.fps
        if not self._frames or fps <= 0:
            return None
        left = sum(total - done for done, total in self._frames.values())
        not_started = self.n_videos - self._finished - sum(1 for d, t in self._frames.values() if d < t)
        mean_total = sum(total for _, total in self._frames.values()) / len(self._frames)
        return (left + max(0, not_started) * mean_total) / fps

    # ------------------------------------------------------------------ display
    def _ensure_bar(self):
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.n_videos,
                unit="video",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} videos [{elapsed}{postfix}]",
            )
        return self._bar

    def _show(self, force: bool) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._shown < self._interval):
            return
        self._shown = now
        bar = self._ensure_bar()
        left = self.seconds_left()
        eta = "?" if left is None else bar.format_interval(left)
        bar.n = self._finished
        bar.set_postfix_str(f"{self.frames_done} frames, {self.fps:.1f} frames/s, {eta} left", refresh=True)


def _result_line(result: VideoResult) -> str:
    if result.status == TRACKED:
        return (
            f"{TRACKED:<11} {result.video}: {result.frames} frames in {result.seconds:.1f} s "
            f"({result.fps:.1f} frames/s)"
        )
    if result.error:
        return f"{result.status:<11} {result.error}"
    return f"{result.status:<11} {result.video}"
