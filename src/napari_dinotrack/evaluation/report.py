"""The evaluation as text: one row per keypoint and a pooled row, aligned for a terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .metrics import EvalReport

POOLED_ROW = "all"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pixels(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


# (header, metric, formatter)
COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("points", "points", _count),
    ("PCK@5", "pck5", _fraction),
    ("PCK@10", "pck10", _fraction),
    ("PCK@bbox", "pck_bbox", _fraction),
    ("median", "median_px", _pixels),
    ("mean", "mean_px", _pixels),
    ("ID swaps", "identity_swaps", _count),
    ("L/R swaps", "lr_swaps", _count),
    ("hidden", "hidden_recall", _fraction),
    ("visible", "visible_recall", _fraction),
    ("TTFF", "ttff_median_frames", _pixels),
    ("of span", "ttff_median_fraction", _fraction),
    ("intact", "never_failed", _fraction),
)

LEGEND = "\n".join(
    [
        "median, mean: error in px of the visible points reported visible; PCK@bbox: error <= 0.05 x the animal's "
        "keypoint box diagonal;",
        "hidden, visible: share of hidden / visible labels the tracker reports so; TTFF: median frames to a "
        "track's first failure",
        "(error > max(0.1 x diagonal, 20 px) or reported hidden), 'of span': as a share of the track; intact: share of "
        "tracks that never fail; -: nothing to measure.",
    ]
)


def format_table(report: EvalReport) -> str:
    """Aligned text table of ``report``: keypoint rows, a rule, the pooled row, and a legend."""
    rows = [[name] + [fmt(metrics[key]) for _, key, fmt in COLUMNS] for name, metrics in report.per_keypoint.items()]
    pooled = [POOLED_ROW] + [fmt(report.pooled[key]) for _, key, fmt in COLUMNS]
    header = ["keypoint"] + [title for title, _, _ in COLUMNS]
    widths = [max(len(row[i]) for row in [header, pooled, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded)

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(r) for r in rows), rule, line(pooled), "", LEGEND])
