"""Accuracy of predicted keypoint tracks against human labels.

What is scored: every (frame, key) that the labels have a row for, on frames that have
predictions and are not skipped (manual frames are the user's own labels), for the keys that
both sides name. Frames without any prediction (before the first manual frame, after a run that
stopped early) are reported, not scored. Within a predicted frame, a key the tracker did not
write counts like a point it reported hidden.

Per labelled-visible point the error is the distance between prediction and label in video
pixels. A point the tracker reports hidden has error +inf: a miss for every PCK, left out of
the median and mean. The metrics, pooled over all points and per keypoint name:

* ``pck5`` / ``pck10``: fraction of visible points with error <= 5 / 10 px.
* ``pck_bbox``: error <= 0.05 x the diagonal of the instance's bounding box of labelled-visible
  keypoints in that frame; with fewer than two visible keypoints, the instance's median diagonal
  over all labelled frames.
* ``median_px`` / ``mean_px``: over visible points that the tracker reports visible.
* ``identity_swaps``: visible points whose prediction is more than 10 px from its own label and
  closer to the label of the same keypoint on another instance.
* ``lr_swaps``: (frame, instance, pair) of ``left*``/``right*`` keypoints (same name after the
  side, any case, ``_``, ``-`` or space between) where each prediction is closer to the partner's
  label than to its own. Per keypoint, a swap counts for both names of the pair.
* ``hidden_recall``: of labelled-not-visible points the tracker wrote a row for, the fraction it
  reports hidden (None when there are none); ``visible_recall``: of labelled-visible points, the
  fraction it reports visible.
* time to first failure, per track (instance, keypoint): frames from the tracking origin (the
  last labelled or skipped frame before the first scored one) to the first visible point with
  error > max(0.1 x bbox diagonal, 20 px); a track that never fails counts its whole span.
  ``ttff_median_frames``, ``ttff_median_fraction`` (of the track's span) and ``never_failed``
  (fraction of tracks) summarise it.
* ``points``: visible points scored; ``hidden_points``: labelled-not-visible points predicted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.names import left_right_pairs
from .tracks import Key, Tracks

__all__ = ["BBOX_FRACTION", "FAILURE_FRACTION", "FAILURE_MIN_PX", "METRICS", "SWAP_MIN_PX", "EvalReport", "evaluate"]

PCK_PX = {"pck5": 5.0, "pck10": 10.0}
BBOX_FRACTION = 0.05
SWAP_MIN_PX = 10.0
FAILURE_FRACTION = 0.1
FAILURE_MIN_PX = 20.0

METRICS = (
    "points",
    "pck5",
    "pck10",
    "pck_bbox",
    "median_px",
    "mean_px",
    "identity_swaps",
    "lr_swaps",
    "hidden_points",
    "hidden_recall",
    "visible_recall",
    "ttff_median_frames",
    "ttff_median_fraction",
    "never_failed",
)
"""Names of the figures in :attr:`EvalReport.pooled` and each :attr:`EvalReport.per_keypoint` entry."""


@dataclass
class EvalReport:
    """Scores of one prediction against its labels.

    ``pooled`` and each ``per_keypoint[name]`` map :data:`METRICS` to numbers (None when nothing
    was there to measure). ``per_frame_error`` (len(frames), len(keys)) holds each scored visible
    point's error in px: +inf where the tracker reported it hidden, NaN where nothing was scored.
    """

    pooled: dict[str, Any]
    per_keypoint: dict[str, dict[str, Any]]
    frames: np.ndarray
    keys: list[Key]
    per_frame_error: np.ndarray
    frames_skipped: list[int] = field(default_factory=list)
    frames_unpredicted: list[int] = field(default_factory=list)
    keys_only_in_labels: list[Key] = field(default_factory=list)
    keys_only_in_predictions: list[Key] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the pooled figures at the top level, then per keypoint and what was (not) scored."""
        return {
            **self.pooled,
            "per_keypoint": self.per_keypoint,
            "frames_scored": len(self.frames),
            "first_scored_frame": int(self.frames[0]) if len(self.frames) else None,
            "last_scored_frame": int(self.frames[-1]) if len(self.frames) else None,
            "frames_skipped": len(self.frames_skipped),
            "frames_unpredicted": len(self.frames_unpredicted),
            "keys_scored": [f"{i}/{k}" for i, k in self.keys],
            "keys_only_in_labels": [f"{i}/{k}" for i, k in self.keys_only_in_labels],
            "keys_only_in_predictions": [f"{i}/{k}" for i, k in self.keys_only_in_predictions],
        }

    def table(self) -> str:
        """Per-keypoint rows and a pooled row as aligned text for a terminal."""
        from .report import format_table

        return format_table(self)


