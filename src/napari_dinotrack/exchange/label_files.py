"""Other tools' label files read into keypoint rows, through movement and sleap-io.

=================================  ============================================================
file                               read with
=================================  ============================================================
DeepLabCut ``.h5`` / ``.csv``      pandas, then movement ``from_dlc_style_df`` (training labels
                                   ``CollectedData_*`` indexed by image, or predictions by frame)
SLEAP ``.slp``                     sleap-io ``load_slp`` (user instances win over predictions)
SLEAP analysis ``.h5``             movement ``load_poses.from_sleap_file``
COCO keypoint ``.json``            sleap-io's COCO parser (categories -> skeletons, keypoints)
=================================  ============================================================

Frame numbers: a DeepLabCut image ``labeled-data/<video>/img0042.png`` is frame 42 (the last
number in the image name; likewise a COCO image's ``frame_id`` or file name); prediction tables,
analysis files and ``.slp`` files index frames directly. Every problem is an
:class:`~napari_dinotrack.errors.InputError` naming the file.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, UserError
from .dataset import KeypointRows, dataset_rows
from .extra import require
from .skeleton import Edge

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KINDS", "LABEL_SUFFIXES", "LabelFile", "label_kind", "read_label_file"]

KINDS = ("DeepLabCut", "SLEAP", "COCO")
LABEL_SUFFIXES = (".h5", ".csv", ".slp", ".json")
_PURPOSE = "Reading {kind} labels"
_NUMBER = re.compile(r"(\d+)")
#: names movement gives animals a file does not name
_PLACEHOLDER = re.compile(r"^(id|individual)_\d+$")


@dataclass
class LabelFile:
    """The keypoints of a label file, before they are checked against a video.

    ``named`` is False when the file does not name its animals (single-animal DeepLabCut, SLEAP
    without tracks); they are then called ``animal1``, ``animal2``… ``image_size`` is the
    ``(height, width)`` the file says its frames have, when it says so.
    """

    path: Path
    kind: str
    rows: KeypointRows
    named: bool = True
    image_size: tuple[int, int] | None = None
    edges: list[Edge] = field(default_factory=list)


def label_kind(path: str | os.PathLike[str]) -> str | None:
    """Which tool a file comes from (one of :data:`KINDS`), or None; cheap, never raises, imports no movement."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if not path.is_file() or suffix not in LABEL_SUFFIXES:
            return None
        if suffix == ".slp":
            return "SLEAP"
        if suffix == ".csv":
            with open(path, encoding="utf-8-sig", newline="") as fh:
                first = next(csv.reader(fh), [""])
            return "DeepLabCut" if first and first[0].strip() == "scorer" else None
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            keys = {"images", "annotations", "categories"}
            return "COCO" if isinstance(data, dict) and keys <= data.keys() else None
        import h5py

        with h5py.File(path, "r") as f:
            if "tracks" in f and "node_names" in f:
                return "SLEAP"
            if any("pandas_type" in f[key].attrs for key in f):
                return "DeepLabCut"
    except Exception:  # a reader probe must never fail: anything unreadable is "not ours"
        return None
    return None


