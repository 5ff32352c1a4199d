"""Showing a tracking run's results in the layers while it goes: keypoints, masks and trajectories.

The worker yields batches of results; they are queued here and handled on the GUI thread at most
every ``REFRESH_MS`` (the interval grows when handling them gets expensive, so that it never takes
more than about a quarter of the GUI thread's time). What is on screen is shown at once: the
frame on screen as soon as its result arrives, any frame as soon as the user moves to it. The
other frames are added to the keypoints layer together, at most every ``SHOW_ALL_S``, because
each layer update costs the GUI thread about the same whatever it adds. Updates are incremental:
new frames' rows are appended (or changed in place when a frame is re-tracked) instead of the
layer being replaced, so an update costs about the same on frame 10 as on frame 10 000. The
trajectories (a Tracks layer can only be rebuilt whole) are rebuilt at most every
``TRACKS_REFRESH_S`` while tracking, in a turn of the event loop of their own, and once at the end.

If the keypoints layer is deleted mid-run it comes back with every frame: those already on disk
are read from the result folder, the few still on their way there from the last results.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from .convert import annotations_to_points, plan_rows_update, points_to_tracks
from .label_glyphs import warm_label_glyphs
from .reader import META_KEY
from .viewer_layers import adding_quietly, find_flagged

if TYPE_CHECKING:
    from napari.layers import Points, Tracks

    import napari

    from ..io.annotations import FrameAnnotation
    from ..io.paths import ResultLayout
    from ..pipeline import FrameResult
    from .keypoint_edits import KeypointEditor
    from .layer_styles import KeypointsStyle, TracksStyle
    from .masks_layer import MasksLayerController
    from .panels import DisplayPanel
    from .video_context import VideoContext

__all__ = ["RECENT_RESULTS", "REFRESH_MS", "SHOW_ALL_S", "TRACKS_REFRESH_S", "LiveDisplay"]

logger = logging.getLogger(__name__)

#: shortest time between two live layer refreshes while tracking
REFRESH_MS = 100
#: frames other than the one on screen reach the keypoints layer at most this often while tracking
SHOW_ALL_S = 2.0
#: trajectories are rebuilt at most this often while tracking
TRACKS_REFRESH_S = 2.0
#: results kept to rebuild a deleted keypoints layer (more than the result writer's queue holds)
RECENT_RESULTS = 256


def _new_stats() -> dict[str, float]:
    return {
        "count": 0,
        "max_ms": 0.0,
        "total_ms": 0.0,
        "points_updates": 0,
        "rows_appended": 0,
        "rows_changed": 0,
        "full_rebuilds": 0,
        "tracks_rebuilds": 0,
    }


class LiveDisplay:
    """Pushes a run's results to the keypoints, masks and trajectories layers, throttled.

    Args:
        viewer: the napari viewer.
        editor: the keypoint editor (frames the user is editing are not overwritten).
        masks: the masks layer controller.
        points_layer: the keypoints layer, or None.
        ensure_points_layer: the keypoints layer, created if there is none.
        panel: the display panel (trajectories on/off, tail length).
        tracks_style: the look of the trajectories layer.
        keypoints_style: the points' colours, which the trajectories take.
        parent: the dock: owns the refresh timers, and leads to the canvas whose glyphs are prepared.

    ``refresh_stats`` counts the last run's refreshes (``count``, ``max_ms``, ``total_ms``), the
    keypoints layer updates (``points_updates``) and the rows they appended or changed in place,
    how often the whole keypoints layer had to be replaced (``full_rebuilds``) and how often the
    trajectories were rebuilt (``tracks_rebuilds``).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        editor: KeypointEditor,
        masks: MasksLayerController,
        *,
        points_layer: Callable[[], Points | None],
        ensure_points_layer: Callable[[], Points],
        panel: DisplayPanel,
        tracks_style: TracksStyle,
        keypoints_style: KeypointsStyle,
        parent: QWidget | None = None,
    ) -> None:
        self.viewer = viewer
        self.editor = editor
        self.masks = masks
        self._points_layer = points_layer
        self._ensure_points_layer = ensure_points_layer
        self.panel = panel
        self.tracks_style = tracks_style
        self.keypoints_style = keypoints_style
        self._dock = parent
        self.running = False
        self.refresh_stats: dict[str, float] = _new_stats()
        self._ctx: VideoContext | None = None
        self._pending: list[FrameResult] = []
        self._recent: deque[FrameAnnotation] = deque(maxlen=RECENT_RESULTS)
        self._unshown: dict[int, FrameAnnotation] = {}  # arrived, not in the keypoints layer yet
        self._last_shown = 0.0
        self._tracks_timer = QTimer(parent)
        self._tracks_timer.setSingleShot(True)
        self._tracks_timer.timeout.connect(self._rebuild_tracks_if_due)
        self._refresh_timer = QTimer(parent)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.timeout.connect(self._apply_pending)
        self._refresh_interval_ms = REFRESH_MS
        self._last_refresh = 0.0
        self._last_tracks_refresh = 0.0
        self._tracks_interval_s = TRACKS_REFRESH_S
        viewer.dims.events.current_step.connect(self._on_frame_changed)

    def close(self) -> None:
        """Let go of the viewer (the dock is closing)."""
        self._refresh_timer.stop()
        self._tracks_timer.stop()
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            self.viewer.dims.events.current_step.disconnect(self._on_frame_changed)

    def _current_frame(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) >= 3 else 0

    def _on_frame_changed(self, *_: Any) -> None:
        """The user moved to another frame: whatever arrived so far is shown now."""
        if self._unshown:
            self._show_unshown()

    # ---------------------------------------------------------------- a run
    def start(self, ctx: VideoContext) -> None:
        """A run on ``ctx`` begins."""
        self.prepare()
        self._ctx = ctx
        self._pending = []
        self._unshown = {}
        self._recent.clear()
        self.running = True
        self.refresh_stats = _new_stats()

    def add(self, batch: list[FrameResult]) -> None:
        """Queue results; they are shown at the next refresh."""
        self._pending.extend(batch)
        if not self._refresh_timer.isActive():
            since = (time.monotonic() - self._last_refresh) * 1000
            self._refresh_timer.start(int(max(0, self._refresh_interval_ms - since)))

    def finish(self) -> None:
        """The run ended: show what is still queued, and the full trajectories."""
        self._refresh_timer.stop()
        self._tracks_timer.stop()
        self.running = False
        self._apply_pending()
        if self.panel.trajectories.value:
            self.update_trajectories()
        self.masks.run_finished()

    def _apply_pending(self) -> None:
        """Handle the queued results (GUI thread, throttled): see the module docstring."""
        results, self._pending = self._pending, []
        if not results and not self._unshown:
            return
        t0 = time.perf_counter()
        n_layers = len(self.viewer.layers)
        latest: dict[int, FrameResult] = {}
        for r in results:
            latest[r.frame] = r
        try:
            self._recent.extend(r.annotation for r in latest.values())
            self._unshown.update((frame, r.annotation) for frame, r in latest.items())
            if self._ctx is not None:
                self.masks.show(list(latest.values()), self._ctx)
            due = time.monotonic() - self._last_shown >= SHOW_ALL_S
            if not self.running or due or self._current_frame() in latest:
                self._show_unshown()
                if self.panel.trajectories.value and self.running and not self._tracks_timer.isActive():
                    self._tracks_timer.start(0)  # a turn of the event loop of its own
        except Exception as exc:  # a display problem must not kill the run
            self._display_failed(exc)
        dt_ms = (time.perf_counter() - t0) * 1000
        self._last_refresh = time.monotonic()
        if len(self.viewer.layers) == n_layers:  # creating a layer is a one-off cost: do not adapt to it
            # refreshing must never take more than ~25 % of the GUI thread's time
            self._refresh_interval_ms = int(min(1000, max(REFRESH_MS, 4 * dt_ms)))
        st = self.refresh_stats
        st["count"] += 1
        st["total_ms"] += dt_ms
        st["max_ms"] = max(st["max_ms"], dt_ms)

    def _display_failed(self, exc: Exception) -> None:
        logger.exception("live update failed")
        from napari.utils.notifications import show_warning

        show_warning(f"Could not display the latest results: {exc}")

    def _show_unshown(self) -> None:
        annotations, self._unshown = list(self._unshown.values()), {}
        self._last_shown = time.monotonic()
        try:
            self._show_annotations(annotations)
        except Exception as exc:  # a display problem must not kill the run
            self._display_failed(exc)

    def _rebuild_tracks_if_due(self) -> None:
        if time.monotonic() - self._last_tracks_refresh < self._tracks_interval_s:
            return
        started = time.perf_counter()
        had_layer = self.tracks_layer() is not None
        try:
            self.update_trajectories()
        except Exception as exc:
            self._display_failed(exc)
        if had_layer:  # rebuilding long trajectories is costly: do it more rarely then
            self._tracks_interval_s = max(TRACKS_REFRESH_S, 10 * (time.perf_counter() - started))

    def _show_annotations(self, annotations: list[FrameAnnotation]) -> None:
        """Show these frames in the keypoints layer (frames the user is editing are kept)."""
        protected = self.editor.protected_frames()
        anns = [a for a in annotations if a.frame not in protected]
        if not anns:
            return
        layer = self._points_layer()
        if layer is None:
            self._recreate_points_layer()
            return
        update = plan_rows_update(layer.data, layer.features, anns)
        self.editor.apply_rows(layer, update)
        st = self.refresh_stats
        st["points_updates"] += 1
        st["rows_changed"] += len(update.changed)
        st["rows_appended"] += len(update.added_data)
        st["full_rebuilds"] += int(update.full)

    def _recreate_points_layer(self) -> None:
        """A new keypoints layer with every frame: the result folder's, then the latest results."""
        from ..io.labelme import load_annotations

        annotations: dict[int, FrameAnnotation] = {}
        if self._ctx is not None and self._ctx.layout.folder.is_dir():
            annotations = load_annotations(self._ctx.layout)
        annotations.update((a.frame, a) for a in self._recent)
        layer = self._ensure_points_layer()
        self.editor.set_rows(layer, *annotations_to_points(annotations))
        self.refresh_stats["full_rebuilds"] += 1

    def reload_frames(self, layout: ResultLayout, frames: Iterable[int]) -> None:
        """Show these frames as they are now in the result folder (e.g. after an identity swap)."""
        from ..io.labelme import load_annotations

        frames = list(frames)
        annotations = load_annotations(layout, frames)
        layer = self._points_layer()
        if layer is not None and annotations:
            self.editor.apply_rows(layer, plan_rows_update(layer.data, layer.features, annotations.values()))
        self.masks.forget(frames)
        if self.panel.trajectories.value:
            self.update_trajectories()

    # ---------------------------------------------------------------- trajectories
    def tracks_layer(self) -> Tracks | None:
        """The plugin's trajectories layer, if there is one."""
        from napari.layers import Tracks

        return find_flagged(self.viewer, Tracks, "trajectories")

    def update_trajectories(self) -> Tracks | None:
        """Rebuild the trajectories Tracks layer from the keypoints layer."""
        self._last_tracks_refresh = time.monotonic()
        points = self._points_layer()
        layer = self.tracks_layer()
        if points is None or not self.panel.trajectories.value:
            return layer
        data, feats = points_to_tracks(points.data, points.features)
        if len(data) == 0:
            return layer
        values, colormap = self.keypoints_style.track_colours(feats["instance"], feats["keypoint"])
        feats["colour"] = values
        tail_length = int(self.panel.tail_length.value)
        if layer is None:
            style = self.tracks_style
            style.tail_length = tail_length
            style.name = points.name.replace(" keypoints", "") + " trajectories"
            with adding_quietly(self.viewer, self._points_layer):
                layer = self.viewer.add_tracks(
                    data,
                    features=feats,
                    metadata={META_KEY: {"trajectories": True}},
                    color_by="colour",
                    colormaps_dict={"colour": colormap},
                    **style.as_kwargs(),
                )
        else:
            with warnings.catch_warnings():  # new data resets the features, so napari drops "colour" for now
                warnings.filterwarnings("ignore", message="Previous color_by key")
                layer.data = data
            layer.features = feats
            if layer.colormaps_dict.get("colour") is not colormap:
                layer.colormaps_dict = {"colour": colormap}
            layer.color_by = "colour"
            if layer.tail_length != tail_length:
                layer.tail_length = tail_length
        self.refresh_stats["tracks_rebuilds"] += 1
        return layer

    def prepare(self) -> None:
        """Make now what a run will draw, so that no run pays for it: the trajectories layer, the labels' glyphs.

        Adding a layer, and drawing text characters the first time, stall the GUI for a moment.
        """
        points = self._points_layer()
        if self.panel.trajectories.value and self.tracks_layer() is None and points is not None and len(points.data):
            self.update_trajectories()
        warm_label_glyphs(self._dock, points)

    def show_trajectories(self, on: bool) -> None:
        """Show (rebuilt) or hide the trajectories layer."""
        layer = self.tracks_layer()
        if on:
            layer = self.update_trajectories()
            if layer is not None:
                layer.visible = True
        elif layer is not None:
            layer.visible = False

    def set_tail_length(self, value: Any) -> None:
        """How many past frames of each trajectory are drawn."""
        layer = self.tracks_layer()
        if layer is not None:
            layer.tail_length = int(value)