def evaluate(pred: Tracks, truth: Tracks, skip_frames: Iterable[int] = ()) -> EvalReport:
    """Score predicted tracks against labelled tracks (see the module docstring for every rule).

    Raises :class:`InputError` when the two share no (instance, keypoint).
    """
    pred_col = {key: c for c, key in enumerate(pred.keys)}
    truth_col = {key: c for c, key in enumerate(truth.keys)}
    keys = [key for key in truth.keys if key in pred_col]
    if not keys:
        raise InputError(
            f"the labels and the predictions name no (instance, keypoint) in common: labels have "
            f"{_brief(truth.keys)}; predictions have {_brief(pred.keys)}. Use the same instance "
            "and keypoint names in both."
        )
    skip = np.array(sorted({int(f) for f in skip_frames}), dtype=np.int64)
    labelled_frames = truth.frames[truth.labelled.any(1)]
    skipped = np.intersect1d(labelled_frames, skip)
    frames = np.setdiff1d(np.intersect1d(labelled_frames, pred.frames), skip)
    unpredicted = np.setdiff1d(np.setdiff1d(labelled_frames, pred.frames), skip)

    t_rows = np.searchsorted(truth.frames, frames)
    p_rows = np.searchsorted(pred.frames, frames)
    t_cols = [truth_col[k] for k in keys]
    p_cols = [pred_col[k] for k in keys]
    gt_xy = truth.xy[t_rows][:, t_cols]
    shown = (truth.labelled & truth.visible)[t_rows][:, t_cols]
    hidden = (truth.labelled & ~truth.visible)[t_rows][:, t_cols]
    pr_xy = pred.xy[p_rows][:, p_cols]
    written = pred.labelled[p_rows][:, p_cols]
    reported = written & pred.visible[p_rows][:, p_cols] & np.isfinite(pr_xy).all(-1)

    distance = np.linalg.norm(pr_xy - gt_xy, axis=-1)
    error = np.where(shown, np.where(reported, distance, np.inf), np.nan)
    diagonal = _bbox_diagonals(truth)[t_rows][:, [_instance_index(truth)[k[0]] for k in keys]]
    cells = _Cells(
        error=error,
        shown=shown,
        hidden=hidden,
        written=written,
        reported=reported,
        diagonal=diagonal,
        identity_swap=_identity_swaps(truth, keys, t_rows, pr_xy, error),
        lr_swap=_lr_swaps(keys, gt_xy, pr_xy, shown & reported),
    )
    origin = _origin(truth.frames, skip, frames)

    names = list(dict.fromkeys(name for _, name in keys))
    per_keypoint = {
        name: cells.summary(frames, origin, [c for c, k in enumerate(keys) if k[1] == name]) for name in names
    }
    pooled = cells.summary(frames, origin, list(range(len(keys))))
    pooled["lr_swaps"] //= 2  # each swapped pair marked both of its keypoints
    return EvalReport(
        pooled=pooled,
        per_keypoint=per_keypoint,
        frames=frames,
        keys=keys,
        per_frame_error=error,
        frames_skipped=skipped.tolist(),
        frames_unpredicted=unpredicted.tolist(),
        keys_only_in_labels=[k for k in truth.keys if k not in pred_col],
        keys_only_in_predictions=[k for k in pred.keys if k not in truth_col],
    )


@dataclass
class _Cells:
    """Per (scored frame, key) arrays; ``summary`` reduces a set of key columns to the metrics."""

    error: np.ndarray
    shown: np.ndarray
    hidden: np.ndarray
    written: np.ndarray
    reported: np.ndarray
    diagonal: np.ndarray
    identity_swap: np.ndarray
    lr_swap: np.ndarray

    def summary(self, frames: np.ndarray, origin: int | None, cols: list[int]) -> dict[str, Any]:
        error, shown = self.error[:, cols], self.shown[:, cols]
        visible_errors = error[shown]
        finite = visible_errors[np.isfinite(visible_errors)]
        diagonal = self.diagonal[:, cols]
        with_box = shown & np.isfinite(diagonal)
        hidden_written = self.hidden[:, cols] & self.written[:, cols]
        out: dict[str, Any] = {"points": int(shown.sum())}
        for name, px in PCK_PX.items():
            out[name] = _fraction(visible_errors <= px)
        out["pck_bbox"] = _fraction(error[with_box] <= BBOX_FRACTION * diagonal[with_box])
        out["median_px"] = float(np.median(finite)) if finite.size else None
        out["mean_px"] = float(np.mean(finite)) if finite.size else None
        out["identity_swaps"] = int(self.identity_swap[:, cols].sum())
        out["lr_swaps"] = int(self.lr_swap[:, cols].sum())
        out["hidden_points"] = int(hidden_written.sum())
        out["hidden_recall"] = _fraction(~self.reported[:, cols][hidden_written])
        out["visible_recall"] = _fraction(self.reported[:, cols][shown])
        out.update(_time_to_failure(frames, origin, error, shown, diagonal))
        return out


