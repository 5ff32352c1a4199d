"""Where a tracking run spends its time: per-frame stage times, a summary table and a JSON file.

Pass a :class:`RunProfile` to :meth:`~.pipeline.DinoKeypointVideoProcessor.iter_results` (or
``profile=True`` / a JSON path to ``process_video``, or ``napari-dinotrack track --profile
FILE.json``). Every frame of the run then gets the time it spent in each of :data:`STAGES`.
Stages that work on a whole batch (decoding ahead, preprocessing, the backbone) spread their time
evenly over the batch's frames. ``loop`` is the main loop's own time for a frame (what the run
costs the thread that tracks), ``consumer`` the time the caller of ``iter_results`` took before it
asked for the next frame (a progress bar, a GUI); it is not part of ``loop``.

*Host time* (:attr:`RunProfile.host_ms_per_frame`) is the part of ``loop`` that is neither the
tracker's nor the mask propagator's own work: waiting, conversions, building results, handing them
to the writer, the optical flow and the Python around all that (every frame but the first, which
starts the decoder, waits for the first batch and seeds the tracker). On a GPU the tensor math runs
asynchronously, so this is the time per frame that the host needs no matter how fast the device
is, and what the GPU's frame rate is capped by.

Recording costs two clock reads and one array store per stage and frame, a few microseconds per
frame in all (``benchmarks/bench_host_budget.py`` measures it).

Optical flow runs inside the tracker step, which this module does not touch. While a profiled
run is going, the module-level name ``track_points`` of the tracker's modules (the LK call of
:mod:`.tracking.keypoints.flow`) is wrapped by a function that times each call into the calling
thread's profile and otherwise calls the original; the original is put back when the last
profiled run ends. If the tracker stops calling ``track_points``, the ``optical_flow`` row stays
empty and the flow's time is simply part of ``tracker_step``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HOST_BUDGET_MS", "NO_PROFILE", "STAGES", "RunProfile", "Stage", "recording", "timed"]

HOST_BUDGET_MS = 2.0  # host time per frame that lets a GPU run at its backbone's pace (docs/benchmarks.md)


@dataclass(frozen=True)
class Stage:
    """One row of the profile: where it runs and what it covers."""

    name: str
    thread: str  # "features" (the thread computing features ahead), "main" (the tracking loop), "writer", "caller"
    what: str


STAGES: tuple[Stage, ...] = (
    Stage("decode", "features", "waiting for decoded frames (ffmpeg and the reader's thread decode ahead)"),
    Stage("colour", "features", "RGB to grey for the optical flow"),
    Stage("preprocess", "features", "upload, resize and normalise the batch (backbones that report it)"),
    Stage("backbone", "features", "the network's forward pass"),
    Stage("wait_features", "main", "the tracking loop waiting for the next batch of features"),
    Stage("tracker_step", "main", "KeypointTracker.step, optical flow included"),
    Stage("optical_flow", "main", "Lucas-Kanade flow inside the tracker step"),
    Stage(
        "tracker_step_cpu",
        "main",
        "CPU time the tracking thread got during the tracker step (the rest it waited for a core or the GIL)",
    ),
    Stage("mask_propagation", "main", "instance masks carried to the frame"),
    Stage("results", "main", "the frame's annotation and result object"),
    Stage("wait_writer", "main", "handing the frame to the writer (waits only while its queue is full)"),
    Stage("write", "writer", "JSON, table rows and masks of the frame"),
    Stage("loop", "main", "the tracking loop's whole time for the frame"),
    Stage("consumer", "caller", "the caller's time between two frames (progress bar, GUI)"),
)
_ROW = {stage.name: i for i, stage in enumerate(STAGES)}
# stages inside the loop that are the tracker's or the mask propagator's own computation
_OWN_WORK = ("tracker_step", "mask_propagation")
_INSIDE_TRACKER = ("optical_flow",)
# CPU time of a stage's thread, recorded next to the stage's wall time: not time of its own
_CPU_OF = ("tracker_step_cpu",)


class RunProfile:
    """Per-frame stage times of one tracking run (thread-safe for one writer per stage and frame).

    The run calls :meth:`begin` with its frame range; frames outside it are ignored. Read the
    results with :meth:`summary`, :meth:`table`, :meth:`per_frame` or :meth:`save`.
    """

    enabled = True

    def __init__(self) -> None:
        self.first = 0
        self.times = np.zeros((len(STAGES), 0))
        self.setup: dict[str, Any] = {}
        self.started = 0.0
        self.finished = 0.0
        self._seen = np.zeros(0, bool)

    # ------------------------------------------------------------------ recording
    def begin(self, first: int, last: int, **setup: Any) -> None:
        """Start recording frames ``first``..``last``; ``setup`` describes the run (model, device, ...)."""
        n = max(0, last - first + 1)
        self.first = first
        self.times = np.zeros((len(STAGES), n))
        self._seen = np.zeros(n, bool)
        self.setup = {**_machine(), **setup}
        self.started = time.perf_counter()
        self.finished = 0.0

    def end(self) -> None:
        """The run is over (its wall time stops here)."""
        self.finished = time.perf_counter()

    @contextlib.contextmanager
    def running(self, first: int, last: int, **setup: Any) -> Iterator[RunProfile]:
        """:meth:`begin` ... :meth:`end`, timing the optical flow inside the tracker meanwhile."""
        self.begin(first, last, **setup)
        _flow_timer.install()
        try:
            yield self
        finally:
            _flow_timer.uninstall()
            self.end()

    def add(self, stage: str, frame: int, seconds: float) -> None:
        """Add ``seconds`` to ``stage`` of ``frame``."""
        col = frame - self.first
        if 0 <= col < self.times.shape[1]:
            self.times[_ROW[stage], col] += seconds
            if stage == "loop":
                self._seen[col] = True

    def add_spread(self, stage: str, frames: Iterable[int], seconds: float) -> None:
        """Spread ``seconds`` of batch work evenly over ``frames``."""
        frames = list(frames)
        for frame in frames:
            self.add(stage, frame, seconds / len(frames))

    def total(self, stage: str, frames: Iterable[int]) -> float:
        """Seconds recorded so far for ``stage`` over ``frames``."""
        cols = [f - self.first for f in frames if 0 <= f - self.first < self.times.shape[1]]
        return float(self.times[_ROW[stage], cols].sum())

    # ------------------------------------------------------------------ reading
    @property
    def n_frames(self) -> int:
        """Frames the tracking loop handled."""
        return int(self._seen.sum())

    @property
    def wall_seconds(self) -> float:
        end = self.finished or time.perf_counter()
        return end - self.started if self.started else 0.0

    def stage_ms(self, stage: str) -> np.ndarray:
        """Milliseconds of ``stage`` for every frame the loop handled."""
        return self.times[_ROW[stage], self._seen] * 1000.0

    @property
    def host_ms(self) -> np.ndarray:
        """Per frame after the first: the loop's time outside the tracker's and mask propagator's own work.

        The first frame is left out: it waits for the decoder to start and the first batch of
        features, and seeds the tracker, once per run.
        """
        own = sum(self.stage_ms(s) for s in _OWN_WORK) - sum(self.stage_ms(s) for s in _INSIDE_TRACKER)
        return (self.stage_ms("loop") - own)[1:]

    @property
    def host_ms_per_frame(self) -> float:
        host = self.host_ms
        return float(host.mean()) if len(host) else 0.0

    def summary(self) -> dict[str, Any]:
        """Totals and per-frame statistics of every stage, the host time and the setup."""
        n = self.n_frames
        stages = {}
        for stage in STAGES:
            ms = self.stage_ms(stage.name)
            stages[stage.name] = {
                "thread": stage.thread,
                "what": stage.what,
                "total_s": round(float(ms.sum()) / 1000, 4),
                **_stats(ms),
            }
        loop = self.stage_ms("loop")
        named = sum(
            self.stage_ms(s.name)
            for s in STAGES
            if s.thread == "main" and s.name != "loop" and s.name not in _INSIDE_TRACKER + _CPU_OF
        )
        wall = self.wall_seconds
        return {
            "frames": n,
            "wall_s": round(wall, 4),
            "fps": round(n / wall, 3) if wall > 0 else 0.0,
            "loop_ms_per_frame": round(float(loop.mean()), 4) if n else 0.0,
            "host_ms_per_frame": round(self.host_ms_per_frame, 4),
            "host_p50_ms": round(float(np.median(self.host_ms)), 4) if n > 1 else 0.0,
            "host_budget_ms": HOST_BUDGET_MS,
            "first_frame_loop_ms": round(float(loop[0]), 4) if n else 0.0,
            "unattributed_loop_ms_per_frame": round(float((loop - named).mean()), 4) if n else 0.0,
            "stages": stages,
            "setup": self.setup,
        }

    def per_frame(self) -> dict[str, list[int] | list[float]]:
        """Column-wise per-frame records: ``frame`` and every stage in milliseconds."""
        frames = (np.flatnonzero(self._seen) + self.first).tolist()
        out: dict[str, list[int] | list[float]] = {"frame": frames}
        for stage in STAGES:
            out[stage.name] = [round(v, 4) for v in self.stage_ms(stage.name).tolist()]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "per_frame": self.per_frame()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the summary and the per-frame records as JSON (atomically)."""
        from .io.atomic import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")

    def table(self) -> str:
        """The summary as a text table, one row per stage."""
        s = self.summary()
        lines = [f"{'stage':<17} {'thread':<9} {'ms/frame':>9} {'p50':>8} {'p95':>8} {'total s':>8}"]
        for name, row in s["stages"].items():
            if row["total_s"] == 0 and name not in ("loop", "tracker_step"):
                continue
            lines.append(
                f"{name:<17} {row['thread']:<9} {row['mean_ms']:>9.3f} {row['p50_ms']:>8.3f} "
                f"{row['p95_ms']:>8.3f} {row['total_s']:>8.2f}"
            )
        verdict = "within" if s["host_ms_per_frame"] <= HOST_BUDGET_MS else "over"
        lines.append(
            f"{s['frames']} frames in {s['wall_s']:.2f} s ({s['fps']:.1f} frames/s); host time "
            f"{s['host_ms_per_frame']:.3f} ms/frame, {verdict} the {HOST_BUDGET_MS:g} ms budget"
        )
        return "\n".join(lines)


