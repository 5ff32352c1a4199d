"""Frames worth a second look: lost points, low scores, large jumps and two-way disagreement.

Everything works on a :class:`KeypointTable` (one row per keypoint per frame), built from a
result folder's annotations (:meth:`KeypointTable.from_annotations`) or from any tidy source,
such as the rows of a napari Points layer. Reasons, per keypoint of a *predicted* frame (a
manual frame is what the user labelled, so it is never suspicious):

* ``lost``: the point is not visible while it was on the frame before (the start of a loss;
  the frames it stays lost are not listed again);
* ``low score``: visible with a matching score below :attr:`SuspicionSettings.min_score`;
* ``jump``: the step from its previous visible position, per frame, is more than
  :attr:`SuspicionSettings.jump_factor` times the keypoint's median step and longer than
  :attr:`SuspicionSettings.min_jump_px`. The step is charged to the later frame, or to the
  earlier one when the later frame is manual (then the prediction before it is the wrong one);
* ``disagreement``: the forward and backward passes of two-way tracking ended further apart
  than :attr:`SuspicionSettings.max_disagreement_px` (the keypoint's ``disagreement_px`` extra;
  absent means they agreed).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..io.annotations import FrameAnnotation, Keypoint
from ..schema import Settings, setting

__all__ = [
    "DISAGREEMENT_KEY",
    "REASONS",
    "KeypointSeries",
    "KeypointTable",
    "Suspicion",
    "SuspicionSettings",
    "by_frame",
    "disagreement_px",
    "find_suspicious",
    "step_to",
]

#: Keypoint extra (LabelMe point key) where two-way tracking records how far apart its passes ended, px.
DISAGREEMENT_KEY = "disagreement_px"

Reason = Literal["lost", "low score", "jump", "disagreement"]
REASONS: tuple[Reason, ...] = ("lost", "low score", "jump", "disagreement")


class SuspicionSettings(Settings):
    """When a predicted keypoint counts as suspicious."""

    min_score: float = setting(
        0.5, "Visible predicted points matching worse than this are suspicious.", ge=0.0, le=1.0, group="proofreading"
    )
    jump_factor: float = setting(
        4.0,
        "A step this many times the keypoint's median step per frame is a jump.",
        ge=1.0,
        le=1000.0,
        group="proofreading",
    )
    min_jump_px: float = setting(
        8.0, "Steps shorter than this are never jumps, video px.", ge=0.0, le=100_000.0, group="proofreading"
    )
    max_disagreement_px: float = setting(
        6.0,
        "Forward and backward passes further apart than this are suspicious, video px.",
        ge=0.0,
        le=100_000.0,
        group="proofreading",
    )


@dataclass(frozen=True)
class Suspicion:
    """One reason to look at one keypoint on one frame; ``value`` is the score, step or distance."""

    frame: int
    instance: str
    keypoint: str
    reason: Reason
    value: float

    def describe(self) -> str:
        """A short human sentence, e.g. ``animal1 nose: jump of 42 px``."""
        what = {
            "lost": "lost",
            "low score": f"low score {self.value:.2f}",
            "jump": f"jump of {self.value:.0f} px/frame",
            "disagreement": f"passes {self.value:.0f} px apart",
        }[self.reason]
        return f"{self.instance} {self.keypoint}: {what}"


@dataclass(frozen=True)
class KeypointSeries:
    """One keypoint's rows over time, sorted by frame; ``step`` is px per frame from its previous visible row."""

    frame: np.ndarray
    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray
    score: np.ndarray
    manual: np.ndarray
    disagreement: np.ndarray
    step: np.ndarray  # NaN where there is no previous visible row, or the point is hidden

    @property
    def typical_step(self) -> float:
        """The median step per frame (0 when the point never moves or is seen once)."""
        finite = self.step[np.isfinite(self.step)]
        return float(np.median(finite)) if len(finite) else 0.0


