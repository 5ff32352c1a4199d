"""The Dask side of a batch: a worker plugin that owns the worker's models and GPUs, and the task itself.

:class:`BatchWorkerPlugin` is registered once per batch; Dask runs its ``setup`` on every worker
(also on workers that join or restart later). It holds the worker's :class:`~.models.ModelCache`,
so the backbone is loaded once per worker and not once per video, hands each running video one
of the worker's GPUs, and sizes torch's CPU thread pool to the worker's share of its machine.
Tasks that need a GPU declare the Dask resource ``GPU``, so a worker runs at most as many
videos at once as it has GPU slots.

This module imports ``distributed``; the rest of the package imports it only when a batch runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from typing import cast

from distributed import Event, get_worker
from distributed.comm.addressing import get_address_host
from distributed.diagnostics.plugin import WorkerPlugin

from .cluster import GPU_DEVICES
from .jobs import VideoJob, VideoResult, track_video
from .models import ModelCache

__all__ = ["PLUGIN_NAME", "BatchWorkerPlugin", "run_job"]

PLUGIN_NAME = "napari-dinotrack-batch"
REPORT_INTERVAL_S = 0.5  # progress events per running video at most this often


class BatchWorkerPlugin(WorkerPlugin):
    """Per-worker state of a batch: models, GPU slots and torch threads.

    ``torch_threads`` maps a host name to torch's CPU threads per worker on that host (its cores
    divided among its workers); ``first_gpu`` maps a worker name to the first GPU it owns when
    several workers share a machine's GPUs (a local cluster). ``ignore_interrupt`` is for the
    workers of a local cluster: Ctrl-C reaches the whole process group, and the batch, not each
    worker, decides how to stop (it ends the videos and closes the cluster). A worker with the resource
    ``GPU=K`` gets K slots on its GPUs ``first, first+1, …`` (wrapping around, so asking for more
    slots than GPUs shares them); without CUDA the slots only limit how many videos run at once.
    """

    def __init__(
        self,
        torch_threads: dict[str, int] | None = None,
        first_gpu: dict[str, int] | None = None,
        ignore_interrupt: bool = False,
    ):
        self.torch_threads = dict(torch_threads or {})
        self.first_gpu = dict(first_gpu or {})
        self.ignore_interrupt = ignore_interrupt

    def setup(self, worker) -> None:
        # the batch's own bar reports progress; download/loading bars of several workers would garble it
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if self.ignore_interrupt and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.models = ModelCache()
        self.gpu_slots: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.n_gpu_slots = int(worker.state.total_resources.get("GPU", 0))
        threads = self.torch_threads.get(get_address_host(worker.address))
        if threads or self.n_gpu_slots:
            import torch

            if threads:
                # Dask starts workers with OMP_NUM_THREADS=1; give torch this worker's share of the cores
                torch.set_num_threads(threads)
            count = torch.cuda.device_count()
            first = self.first_gpu.get(str(worker.name), 0)
            for i in range(self.n_gpu_slots):
                self.gpu_slots.put(f"cuda:{(first + i) % count}" if count else None)

    def teardown(self, worker) -> None:
        self.models.clear()

    @contextlib.contextmanager
    def gpu(self, needs_gpu: bool) -> Iterator[str | None]:
        """Hold one of the worker's GPUs (None: no GPU slot, or slots without CUDA) while a video runs."""
        if not needs_gpu or not self.n_gpu_slots:
            yield None
            return
        # Dask's resource accounting never runs more GPU tasks than slots, so this does not wait
        device = self.gpu_slots.get()
        try:
            yield device
        finally:
            self.gpu_slots.put(device)


def run_job(job: VideoJob, topic: str, stop_event: str) -> VideoResult:
    """The Dask task of one video: track it on this worker, reporting progress events under ``topic``.

    The batch's Dask ``Event`` named ``stop_event`` ends the video after the current frame.
    """
    worker = get_worker()
    # the batch registers this plugin under PLUGIN_NAME before it submits any task
    plugin = cast(BatchWorkerPlugin, worker.plugins[PLUGIN_NAME])
    report = _ProgressEvents(worker, topic, job.video, Event(stop_event))
    wants_gpu = job.settings.device in GPU_DEVICES
    with plugin.gpu(wants_gpu) as device:
        result = track_video(
            job, plugin.models, device=device if wants_gpu else None, progress=report, should_stop=report.should_stop
        )
    result.worker = f"{worker.name} ({get_address_host(worker.address)}, pid {os.getpid()})"
    return result


class _ProgressEvents:
    """``progress(done, total)`` for the engine, sent to the client as Dask events, and the batch's stop flag.

    Both go through the scheduler, so both are throttled to one exchange per interval.
    """

    def __init__(self, worker, topic: str, video: str, stop: Event):
        self.worker = worker
        self.topic = topic
        self.video = video
        self.stop = stop
        self.last = 0.0
        self.stopped = stop.is_set()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < REPORT_INTERVAL_S:
            return
        self.last = now
        self.worker.log_event(self.topic, {"video": self.video, "done": done, "total": total})
        self.stopped = self.stop.is_set()

    def should_stop(self) -> bool:
        return self.stopped
