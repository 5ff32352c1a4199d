"""Tracking results as a movement poses dataset, the common ground of every format.

A dataset spans every frame of the video (``time`` = frame / fps when the video's frame rate is
known, else the frame number), one individual per instance and one keypoint per body-part name.
Hidden keypoints and frames without results are NaN in ``position``; the tracker's score is the
``confidence``. So a row index of any exported table is the video frame it belongs to.

* :func:`locate_results`: the result folder and its video from a folder or a video path;
* :func:`result_dataset`: the per-frame LabelMe files of a result folder as a dataset;
* :func:`points_dataset`: keypoint rows (a napari Points layer's ``(t, y, x)`` plus features);
* :func:`dataset_rows`: a dataset back to rows (non-NaN points only), e.g. to show filtered points;
* :func:`rows_annotations`: rows as per-frame annotations (seeds, layers).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..io.annotations import FrameAnnotation, Instance, Keypoint, Source
from ..io.paths import ResultLayout
from ..io.video import VIDEO_SUFFIXES, VideoInfo
from .extra import require

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "SOURCE_SOFTWARE",
    "KeypointRows",
    "ResultSource",
    "dataset_frames",
    "dataset_rows",
    "find_video",
    "locate_results",
    "points_dataset",
    "result_dataset",
    "rows_annotations",
    "rows_dataset",
]

#: ``source_software`` of the datasets (and so of the files) we write
SOURCE_SOFTWARE = "napari-dinotrack"


@dataclass(frozen=True)
class ResultSource:
    """A result folder and, when it was found, its video."""

    layout: ResultLayout
    video: VideoInfo | None

    @property
    def fps(self) -> float | None:
        """The video's frame rate, or None when the video was not found."""
        return self.video.fps if self.video is not None else None


