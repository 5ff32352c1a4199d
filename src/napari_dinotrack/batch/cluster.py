"""Where a batch runs: a Dask ``LocalCluster`` on this machine, or any running scheduler given its address.

The local cluster is laid out for tracking: on a GPU machine one worker per GPU (each with the
Dask resource ``GPU=1``), on a CPU-only machine workers that share the cores (torch's thread pool
of each worker gets its share). Workers of an external cluster bring their own resources, e.g.
``dask worker ADDRESS --nthreads 1 --resources GPU=1`` per GPU.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError, MissingExtraError

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "CPU_WORKERS",
    "GPU_DEVICES",
    "LocalLayout",
    "connect",
    "has_gpu_workers",
    "local_layout",
    "require_distributed",
    "usable_cpus",
    "workers_info",
]

CPU_WORKERS = 2
"""Workers of a CPU-only local cluster (fewer on a one-core machine), each with its share of the cores.

Two single-threaded processes tracked 1.5x (ViT-S/16) to 3x (``pixel:``) the frames of one
two-threaded process on a 2-core machine (``docs/benchmarks.md``): videos are independent, so
processes scale without the synchronisation of torch's thread pool. More workers cost about
0.75 GB of memory each; give ``--workers`` on bigger machines.
"""

GPU_DEVICES = ("auto", "cuda", "gpu")
"""Device settings that let each video run on a GPU of its worker (any other device is used as given)."""


def require_distributed() -> None:
    """Raise :class:`MissingExtraError` (pip extra ``batch``) when ``dask.distributed`` is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingExtraError("distributed", "batch", "Tracking many videos at once (dask.distributed)") from None


@dataclass(frozen=True)
class LocalLayout:
    """How a local cluster is laid out."""

    workers: int
    threads_per_worker: int  # videos a worker runs at once (on GPUs: at most one per GPU slot)
    gpus_per_worker: int  # GPU slots of a worker (the Dask resource GPU)
    torch_threads: int  # torch CPU threads of each worker
    gpus_visible: int

    def describe(self) -> str:
        gpus = f", {self.gpus_per_worker} GPU slot(s) each" if self.gpus_per_worker else ""
        return (
            f"local cluster: {self.workers} worker(s) x {self.threads_per_worker} video(s) at a time{gpus}, "
            f"{self.torch_threads} torch thread(s) per worker"
        )


def local_layout(
    workers: int | None = None,
    threads_per_worker: int | None = None,
    gpus_per_worker: int | None = None,
    device: str = "auto",
) -> LocalLayout:
    """The local cluster for these options; anything not given follows from the machine's GPUs and cores."""
    for name, value, least in (
        ("--workers", workers, 1),
        ("--threads-per-worker", threads_per_worker, 1),
        ("--gpus-per-worker", gpus_per_worker, 0),
    ):
        if value is not None and value < least:
            raise InputError(f"{name} must be at least {least}, got {value}")
    gpus_visible = _cuda_device_count() if device in GPU_DEVICES else 0
    if gpus_per_worker is None:
        gpus_per_worker = 1 if gpus_visible else 0
    if workers is None:
        workers = (
            max(1, gpus_visible // gpus_per_worker)
            if gpus_per_worker and gpus_visible
            else min(CPU_WORKERS, usable_cpus())
        )
    if threads_per_worker is None:
        threads_per_worker = max(1, gpus_per_worker)
    torch_threads = max(1, usable_cpus() // workers)
    return LocalLayout(workers, threads_per_worker, gpus_per_worker, torch_threads, gpus_visible)


@contextlib.contextmanager
def connect(scheduler: str | None, layout: LocalLayout | None, say: Callable[[str], None] = print) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new local cluster laid out as ``layout``.

    The batch's worker plugin is registered before the client is handed out; an external
    scheduler without workers is waited for (``say`` tells the user). A local cluster is closed
    (its workers end) when the block ends.
    """
    require_distributed()
    from distributed import Client, LocalCluster

    from .worker import PLUGIN_NAME, BatchWorkerPlugin

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            assert layout is not None
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=layout.workers,
                    threads_per_worker=layout.threads_per_worker,
                    processes=True,
                    resources={"GPU": layout.gpus_per_worker} if layout.gpus_per_worker else None,
                )
            )
            client = stack.enter_context(Client(cluster))
            host = next(iter(workers_info(client).values()))["host"]
            plugin = BatchWorkerPlugin(
                torch_threads={host: layout.torch_threads},
                first_gpu={str(i): i * layout.gpus_per_worker for i in range(layout.workers)},
                ignore_interrupt=True,
            )
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"cannot reach the Dask scheduler at {scheduler!r} ({exc}). Is `dask scheduler` "
                    "running there, and is the address the one it printed (tcp://HOST:PORT)?"
                ) from None
            if not workers_info(client):
                say(f"Waiting for workers to join the scheduler at {scheduler} …")
                client.wait_for_workers(1)
            plugin = BatchWorkerPlugin(torch_threads=_torch_threads_per_host(client))
        client.register_plugin(plugin, name=PLUGIN_NAME)
        yield client


def has_gpu_workers(client: Client) -> bool:
    """Whether any worker of the cluster offers the Dask resource ``GPU``."""
    return any(w.get("resources", {}).get("GPU") for w in workers_info(client).values())


def workers_info(client: Client) -> dict[str, dict]:
    """The scheduler's record of every worker (address -> host, resources, …)."""
    try:
        # releases from 2025.4 until mid-2026 list only 5 workers unless asked for all
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # releases before the argument existed list them all
        return client.scheduler_info()["workers"]


def usable_cpus() -> int:
    """CPU cores this process may run on (a job scheduler's CPU set, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _torch_threads_per_host(client: Client) -> dict[str, int]:
    """Each host's cores divided among the workers running on it (for the workers there now)."""
    workers = workers_info(client)
    if not workers:
        return {}
    per_host = Counter(w["host"] for w in workers.values())
    cpus = client.run(usable_cpus)
    return {
        workers[addr]["host"]: max(1, n // per_host[workers[addr]["host"]])
        for addr, n in cpus.items()
        if addr in workers
    }


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count()