def _stats(ms: np.ndarray) -> dict[str, float]:
    if not len(ms):
        return {"mean_ms": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0}
    p50, p95 = np.percentile(ms, [50, 95])
    return {
        "mean_ms": round(float(ms.mean()), 4),
        "p50_ms": round(float(p50), 4),
        "p95_ms": round(float(p95), 4),
        "max_ms": round(float(ms.max()), 4),
    }


def _machine() -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return out


# ---------------------------------------------------------------------------- the running thread's profile
_local = threading.local()


class _NoProfile(RunProfile):
    """Stands in for a profile when a run is not profiled: records nothing, costs nothing."""

    enabled = False

    def add(self, stage: str, frame: int, seconds: float) -> None:
        pass

    def add_spread(self, stage: str, frames: Iterable[int], seconds: float) -> None:
        pass

    def total(self, stage: str, frames: Iterable[int]) -> float:
        return 0.0

    @contextlib.contextmanager
    def running(self, first: int, last: int, **setup: Any) -> Iterator[RunProfile]:
        yield self


NO_PROFILE: RunProfile = _NoProfile()


class recording:  # a context manager used like a function
    """Make ``profile`` the calling thread's profile for :func:`timed` stages of ``frames``."""

    __slots__ = ("_previous", "frames", "profile")

    def __init__(self, profile: RunProfile | None, frames: Iterable[int]) -> None:
        self.profile = profile if profile is not None and profile.enabled else None
        self.frames = tuple(frames)
        self._previous: recording | None = None

    def __enter__(self) -> recording:
        self._previous = getattr(_local, "current", None)
        _local.current = self if self.profile is not None else None
        return self

    def __exit__(self, *exc: object) -> None:
        _local.current = self._previous


