"""Features a batch ahead: decoded frames become grey images and backbone features on a worker thread.

While the tracking loop works through one batch, :class:`FeaturesAhead` already computes the next:
it takes the frames the video reader decodes ahead, converts them to grey for the optical flow
and runs the backbone on them. On a CPU the tracking loop runs on one thread
(:class:`TrackingThreads`) and the backbone on the other cores (:func:`backbone_threads`): a
thread pool that shares its cores with another busy thread waits for it at every operation. On a
CUDA GPU the worker runs the backbone on its own CUDA stream and gathers each batch in a pinned
host buffer, so the upload is an asynchronous copy and the network overlaps the tracker's
kernels on the default stream.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .backbone.base import WorkGeometry
from .profiling import RunProfile, recording
from .tracking.keypoints.flow import to_gray

__all__ = ["FeatureBatch", "FeaturesAhead", "TrackingThreads", "backbone_threads"]


Extract = Callable[[Any, WorkGeometry], torch.Tensor]
_END = object()
AHEAD = 1  # batches computed ahead of the one being tracked
TRACKING_THREADS = 1  # torch CPU threads of the tracking loop (docs/benchmarks.md, "Threads")
JOIN_WAIT_S = 1.0  # a stopped worker still in a long forward pass finishes on its own (it writes nothing)


@dataclass
class FeatureBatch:
    """Consecutive frames with everything the tracking loop needs from them."""

    frames: list[int]
    images: list[np.ndarray]  # (H, W, 3) uint8 RGB
    grays: list[np.ndarray]  # (H, W) uint8
    features: torch.Tensor  # (B, C, h, w) on the backbone's device


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class FeaturesAhead:
    """Iterate over :class:`FeatureBatch` es of ``frames``, each computed while the previous one is tracked.

    ``frames`` yields ``(index, image)``; it is consumed and closed by the worker thread.
    ``extract(images, geometry)`` is the backbone. ``threads`` is torch's CPU thread count for
    the worker (default: :func:`backbone_threads`). Use as a context manager (or call :meth:`close`).
    """

    def __init__(
        self,
        frames: Iterator[tuple[int, np.ndarray]],
        extract: Extract,
        geometry: WorkGeometry,
        batch_size: int,
        device: torch.device,
        profile: RunProfile | None = None,
        threads: int | None = None,
    ) -> None:
        self._frames = frames
        self._extract = extract
        self._geometry = geometry
        self._batch_size = max(1, int(batch_size))
        self._device = torch.device(device)
        self._profile = profile
        self._callers_threads = torch.get_num_threads()
        self._threads = threads if threads is not None else backbone_threads(self._device)
        self._queue: queue.Queue = queue.Queue(maxsize=AHEAD)
        self._stop = threading.Event()
        cuda = self._device.type == "cuda"
        self._stream = torch.cuda.Stream(self._device) if cuda else None
        # a batch can be in the queue, one with the loop and one being filled: three buffers never clash
        self._pinned = _PinnedRing(AHEAD + 2) if cuda else None
        self._thread = threading.Thread(target=self._work, name="dinotrack-features", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the tracking loop's side
    def __iter__(self) -> Iterator[FeatureBatch]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            if self._stream is not None:
                # memory the side stream allocated must not be reused while the loop's kernels still read it
                item.features.record_stream(torch.cuda.current_stream(self._device))
            yield item

    def close(self) -> None:
        """Stop the worker (a forward pass under way finishes in the background)."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(JOIN_WAIT_S)
        # the worker's setting is also torch's default for threads started later: put the caller's back
        torch.set_num_threads(self._callers_threads)

    def __enter__(self) -> FeaturesAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the worker thread
    def _work(self) -> None:
        torch.set_num_threads(self._threads)  # this thread's own OpenMP team
        stream = torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()
        try:
            with stream:
                self._produce()
            self._put(_END)
        except BaseException as exc:
            self._put(_Failure(exc))
        finally:
            with contextlib.suppress(Exception):
                self._frames.close()  # type: ignore[attr-defined]

    def _produce(self) -> None:
        prof = self._profile
        batch: list[tuple[int, np.ndarray]] = []
        t0 = time.perf_counter()
        for index, image in self._frames:
            if prof is not None:
                prof.add("decode", index, time.perf_counter() - t0)
            batch.append((index, image))
            if len(batch) == self._batch_size:
                if not self._emit(batch):
                    return
                batch = []
            if self._stop.is_set():
                return
            t0 = time.perf_counter()
        if batch:
            self._emit(batch)

    def _emit(self, batch: list[tuple[int, np.ndarray]]) -> bool:
        prof = self._profile
        frames = [i for i, _ in batch]
        t0 = time.perf_counter()
        images, model_input = self._stack([img for _, img in batch])
        grays = [to_gray(img) for img in images]
        t1 = time.perf_counter()
        with recording(prof, frames):
            features = self._extract(model_input, self._geometry)
            if self._stream is not None:
                self._stream.synchronize()  # the worker waits for its own stream; the loop never does
        t2 = time.perf_counter()
        if prof is not None:
            prof.add_spread("colour", frames, t1 - t0)
            prof.add_spread("backbone", frames, t2 - t1 - prof.total("preprocess", frames))
        return self._put(FeatureBatch(frames, list(images), grays, features))

    def _stack(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | torch.Tensor]:
        """The batch as one array, and what the backbone gets: the same array, or its pinned tensor."""
        if self._pinned is None:
            stacked = np.stack(images)
            return stacked, stacked
        tensor = self._pinned.fill(images)
        return tensor.numpy(), tensor

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False


def backbone_threads(device: torch.device) -> int:
    """torch CPU threads for the backbone: the caller's setting, less the core the tracking loop uses.

    With every core in its pool, the backbone's threads would wait for the tracking thread's
    core at each operation (docs/benchmarks.md, "Threads"). On a GPU the setting hardly matters
    and stays the caller's.
    """
    threads = torch.get_num_threads()
    if torch.device(device).type != "cpu":
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(threads, cores - 1))


class _PinnedRing:
    """A few page-locked host buffers used in turn, so that uploads are asynchronous copies."""

    def __init__(self, size: int) -> None:
        self._buffers: list[torch.Tensor | None] = [None] * size
        self._next = 0

    def fill(self, images: list[np.ndarray]) -> torch.Tensor:
        """The images stacked into the next buffer (a pinned uint8 tensor)."""
        slot = self._next % len(self._buffers)
        self._next += 1
        shape = (len(images), *images[0].shape)
        buffer = self._buffers[slot]
        if buffer is None or buffer.shape[1:] != shape[1:] or buffer.shape[0] < shape[0]:
            buffer = self._buffers[slot] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        tensor = buffer[: shape[0]]
        np.stack(images, out=tensor.numpy())
        return tensor


class TrackingThreads:
    """``with`` it, the calling thread's torch CPU work runs on ``threads`` threads (CPU runs only).

    The tracker's tensors are small (a few keypoints against a few thousand patches): splitting
    each operation over several threads costs more in hand-offs than it saves, and the cores are
    better left to the backbone's worker thread (docs/benchmarks.md, "Threads"). The caller's own
    setting is back in place outside the block (setting it costs half a microsecond).
    """

    def __init__(self, device: torch.device, threads: int | None = None) -> None:
        self.threads = (threads or TRACKING_THREADS) if torch.device(device).type == "cpu" else None
        self._previous = 0

    def __enter__(self) -> TrackingThreads:
        if self.threads is not None:
            self._previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.threads is not None:
            torch.set_num_threads(self._previous)
