"""The dock's "Track a folder" panel: the other videos of a folder tracked in the background by a Dask batch.

The viewer keeps the current video (tracked, watched and corrected with the Track panel); the
folder's other videos go to :func:`napari_dinotrack.batch.track_many` on a local Dask cluster,
with the backbone and tracker settings of the dock, and each gets a progress line. The batch
runs on a plain thread and reports through Qt signals; Stop (or closing the dock) cancels what
has not finished (after the current frame), and everything written stays for the next run to resume.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import Container, FileEdit, Label, PushButton
from qtpy.QtCore import QObject, Signal

from ..batch.jobs import STOPPED, TRACKED, VideoResult
from ..errors import UserError
from ..runsettings import RunSettings
from .panels import BackbonePanel, TrackerConfigPanel
from .video_context import VideoContext

__all__ = ["FolderBatchPanel"]


class _Relay(QObject):
    """Carries the batch thread's reports to the GUI thread."""

    frames = Signal(str, int, int)
    result = Signal(object)
    message = Signal(str)
    done = Signal(object)  # the summary, or the exception that ended the batch


class FolderBatchPanel(Container):
    """Track the other videos of a folder in the background, one progress line per video.

    ``video_context()`` describes the video open in the viewer (it is left out of the batch) and
    raises :class:`UserError` when none is.
    """

    def __init__(
        self, backbone: BackbonePanel, tracker: TrackerConfigPanel, video_context: Callable[[], VideoContext]
    ) -> None:
        self._backbone = backbone
        self._tracker = tracker
        self._video_context = video_context
        self.folder = FileEdit(
            label="folder",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="Folder whose videos to track; empty = the current video's folder.",
        )
        self.start = PushButton(
            text="Track the folder's other videos",
            tooltip="Track every other video of the folder that has a labelled frame, in the "
            "background, with the backbone and tracker settings above.",
        )
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.lines: Container[Label] = Container(labels=False)
        super().__init__(widgets=[self.folder, self.start, self.stop_button, self.status, self.lines], labels=True)
        self._line: dict[str, Label] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.summary: Any = None
        self._relay = _Relay()
        self._relay.frames.connect(self._on_frames)
        self._relay.result.connect(self._on_result)
        self._relay.message.connect(self._on_message)
        self._relay.done.connect(self._on_done)
        self.start.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        self._messages: list[str] = []
        # the thread holds no widget: closing the dock just asks it to stop
        self.native.destroyed.connect(functools.partial(_ask_to_stop, self._stop))

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def videos(self) -> list[str]:
        """The folder's videos, the current one left out; UserError when there is nothing to track."""
        from ..batch import collect_videos

        current = self._current()
        chosen = str(self.folder.value)
        folder = Path(chosen) if chosen not in ("", ".") else None
        if folder is None:
            if current is None:
                raise UserError("Choose a folder (or open a video to track the other videos of its folder).")
            folder = current.parent
            self.folder.value = folder
        current_path = current.resolve() if current is not None else None
        videos = [v for v in collect_videos([folder]) if Path(v).resolve() != current_path]
        if not videos:
            raise UserError(f"{folder} holds no other videos.")
        return videos

    def _current(self) -> Path | None:
        try:
            return self._video_context().video_path
        except UserError:  # no video open
            return None

    def run(self) -> None:
        """Start the batch (does nothing while one runs)."""
        if self.is_running:
            return
        try:
            videos = self.videos()
            settings = RunSettings(
                model=self._backbone.model_name,
                short_side=int(self._backbone.short_side.value),
                device=str(self._backbone.device.value),
                precision=self._backbone.precision.value,
            )  # one of the combo's PRECISIONS
            config = self._tracker.config()
        except UserError as exc:
            self.status.value = f"⚠ {exc}"
            return
        self.lines.clear()
        self._line = {}
        for video in videos:
            label = Label(value=f"{Path(video).name}: waiting")
            label.native.setWordWrap(True)
            self.lines.append(label)
            self._line[video] = label
        self._messages = []
        self.status.value = f"Starting a local Dask cluster for {len(videos)} video(s) …"
        self.summary = None
        self._stop.clear()
        self.start.enabled, self.stop_button.enabled = False, True
        self._thread = threading.Thread(
            target=self._work, args=(videos, settings, config), name="dinotrack-folder-batch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End every video after its current frame; the results so far stay and the next run resumes them."""
        self._stop.set()
        if self.is_running:
            self.status.value = "Stopping …"

    # ------------------------------------------------------------------ batch thread
    def _work(self, videos: list[str], settings: RunSettings, config: Any) -> None:
        from ..batch import track_many

        relay = self._relay
        try:
            summary = track_many(
                videos,
                settings,
                config,
                quiet=True,
                stop=self._stop,
                on_frames=relay.frames.emit,
                on_result=relay.result.emit,
                say=relay.message.emit,
            )
        except Exception as exc:  # shown in the panel; the dock stays usable
            relay.done.emit(exc)
        else:
            relay.done.emit(summary)

    # ------------------------------------------------------------------ GUI thread
    def _on_frames(self, video: str, done: int, total: int) -> None:
        if video in self._line:
            self._line[video].value = f"{Path(video).name}: {done}/{total} frames"

    def _on_result(self, result: VideoResult) -> None:
        label = self._line.get(result.video)
        if label is None:
            return
        name = Path(result.video).name
        if result.status == TRACKED:
            label.value = f"{name}: tracked {result.frames} frames ({result.fps:.1f} frames/s)"
        elif result.ok:
            label.value = f"{name}: {result.status}"
        elif result.status == STOPPED:
            label.value = f"{name}: stopped after {result.frames} frames (Track again to resume)"
        else:
            label.value = f"⚠ {name}: {result.status} — {result.error}"

    def _on_message(self, text: str) -> None:
        self._messages.append(text)
        self.status.value = "\n".join(self._messages[-2:])  # the cluster, then its dashboard link

    def _on_done(self, outcome: Any) -> None:
        self.start.enabled, self.stop_button.enabled = True, False
        if isinstance(outcome, BaseException):
            self.status.value = f"⚠ {outcome}"
            return
        self.summary = outcome
        self.status.value = outcome.counts()


def _ask_to_stop(stop: threading.Event, *_: object) -> None:
    # Qt destroys widgets at interpreter exit too, after Python has torn the event down; an
    # exception in a Qt slot then aborts the process.
    if sys.is_finalizing():
        return
    with contextlib.suppress(Exception):  # a half torn-down event must not abort the process
        stop.set()
