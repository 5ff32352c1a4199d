"""Pure converters between the engine's annotations and napari layer data (no Qt, no viewer).

* :func:`annotations_to_points` / :func:`points_to_annotation`: ``{frame: FrameAnnotation}``
  <-> Points ``data`` ``(N, 3)`` rows ``(t, y, x)`` plus a features table with the columns
  ``instance``, ``keypoint``, ``visible``, ``score`` and ``source``.
* :func:`replace_frames`: the same rows with some frames swapped for fresh annotations.
* :func:`annotations_to_tracks` / :func:`points_to_tracks`: the keypoints as Tracks ``data``
  ``(track_id, t, y, x)``, one track per (instance, keypoint).
* :func:`masks_to_labels` / :func:`labels_to_masks`: an ``(I, H, W)`` bool mask stack <-> one
  label image.

Video pixels are ``x`` (column) / ``y`` (row) in the annotations; napari rows are ``(t, y, x)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..io.annotations import FrameAnnotation, Instance, Keypoint
from ..proofreading.suspicious import KeypointTable, disagreement_px

__all__ = [
    "FEATURE_COLUMNS",
    "RowsUpdate",
    "annotations_to_points",
    "annotations_to_tracks",
    "empty_features",
    "feature_defaults",
    "features_table",
    "frame_rows",
    "frames_of",
    "keypoint_order",
    "labels_to_masks",
    "masks_to_labels",
    "parse_names",
    "plan_rows_update",
    "points_to_annotation",
    "points_to_table",
    "points_to_tracks",
    "replace_frames",
    "row_frames",
    "usable_names",
]

#: Columns of the keypoints layer's features table, in order.
FEATURE_COLUMNS: tuple[str, ...] = ("instance", "keypoint", "visible", "score", "source", "disagreement")
_DTYPES: dict[str, Any] = {
    "instance": object,
    "keypoint": object,
    "visible": bool,
    "score": float,
    "source": object,
    "disagreement": float,
}


def parse_names(text: str) -> list[str]:
    """Split a user's ``"nose, leftear; rightear tail_base"`` list into unique names, in order."""
    out: list[str] = []
    for token in text.replace(";", ",").replace("\n", ",").split(","):
        for name in token.split():
            if name and name not in out:
                out.append(name)
    return out


