"""Proofreading in the dock: jump between suspicious frames, plot a keypoint, recolour, swap identities.

The suspicious frames are computed by the engine (:mod:`napari_dinotrack.proofreading.suspicious`)
from the keypoints layer's rows, so they follow the user's corrections and a running track
without reading the result folder again. The layer's changes are collected and the list is
recomputed at most every :data:`RECHECK_MS`, or more rarely when a recheck gets expensive (a
long video), so that rechecking never takes more than a tenth of the GUI thread's time; while a
run is going it waits for the run to end (the viewer stays responsive while tracking).
Identity swaps are written to the result folder by
:func:`~napari_dinotrack.proofreading.identity.swap_identities` and then shown in the layers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, QTimer

from ..errors import UserError
from ..proofreading.suspicious import KeypointTable, Suspicion, by_frame, find_suspicious, step_to
from .convert import points_to_table
from .panels import PROBLEM_SIGN
from .proofread_panel import COLOUR_BY, ProofreadPanel

if TYPE_CHECKING:
    from napari.layers import Points

    import napari

    from ..proofreading.identity import SwapReport
    from .layer_styles import KeypointsStyle
    from .video_context import VideoContext

__all__ = ["RECHECK_MS", "Proofreader"]

#: the suspicious frames are recomputed at most this often while the keypoints change
RECHECK_MS = 400
_SHOWN_REASONS = 4
_NOUNS = {"lost": "lost point", "low score": "low score", "jump": "jump", "disagreement": "disagreement"}


class Proofreader:
    """Keeps the Proofread panel in step with the keypoints layer and the current frame.

    Args:
        viewer: the napari viewer (its time slider is moved).
        panel: the Proofread panel.
        style: the keypoints' look (colour by keypoint or by animal).
        restyle: recolours the keypoints and trajectories after the colouring changed.
        video_context: where the results are (raises UserError when no video is chosen).
        current_frame: the frame on screen.
        busy: whether a run is going (the list is then rechecked once it has ended).
        before_swap: called before an identity swap; returns why it cannot happen now (or None)
            after saving what the user has not saved yet.
        after_swap: shows the swapped frames (re-read from the result folder) in the layers.
        parent: owns the timer.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        panel: ProofreadPanel,
        style: KeypointsStyle,
        *,
        restyle: Callable[[], None],
        video_context: Callable[[], VideoContext],
        current_frame: Callable[[], int],
        busy: Callable[[], bool],
        before_swap: Callable[[], str | None],
        after_swap: Callable[[SwapReport], None],
        parent: QObject | None = None,
    ) -> None:
        self.viewer = viewer
        self.panel = panel
        self.style = style
        self._restyle = restyle
        self._video_context = video_context
        self._current_frame = current_frame
        self._busy = busy
        self._before_swap = before_swap
        self._after_swap = after_swap
        self.layer: Points | None = None
        self.table = KeypointTable.from_columns([], [], [], [], [])
        self.suspicions: dict[int, list[Suspicion]] = {}
        self.frames: list[int] = []
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECHECK_MS)
        self._timer.timeout.connect(self._scheduled_recheck)
        p = panel
        p.next.clicked.connect(self.next_suspicious)
        p.previous.clicked.connect(self.previous_suspicious)
        p.min_score.changed.connect(self._on_thresholds)
        p.jump_factor.changed.connect(self._on_thresholds)
        p.keypoint.changed.connect(lambda *_: self._update_plot())
        p.plot.frame_clicked.connect(self.go_to)
        p.colour_by.changed.connect(self.set_colour_by)
        p.swap.clicked.connect(self.swap)
        viewer.dims.events.current_step.connect(self._on_frame_changed)

    # ---------------------------------------------------------------- the layer
    def attach(self, layer: Points | None) -> None:
        """Follow ``layer`` (the keypoints), or none."""
        if layer is self.layer:
            return
        if self.layer is not None:
            for emitter, callback in self._connections(self.layer):
                with contextlib.suppress(TypeError, ValueError, RuntimeError):
                    emitter.disconnect(callback)
        self.layer = layer
        if layer is not None:
            for emitter, callback in self._connections(layer):
                emitter.connect(callback)
        self.recheck()

    def _connections(self, layer: Points) -> list[tuple[Any, Callable]]:
        return [
            (layer.events.data, self.schedule),
            (layer.events.features, self.schedule),
            (layer.events.face_color, self.schedule),
            (layer.events.highlight, self._follow_selection),
        ]

    def close(self) -> None:
        """Let go of the viewer and the layer (the dock is closing)."""
        self._timer.stop()
        self.attach(None)
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            self.viewer.dims.events.current_step.disconnect(self._on_frame_changed)

    def schedule(self, *_: Any) -> None:
        """The keypoints changed: recheck soon (many changes in a row cost one recheck)."""
        if not self._timer.isActive():
            self._timer.start()

    # ---------------------------------------------------------------- finding problems
    def _scheduled_recheck(self) -> None:
        if self._busy():
            self._timer.start()  # again later: the run is still adding frames
        else:
            self.recheck()

    def recheck(self) -> None:
        """Recompute the suspicious frames from the keypoints layer and show them."""
        self._timer.stop()
        started = time.perf_counter()
        layer = self.layer
        if layer is None or not len(layer.data) or "keypoint" not in layer.features:
            self.table = KeypointTable.from_columns([], [], [], [], [])
        else:
            self.table = points_to_table(layer.data, layer.features)
        try:
            settings = self.panel.settings()
        except UserError:
            return
        found = find_suspicious(self.table, settings)
        self.suspicions = by_frame(found)
        self.frames = list(self.suspicions)
        self._show_count(found)
        self._update_choices()
        self._update_plot()
        self._show_here(self._current_frame())
        self._timer.setInterval(int(max(RECHECK_MS, 10_000 * (time.perf_counter() - started))))

    def _on_thresholds(self, *_: Any) -> None:
        self.style.min_score = float(self.panel.min_score.value)
        self._restyle()
        self.recheck()

    def _show_count(self, found: list[Suspicion]) -> None:
        if not len(self.table):
            self.panel.count.value = "No results to check yet."
            return
        if not self.frames:
            self.panel.count.value = "No suspicious frame."
            return
        kinds: dict[str, int] = {}
        for s in found:
            kinds[s.reason] = kinds.get(s.reason, 0) + 1
        detail = ", ".join(f"{n} {_NOUNS[reason]}{'s' if n > 1 else ''}" for reason, n in kinds.items())
        noun = "frame" if len(self.frames) == 1 else "frames"
        self.panel.count.value = f"{len(self.frames)} suspicious {noun} ({detail})."

    def _show_here(self, frame: int) -> None:
        here = self.suspicions.get(frame, [])
        if not here:
            self.panel.here.value = ""
            return
        shown = "; ".join(s.describe() for s in here[:_SHOWN_REASONS])
        more = f" (+{len(here) - _SHOWN_REASONS} more)" if len(here) > _SHOWN_REASONS else ""
        self.panel.here.value = f"Frame {frame}: {shown}{more}"

    # ---------------------------------------------------------------- navigation
    def next_suspicious(self) -> int | None:
        """Go to the next suspicious frame after the current one; returns it (None: there is none)."""
        return self._step(+1)

    def previous_suspicious(self) -> int | None:
        """Go to the previous suspicious frame before the current one; returns it (None: there is none)."""
        return self._step(-1)

    def _step(self, direction: int) -> int | None:
        if self._timer.isActive():
            self.recheck()  # changes are pending: jump with the current list
        frame = step_to(self.frames, self._current_frame(), direction)
        if frame is None:
            word = "after" if direction > 0 else "before"
            self.panel.here.value = f"No suspicious frame {word} frame {self._current_frame()}."
            return None
        self.go_to(frame)
        return frame

    def go_to(self, frame: int) -> None:
        """Show ``frame``."""
        self.viewer.dims.set_current_step(0, int(frame))

    def _on_frame_changed(self, *_: Any) -> None:
        frame = self._current_frame()
        self.panel.plot.set_current(frame)
        self._show_here(frame)

    # ---------------------------------------------------------------- plot
    def _update_choices(self) -> None:
        tracks = self.table.tracks()
        labels = [f"{inst}:{kp}" for inst, kp in tracks]
        combo = self.panel.keypoint
        if list(combo.choices) != labels:
            current = combo.value
            with combo.changed.blocked():
                combo.choices = labels
                combo.value = current if current in labels else (labels[0] if labels else None)
        animals = list(dict.fromkeys(inst for inst, _ in tracks))
        for i, box in enumerate((self.panel.first, self.panel.second)):
            if list(box.choices) != animals:
                current = box.value
                box.choices = animals
                box.value = current if current in animals else (animals[min(i, len(animals) - 1)] if animals else None)

    def _update_plot(self) -> None:
        value = self.panel.keypoint.value
        plot = self.panel.plot
        if not value or not len(self.table):
            plot.set_series(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), 0)
            return
        instance, keypoint = str(value).split(":", 1)
        series = self.table.series(instance, keypoint)
        problems = [
            f
            for f, items in self.suspicions.items()
            if any(s.instance == instance and s.keypoint == keypoint for s in items)
        ]
        try:
            n_frames = self._video_context().n_frames
        except UserError:
            n_frames = int(series.frame.max(initial=0)) + 1
        score = np.where(series.visible, series.score, 0.0)
        plot.set_series(series.frame, score, series.step, np.asarray(problems, int), n_frames, str(value))
        plot.set_current(self._current_frame())

    def _follow_selection(self, *_: Any) -> None:
        """One selected point: plot its keypoint."""
        layer = self.layer
        if layer is None or len(layer.selected_data) != 1:
            return
        row = next(iter(layer.selected_data))
        feats = layer.features
        if row >= len(feats) or "instance" not in feats:
            return
        label = f"{feats['instance'].iloc[row]}:{feats['keypoint'].iloc[row]}"
        if label in self.panel.keypoint.choices and self.panel.keypoint.value != label:
            self.panel.keypoint.value = label

    # ---------------------------------------------------------------- colours
    def set_colour_by(self, choice: str) -> None:
        """Colour points and trajectories by ``"keypoint"`` or ``"animal"``."""
        self.style.colour_by = COLOUR_BY[str(choice)]  # type: ignore[assignment]
        self._restyle()

    # ---------------------------------------------------------------- identities
    def swap(self) -> SwapReport | None:
        """Swap the two chosen animals over the chosen frames (see the Proofread panel)."""
        from ..proofreading.identity import swap_identities

        p = self.panel
        refused = self._before_swap()
        if refused:
            p.status.value = f"{PROBLEM_SIGN} {refused}"
            return None
        try:
            ctx = self._video_context()
            report = swap_identities(
                ctx.layout,
                str(p.first.value or ""),
                str(p.second.value or ""),
                int(p.start.value),
                int(p.end.value),
                include_manual=bool(p.include_manual.value),
            )
        except (UserError, OSError, ValueError) as exc:
            p.status.value = f"{PROBLEM_SIGN} {exc}"
            return None
        self._after_swap(report)
        p.status.value = report.describe()
        self.recheck()
        return report