@dataclass(frozen=True)
class KeypointTable:
    """One row per keypoint per frame, as parallel columns (all the same length)."""

    frame: np.ndarray  # int
    instance: np.ndarray  # str
    keypoint: np.ndarray  # str
    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray  # bool
    score: np.ndarray
    manual: np.ndarray  # bool: the row belongs to a manual frame
    disagreement: np.ndarray  # px; 0 where unknown

    @classmethod
    def from_columns(
        cls,
        frame: Iterable[int],
        instance: Iterable[str],
        keypoint: Iterable[str],
        x: Iterable[float],
        y: Iterable[float],
        visible: Iterable[bool] | None = None,
        score: Iterable[float] | None = None,
        manual: Iterable[bool] | None = None,
        disagreement: Iterable[float] | None = None,
    ) -> KeypointTable:
        """A table from columns; missing ones default to visible, score 1, predicted, no disagreement."""
        frames = _array(frame).astype(int)
        n = len(frames)

        def col(values: Iterable | None, default: float | bool, dtype: type) -> np.ndarray:
            if values is None:
                return np.full(n, default, dtype)
            arr = _array(values)
            if dtype is float:
                arr = np.nan_to_num(arr.astype(float), nan=float(default))
            return arr.astype(dtype)

        return cls(
            frames,
            _array(instance).astype(str),
            _array(keypoint).astype(str),
            col(x, np.nan, float),
            col(y, np.nan, float),
            col(visible, True, bool),
            col(score, 1.0, float),
            col(manual, False, bool),
            col(disagreement, 0.0, float),
        )

    @classmethod
    def from_annotations(cls, annotations: Mapping[int, FrameAnnotation] | Iterable[FrameAnnotation]) -> KeypointTable:
        """The table of a result folder's annotations (e.g. from :func:`~..io.labelme.load_annotations`)."""
        anns = annotations.values() if isinstance(annotations, Mapping) else annotations
        cols: dict[str, list] = {
            k: [] for k in ("frame", "instance", "keypoint", "x", "y", "visible", "score", "manual", "disagreement")
        }
        for ann in anns:
            for inst in ann.instances:
                for kp in inst.keypoints:
                    cols["frame"].append(int(ann.frame))
                    cols["instance"].append(inst.name)
                    cols["keypoint"].append(kp.name)
                    cols["x"].append(float(kp.x))
                    cols["y"].append(float(kp.y))
                    cols["visible"].append(bool(kp.visible))
                    cols["score"].append(float(kp.score))
                    cols["manual"].append(ann.is_manual)
                    cols["disagreement"].append(disagreement_px(kp))
        return cls.from_columns(**cols)

    def __len__(self) -> int:
        return len(self.frame)

    def tracks(self) -> list[tuple[str, str]]:
        """The (instance, keypoint) pairs, in order of first appearance."""
        if not len(self):
            return []
        _, first = np.unique(self._keys(), return_index=True)
        return [(str(self.instance[r]), str(self.keypoint[r])) for r in np.sort(first)]

    def _keys(self) -> np.ndarray:
        return np.char.add(np.char.add(self.instance, "\x1f"), self.keypoint)

    def series(self, instance: str, keypoint: str) -> KeypointSeries:
        """The rows of one keypoint, sorted by frame, with its per-frame steps."""
        rows = np.flatnonzero((self.instance == instance) & (self.keypoint == keypoint))
        return self._series(rows[np.argsort(self.frame[rows], kind="stable")])

    def all_series(self) -> dict[tuple[str, str], KeypointSeries]:
        """Every keypoint's series by (instance, keypoint), in order of first appearance."""
        if not len(self):
            return {}
        _, first, codes = np.unique(self._keys(), return_index=True, return_inverse=True)
        order = np.lexsort((self.frame, codes))
        groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
        groups.sort(key=lambda rows: first[codes[rows[0]]])
        return {(str(self.instance[rows[0]]), str(self.keypoint[rows[0]])): self._series(rows) for rows in groups}

    def _series(self, rows: np.ndarray) -> KeypointSeries:
        frame, x, y, visible = self.frame[rows], self.x[rows], self.y[rows], self.visible[rows]
        step = np.full(len(rows), np.nan)
        seen = np.flatnonzero(visible & np.isfinite(x) & np.isfinite(y))
        if len(seen) > 1:
            gaps = np.maximum(np.diff(frame[seen]), 1)
            step[seen[1:]] = np.hypot(np.diff(x[seen]), np.diff(y[seen])) / gaps
        return KeypointSeries(frame, x, y, visible, self.score[rows], self.manual[rows], self.disagreement[rows], step)