def usable_names(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The ``names`` that can be keypoint or instance names, and why each of the others cannot."""
    from ..io.names import name_problem

    usable, problems = [], []
    for name in names:
        problem = name_problem(name)
        if problem is None:
            usable.append(name)
        else:
            problems.append(problem)
    return usable, problems


def features_table(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A keypoints features table from per-column values (every column of FEATURE_COLUMNS)."""
    return pd.DataFrame({c: pd.Series(list(columns[c]), dtype=_DTYPES[c]) for c in FEATURE_COLUMNS})


def empty_features() -> pd.DataFrame:
    """A features table with the keypoint columns and no rows."""
    return features_table({c: [] for c in FEATURE_COLUMNS})


def feature_defaults(instance: str, keypoint: str) -> dict[str, Any]:
    """Features of a point the user adds by hand (napari's ``feature_defaults``)."""
    return {
        "instance": instance,
        "keypoint": keypoint,
        "visible": True,
        "score": 1.0,
        "source": "manual",
        "disagreement": 0.0,
    }


def row_frames(data: np.ndarray) -> np.ndarray:
    """The frame of each Points row ``(t, y, x)`` as ints (napari may store ``t`` as 2.0000001)."""
    data = np.asarray(data)
    if data.size == 0:
        return np.zeros(0, int)
    return np.round(data.reshape(-1, data.shape[-1])[:, 0]).astype(int)


def frames_of(data: np.ndarray) -> set[int]:
    """The set of frames that Points rows ``(t, y, x)`` lie on."""
    return {int(t) for t in np.unique(row_frames(data))}


def frame_rows(ann: FrameAnnotation) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """One frame's keypoints as Points rows ``(t, y, x)`` and per-column feature lists."""
    coords: list[tuple[float, float, float]] = []
    cols: dict[str, list[Any]] = {c: [] for c in FEATURE_COLUMNS}
    for inst in ann.instances:
        for kp in inst.keypoints:
            coords.append((float(ann.frame), float(kp.y), float(kp.x)))
            cols["instance"].append(inst.name)
            cols["keypoint"].append(kp.name)
            cols["visible"].append(bool(kp.visible))
            cols["score"].append(float(kp.score))
            cols["source"].append(ann.source)
            cols["disagreement"].append(disagreement_px(kp))
    data = np.asarray(coords, dtype=float).reshape(-1, 3)
    return data, cols


def annotations_to_points(
    annotations: Mapping[int, FrameAnnotation],
) -> tuple[np.ndarray, pd.DataFrame]:
    """All frames' keypoints as Points ``data`` ``(N, 3)`` and a features DataFrame.

    Rows are ordered by frame, then instance and keypoint in file order, so every frame's
    rows are contiguous.
    """
    blocks: list[np.ndarray] = []
    cols: dict[str, list[Any]] = {c: [] for c in FEATURE_COLUMNS}
    for frame in sorted(annotations):
        data, frame_cols = frame_rows(annotations[frame])
        blocks.append(data)
        for c in FEATURE_COLUMNS:
            cols[c].extend(frame_cols[c])
    if not blocks:
        return np.zeros((0, 3)), empty_features()
    return np.concatenate(blocks), features_table(cols)


def replace_frames(
    data: np.ndarray, features: pd.DataFrame, annotations: Iterable[FrameAnnotation]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Points rows and features where the frames of ``annotations`` are replaced by their keypoints.

    Rows of other frames are kept, in order, before the new ones. A features table that does not
    match ``data`` (a layer made by hand) is replaced by empty values for the kept rows.
    """
    anns = list(annotations)
    new_data, new_feats = annotations_to_points({a.frame: a for a in anns})
    data = np.asarray(data).reshape(-1, 3)
    keep = ~np.isin(row_frames(data), [a.frame for a in anns])
    if len(features) != len(data) or any(c not in features.columns for c in FEATURE_COLUMNS):
        features = empty_features().reindex(range(len(data)))
    kept = features.loc[keep, list(FEATURE_COLUMNS)].reset_index(drop=True)
    return np.concatenate([data[keep], new_data]), pd.concat([kept, new_feats], ignore_index=True)


@dataclass
class RowsUpdate:
    """How to bring a Points layer's rows up to date with some frames' annotations.

    Rows ``changed`` (indices of existing rows) get ``changed_data``/``changed_features`` in place;
    ``added_data``/``added_features`` are appended. When ``full`` is set, a frame's keypoints
    changed (names, order or count) and the layer must take ``full_data``/``full_features`` instead.
    """

    changed: np.ndarray
    changed_data: np.ndarray
    changed_features: pd.DataFrame
    added_data: np.ndarray
    added_features: pd.DataFrame
    full: bool = False
    full_data: np.ndarray | None = None
    full_features: pd.DataFrame | None = None

    @property
    def is_empty(self) -> bool:
        return not self.full and not len(self.changed) and not len(self.added_data)


def plan_rows_update(data: np.ndarray, features: pd.DataFrame, annotations: Iterable[FrameAnnotation]) -> RowsUpdate:
    """The cheapest :class:`RowsUpdate` that makes the rows of these frames show ``annotations``.

    A frame without rows is appended; a frame whose rows list the same (instance, keypoint) pairs
    in the same order is changed in place; anything else (or a features table that does not match
    the rows) needs a full replacement, computed with :func:`replace_frames`. Costs O(rows) numpy
    work plus O(keypoints of these frames) Python work, whatever the layer's length.
    """
    anns = {a.frame: a for a in annotations}
    data = np.asarray(data).reshape(-1, 3)
    if len(features) != len(data) or any(c not in features.columns for c in FEATURE_COLUMNS):
        return _full_update(data, features, anns.values())
    frames = row_frames(data)
    hit = np.flatnonzero(np.isin(frames, list(anns)))
    hit = hit[np.argsort(frames[hit], kind="stable")]
    keys = sorted(anns)
    starts = np.searchsorted(frames[hit], keys, side="left")
    ends = np.searchsorted(frames[hit], keys, side="right")
    inst_col, kp_col = features["instance"].to_numpy(), features["keypoint"].to_numpy()
    changed: list[np.ndarray] = []
    changed_anns: dict[int, FrameAnnotation] = {}
    added_anns: dict[int, FrameAnnotation] = {}
    for frame, lo, hi in zip(keys, starts, ends, strict=True):
        ann, rows = anns[frame], hit[lo:hi]
        pairs = [(inst.name, kp.name) for inst in ann.instances for kp in inst.keypoints]
        if not len(rows):
            added_anns[frame] = ann
        elif len(rows) == len(pairs) and list(zip(inst_col[rows], kp_col[rows], strict=True)) == pairs:
            changed.append(rows)
            changed_anns[frame] = ann
        else:
            return _full_update(data, features, anns.values())
    changed_data, changed_feats = annotations_to_points(changed_anns)
    added_data, added_feats = annotations_to_points(added_anns)
    return RowsUpdate(
        np.concatenate(changed) if changed else np.zeros(0, int), changed_data, changed_feats, added_data, added_feats
    )


def _full_update(data: np.ndarray, features: pd.DataFrame, anns: Iterable[FrameAnnotation]) -> RowsUpdate:
    full_data, full_feats = replace_frames(data, features, anns)
    return RowsUpdate(
        np.zeros(0, int),
        np.zeros((0, 3)),
        empty_features(),
        np.zeros((0, 3)),
        empty_features(),
        True,
        full_data,
        full_feats,
    )


def keypoint_order(annotations: Mapping[int, FrameAnnotation] | Iterable[FrameAnnotation]) -> list[str]:
    """Keypoint names in order of first appearance (manual frames first)."""
    anns = list(annotations.values()) if isinstance(annotations, Mapping) else list(annotations)
    anns.sort(key=lambda a: (not a.is_manual, a.frame))
    names: list[str] = []
    for ann in anns:
        for inst in ann.instances:
            for kp in inst.keypoints:
                if kp.name not in names:
                    names.append(kp.name)
    return names


def _column(features: Any, name: str, n: int, default: Any) -> list[Any]:
    if features is None:
        return [default] * n
    if isinstance(features, pd.DataFrame):
        if name not in features.columns:
            return [default] * n
        return list(features[name].to_numpy())
    values = features.get(name)
    return [default] * n if values is None else list(np.asarray(values))


def points_to_annotation(
    data: np.ndarray,
    features: pd.DataFrame | Mapping[str, Sequence[Any]] | None,
    frame: int,
    image_height: int,
    image_width: int,
    template: FrameAnnotation | None = None,
    default_instance: str = "animal",
) -> FrameAnnotation:
    """The rows of one frame of a Points layer as a *manual* :class:`FrameAnnotation`.

    Args:
        data: Points ``data``, ``(N, 3)`` rows ``(t, y, x)`` (all frames; rows of ``frame`` are
            picked by rounding ``t``).
        features: the layer's features (``instance``, ``keypoint``, ``visible`` are used).
        frame: which frame to convert.
        image_height, image_width: video frame size.
        template: the frame's previous annotation; its instance outlines, masks, group ids and
            unknown keys (and per-keypoint extras) are carried over.
        default_instance: instance name for rows whose instance is empty.
    """
    data = np.asarray(data, dtype=float)
    if data.size == 0:
        data = data.reshape(0, 3)
    n = len(data)
    instances_col = _column(features, "instance", n, default_instance)
    names_col = _column(features, "keypoint", n, "")
    visible_col = _column(features, "visible", n, True)
    rows = np.flatnonzero(row_frames(data) == int(frame))

    by_instance: dict[str, list[Keypoint]] = {}
    for i in rows:
        inst_name = str(instances_col[i]) if _present(instances_col[i]) else default_instance
        kp_name = str(names_col[i]) if _present(names_col[i]) else ""
        kps = by_instance.setdefault(inst_name, [])
        if not kp_name:
            kp_name = f"point{len(kps) + 1}"
        taken = {k.name for k in kps}
        if kp_name in taken:  # a duplicate name would be unsavable; keep it, renamed
            base, j = kp_name, 2
            while f"{base}_{j}" in taken:
                j += 1
            kp_name = f"{base}_{j}"
        visible = bool(visible_col[i]) if _present(visible_col[i]) else True
        kps.append(Keypoint(kp_name, float(data[i, -1]), float(data[i, -2]), visible, 1.0))

    old_instances = {inst.name: inst for inst in template.instances} if template is not None else {}
    instances: list[Instance] = []
    # keep the template's instance order, then new instances in layer order
    order = [name for name in old_instances if name in by_instance]
    order += [name for name in by_instance if name not in old_instances]
    for name in order:
        kps = by_instance[name]
        old = old_instances.get(name)
        if old is not None:
            for kp in kps:
                prev = old.keypoint(kp.name)
                if prev is not None:
                    kp.extra = dict(prev.extra)
            instances.append(
                Instance(name, kps, polygon=old.polygon, mask=old.mask, group_id=old.group_id, extra=dict(old.extra))
            )
        else:
            instances.append(Instance(name, kps))
    # instances that only have an outline keep it (the user removed their points only)
    for name, old in old_instances.items():
        if name not in by_instance and (old.polygon is not None or old.mask is not None):
            instances.append(
                Instance(name, [], polygon=old.polygon, mask=old.mask, group_id=old.group_id, extra=dict(old.extra))
            )
    return FrameAnnotation(
        frame=int(frame),
        image_height=int(image_height),
        image_width=int(image_width),
        instances=instances,
        source="manual",
        other_shapes=list(template.other_shapes) if template is not None else [],
        extra=dict(template.extra) if template is not None else {},
    )


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def annotations_to_tracks(
    annotations: Mapping[int, FrameAnnotation],
    visible_only: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Keypoints as Tracks ``data`` ``(N, 4)`` rows ``(track_id, t, y, x)`` plus features.

    One track per (instance, keypoint) pair, numbered in order of first appearance; rows are
    sorted by track then time. Hidden (occluded) keypoints are left out unless
    ``visible_only`` is False. Returns features ``{"instance": ..., "keypoint": ...}``.
    """
    data, features = annotations_to_points(annotations)
    return points_to_tracks(data, features, visible_only=visible_only)


def points_to_tracks(
    data: np.ndarray, features: pd.DataFrame | None, visible_only: bool = True
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A keypoints Points layer's rows as Tracks ``data`` ``(track_id, t, y, x)`` plus features.

    One track per (instance, keypoint), numbered in order of first appearance, hidden keypoints
    left out unless ``visible_only`` is False, rows sorted by track then time.
    """
    data = np.asarray(data, dtype=float).reshape(-1, 3)
    n = len(data)
    if n == 0 or features is None or len(features) != n:
        return np.zeros((0, 4)), {"instance": np.zeros(0, object), "keypoint": np.zeros(0, object)}
    inst = features["instance"].astype(str).to_numpy() if "instance" in features else np.full(n, "animal")
    kps = features["keypoint"].astype(str).to_numpy()
    keep = np.ones(n, bool)
    if visible_only and "visible" in features:
        keep = features["visible"].to_numpy(dtype=bool)
    # numbered before hidden rows are dropped: a track's id does not depend on its visibility
    codes, uniques = pd.factorize(pd.MultiIndex.from_arrays([inst, kps]))
    tracks = np.column_stack([codes[keep].astype(float), data[keep]])
    if len(tracks):
        tracks = tracks[np.lexsort((tracks[:, 1], tracks[:, 0]))]
    tids = tracks[:, 0].astype(int)
    feats = {
        "instance": np.asarray([u[0] for u in uniques], dtype=object)[tids],
        "keypoint": np.asarray([u[1] for u in uniques], dtype=object)[tids],
    }
    return tracks, feats


def points_to_table(data: np.ndarray, features: pd.DataFrame) -> KeypointTable:
    """A keypoints Points layer's rows as the engine's :class:`~..proofreading.suspicious.KeypointTable`."""
    data = np.asarray(data, dtype=float).reshape(-1, 3)
    n = len(data)

    def column(name: str, default: Any) -> np.ndarray:
        return features[name].to_numpy() if name in features.columns else np.full(n, default)

    return KeypointTable.from_columns(
        row_frames(data),
        column("instance", "animal"),
        column("keypoint", "point"),
        data[:, 2],
        data[:, 1],
        column("visible", True),
        column("score", 1.0),
        column("source", "manual") == "manual",
        column("disagreement", 0.0),
    )


def masks_to_labels(
    masks: np.ndarray | None,
    height: int,
    width: int,
    label_values: Sequence[int] | None = None,
    dtype: Any = np.uint16,
) -> np.ndarray:
    """``(I, H, W)`` bool masks -> one ``(H, W)`` label image (the first instance wins overlaps).

    Instance ``i`` gets ``label_values[i]`` (e.g. the mask store's stable value for that
    animal), or ``i + 1``.
    """
    out = np.zeros((int(height), int(width)), dtype=dtype)
    if masks is None:
        return out
    masks = np.asarray(masks, dtype=bool)
    for i in range(masks.shape[0] - 1, -1, -1):
        value = label_values[i] if label_values is not None and i < len(label_values) else i + 1
        out[masks[i]] = value
    return out


def labels_to_masks(labels: np.ndarray, names_by_value: Mapping[int, str]) -> tuple[np.ndarray, list[str]]:
    """One ``(H, W)`` label image -> ``(I, H, W)`` bool masks and instance names, one per label value.

    Values missing from ``names_by_value`` are named ``instance<value>``; 0 is background.
    """
    values = [int(v) for v in np.unique(labels) if v]
    names = [names_by_value.get(v, f"instance{v}") for v in values]
    if not values:
        return np.zeros((0, *labels.shape), bool), names
    return np.stack([labels == v for v in values]), names