def find_video(folder: Path, stems: Iterable[str]) -> Path | None:
    """The video a result folder belongs to: ``<stem>.mp4`` (.avi, .mov, .mkv) next to the folder."""
    for stem in dict.fromkeys(stems):
        for suffix in VIDEO_SUFFIXES:
            for candidate in (folder.parent / f"{stem}{suffix}", folder.parent / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def locate_results(path: str | os.PathLike[str], video: str | os.PathLike[str] | None = None) -> ResultSource:
    """The results to export or render, given a result folder or a video (whose folder is then the default).

    ``video`` names the video explicitly when it does not lie next to the result folder. The video
    is probed (frame count, fps, size) when found; without it the frame count comes from the results.
    """
    from ..io.video import probe_video

    path = Path(path).expanduser()
    if path.is_file():
        layout = ResultLayout(path)
        video_path: Path | None = path
    elif path.is_dir():
        if video is not None:
            layout = ResultLayout(video, result_folder=path)
        else:
            layout = ResultLayout(path.parent / f"{path.name}.mp4", result_folder=path)
        video_path = Path(video) if video is not None else find_video(path, (path.name, layout.stem))
    else:
        raise InputError(
            f"{path}: no such result folder or video. Give the folder written by "
            "`napari-dinotrack track` (<video dir>/<video stem>/) or the video itself."
        )
    if not layout.frame_files():
        raise InputError(
            f"{layout.folder}: no tracking results (no <stem>_<frame>.json files). "
            "Track the video first, or give the folder that holds its results."
        )
    return ResultSource(layout, probe_video(video_path) if video_path is not None else None)


@dataclass
class KeypointRows:
    """Keypoints as parallel columns, one row per keypoint per frame.

    ``x``/``y`` are video pixels; a hidden keypoint has ``visible`` False (its coordinates are ignored).
    """

    frame: np.ndarray
    instance: np.ndarray
    keypoint: np.ndarray
    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def from_annotations(cls, annotations: Iterable[FrameAnnotation]) -> KeypointRows:
        """Rows of annotated frames; manual frames come first, so their names set the order."""
        anns = sorted(annotations, key=lambda a: (not a.is_manual, a.frame))
        cols: dict[str, list[Any]] = {
            name: [] for name in ("frame", "instance", "keypoint", "x", "y", "visible", "score")
        }
        for ann in anns:
            for inst in ann.instances:
                for kp in inst.keypoints:
                    for name, value in (
                        ("frame", ann.frame),
                        ("instance", inst.name),
                        ("keypoint", kp.name),
                        ("x", kp.x),
                        ("y", kp.y),
                        ("visible", kp.visible),
                        ("score", kp.score),
                    ):
                        cols[name].append(value)
        return cls.from_columns(cols)

    @classmethod
    def from_columns(cls, cols: Mapping[str, Sequence[Any] | np.ndarray]) -> KeypointRows:
        """Rows from per-column sequences or arrays (keys: the field names)."""
        n = len(cols["frame"])
        return cls(
            frame=np.asarray(cols["frame"], dtype=int).reshape(n),
            instance=np.asarray([str(v) for v in cols["instance"]], dtype=object).reshape(n),
            keypoint=np.asarray([str(v) for v in cols["keypoint"]], dtype=object).reshape(n),
            x=np.asarray(cols["x"], dtype=float).reshape(n),
            y=np.asarray(cols["y"], dtype=float).reshape(n),
            visible=np.asarray(cols["visible"], dtype=bool).reshape(n),
            score=np.asarray(cols["score"], dtype=float).reshape(n),
        )


def rows_annotations(rows: KeypointRows, height: int, width: int, source: Source = "manual") -> list[FrameAnnotation]:
    """Keypoint rows as annotations, one per frame (animals and keypoints in row order)."""
    by_frame: dict[int, dict[str, list[Keypoint]]] = {}
    for i in range(len(rows)):
        animals = by_frame.setdefault(int(rows.frame[i]), {})
        animals.setdefault(str(rows.instance[i]), []).append(
            Keypoint(
                str(rows.keypoint[i]), float(rows.x[i]), float(rows.y[i]), bool(rows.visible[i]), float(rows.score[i])
            )
        )
    return [
        FrameAnnotation(
            frame, int(height), int(width), [Instance(name, kps) for name, kps in animals.items()], source=source
        )
        for frame, animals in sorted(by_frame.items())
    ]


def _first_seen(values: np.ndarray) -> list[str]:
    return list(dict.fromkeys(values.tolist()))


def rows_dataset(
    rows: KeypointRows, n_frames: int | None = None, fps: float | None = None, attrs: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """A movement poses dataset from keypoint rows (individuals and keypoints in order of first appearance).

    ``n_frames`` defaults to the last frame + 1; rows beyond it extend it. Hidden or non-finite
    points are NaN; a repeated (frame, instance, keypoint) keeps its last row.
    """
    load_poses = require("movement.io.load_poses", "Building a movement dataset")
    if not len(rows):
        raise InputError("There are no keypoints to export: track the video or label a frame first.")
    individuals, keypoints = _first_seen(rows.instance), _first_seen(rows.keypoint)
    total = max(int(n_frames or 0), int(rows.frame.max()) + 1)
    position = np.full((total, 2, len(keypoints), len(individuals)), np.nan)
    confidence = np.full((total, len(keypoints), len(individuals)), np.nan)
    k = np.array([keypoints.index(v) for v in rows.keypoint], dtype=int)
    i = np.array([individuals.index(v) for v in rows.instance], dtype=int)
    shown = rows.visible & np.isfinite(rows.x) & np.isfinite(rows.y)
    position[rows.frame[shown], 0, k[shown], i[shown]] = rows.x[shown]
    position[rows.frame[shown], 1, k[shown], i[shown]] = rows.y[shown]
    confidence[rows.frame, k, i] = np.where(np.isfinite(rows.score), rows.score, np.nan)
    ds = load_poses.from_numpy(
        position,
        confidence,
        individual_names=individuals,
        keypoint_names=keypoints,
        fps=fps,
        source_software=SOURCE_SOFTWARE,
    )
    ds.attrs.update({key: value for key, value in (attrs or {}).items() if value is not None})
    return ds


def result_dataset(source: ResultSource, annotations: Mapping[int, FrameAnnotation] | None = None) -> xr.Dataset:
    """The results of a result folder as a movement poses dataset over every frame of the video.

    ``annotations`` (frame -> annotation) may be passed when already loaded; by default every
    ``<stem>_<frame>.json`` of the folder is read. ``attrs`` keep the video's path and frame size.
    """
    from ..io.labelme import load_annotations

    anns = load_annotations(source.layout) if annotations is None else annotations
    rows = KeypointRows.from_annotations(anns.values())
    info = source.video
    attrs: dict[str, Any] = {"video_path": str(info.path) if info else None}
    first = next(iter(anns.values()), None)
    if first is not None:
        attrs.update(frame_height=int(first.image_height), frame_width=int(first.image_width))
    return rows_dataset(rows, info.n_frames if info else None, source.fps, attrs)


def points_dataset(
    data: np.ndarray,
    features: Mapping[str, Sequence[Any]] | Any,
    n_frames: int | None = None,
    fps: float | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A keypoints Points layer (rows ``(t, y, x)`` and their features) as a dataset.

    The features used are ``instance``, ``keypoint``, ``visible`` and ``score``; ``visible``
    defaults to True, ``score`` to NaN and ``instance`` to "animal".
    """
    data = np.asarray(data, dtype=float).reshape(-1, 3)
    n = len(data)

    def column(name: str, default: Any) -> Sequence[Any]:
        has = name in features.columns if hasattr(features, "columns") else name in features
        return list(features[name]) if has else [default] * n

    cols: dict[str, Sequence[Any] | np.ndarray] = {
        "frame": np.round(data[:, 0]).astype(int),
        "instance": column("instance", "animal"),
        "keypoint": column("keypoint", None),
        "x": data[:, 2],
        "y": data[:, 1],
        "visible": column("visible", True),
        "score": column("score", math.nan),
    }
    if any(name is None or (isinstance(name, float) and math.isnan(name)) for name in cols["keypoint"]):
        raise InputError("Every point needs a keypoint name (the layer's 'keypoint' feature) to be exported.")
    return rows_dataset(KeypointRows.from_columns(cols), n_frames, fps, attrs)


def dataset_frames(ds: xr.Dataset) -> np.ndarray:
    """The video frame of each ``time`` of a dataset (time is in seconds when the dataset has an fps)."""
    time = np.asarray(ds["time"].values, dtype=float)
    fps = ds.attrs.get("fps")
    if ds.attrs.get("time_unit") == "seconds" and fps:
        return np.rint(time * float(fps)).astype(int)
    return np.rint(time).astype(int)


def dataset_rows(ds: xr.Dataset) -> KeypointRows:
    """The points of a dataset that have coordinates (NaN ones are left out), as visible rows."""
    position = ds["position"].transpose("time", "space", "keypoints", "individuals").values
    confidence = ds["confidence"].transpose("time", "keypoints", "individuals").values
    frames = dataset_frames(ds)
    t, k, i = np.nonzero(np.isfinite(position[:, 0]) & np.isfinite(position[:, 1]))
    keypoints = np.asarray(ds["keypoints"].values).astype(str).astype(object)
    individuals = np.asarray(ds["individuals"].values).astype(str).astype(object)
    return KeypointRows(
        frame=frames[t],
        instance=individuals[i],
        keypoint=keypoints[k],
        x=position[t, 0, k, i],
        y=position[t, 1, k, i],
        visible=np.ones(len(t), bool),
        score=confidence[t, k, i],
    )