class timed:  # a context manager used like a function
    """Time a block into the calling thread's current profile (nothing happens without one).

    For code that does not know whether it is profiled, such as a backbone's ``extract``.
    """

    __slots__ = ("_start", "_target", "stage")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._target: recording | None = None
        self._start = 0.0

    def __enter__(self) -> timed:
        self._target = getattr(_local, "current", None)
        if self._target is not None:
            self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        target = self._target
        if target is not None and target.profile is not None:
            target.profile.add_spread(self.stage, target.frames, time.perf_counter() - self._start)


class _FlowTimer:
    """Wraps the tracker's ``track_points`` while at least one profiled run is going."""

    FUNCTION = "track_points"
    PACKAGE = __package__ + ".tracking.keypoints"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._patched: list[tuple[Any, Callable[..., Any]]] = []

    def install(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            from .tracking.keypoints import flow

            original: Callable[..., Any] | None = getattr(flow, self.FUNCTION, None)
            if original is None:
                return
            wrapper = _timed_call(original, "optical_flow")
            prefix = self.PACKAGE + "."
            for name, module in list(sys.modules.items()):
                if name != self.PACKAGE and not name.startswith(prefix):
                    continue
                found: Callable[..., Any] | None = getattr(module, self.FUNCTION, None)
                if found is original:
                    setattr(module, self.FUNCTION, wrapper)
                    self._patched.append((module, original))

    def uninstall(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            for module, original in self._patched:
                setattr(module, self.FUNCTION, original)
            self._patched = []


def _timed_call(function: Callable[..., Any], stage: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with timed(stage):
            return function(*args, **kwargs)

    return call


_flow_timer = _FlowTimer()
