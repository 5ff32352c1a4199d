"""Labels made in DeepLabCut, SLEAP or COCO tools, written as manual LabelMe frames: seeds to track from.

:func:`import_seeds` reads the file (:mod:`.label_files`), checks it against the video and the
result folder, and only then writes anything:

* every labelled frame exists in the video, and the labels fit its frame size (the file's own
  image size when it states one, else every point lies inside the frame);
* keypoint names match the ones already labelled in the result folder (``rename`` maps a file's
  names onto them; ``new_keypoints=True`` accepts names the folder does not have yet);
* a frame that already has manual labels is never overwritten unless ``overwrite=True``;
* a file that does not name its animals labels the folder's animal when the folder has one.

A skeleton stored in the file (SLEAP, COCO) is kept in the result folder if it has none yet (edges to
body parts the file never labels are left out).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.annotations import FrameAnnotation
from ..io.labelme import read_frame, write_manual
from ..io.paths import ResultLayout
from ..io.video import VideoInfo
from .dataset import KeypointRows, rows_annotations
from .label_files import LabelFile, read_label_file
from .skeleton import skeleton_file, write_skeleton

__all__ = ["DEFAULT_ANIMAL", "ImportReport", "import_seeds"]

#: name of the animal of a file that names none, when the result folder has no animal yet
DEFAULT_ANIMAL = "animal1"
#: how far (video pixels) a label may lie outside the frame before the video is taken to be another size
_EDGE_SLACK = 1.0


@dataclass
class ImportReport:
    """What :func:`import_seeds` wrote."""

    labels: LabelFile
    layout: ResultLayout
    frames: list[int]
    files: list[Path]
    skeleton: Path | None = None

    @property
    def keypoints(self) -> list[str]:
        return list(dict.fromkeys(self.labels.rows.keypoint.tolist()))

    @property
    def animals(self) -> list[str]:
        return list(dict.fromkeys(self.labels.rows.instance.tolist()))


def import_seeds(
    labels_path: str | os.PathLike[str],
    video: str | os.PathLike[str],
    *,
    result_folder: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    frames: Iterable[int] | None = None,
    rename: Mapping[str, str] | None = None,
    new_keypoints: bool = False,
) -> ImportReport:
    """Write the labels of ``labels_path`` as manual frames of ``video``'s result folder.

    ``frames`` restricts the import to some labelled frames. Nothing is written when a check
    fails (an :class:`InputError` naming the file and the fix).
    """
    from ..io.video import probe_video

    info = probe_video(video)
    layout = ResultLayout(info.path, result_folder)
    labels = read_label_file(labels_path, video_stem=layout.video_stem)
    labels.rows = _renamed(labels.rows, rename or {})
    if frames is not None:
        wanted = sorted({int(f) for f in frames})
        missing = sorted(set(wanted) - set(labels.rows.frame.tolist()))
        if missing:
            raise InputError(f"{labels.path}: has no labels on frame(s) {_listed(missing)}")
        labels.rows = _subset(labels.rows, np.isin(labels.rows.frame, wanted))
    _check_against_video(labels, info)
    existing = _manual_annotations(layout)
    _check_names(labels, existing, new_keypoints)
    _adopt_animal_name(labels, existing)
    clash = sorted(set(labels.rows.frame.tolist()) & set(existing))
    if clash and not overwrite:
        raise InputError(
            f"{labels.path}: frame(s) {_listed(clash)} of {info.path.name} already have manual labels "
            f"in {layout.folder}; nothing was imported. Use --overwrite (in the dock: 'Replace manual "
            "frames') to replace them, or --frames to import other frames only."
        )
    anns = rows_annotations(labels.rows, info.height, info.width)
    # the file's skeleton, on the names used here; edges to body parts never labelled are left out
    named = set(labels.rows.keypoint.tolist())
    edges = [(rename.get(a, a), rename.get(b, b)) for a, b in labels.edges] if rename else list(labels.edges)
    edges = [edge for edge in edges if set(edge) <= named]
    files = [write_manual(layout, ann) for ann in anns]
    report = ImportReport(labels, layout, [a.frame for a in anns], files)
    if edges and not skeleton_file(layout).exists():
        report.skeleton = write_skeleton(layout, edges)
    return report


def _subset(rows: KeypointRows, keep: np.ndarray) -> KeypointRows:
    return KeypointRows(
        *(getattr(rows, name)[keep] for name in ("frame", "instance", "keypoint", "x", "y", "visible", "score"))
    )


def _renamed(rows: KeypointRows, rename: Mapping[str, str]) -> KeypointRows:
    if rename:
        rows.keypoint = np.array([rename.get(name, name) for name in rows.keypoint], dtype=object)
    return rows


def _listed(values: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")


def _check_against_video(labels: LabelFile, info: VideoInfo) -> None:
    rows, name = labels.rows, info.path.name
    late = sorted({int(f) for f in rows.frame if f >= info.n_frames or f < 0})
    if late:
        raise InputError(
            f"{labels.path}: labels frame(s) {_listed(late)}, but {name} has {info.n_frames} frames "
            f"(0 to {info.n_frames - 1}). Are these the labels of another video?"
        )
    if labels.image_size is not None and labels.image_size != (info.height, info.width):
        h, w = labels.image_size
        raise InputError(
            f"{labels.path}: the labels were made on {w}x{h} frames, but {name} is "
            f"{info.width}x{info.height}. Import labels made on this video (or a copy of its size)."
        )
    outside = (
        (rows.x < -_EDGE_SLACK)
        | (rows.y < -_EDGE_SLACK)
        | (rows.x > info.width + _EDGE_SLACK)
        | (rows.y > info.height + _EDGE_SLACK)
    )
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InputError(
            f"{labels.path}: {rows.keypoint[i]} of {rows.instance[i]} on frame {rows.frame[i]} lies at "
            f"({rows.x[i]:.1f}, {rows.y[i]:.1f}), outside the {info.width}x{info.height} frames of "
            f"{name} ({int(outside.sum())} points in all): the labels were made on a video of another "
            "size. Import labels made on this video."
        )


def _manual_annotations(layout: ResultLayout) -> dict[int, FrameAnnotation]:
    from ..io.labelme import manual_frames

    return {frame: read_frame(layout.frame_json(frame), frame) for frame in manual_frames(layout)}


def _check_names(labels: LabelFile, existing: Mapping[int, FrameAnnotation], new_keypoints: bool) -> None:
    known = list(dict.fromkeys(kp.name for ann in existing.values() for inst in ann.instances for kp in inst.keypoints))
    if not known or new_keypoints:
        return
    unknown = [name for name in dict.fromkeys(labels.rows.keypoint.tolist()) if name not in known]
    if unknown:
        raise InputError(
            f"{labels.path}: unknown keypoints {', '.join(unknown)}: the labelled frames of this video "
            f"name {', '.join(known)}. Map the names with --rename OLD=NEW, or add --new-keypoints to "
            "label new body parts."
        )


def _adopt_animal_name(labels: LabelFile, existing: Mapping[int, FrameAnnotation]) -> None:
    """A file that names no animals and holds one labels the result folder's animal (if it has exactly one)."""
    if labels.named or len(set(labels.rows.instance.tolist())) != 1:
        return
    names = list(dict.fromkeys(inst.name for ann in existing.values() for inst in ann.instances))
    name = names[0] if len(names) == 1 else DEFAULT_ANIMAL
    labels.rows.instance = np.full(len(labels.rows), name, dtype=object)
