"""Fixtures for the napari plugin tests: a small generated video with a seed, a docked widget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

N_FRAMES = 16
HEIGHT = 128
WIDTH = 160


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings go to a temporary file; nothing reaches the hub."""
    path = tmp_path / "settings" / "settings.json"
    monkeypatch.setenv("NAPARI_DINOTRACK_SETTINGS", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("DINOV3_LOCATION", raising=False)
    return path


@pytest.fixture
def clip_shape() -> tuple[int, int, int]:
    """``(n_frames, height, width)`` of :func:`sample_video`."""
    return N_FRAMES, HEIGHT, WIDTH


@pytest.fixture
def sample_video(tmp_path: Path) -> Path:
    """A short generated clip with a manual seed on frame 0 (``<tmp>/clip/sample_mouse.mp4``)."""
    from napari_dinotrack.napari.sample import sample_clip_files

    return sample_clip_files(tmp_path / "clip", n_frames=N_FRAMES, height=HEIGHT, width=WIDTH)


def _open_with_widget(viewer, video: Path, model: str = "pixel:", short_side: int = 128):
    from napari_dinotrack.napari.reader import read_video
    from napari_dinotrack.napari.widget import DinoTrackerWidget

    for data, kwargs, kind in read_video(str(video)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = DinoTrackerWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DINO Keypoint Tracker")
    widget.backbone_panel.set_model(model)
    widget.backbone_panel.short_side.value = short_side
    viewer.dims.set_current_step(0, 0)  # new sliders start mid-range
    return widget


@pytest.fixture
def open_tracker():
    """``open_tracker(viewer, video, model="pixel:", short_side=128)`` -> the docked widget."""
    return _open_with_widget


@pytest.fixture
def wait_run(qtbot):
    """``wait_run(widget)``: process events until the tracking worker has finished."""

    def wait(widget, timeout: float = 30.0) -> None:
        qtbot.waitUntil(lambda: not widget.is_running, timeout=int(timeout * 1000))
        qtbot.wait(20)

    return wait


def _frame_json_points(layout, frame: int) -> dict[str, tuple[float, float]]:
    data = json.loads(Path(layout.frame_json(frame)).read_text())
    return {s["label"]: tuple(s["points"][0]) for s in data["shapes"] if s.get("shape_type") == "point"}


@pytest.fixture
def frame_points():
    """``frame_points(layout, t)`` -> ``{keypoint: (x, y)}`` read straight from the frame's JSON."""
    return _frame_json_points


@pytest.fixture
def tick_monitor():
    """A QTimer ticking every 20 ms whose largest gap measures how long the GUI thread stalled."""
    monitor = TickMonitor(20)
    yield monitor
    monitor.stop()


class TickMonitor:
    """A QTimer ticking every ``interval_ms``: the largest gap between ticks = GUI stall."""

    def __init__(self, interval_ms: int = 20) -> None:
        from qtpy.QtCore import QTimer

        self.interval_ms = interval_ms
        self.gaps: list[float] = []
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append((now - self._last) * 1000)
        self._last = now

    def start(self) -> None:
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    @property
    def max_gap_ms(self) -> float:
        return max(self.gaps, default=0.0)
