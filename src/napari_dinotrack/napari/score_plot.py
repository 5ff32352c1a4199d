"""A small plot of one keypoint's matching score and speed over the video; a click jumps to that frame.

Painted with QPainter (no plotting library): the score (0–1) as one line, the speed scaled to its
largest value as another, the frames with a problem as red ticks along the top and the current
frame as a vertical line. A video longer than the plot is wide is reduced to one value per pixel
column, keeping the lowest score and the highest speed of each column so that no dip or spike is
hidden. :func:`frame_at` and :func:`per_column` are pure, for tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["SCORE_COLOUR", "SPEED_COLOUR", "ScorePlot", "frame_at", "per_column"]

SCORE_COLOUR = "#4fc3f7"
SPEED_COLOUR = "#ffb74d"
_PROBLEM_COLOUR = "#ff5252"
_CURSOR_COLOUR = "#ffffff"
_MARGIN = 4


def frame_at(x: float, width: float, first: int, last: int) -> int:
    """The frame under pixel column ``x`` of a plot ``width`` pixels wide showing ``first``..``last``."""
    if last <= first or width <= 1:
        return int(first)
    t = first + (float(x) / (width - 1)) * (last - first)
    return int(np.clip(round(t), first, last))


def per_column(
    frames: np.ndarray, values: np.ndarray, first: int, last: int, columns: int, reduce: Any = np.fmin
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` at ``frames`` reduced to at most one per pixel column: ``(column x, value)``, NaNs dropped."""
    frames, values = np.asarray(frames), np.asarray(values, dtype=float)
    keep = np.isfinite(values)
    frames, values = frames[keep], values[keep]
    if not len(frames):
        return np.zeros(0), np.zeros(0)
    span = max(last - first, 1)
    cols = np.clip(np.round((frames - first) / span * (columns - 1)), 0, columns - 1).astype(int)
    if len(np.unique(cols)) == len(cols):
        return cols.astype(float), values
    out = np.full(columns, np.nan)
    reduce.at(out, cols, values)  # fmin/fmax ignore the NaN start
    used = np.flatnonzero(np.isfinite(out))
    return used.astype(float), out[used]


class ScorePlot(QWidget):
    """Score and speed of one keypoint over time; emits ``frame_clicked(frame)`` on a click."""

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(90)
        self.setMaximumHeight(130)
        self.setMinimumWidth(60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(
            "Matching score (blue, 0–1) and speed (orange, scaled to its maximum) of the chosen "
            "keypoint over the video; red ticks mark problems. Click to go to that frame."
        )
        self.frames = np.zeros(0, int)
        self.score = np.zeros(0)
        self.speed = np.zeros(0)
        self.problems = np.zeros(0, int)
        self.first, self.last = 0, 0
        self.current: int | None = None
        self.title = ""

    def set_series(
        self,
        frames: np.ndarray,
        score: np.ndarray,
        speed: np.ndarray,
        problems: np.ndarray,
        n_frames: int,
        title: str = "",
    ) -> None:
        """Show one keypoint: its rows' frames, scores and speeds (px/frame, NaN unknown), problem frames."""
        self.frames = np.asarray(frames, int)
        self.score = np.asarray(score, float)
        self.speed = np.asarray(speed, float)
        self.problems = np.asarray(problems, int)
        self.first, self.last = 0, max(int(n_frames) - 1, int(self.frames.max(initial=0)))
        self.title = title
        self.update()

    def set_current(self, frame: int | None) -> None:
        """Move the current-frame line."""
        if frame != self.current:
            self.current = frame
            self.update()

    @property
    def max_speed(self) -> float:
        """The largest finite speed shown (px/frame), 0 if none."""
        finite = self.speed[np.isfinite(self.speed)]
        return float(finite.max()) if len(finite) else 0.0

    def _plot_rect(self) -> QRectF:
        return QRectF(_MARGIN, 14, max(self.width() - 2 * _MARGIN, 2), max(self.height() - 14 - _MARGIN, 2))

    def _polyline(self, rect: QRectF, values: np.ndarray, scale: float, reduce: Any) -> QPolygonF:
        xs, ys = per_column(
            self.frames,
            values / scale if scale > 0 else values * 0,
            self.first,
            self.last,
            max(int(rect.width()), 2),
            reduce,
        )
        return QPolygonF(
            [
                QPointF(rect.left() + x, rect.bottom() - float(np.clip(y, 0, 1)) * rect.height())
                for x, y in zip(xs, ys, strict=True)
            ]
        )

    def _x_of(self, rect: QRectF, frame: int) -> float:
        span = max(self.last - self.first, 1)
        return rect.left() + (frame - self.first) / span * (int(rect.width()) - 1)

    def paintEvent(self, event: Any) -> None:
        """Draw the frame, the problem ticks, both lines and the current frame."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.fillRect(self.rect(), QColor("#262930"))
        rect = self._plot_rect()
        painter.setPen(QPen(QColor("#5a626c")))
        painter.drawRect(rect)
        painter.setPen(QPen(QColor("#d0d0d0")))
        speed_max = self.max_speed
        label = self.title or "no keypoint"
        painter.drawText(
            QRectF(_MARGIN, 0, rect.width(), 14),
            Qt.AlignmentFlag.AlignLeft,
            f"{label} · speed max {speed_max:.0f} px/frame",
        )
        if len(self.frames):
            painter.setPen(QPen(QColor(_PROBLEM_COLOUR), 1))
            for frame in np.unique(self.problems):
                x = self._x_of(rect, int(frame))
                painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.top() + 6))
            painter.setPen(QPen(QColor(SPEED_COLOUR), 1))
            painter.drawPolyline(self._polyline(rect, self.speed, speed_max, np.fmax))
            painter.setPen(QPen(QColor(SCORE_COLOUR), 1))
            painter.drawPolyline(self._polyline(rect, self.score, 1.0, np.fmin))
        if self.current is not None:
            painter.setPen(QPen(QColor(_CURSOR_COLOUR), 1))
            x = self._x_of(rect, self.current)
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        painter.end()

    def mousePressEvent(self, event: Any) -> None:
        """A left click goes to the frame under the mouse."""
        if event.button() != Qt.MouseButton.LeftButton or not len(self.frames):
            return
        rect = self._plot_rect()
        x = event.position().x() if hasattr(event, "position") else event.x()
        self.frame_clicked.emit(frame_at(x - rect.left(), rect.width(), self.first, self.last))