def read_label_file(path: str | os.PathLike[str], video_stem: str | None = None) -> LabelFile:
    """Read a DeepLabCut, SLEAP or COCO label file.

    ``video_stem`` picks the labels of one video when the file holds several (a DeepLabCut
    ``labeled-data/<video>/`` folder, a SLEAP video).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: label file not found")
    kind = label_kind(path)
    if kind is None:
        raise InputError(
            f"{path}: not a label file this can read; give a DeepLabCut CollectedData .h5/.csv or "
            "prediction file, a SLEAP .slp or analysis .h5, or a COCO keypoint .json"
        )
    reader = {"DeepLabCut": _read_dlc, "COCO": _read_coco}.get(kind)
    if reader is None:
        reader = _read_slp if path.suffix.lower() == ".slp" else _read_sleap_analysis
    try:
        labels = reader(path, video_stem)
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        raise InputError(f"{path}: cannot be read as {kind} labels ({exc})") from None
    if not len(labels.rows):
        raise InputError(f"{path}: holds no labelled keypoints")
    return labels


# ------------------------------------------------------------------------------------------ DeepLabCut
def _read_dlc(path: Path, video_stem: str | None) -> LabelFile:
    import pandas as pd

    load_poses = require("movement.io.load_poses", _PURPOSE.format(kind="DeepLabCut"))
    df = _dlc_table(path)
    names = list(df.columns.names)
    if "bodyparts" not in names or "coords" not in names:
        raise InputError(
            f"{path}: not a DeepLabCut table (its column levels are {names}; expected scorer, "
            "[individuals,] bodyparts, coords)"
        )
    coords = list(dict.fromkeys(df.columns.get_level_values("coords")))
    if set(coords) - {"x", "y", "likelihood"} or not {"x", "y"} <= set(coords):
        raise InputError(
            f"{path}: wrong shape: expected x, y (and likelihood) per keypoint, found {coords}. "
            "Only 2-D labels can seed a video."
        )
    frames, keep = _dlc_frames(path, list(df.index), video_stem)
    # a complete individuals x bodyparts x coords grid in that order is what movement reshapes
    grid = pd.MultiIndex.from_product([list(dict.fromkeys(df.columns.get_level_values(n))) for n in names], names=names)
    table = df.loc[keep].reindex(columns=grid).reset_index(drop=True).apply(pd.to_numeric, errors="coerce")
    ds = load_poses.from_dlc_style_df(table, source_software="DeepLabCut")
    rows = _frames_from_positions(dataset_rows(ds), frames)
    named = "individuals" in names
    return LabelFile(path, "DeepLabCut", rows if named else _numbered(rows), named=named)


def _dlc_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    if path.suffix.lower() == ".h5":
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            only = keys[0] if len(keys) == 1 else None
            key = next((k for k in ("/df_with_missing", "/keypoints") if k in keys), only)
            if key is None:
                raise InputError(
                    f"{path}: holds several tables ({', '.join(keys)}) and none is DeepLabCut's "
                    "'df_with_missing' or 'keypoints'"
                )
            df = store[key]
        if not isinstance(df, pd.DataFrame) or df.columns.nlevels < 3:
            raise InputError(f"{path}: not a DeepLabCut table (expected scorer/bodyparts/coords columns)")
        return df
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = [row for _, row in zip(range(5), csv.reader(fh), strict=False)]
    levels = [row[0].strip() if row else "" for row in header]
    if "coords" not in levels:
        raise InputError(f"{path}: not a DeepLabCut table (no 'coords' header row)")
    n_levels = levels.index("coords") + 1
    first = header[0]
    n_index = 1 + next((i for i, cell in enumerate(first[1:]) if cell.strip()), len(first) - 1)
    df = pd.read_csv(path, header=list(range(n_levels)), index_col=list(range(n_index)), encoding="utf-8-sig")
    df.columns = df.columns.set_names(levels[:n_levels])
    return df


def _dlc_frames(path: Path, index: list[Any], video_stem: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Frame numbers of a DeepLabCut table's rows and which rows belong to the video."""
    if all(_is_int(value) for value in index):  # predictions: the row index is the frame
        return np.array([int(v) for v in index], int), np.ones(len(index), bool)
    videos, frames = [], []
    for value in index:
        parts = [str(p) for p in value] if isinstance(value, tuple) else _path_parts(str(value))
        videos.append(parts[-2] if len(parts) >= 2 else "")
        frames.append(_frame_number(parts[-1], path))
    names = list(dict.fromkeys(videos))
    if video_stem is not None and video_stem in names:
        chosen = video_stem
    elif len(names) == 1:
        chosen = names[0]
    else:
        raise InputError(
            f"{path}: holds labels of several videos ({', '.join(names)}); open the video with one of "
            "these names, or split the file"
        )
    keep = np.array([v == chosen for v in videos])
    return np.array(frames, int)[keep], keep


def _path_parts(text: str) -> list[str]:
    return list((PureWindowsPath if "\\" in text else PurePosixPath)(text).parts)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) or (isinstance(value, str) and value.strip().isdigit())


def _frame_number(name: str, path: Path) -> int:
    numbers = _NUMBER.findall(Path(name).stem)
    if not numbers:
        raise InputError(
            f"{path}: cannot tell the video frame of image {name!r} (no number in its name, as in img0042.png)"
        )
    return int(numbers[-1])


def _frames_from_positions(rows: KeypointRows, frames: np.ndarray) -> KeypointRows:
    """Rows whose ``frame`` is a row position of a table, renumbered to the table's frame numbers."""
    rows.frame = frames[rows.frame]
    rows.score = np.where(np.isfinite(rows.score), rows.score, 1.0)
    return rows


