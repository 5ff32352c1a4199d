"""GPU layout of a batch, checked without a GPU: how many workers, and which GPU each video gets."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from napari_dinotrack.batch.cluster import CPU_WORKERS, local_layout, usable_cpus
from napari_dinotrack.batch.worker import BatchWorkerPlugin


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_a_gpu_machine_gets_one_worker_per_gpu(four_gpus):
    layout = local_layout()
    assert (layout.workers, layout.gpus_per_worker, layout.threads_per_worker) == (4, 1, 1)
    layout = local_layout(gpus_per_worker=2)
    assert (layout.workers, layout.gpus_per_worker, layout.threads_per_worker) == (2, 2, 2)
    assert local_layout(device="cpu").gpus_per_worker == 0


def test_a_cpu_machine_shares_its_cores_among_the_workers(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    layout = local_layout()
    assert (layout.workers, layout.gpus_per_worker) == (min(CPU_WORKERS, usable_cpus()), 0)
    assert local_layout(workers=2).torch_threads == max(1, usable_cpus() // 2)


def _worker(name: str, gpus: int) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, address="tcp://10.0.0.7:4321", state=SimpleNamespace(total_resources={"GPU": gpus} if gpus else {})
    )


def test_each_running_video_holds_its_own_gpu_of_its_worker(four_gpus):
    plugin = BatchWorkerPlugin(first_gpu={"0": 0, "1": 2})
    plugin.setup(_worker("1", gpus=2))
    with plugin.gpu(True) as first, plugin.gpu(True) as second:
        assert {first, second} == {"cuda:2", "cuda:3"}
    with plugin.gpu(True) as again:
        assert again in {"cuda:2", "cuda:3"}  # handed back after each video
    with plugin.gpu(False) as none:
        assert none is None


def test_more_slots_than_gpus_share_them(four_gpus):
    plugin = BatchWorkerPlugin()
    plugin.setup(_worker("w", gpus=8))
    with contextlib.ExitStack() as running:
        devices = [running.enter_context(plugin.gpu(True)) for _ in range(8)]
    assert sorted(devices) == sorted([f"cuda:{i}" for i in range(4)] * 2)
