"""Pure converters between the engine's annotations and napari layer data (no Qt, no viewer).

* :func:`annotations_to_points` / :func:`points_to_annotation`: ``{frame: FrameAnnotation}``
  <-> Points ``data`` ``(N, 3)`` rows ``(t, y, x)`` plus a features table with the columns
  ``instance``, ``keypoint``, ``visible``, ``score`` and ``source``.
* :func:`annotations_to_tracks`: the same keypoints as Tracks ``data`` ``(track_id, t, y, x)``,
  one track per (instance, keypoint).
* :func:`masks_to_labels`: an ``(I, H, W)`` bool mask stack -> one label image.
* :class:`KeypointsStyle` / :class:`TracksStyle`: the layer keyword arguments, kept apart
  from the widget logic.
* :class:`LiveLabels`: a read-only ``(T, H, W)`` array-like that serves freshly tracked masks from
  memory and everything else from a lazy on-disk array, so a Labels layer can follow a run.

Video pixels are ``x`` (column) / ``y`` (row) in the annotations; napari rows are ``(t, y, x)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..io.annotations import FrameAnnotation, Instance, Keypoint

__all__ = [
    "FEATURE_COLUMNS",
    "KeypointsStyle",
    "LiveLabels",
    "TracksStyle",
    "annotations_to_points",
    "annotations_to_tracks",
    "empty_features",
    "frame_rows",
    "keypoint_order",
    "keypoints_layer_data",
    "masks_to_labels",
    "parse_names",
    "point_size_for",
    "points_to_annotation",
    "points_to_tracks",
]

#: Columns of the keypoints layer's features table, in order.
FEATURE_COLUMNS: tuple[str, ...] = ("instance", "keypoint", "visible", "score", "source")

#: Colour-blind-friendly palette (Okabe-Ito, then Tableau) cycled over keypoint names.
PALETTE: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#4363d8", "#ffe119", "#f58231", "#911eb4", "#46f0f0",
    "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#aaffc3",
)


def parse_names(text: str) -> list[str]:
    """Split a user's ``"nose, leftear; rightear tail_base"`` list into unique names, in order."""
    out: list[str] = []
    for token in text.replace(";", ",").replace("\n", ",").split(","):
        for name in token.split():
            if name and name not in out:
                out.append(name)
    return out


def empty_features() -> pd.DataFrame:
    """A features table with the keypoint columns and no rows."""
    return pd.DataFrame({
        "instance": pd.Series([], dtype=object),
        "keypoint": pd.Series([], dtype=object),
        "visible": pd.Series([], dtype=bool),
        "score": pd.Series([], dtype=float),
        "source": pd.Series([], dtype=object),
    })


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
    data = np.concatenate(blocks)
    features = pd.DataFrame({
        "instance": pd.Series(cols["instance"], dtype=object),
        "keypoint": pd.Series(cols["keypoint"], dtype=object),
        "visible": pd.Series(cols["visible"], dtype=bool),
        "score": pd.Series(cols["score"], dtype=float),
        "source": pd.Series(cols["source"], dtype=object),
    })
    return data, features


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
    rows = np.flatnonzero(np.round(data[:, 0]).astype(int) == int(frame)) if n else np.zeros(0, int)

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
            instances.append(Instance(name, kps, polygon=old.polygon, mask=old.mask,
                                      group_id=old.group_id, extra=dict(old.extra)))
        else:
            instances.append(Instance(name, kps))
    # instances that only have an outline keep it (the user removed their points only)
    for name, old in old_instances.items():
        if name not in by_instance and (old.polygon is not None or old.mask is not None):
            instances.append(Instance(name, [], polygon=old.polygon, mask=old.mask,
                                      group_id=old.group_id, extra=dict(old.extra)))
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
    ids: dict[tuple[str, str], int] = {}
    rows: list[tuple[int, float, float, float]] = []
    for frame in sorted(annotations):
        ann = annotations[frame]
        for inst in ann.instances:
            for kp in inst.keypoints:
                key = (inst.name, kp.name)
                tid = ids.setdefault(key, len(ids))
                if visible_only and not kp.visible:
                    continue
                rows.append((tid, float(frame), float(kp.y), float(kp.x)))
    data = np.asarray(rows, dtype=float).reshape(-1, 4)
    if len(data):
        data = data[np.lexsort((data[:, 1], data[:, 0]))]
    names = {tid: key for key, tid in ids.items()}
    tids = data[:, 0].astype(int)
    features = {
        "instance": np.asarray([names[t][0] for t in tids], dtype=object),
        "keypoint": np.asarray([names[t][1] for t in tids], dtype=object),
    }
    return data, features