# ------------------------------------------------------------------------------------------ SLEAP
def _read_slp(path: Path, video_stem: str | None) -> LabelFile:
    sio = require("sleap_io", _PURPOSE.format(kind="SLEAP"))
    labels = sio.load_slp(str(path), open_videos=False)
    if not labels.videos:
        raise InputError(f"{path}: holds no video")
    stems = [Path(str(v.filename if isinstance(v.filename, str) else v.filename[0])).stem for v in labels.videos]
    if len(labels.videos) == 1:
        video = labels.videos[0]
    elif video_stem in stems:
        video = labels.videos[stems.index(video_stem)]
    else:
        raise InputError(
            f"{path}: holds labels of several videos ({', '.join(stems)}); open the video with one of these names"
        )
    cols: dict[str, list[Any]] = {k: [] for k in ("frame", "instance", "keypoint", "x", "y", "visible", "score")}
    named = True
    for lf in sorted(labels.find(video), key=lambda lf: lf.frame_idx):
        for n, inst in enumerate(lf.user_instances or lf.predicted_instances, start=1):
            named = named and inst.track is not None
            name = inst.track.name if inst.track is not None else f"animal{n}"
            points = inst.numpy(scores=True) if isinstance(inst, sio.PredictedInstance) else inst.numpy()
            for k, node in enumerate(inst.skeleton.node_names):
                x, y = points[k, 0], points[k, 1]
                if np.isfinite(x) and np.isfinite(y):
                    score = float(points[k, 2]) if points.shape[1] > 2 else 1.0
                    for key, value in (
                        ("frame", lf.frame_idx),
                        ("instance", name),
                        ("keypoint", node),
                        ("x", x),
                        ("y", y),
                        ("visible", True),
                        ("score", score),
                    ):
                        cols[key].append(value)
    shape = video.shape
    size = (int(shape[1]), int(shape[2])) if shape is not None and shape[1] and shape[2] else None
    edges = [tuple(e) for skeleton in labels.skeletons for e in skeleton.edge_names]
    return LabelFile(path, "SLEAP", KeypointRows.from_columns(cols), named=named, image_size=size, edges=edges)


def _read_sleap_analysis(path: Path, video_stem: str | None) -> LabelFile:
    load_poses = require("movement.io.load_poses", _PURPOSE.format(kind="SLEAP"))
    ds = load_poses.from_sleap_file(path)
    rows = dataset_rows(ds)
    rows.score = np.where(np.isfinite(rows.score), rows.score, 1.0)
    named = not all(_PLACEHOLDER.match(str(name)) for name in ds["individuals"].values)
    return LabelFile(path, "SLEAP", rows if named else _numbered(rows), named=named)


def _numbered(rows: KeypointRows) -> KeypointRows:
    """Rows whose animals carry movement's placeholder names (``id_0``, ``individual_0``) as ``animal1``…"""
    rows.instance = np.array([f"animal{int(str(v).rsplit('_', 1)[1]) + 1}" for v in rows.instance], object)
    return rows


# ------------------------------------------------------------------------------------------ COCO
def _read_coco(path: Path, video_stem: str | None) -> LabelFile:
    coco = require("sleap_io.io.coco", _PURPOSE.format(kind="COCO"))
    data = coco.parse_coco_json(path)
    skeletons = {c["id"]: coco.create_skeleton_from_category(c) for c in data["categories"] if c.get("keypoints")}
    if not skeletons:
        raise InputError(f"{path}: no category has keypoints; this is not a COCO keypoint file")
    images = {image["id"]: image for image in data["images"]}
    cols: dict[str, list[Any]] = {k: [] for k in ("frame", "instance", "keypoint", "x", "y", "visible", "score")}
    sizes: set[tuple[int, int]] = set()
    per_image: dict[Any, int] = {}  # annotations seen so far per image id
    named = True
    for ann in data["annotations"]:
        skeleton = skeletons.get(ann.get("category_id"))
        if skeleton is None or not ann.get("keypoints"):
            continue
        try:
            points = coco.decode_keypoints(ann["keypoints"], len(skeleton.nodes), skeleton)
        except ValueError as exc:
            raise InputError(
                f"{path}: wrong shape in annotation {ann.get('id')}: {exc} "
                f"({len(skeleton.nodes)} keypoints of {skeleton.name!r}, each x, y, v)"
            ) from None
        image = images.get(ann["image_id"])
        if image is None:
            raise InputError(
                f"{path}: annotation {ann.get('id')} refers to image {ann['image_id']}, which is not in 'images'"
            )
        if image.get("height") and image.get("width"):
            sizes.add((int(image["height"]), int(image["width"])))
        frame = int(image["frame_id"]) if _is_int(image.get("frame_id")) else _frame_number(image["file_name"], path)
        per_image[image["id"]] = per_image.get(image["id"], 0) + 1
        track = ann.get("track_id", ann.get("instance_id", ann.get("attributes", {}).get("object_id")))
        named = named and track is not None
        name = f"animal{track if track is not None else per_image[image['id']]}"
        for node, (x, y, shown) in zip(skeleton.node_names, points, strict=True):
            if shown and np.isfinite(x) and np.isfinite(y):
                for key, value in (
                    ("frame", frame),
                    ("instance", name),
                    ("keypoint", node),
                    ("x", x),
                    ("y", y),
                    ("visible", True),
                    ("score", 1.0),
                ):
                    cols[key].append(value)
    if len(sizes) > 1:
        raise InputError(
            f"{path}: its images have several sizes ({', '.join(f'{w}x{h}' for h, w in sorted(sizes))}); "
            "labels for one video have one size"
        )
    edges = [tuple(e) for skeleton in skeletons.values() for e in skeleton.edge_names]
    return LabelFile(
        path,
        "COCO",
        KeypointRows.from_columns(cols),
        named=named,
        image_size=next(iter(sizes)) if sizes else None,
        edges=edges,
    )