def _array(values: Iterable) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else np.asarray(list(values))


def disagreement_px(keypoint: Keypoint) -> float:
    """How far apart two-way tracking's passes ended for this keypoint, px (0 when not recorded)."""
    value = keypoint.extra.get(DISAGREEMENT_KEY)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return 0.0
    return float(value)


def find_suspicious(table: KeypointTable, settings: SuspicionSettings | None = None) -> list[Suspicion]:
    """Every reason to look again, sorted by frame (then instance, keypoint, reason)."""
    settings = settings if settings is not None else SuspicionSettings()
    found: list[Suspicion] = []
    series = table.all_series()
    for (instance, keypoint), s in series.items():
        found += _series_suspicions(instance, keypoint, s, settings)
    order = {name: i for i, name in enumerate(series)}
    found.sort(key=lambda r: (r.frame, order[(r.instance, r.keypoint)], REASONS.index(r.reason)))
    return found


def _series_suspicions(instance: str, keypoint: str, s: KeypointSeries, settings: SuspicionSettings) -> list[Suspicion]:
    out: list[Suspicion] = []
    predicted = ~s.manual

    def add(rows: np.ndarray, reason: Reason, values: np.ndarray) -> None:
        out.extend(
            Suspicion(int(s.frame[i]), instance, keypoint, reason, float(v)) for i, v in zip(rows, values, strict=True)
        )

    hidden = ~s.visible
    onset = hidden & predicted & np.concatenate([[True], s.visible[:-1] | (s.frame[1:] - s.frame[:-1] > 1)])
    rows = np.flatnonzero(onset)
    add(rows, "lost", np.zeros(len(rows)))
    rows = np.flatnonzero(s.visible & predicted & (s.score < settings.min_score))
    add(rows, "low score", s.score[rows])
    rows = np.flatnonzero(predicted & (s.disagreement > settings.max_disagreement_px))
    add(rows, "disagreement", s.disagreement[rows])

    stepped = np.flatnonzero(np.isfinite(s.step))  # visible, with an earlier visible row
    limit = max(settings.jump_factor * s.typical_step, settings.min_jump_px)
    seen = np.flatnonzero(s.visible & np.isfinite(s.x) & np.isfinite(s.y))
    for i in stepped[s.step[stepped] > limit]:
        previous = seen[np.searchsorted(seen, i) - 1]
        blamed = i if predicted[i] else previous
        if predicted[blamed]:
            add(np.array([blamed]), "jump", np.array([s.step[i]]))
    return out


def by_frame(suspicions: Iterable[Suspicion]) -> dict[int, list[Suspicion]]:
    """Suspicions grouped by frame, frames sorted."""
    out: dict[int, list[Suspicion]] = {}
    for s in sorted(suspicions, key=lambda r: r.frame):
        out.setdefault(s.frame, []).append(s)
    return out


def step_to(frames: Sequence[int], current: int, direction: int) -> int | None:
    """The next (``direction`` > 0) or previous frame of the sorted ``frames`` from ``current``, else None."""
    if direction > 0:
        i = bisect.bisect_right(frames, current)
        return int(frames[i]) if i < len(frames) else None
    i = bisect.bisect_left(frames, current)
    return int(frames[i - 1]) if i > 0 else None
