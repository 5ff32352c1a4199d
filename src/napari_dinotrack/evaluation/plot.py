"""Error over time per keypoint as a PNG (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MissingExtraError
from ..io.atomic import atomic_write_bytes
from .metrics import PCK_PX

if TYPE_CHECKING:
    from .metrics import EvalReport

PLOT_EXTRA = "plot"
_FLOOR_PX = 0.1  # log axis: perfect hits are drawn here instead of vanishing


def require_matplotlib() -> Any:
    """The matplotlib module, or :class:`MissingExtraError` naming the extra that installs it."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("matplotlib", PLOT_EXTRA, "The error plot (--plot)") from None
    return matplotlib


def plot_errors(report: EvalReport, path: str | os.PathLike[str]) -> None:
    """Write a PNG of each keypoint's error over the scored frames, one panel per instance.

    Errors are on a log axis with the 5 and 10 px PCK thresholds drawn; a labelled-visible point the
    tracker reported hidden is marked with an x at the top of its panel.
    """
    require_matplotlib()
    # the object API with an Agg canvas: no pyplot state, no change to the process's backend (napari may own it)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    instances = list(dict.fromkeys(inst for inst, _ in report.keys))
    names = list(dict.fromkeys(name for _, name in report.keys))
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    figure = Figure(figsize=(10, 1.0 + 2.6 * len(instances)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(instances), 1, sharex=True, squeeze=False)[:, 0]
    frames = report.frames
    measured = report.per_frame_error[np.isfinite(report.per_frame_error)]
    top = max(100.0, 1.5 * float(measured.max())) if measured.size else 100.0  # one pixel scale for every panel
    for ax, inst in zip(axes, instances, strict=True):
        for col, (owner, name) in enumerate(report.keys):
            if owner != inst:
                continue
            error = report.per_frame_error[:, col]
            # NaN breaks the line where the point was hidden, unlabelled or missed: no line across gaps
            ax.plot(
                frames,
                np.where(np.isfinite(error), np.maximum(error, _FLOOR_PX), np.nan),
                ".-",
                color=colours[name],
                lw=1,
                ms=3,
                label=name,
            )
            missed = np.isinf(error)
            if missed.any():  # (an empty unclipped line would upset the constrained layout)
                ax.plot(
                    frames[missed],
                    np.ones(int(missed.sum())),
                    "x",
                    color=colours[name],
                    ms=6,
                    clip_on=False,
                    transform=ax.get_xaxis_transform(),
                )
        for px in PCK_PX.values():
            ax.axhline(px, color="0.6", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_ylim(_FLOOR_PX, top)
        ax.set_ylabel("error (px)")
        ax.set_title(inst, loc="left", fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
        if ax.has_data():
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")  # beside the data, not on it
    axes[-1].set_xlabel("frame")
    figure.suptitle(
        "Keypoint error over time (dashed: 5 and 10 px; x at the top: visible point reported hidden)", fontsize="medium"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())