def points_to_tracks(data: np.ndarray, features: pd.DataFrame | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A keypoints Points layer's rows as Tracks ``data`` ``(track_id, t, y, x)`` plus features.

    Like :func:`annotations_to_tracks` but straight from layer data: one track per (instance,
    keypoint), hidden keypoints left out, rows sorted by track then time.
    """
    data = np.asarray(data, dtype=float).reshape(-1, 3)
    n = len(data)
    if n == 0 or features is None or len(features) != n:
        return np.zeros((0, 4)), {"instance": np.zeros(0, object), "keypoint": np.zeros(0, object)}
    inst = features["instance"].astype(str).to_numpy() if "instance" in features else np.full(n, "animal")
    kps = features["keypoint"].astype(str).to_numpy()
    vis = features["visible"].to_numpy(dtype=bool) if "visible" in features else np.ones(n, bool)
    keys = pd.MultiIndex.from_arrays([inst, kps])
    codes, uniques = pd.factorize(keys)
    keep = vis
    tracks = np.column_stack([codes[keep].astype(float), data[keep]])
    if len(tracks):
        tracks = tracks[np.lexsort((tracks[:, 1], tracks[:, 0]))]
    tids = tracks[:, 0].astype(int)
    feats = {
        "instance": np.asarray([uniques[t][0] for t in tids], dtype=object),
        "keypoint": np.asarray([uniques[t][1] for t in tids], dtype=object),
    }
    return tracks, feats


def point_size_for(height: int, width: int) -> float:
    """A marker size (video pixels) that reads well: ~1/40 of the short side, 3 to 14 px."""
    short = min(int(height), int(width))
    return float(np.clip(short / 40.0, 3.0, 14.0)) if short > 0 else 9.0


def keypoints_layer_data(
    annotations: Mapping[int, FrameAnnotation],
    name: str = "keypoints",
    metadata: dict[str, Any] | None = None,
    style: KeypointsStyle | None = None,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A napari LayerDataTuple ``(data, kwargs, "points")`` for the keypoints of ``annotations``."""
    data, features = annotations_to_points(annotations)
    if style is None:
        style = KeypointsStyle(keypoint_names=keypoint_order(annotations))
        if annotations:
            first = next(iter(annotations.values()))
            style.size = point_size_for(first.image_height, first.image_width)
    style.name = name
    kwargs = style.as_kwargs(features)
    kwargs["features"] = features
    kwargs["metadata"] = dict(metadata or {})
    kwargs["ndim"] = 3
    kwargs["axis_labels"] = ("t", "y", "x")
    return data, kwargs, "points"


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


# --------------------------------------------------------------------------------- styles


def _colour_for(index: int, palette: Sequence[str]) -> str:
    return palette[index % len(palette)]


@dataclass
class KeypointsStyle:
    """Look of the keypoints Points layer.

    Face and border are coloured by keypoint name: a fixed colour per name in the order of
    ``keypoint_names``, further names get the next palette colours in order of appearance.
    Hidden (occluded) keypoints keep their coloured border but get a transparent face, so they
    show as hollow rings. Colours are per-point arrays computed with numpy (see
    :meth:`colors`), which keeps updating a layer of 10^5 points cheap.
    """

    name: str = "keypoints"
    size: float = 9.0
    border_width: float = 0.2
    palette: tuple[str, ...] = PALETTE
    text_size: int = 9
    text_color: str = "white"
    opacity: float = 0.95
    hidden_face_alpha: float = 0.0
    keypoint_names: list[str] = field(default_factory=list)

    def colour_map(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Keypoint name -> hex colour (known names first, then ``names`` in order)."""
        all_names = list(self.keypoint_names)
        for n in names or ():
            if n not in all_names:
                all_names.append(n)
        return {n: _colour_for(i, self.palette) for i, n in enumerate(all_names)}

    def rgba(self, name: str, names: Iterable[str] | None = None) -> np.ndarray:
        """The RGBA colour (floats 0..1) of keypoint ``name``."""
        return _hex_to_rgba(self.colour_map([*(names or ()), name])[name])

    def colors(self, features: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-point ``(face, border)`` RGBA arrays ``(N, 4)`` for a features table."""
        if features is None or len(features) == 0:
            return np.zeros((0, 4)), np.zeros((0, 4))
        names = features["keypoint"].astype(str).to_numpy()
        codes, uniques = pd.factorize(names)
        cmap = self.colour_map(list(uniques))
        table = np.array([_hex_to_rgba(cmap[u]) for u in uniques]).reshape(-1, 4)
        border = table[codes]
        face = border.copy()
        if "visible" in features:
            hidden = ~features["visible"].to_numpy(dtype=bool)
            face[hidden, 3] = self.hidden_face_alpha
        return face, border

    def text(self) -> dict[str, Any]:
        """The ``text=`` argument: the keypoint name next to each point."""
        return {
            "string": "keypoint",
            "size": self.text_size,
            "color": self.text_color,
            "anchor": "upper_left",
            "translation": [0, -3, 3],
        }

    def as_kwargs(self, features: pd.DataFrame | None = None) -> dict[str, Any]:
        """Keyword arguments for ``viewer.add_points`` / ``napari.layers.Points``."""
        kwargs: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "border_width": self.border_width,
            "border_width_is_relative": True,
            "text": self.text(),
            "opacity": self.opacity,
            "feature_defaults": {
                "instance": "animal", "keypoint": (self.keypoint_names or ["point"])[0],
                "visible": True, "score": 1.0, "source": "manual",
            },
        }
        if features is not None and len(features):
            face, border = self.colors(features)
            kwargs["face_color"] = face
            kwargs["border_color"] = border
        else:
            first = self.rgba((self.keypoint_names or ["point"])[0])
            kwargs["face_color"] = first
            kwargs["border_color"] = first
        return kwargs


def _hex_to_rgba(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4)] + [1.0])


