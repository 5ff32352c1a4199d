"""Generated videos with their frame-0 seeds, and a Dask cluster started the way users start one by hand."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.runsettings import RunSettings
from napari_dinotrack.synthetic import make_clip

pytest.importorskip("distributed", reason="the batch tests need the [batch] extra (dask.distributed)")


@pytest.fixture(scope="session")
def fast() -> RunSettings:
    """Weight-free backbone at a small working size: the batch machinery, not the tracker, is under test."""
    return RunSettings(model="pixel:", short_side=64)


@pytest.fixture(scope="session")
def make_videos():
    """``make_videos(folder, n=4, broken=None, n_frames=24)`` -> labelled videos (see :func:`write_videos`)."""
    return write_videos


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def write_videos(folder: Path, n: int = 4, broken: int | None = None, n_frames: int = 24) -> list[Path]:
    """``n`` videos ``folder/mouse<i>.mp4`` with frame 0 labelled; video ``broken`` is not a video any more."""
    clip = make_clip(n_frames=n_frames, height=96, width=128, speed=2.5)
    videos = []
    for i in range(n):
        video = clip.write(folder / f"mouse{i}.mp4")
        layout = ResultLayout(video)
        layout.ensure_folder()
        write_manual(layout, clip.annotation(0))
        videos.append(video)
    if broken is not None:
        videos[broken].write_bytes(b"this is not a video")
    return videos


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes on free localhost ports; yields the address.

    Each worker has two threads and one GPU slot (``--resources GPU=1``, no CUDA needed): the
    batch must still run one video at a time per worker. Every process is ended afterwards.
    """
    from distributed import Client

    scratch = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    dask = [sys.executable, "-m", "dask"]
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
                env=env,
                cwd=scratch,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for name in ("w1", "w2"):
            procs.append(
                subprocess.Popen(
                    [
                        *dask,
                        "worker",
                        address,
                        "--name",
                        name,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "2",
                        "--resources",
                        "GPU=1",
                        "--no-dashboard",
                        "--local-directory",
                        str(scratch),
                    ],
                    env=env,
                    cwd=scratch,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise
                time.sleep(0.5)
        yield address
    finally:
        # each command runs in its own session: ending the group also ends the worker processes it spawned
        for proc in reversed(procs):
            _signal_group(proc, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)  # anything left of the group


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
