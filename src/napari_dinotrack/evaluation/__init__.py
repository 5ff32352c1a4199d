"""Scoring tracked keypoints against human labels: PCK, pixel errors, swaps, occlusion recall, time to failure.

:func:`read_labels_csv` and :func:`read_result_folder` turn a labels CSV and a result folder into
:class:`Tracks`; :func:`evaluate` compares two of them (in memory too, via
:func:`tracks_from_arrays`) and returns an :class:`EvalReport` with a text table, a JSON-ready dict
and, through :func:`plot_errors`, an error-over-time PNG. The command line is ``napari-dinotrack eval``.
"""

from __future__ import annotations

from ..io.names import left_right_pairs
from .metrics import EvalReport, evaluate
from .plot import plot_errors
from .tracks import Tracks, read_labels_csv, read_result_folder, tracks_from_arrays

__all__ = [
    "EvalReport",
    "Tracks",
    "evaluate",
    "left_right_pairs",
    "plot_errors",
    "read_labels_csv",
    "read_result_folder",
    "tracks_from_arrays",
]