@dataclass
class TracksStyle:
    """Look of the trajectories Tracks layer."""

    name: str = "trajectories"
    tail_length: int = 15
    head_length: int = 0
    tail_width: float = 2.0
    colormap: str = "turbo"
    color_by: str = "track_id"
    opacity: float = 0.8
    blending: str = "translucent"

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``viewer.add_tracks`` / ``napari.layers.Tracks``."""
        return {
            "name": self.name,
            "tail_length": self.tail_length,
            "head_length": self.head_length,
            "tail_width": self.tail_width,
            "colormap": self.colormap,
            "color_by": self.color_by,
            "opacity": self.opacity,
            "blending": self.blending,
        }


# ----------------------------------------------------------------------------- live labels


class LiveLabels:
    """A ``(T, H, W)`` label volume: recent frames from memory, the rest from ``base``.

    napari slices it like an array (``shape``, ``dtype``, ``ndim``, ``__getitem__``). While a
    run is going, :meth:`update` stores each new frame's label image (a bounded LRU of
    ``max_frames``); frames not in memory come from ``base`` (e.g. the lazy on-disk mask
    store), or zeros. Painting works too (``__setitem__``, as napari's Labels layer does it):
    painted frames stay in memory until :meth:`clear_edited` and are listed by
    :meth:`edited_frames`, so they can be saved. Thread-safe.
    """

    def __init__(self, n_frames: int, height: int, width: int, base: Any = None,
                 dtype: Any = np.uint16, max_frames: int = 64) -> None:
        self.shape = (int(n_frames), int(height), int(width))
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self.base = base
        self.max_frames = int(max_frames)
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._edited: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LiveLabels(shape={self.shape}, in_memory={len(self._frames)}, edited={sorted(self._edited)})"

    def update(self, frame: int, labels: np.ndarray) -> None:
        """Remember the label image of ``frame`` (a painted frame keeps the user's version)."""
        arr = np.asarray(labels, dtype=self.dtype)
        with self._lock:
            if int(frame) in self._edited:
                return
            self._frames[int(frame)] = arr
            self._frames.move_to_end(int(frame))
            while len(self._frames) > self.max_frames:
                self._frames.popitem(last=False)

    def frames_in_memory(self) -> list[int]:
        """Frames currently served from memory (painted ones included)."""
        with self._lock:
            return sorted(set(self._frames) | set(self._edited))

    def edited_frames(self) -> list[int]:
        """Frames the user painted on."""
        with self._lock:
            return sorted(self._edited)

    def clear_edited(self, frames: Iterable[int] | None = None) -> None:
        """Forget paint edits (after they were saved), all or of ``frames``."""
        with self._lock:
            for t in list(self._edited) if frames is None else frames:
                self._edited.pop(int(t), None)

    def _norm(self, t: int) -> int:
        t = int(t)
        return t + self.shape[0] if t < 0 else t

    def frame(self, t: int) -> np.ndarray:
        """The label image of frame ``t`` (``(H, W)``)."""
        t = self._norm(t)
        with self._lock:
            hit = self._edited.get(t)
            if hit is None:
                hit = self._frames.get(t)
        if hit is not None:
            return hit
        if self.base is not None:
            out = self.base[t]
            if hasattr(out, "compute"):
                out = out.compute()
            return np.asarray(out, dtype=self.dtype)
        return np.zeros(self.shape[1:], dtype=self.dtype)

    def _key(self, key: Any) -> tuple[Any, ...]:
        if not isinstance(key, tuple):
            key = (key,)
        return key + (slice(None),) * (3 - len(key))

    def __getitem__(self, key: Any) -> np.ndarray:
        key = self._key(key)
        tkey, rest = key[0], key[1:]
        if isinstance(tkey, int | np.integer):
            return self.frame(int(tkey))[rest]
        if isinstance(tkey, np.ndarray | list) and any(isinstance(k, np.ndarray | list) for k in rest):
            # fancy (point-wise) indexing, as napari's paint/undo does: t, y, x index arrays
            ts = np.asarray(tkey).astype(int)
            out = np.zeros(ts.shape, dtype=self.dtype)
            for t in np.unique(ts):
                sel = ts == t
                out[sel] = self.frame(int(t))[tuple(np.asarray(k)[sel] if isinstance(k, np.ndarray | list) else k
                                                    for k in rest)]
            return out
        ts = range(*tkey.indices(self.shape[0])) if isinstance(tkey, slice) else [int(t) for t in np.asarray(tkey)]
        stack = [self.frame(t)[rest] for t in ts]
        if not stack:
            return np.zeros((0, *np.zeros(self.shape[1:])[rest].shape), dtype=self.dtype)
        return np.stack(stack)

    def __setitem__(self, key: Any, value: Any) -> None:
        key = self._key(key)
        tkey, rest = key[0], key[1:]
        values = np.asarray(value, dtype=self.dtype)
        if isinstance(tkey, int | np.integer):
            self._paint(int(tkey), rest, values)
            return
        ts = np.asarray(range(*tkey.indices(self.shape[0])) if isinstance(tkey, slice) else tkey).astype(int)
        if any(isinstance(k, np.ndarray | list) for k in rest):  # point-wise
            for t in np.unique(ts):
                sel = ts == t
                idx = tuple(np.asarray(k)[sel] if isinstance(k, np.ndarray | list) else k for k in rest)
                self._paint(int(t), idx, values[sel] if values.shape == ts.shape else values)
        else:
            for i, t in enumerate(ts):
                self._paint(int(t), rest, values[i] if values.ndim == 3 else values)

    def _paint(self, t: int, index: tuple[Any, ...], values: np.ndarray) -> None:
        t = self._norm(t)
        current = np.array(self.frame(t), dtype=self.dtype, copy=True)
        current[index] = values
        with self._lock:
            self._edited[t] = current

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