def _time_to_failure(
    frames: np.ndarray, origin: int | None, error: np.ndarray, shown: np.ndarray, diagonal: np.ndarray
) -> dict[str, Any]:
    nothing = {"ttff_median_frames": None, "ttff_median_fraction": None, "never_failed": None}
    if origin is None:  # no scored frames
        return nothing
    threshold = np.fmax(FAILURE_FRACTION * diagonal, FAILURE_MIN_PX)  # fmax: a missing diagonal leaves 20 px
    failed = shown & ~(error <= threshold)  # inf (reported hidden) fails too
    lengths, fractions, survived = [], [], []
    for col in range(shown.shape[1]):
        rows = np.flatnonzero(shown[:, col])
        if not rows.size:
            continue
        span = int(frames[rows[-1]]) - origin
        fails = np.flatnonzero(failed[:, col])
        length = int(frames[fails[0]]) - origin if fails.size else span
        lengths.append(length)
        fractions.append(length / span if span > 0 else float(not fails.size))
        survived.append(not fails.size)
    if not lengths:
        return nothing
    return {
        "ttff_median_frames": float(np.median(lengths)),
        "ttff_median_fraction": float(np.median(fractions)),
        "never_failed": float(np.mean(survived)),
    }


def _origin(truth_frames: np.ndarray, skip: np.ndarray, frames: np.ndarray) -> int | None:
    """Where tracking started: the last labelled or skipped frame before the first scored one."""
    if not len(frames):
        return None
    before = np.union1d(truth_frames, skip)
    before = before[before < frames[0]]
    return int(before[-1]) if len(before) else int(frames[0])


def _instance_index(truth: Tracks) -> dict[str, int]:
    return {inst: i for i, inst in enumerate(dict.fromkeys(inst for inst, _ in truth.keys))}


def _bbox_diagonals(truth: Tracks) -> np.ndarray:
    """(frames, instances) diagonal of the labelled-visible keypoints' box; median diagonal below two points."""
    index = _instance_index(truth)
    shown = truth.labelled & truth.visible
    out = np.full((len(truth.frames), len(index)), np.nan)
    for inst, i in index.items():
        cols = [c for c, key in enumerate(truth.keys) if key[0] == inst]
        mask = shown[:, cols, None]
        high = np.where(mask, truth.xy[:, cols], -np.inf).max(1)
        low = np.where(mask, truth.xy[:, cols], np.inf).min(1)
        enough = mask[..., 0].sum(1) >= 2
        out[enough, i] = np.linalg.norm(high[enough] - low[enough], axis=-1)
        if enough.any():
            out[~enough, i] = np.median(out[enough, i])
    return out


def _identity_swaps(
    truth: Tracks, keys: list[Key], t_rows: np.ndarray, pr_xy: np.ndarray, error: np.ndarray
) -> np.ndarray:
    """(frames, keys) True where a far-off prediction is nearer the same keypoint's label on another instance."""
    swapped = np.zeros(error.shape, bool)
    shown = (truth.labelled & truth.visible)[t_rows]
    for c, (inst, name) in enumerate(keys):
        others = [tc for tc, (other, other_name) in enumerate(truth.keys) if other_name == name and other != inst]
        if not others:
            continue
        other_xy = np.where(shown[:, others, None], truth.xy[t_rows][:, others], np.nan)
        nearest = np.fmin.reduce(np.linalg.norm(other_xy - pr_xy[:, c, None], axis=-1), axis=1)
        # np.isfinite(error) keeps points reported hidden out: they have no position to compare
        swapped[:, c] = np.isfinite(error[:, c]) & (error[:, c] > SWAP_MIN_PX) & (nearest < error[:, c])
    return swapped


def _lr_swaps(keys: list[Key], gt_xy: np.ndarray, pr_xy: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """(frames, keys) True on both members of a left/right pair whose predictions each sit nearer the partner."""
    swapped = np.zeros(usable.shape, bool)
    for left, right in left_right_pairs(keys):

        def nearer_partner(own: int, partner: int) -> np.ndarray:
            return np.linalg.norm(pr_xy[:, own] - gt_xy[:, partner], axis=-1) < np.linalg.norm(
                pr_xy[:, own] - gt_xy[:, own], axis=-1
            )

        both = usable[:, left] & usable[:, right] & nearer_partner(left, right) & nearer_partner(right, left)
        swapped[:, left] |= both
        swapped[:, right] |= both
    return swapped


def _fraction(hits: np.ndarray) -> float | None:
    return float(np.mean(hits)) if hits.size else None


def _brief(keys: list[Key], limit: int = 6) -> str:
    names = [f"{inst}/{name}" for inst, name in keys[:limit]]
    more = f", ... ({len(keys)} in all)" if len(keys) > limit else ""
    return (", ".join(names) + more) if names else "none"
