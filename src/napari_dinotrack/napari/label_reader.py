"""napari reader for label files of other tools: DeepLabCut .h5/.csv, SLEAP .slp/analysis .h5, COCO .json.

Dropping such a file onto the viewer where its video is open adds a keypoints Points layer named
``<file> labels``: rows ``(t, y, x)`` on the labelled frames of the video, coloured by keypoint
like the tracker's own layer. Choose it as the keypoints layer to save frames as seeds, or use the
dock's *Import as seeds* to write them all. :func:`get_label_reader` only claims files it
recognises (it sniffs their content, without importing movement) and never raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .reader import META_KEY, LayerData, ReaderFunction

__all__ = ["get_label_reader", "read_label_layers"]


def _single_path(path: str | list[str]) -> Path | None:
    single: str | list[str] | None = path
    if isinstance(path, list | tuple):
        single = path[0] if len(path) == 1 else None
    return Path(single) if isinstance(single, str | Path) else None


def get_label_reader(path: str | list[str]) -> ReaderFunction | None:
    """A reader for a DeepLabCut, SLEAP or COCO label file, else None."""
    from ..exchange.label_files import label_kind

    p = _single_path(path)
    return read_label_layers if p is not None and label_kind(p) is not None else None


def read_label_layers(path: str | list[str]) -> list[LayerData]:
    """The labels of a file as one keypoints Points layer (a UserError names the file when it cannot be read)."""
    from ..exchange.dataset import rows_annotations
    from ..exchange.label_files import read_label_file
    from .layer_styles import keypoints_layer_data

    p = _single_path(path)
    if p is None:
        return []
    labels = read_label_file(p)
    height, width = labels.image_size or (0, 0)
    annotations = {a.frame: a for a in rows_annotations(labels.rows, height, width)}
    meta: dict[str, Any] = {META_KEY: {"labels_file": str(Path(p)), "labels_kind": labels.kind}}
    return [keypoints_layer_data(annotations, f"{Path(p).stem} labels", meta)]
