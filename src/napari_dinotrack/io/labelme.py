"""LabelMe JSON <-> :class:`FrameAnnotation`, Annolid-compatible.

Reading (:func:`read_frame`)
----------------------------
* ``point`` shapes are keypoints, ``polygon`` shapes are instance outlines; every other shape
  (rectangle, line, mask, shapes without ``shape_type``, ...) is kept verbatim in
  ``FrameAnnotation.other_shapes``.
* Polygon -> instance name: ``instance_label`` (top-level key of the shape, or inside its
  ``flags``), else the polygon's ``label``. If an instance gets a second polygon, the extra one
  is kept verbatim in ``other_shapes``.
* Point -> instance, first rule that applies:

  1. ``instance_label`` (top-level, or inside ``flags``);
  2. ``group_id``: the instance of the polygon(s) carrying that group_id if they all belong to
     one instance; if no polygon carries it, all points with that group_id form one instance
     named ``instance<group_id>`` (e.g. ``instance1``); (several polygon instances sharing the
     group_id is ambiguous: go on with rule 3);
  3. the single instance polygon that contains the point (edge included);
  4. otherwise the instance ``"animal"`` (all points without instance information together).

* Keypoint name = ``display_label`` if present, else ``label``, exactly as written (a label like
  ``mouse1:nose`` stays ``mouse1:nose``). Keypoint and instance names must fit on one line and
  must not start with ``=``, ``+``, ``-`` or ``@`` (:mod:`.names`); such a file raises
  :class:`AnnotationError` naming the shape. ``visible`` defaults to True; ``score`` defaults to 1.0
  and falls back to Annolid's ``quality``.
* ``Instance.group_id`` is the first group_id found among the instance's shapes (polygon first).
* Instances are ordered by their first shape in the file; keypoints in file order.
* Unknown keys are preserved for rewriting: point keys -> ``Keypoint.extra``, polygon keys ->
  ``Instance.extra``, top-level keys -> ``FrameAnnotation.extra``. Non-empty shape ``flags``
  (minus ``instance_label``) and a non-empty ``description`` are kept in ``extra`` too; the
  top-level ``version``/``flags``/``imagePath`` only when they differ from the defaults we write
  ("5.5.0", {}, ""). ``imageData`` is dropped (always written as null).

Manual vs prediction
--------------------
A file is a *prediction* only if it carries our top-level marker ``"dinotrack": {"source":
"prediction", "seed_frame", "seed_digest", "content_digest"}`` (plus, when tracked two ways,
``end_frame`` and ``end_digest``, and when known the ``model`` and ``short_side`` it was made
with), its ``shapes`` still hash to
``content_digest`` (i.e. nobody edited it since we wrote it), and no PNG with the same stem lies
next to it (Annolid's manual PNG+JSON pair). Everything else is *manual*: files from LabelMe or
Annolid, our predictions that a user edited, and files we cannot verify.

Writing (:func:`write_frame`)
-----------------------------
Per instance, in order: its polygon (if any), then one ``point`` shape per keypoint; then
``other_shapes`` unchanged. Coordinates are rounded to 3 decimals, scores to 4. ``group_id`` =
``Instance.group_id``, or the instance's index in the frame when that is None. Output is
deterministic (fixed key order, ``indent=2``, no timestamps) and written atomically.
``Instance.mask`` is *not* written here (masks are stored separately, see
``ResultLayout.masks_dir``). Non-finite coordinates, duplicate, empty or unsafe names raise
``ValueError``: keep the last known position for an invisible keypoint (Annolid convention).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import AnnotationError
from .annotations import FrameAnnotation, Instance, Keypoint, Source
from .atomic import atomic_write_bytes, atomic_write_text
from .names import name_problem
from .paths import ResultLayout

__all__ = [
    "DEFAULT_INSTANCE",
    "LABELME_VERSION",
    "MARKER_KEY",
    "PREDICTION_DESCRIPTION",
    "AnnotationError",
    "frame_source",
    "frame_to_json",
    "load_annotations",
    "manual_frames",
    "no_keypoints_reason",
    "read_frame",
    "shapes_digest",
    "write_frame",
    "write_manual",
    "write_prediction",
]

LABELME_VERSION = "5.5.0"
#: Top-level key of our prediction marker.
MARKER_KEY = "dinotrack"
#: ``description`` of the shapes we predict.
PREDICTION_DESCRIPTION = "napari-dinotrack"
#: Instance that collects points without any instance information.
DEFAULT_INSTANCE = "animal"

_TOP_KNOWN = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth", MARKER_KEY)
_POINT_KNOWN = (
    "label",
    "points",
    "group_id",
    "shape_type",
    "flags",
    "description",
    "instance_label",
    "display_label",
    "visible",
    "score",
)
_POLY_KNOWN = ("label", "points", "group_id", "shape_type", "flags", "description", "instance_label")
_FIX_HINT = AnnotationError.DEFAULT_HINT


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------
def shapes_digest(shapes: list[Any]) -> str:
    """Hash of a ``shapes`` list, insensitive to key order (used for the prediction marker)."""
    text = json.dumps(shapes, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnnotationError(
            path, f"cannot be read ({exc.strerror or exc})", "Check that the file exists and is readable."
        ) from exc
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"is not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); it may be truncated"
        ) from exc
    except RecursionError:
        raise AnnotationError(path, "is nested too deeply to be a LabelMe file") from None
    except ValueError as exc:  # e.g. a number with more digits than Python converts
        raise AnnotationError(path, f"is not usable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AnnotationError(path, f"top level must be a JSON object, got {_tname(data)}")
    return data


def _prediction_marker(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """The marker if ``data`` is an unedited prediction of ours (and no PNG is next to it)."""
    marker = data.get(MARKER_KEY)
    if not isinstance(marker, dict) or marker.get("source") != "prediction":
        return None
    shapes = data.get("shapes")
    if not isinstance(shapes, list) or marker.get("content_digest") != shapes_digest(shapes):
        return None
    if path.with_suffix(".png").exists():
        return None
    return marker


def frame_source(path: str | os.PathLike[str]) -> Source:
    """ "prediction" or "manual" for a LabelMe file, without building the full annotation.

    Raises :class:`AnnotationError` when the file is not readable JSON.
    """
    path = Path(path)
    if path.with_suffix(".png").exists():
        return "manual"
    return "prediction" if _prediction_marker(path, _load_json(path)) else "manual"


def read_frame(path: str | os.PathLike[str], frame: int | None = None) -> FrameAnnotation:
    """Parse one LabelMe JSON file (see the module docstring for the rules).

    ``frame`` defaults to the number at the end of the file name (``..._000000042.json``).
    Raises :class:`AnnotationError` for anything malformed.
    """
    path = Path(path)
    data = _load_json(path)
    if frame is None:
        frame = _frame_from_name(path)
    height = _image_size(path, data, "imageHeight")
    width = _image_size(path, data, "imageWidth")
    shapes = data.get("shapes", [])
    if not isinstance(shapes, list):
        raise AnnotationError(path, f"'shapes' must be a list, got {_tname(shapes)}")

    marker = _prediction_marker(path, data)
    builder = _FrameBuilder(path)
    builder.parse(shapes)

    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TOP_KNOWN and key not in ("version", "flags", "imagePath"):
            continue
        if (key == "version" and value == LABELME_VERSION) or (key == "flags" and value == {}):
            continue
        if key == "imagePath" and value in ("", None):
            continue
        extra[key] = value

    ann = FrameAnnotation(
        frame=int(frame),
        image_height=height,
        image_width=width,
        instances=builder.instances(),
        other_shapes=builder.other_shapes,
        extra=extra,
    )
    if marker is not None:
        ann.source = "prediction"
        seed_frame = marker.get("seed_frame")
        ann.seed_frame = seed_frame if isinstance(seed_frame, int) else None
        seed_digest = marker.get("seed_digest")
        ann.seed_digest = seed_digest if isinstance(seed_digest, str) else None
        end_frame = marker.get("end_frame")
        ann.end_frame = end_frame if isinstance(end_frame, int) and not isinstance(end_frame, bool) else None
        end_digest = marker.get("end_digest")
        ann.end_digest = end_digest if isinstance(end_digest, str) else None
        model = marker.get("model")
        ann.model = model if isinstance(model, str) else None
        short_side = marker.get("short_side")
        ann.short_side = short_side if isinstance(short_side, int) and not isinstance(short_side, bool) else None
    return ann


class _FrameBuilder:
    """Turns a ``shapes`` list into instances, applying the linking rules in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_name: dict[str, Instance] = {}
        self.first_shape: dict[str, int] = {}
        self.kp_shape: dict[tuple[str, str], int] = {}
        self.other_shapes: list[dict[str, Any]] = []

    def parse(self, shapes: list[Any]) -> None:
        points: list[tuple[int, dict[str, Any]]] = []
        poly_gids: dict[int, set[str]] = {}
        for index, shape in enumerate(shapes):
            if not isinstance(shape, dict):
                raise AnnotationError(self.path, f"shape #{index} must be a JSON object, got {_tname(shape)}")
            kind = shape.get("shape_type")
            if kind == "point":
                points.append((index, shape))
            elif kind == "polygon":
                name, gid = self._add_polygon(index, shape)
                if gid is not None:
                    poly_gids.setdefault(gid, set()).add(name)
            else:
                self.other_shapes.append(shape)
        for index, shape in points:
            self._add_point(index, shape, poly_gids)

    def instances(self) -> list[Instance]:
        order = sorted(self.by_name, key=lambda name: self.first_shape[name])
        return [self.by_name[name] for name in order]

    # -- helpers ---------------------------------------------------------------------------
    def _instance(self, name: str, index: int, gid: int | None) -> Instance:
        inst = self.by_name.get(name)
        if inst is None:
            inst = self.by_name[name] = Instance(name=name)
            self.first_shape[name] = index
        self.first_shape[name] = min(self.first_shape[name], index)
        if inst.group_id is None and gid is not None:
            inst.group_id = gid
        return inst

    def _add_polygon(self, index: int, shape: dict[str, Any]) -> tuple[str, int | None]:
        where = f"polygon shape #{index}"
        label = _label(self.path, shape, where)
        gid = _group_id(self.path, shape, where)
        name = _instance_label(self.path, shape, where) or label
        _check_name(self.path, name, f"{where}: instance name")
        pts = shape.get("points")
        if not isinstance(pts, list) or len(pts) < 3:
            raise AnnotationError(self.path, f"{where} ({name!r}) needs a list of at least 3 [x, y] points")
        polygon = np.array([_xy(self.path, p, f"{where} ({name!r})") for p in pts], float)
        inst = self._instance(name, index, gid)
        if inst.polygon is not None:  # a second outline of the same instance: keep verbatim
            self.other_shapes.append(shape)
            return name, gid
        inst.polygon = polygon
        inst.extra = _extra(shape, _POLY_KNOWN)
        return name, gid

    def _add_point(self, index: int, shape: dict[str, Any], poly_gids: dict[int, set[str]]) -> None:
        where = f"point shape #{index}"
        label = _label(self.path, shape, where)
        display = shape.get("display_label")
        kp_name = display if isinstance(display, str) and display else label
        _check_name(self.path, kp_name, f"{where}: keypoint name")
        where = f"point shape #{index} ({kp_name!r})"
        pts = shape.get("points")
        if not isinstance(pts, list) or len(pts) != 1:
            n = len(pts) if isinstance(pts, list) else "no"
            raise AnnotationError(self.path, f"{where} must have exactly one [x, y] point, has {n} coordinates")
        x, y = _xy(self.path, pts[0], where)
        gid = _group_id(self.path, shape, where)

        name = _instance_label(self.path, shape, where)
        if name is None and gid is not None:
            owners = poly_gids.get(gid, set())
            if len(owners) == 1:
                name = next(iter(owners))
            elif not owners:
                name = f"instance{gid}"
        if name is None:
            inside = [
                inst.name
                for inst in self.by_name.values()
                if inst.polygon is not None and _contains(inst.polygon, x, y)
            ]
            name = inside[0] if len(inside) == 1 else DEFAULT_INSTANCE
        _check_name(self.path, name, f"{where}: instance name")

        visible = shape.get("visible", True)
        if isinstance(visible, int) and visible in (0, 1):  # bool is an int too
            visible = bool(visible)
        elif visible is None:
            visible = True
        else:
            raise AnnotationError(self.path, f"{where}: 'visible' must be true or false, got {visible!r}")
        known: tuple[str, ...] = _POINT_KNOWN
        score_value = shape.get("score")
        if score_value is None and shape.get("quality") is not None:
            score_value = shape["quality"]
            known = (*_POINT_KNOWN, "quality")
        score = 1.0 if score_value is None else _number(self.path, score_value, f"{where}: 'score'")

        inst = self._instance(name, index, gid)
        previous = self.kp_shape.get((name, kp_name))
        if previous is not None:
            raise AnnotationError(
                self.path,
                f"instance {name!r} has two keypoints named {kp_name!r} (shapes #{previous} and #{index})",
                "Rename or delete one of them (e.g. in LabelMe), or give them different "
                "instance_label / group_id values.",
            )
        self.kp_shape[(name, kp_name)] = index
        inst.keypoints.append(
            Keypoint(name=kp_name, x=x, y=y, visible=visible, score=score, extra=_extra(shape, known))
        )


def _extra(shape: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    extra = {k: v for k, v in shape.items() if k not in known}
    flags = shape.get("flags")
    if isinstance(flags, dict):
        flags = {k: v for k, v in flags.items() if k != "instance_label"}
        if flags:
            extra["flags"] = flags
    description = shape.get("description")
    if description not in (None, "", PREDICTION_DESCRIPTION):
        extra["description"] = description
    return extra


def _contains(polygon: np.ndarray, x: float, y: float) -> bool:
    contour = np.asarray(polygon, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0


def _check_name(path: Path, name: str, where: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise AnnotationError(
            path, f"{where}: {problem}", "Rename it (e.g. in LabelMe or a text editor) and save the file again."
        )


def _label(path: Path, shape: dict[str, Any], where: str) -> str:
    label = shape.get("label")
    if not isinstance(label, str) or not label:
        raise AnnotationError(path, f"{where} has no label (got {label!r})")
    return label


def _instance_label(path: Path, shape: dict[str, Any], where: str) -> str | None:
    value = shape.get("instance_label")
    flags = shape.get("flags")
    if value in (None, "") and isinstance(flags, dict):
        value = flags.get("instance_label")
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AnnotationError(path, f"{where}: 'instance_label' must be text, got {value!r}")
    return str(value)


def _group_id(path: Path, shape: dict[str, Any], where: str) -> int | None:
    value = shape.get("group_id")
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnnotationError(path, f"{where}: 'group_id' must be an integer or null, got {value!r}")
    return value


def _number(path: Path, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnnotationError(path, f"{where} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise AnnotationError(path, f"{where} must be finite, got {value!r}")
    return value


def _xy(path: Path, point: Any, where: str) -> tuple[float, float]:
    if not isinstance(point, list | tuple) or len(point) != 2:
        raise AnnotationError(path, f"{where}: a coordinate must be [x, y], got {point!r}")
    return (_number(path, point[0], f"{where}: x"), _number(path, point[1], f"{where}: y"))


def _image_size(path: Path, data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if value is None:
        raise AnnotationError(
            path, f"'{key}' is missing", f"Add '\"{key}\": <pixels>' (the video frame size) to the file."
        )
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
        or value <= 0
    ):
        raise AnnotationError(
            path,
            f"'{key}' must be a positive integer, got {value!r}",
            f"Set '{key}' to the video frame size in pixels.",
        )
    return int(value)


def _frame_from_name(path: Path) -> int:
    match = re.search(r"_(\d{9})$", path.stem) or re.search(r"(\d+)$", path.stem)
    if match is None:
        raise AnnotationError(
            path,
            "the frame number cannot be read from the file name",
            "Name it <video>_<frame:09d>.json or pass the frame explicitly.",
        )
    return int(match.group(1))


def _tname(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------
def _r(value: float, digits: int) -> float:
    out = round(float(value), digits)
    return 0.0 if out == 0 else out  # no "-0.0" in files


def _shapes_for(ann: FrameAnnotation) -> list[dict[str, Any]]:
    predicted = ann.source == "prediction"
    shapes: list[dict[str, Any]] = []
    seen_instances: set[str] = set()
    for index, inst in enumerate(ann.instances):
        if not isinstance(inst.name, str) or not inst.name:
            raise ValueError(f"frame {ann.frame}: instance #{index} has no name")
        if name_problem(inst.name):
            raise ValueError(f"frame {ann.frame}: instance {name_problem(inst.name)}")
        if inst.name in seen_instances:
            raise ValueError(f"frame {ann.frame}: two instances named {inst.name!r}")
        seen_instances.add(inst.name)
        gid = index if inst.group_id is None else int(inst.group_id)
        if inst.polygon is not None:
            poly = np.asarray(inst.polygon, float)
            if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
                raise ValueError(
                    f"frame {ann.frame}: polygon of {inst.name!r} must be (N>=3, 2), got shape {poly.shape}"
                )
            if not np.isfinite(poly).all():
                raise ValueError(f"frame {ann.frame}: polygon of {inst.name!r} is not finite")
            if np.array_equal(poly, np.round(poly)):  # whole pixels (a mask's outline): nothing to round
                points = (poly + 0.0).tolist()  # + 0.0: no "-0.0" in files
            else:
                points = [[_r(x, 3), _r(y, 3)] for x, y in poly]
            shape = {
                "label": inst.name,
                "points": points,
                "group_id": gid,
                "shape_type": "polygon",
                "flags": inst.extra.get("flags", {}),
                "description": (PREDICTION_DESCRIPTION if predicted else inst.extra.get("description", "")),
                "instance_label": inst.name,
            }
            shape.update((k, v) for k, v in inst.extra.items() if k not in shape)
            shapes.append(shape)
        seen_kps: set[str] = set()
        for kp in inst.keypoints:
            where = f"frame {ann.frame}, instance {inst.name!r}, keypoint {kp.name!r}"
            if not isinstance(kp.name, str) or not kp.name:
                raise ValueError(f"frame {ann.frame}, instance {inst.name!r}: unnamed keypoint")
            if name_problem(kp.name):
                raise ValueError(f"frame {ann.frame}, instance {inst.name!r}: keypoint {name_problem(kp.name)}")
            if kp.name in seen_kps:
                raise ValueError(f"{where}: duplicate keypoint name")
            seen_kps.add(kp.name)
            if not (math.isfinite(kp.x) and math.isfinite(kp.y)):
                raise ValueError(
                    f"{where}: coordinates must be finite, got ({kp.x}, {kp.y}); "
                    "keep the last known position for invisible keypoints"
                )
            if not math.isfinite(kp.score):
                raise ValueError(f"{where}: score must be finite, got {kp.score}")
            shape = {
                "label": kp.name,
                "points": [[_r(kp.x, 3), _r(kp.y, 3)]],
                "group_id": gid,
                "shape_type": "point",
                "flags": kp.extra.get("flags", {}),
                "description": (PREDICTION_DESCRIPTION if predicted else kp.extra.get("description", "")),
                "instance_label": inst.name,
                "visible": bool(kp.visible),
                "score": _r(kp.score, 4),
            }
            shape.update((k, v) for k, v in kp.extra.items() if k not in shape and k not in _POINT_KNOWN)
            shapes.append(shape)
    shapes.extend(ann.other_shapes)
    return shapes


def frame_to_json(ann: FrameAnnotation) -> str:
    """The exact text :func:`write_frame` writes for ``ann`` (deterministic)."""
    shapes = _shapes_for(ann)
    data: dict[str, Any] = {
        "version": ann.extra.get("version", LABELME_VERSION),
        "flags": ann.extra.get("flags", {}),
        "shapes": shapes,
        "imagePath": ann.extra.get("imagePath", ""),
        "imageData": None,
        "imageHeight": int(ann.image_height),
        "imageWidth": int(ann.image_width),
    }
    data.update((k, v) for k, v in ann.extra.items() if k not in _TOP_KNOWN)
    if ann.source == "prediction":
        data[MARKER_KEY] = {
            "source": "prediction",
            "seed_frame": None if ann.seed_frame is None else int(ann.seed_frame),
            "seed_digest": ann.seed_digest,
            "content_digest": shapes_digest(shapes),
        }
        if ann.end_frame is not None:
            data[MARKER_KEY]["end_frame"] = int(ann.end_frame)
            data[MARKER_KEY]["end_digest"] = ann.end_digest
        if ann.model is not None:
            data[MARKER_KEY]["model"] = str(ann.model)
        if ann.short_side is not None:
            data[MARKER_KEY]["short_side"] = int(ann.short_side)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_frame(path: str | os.PathLike[str], ann: FrameAnnotation) -> Path:
    """Serialise ``ann`` as LabelMe JSON at ``path`` (atomic; marker added for predictions).

    This writes unconditionally; use :func:`write_prediction` / :func:`write_manual` to get
    the "never overwrite the user's labels" rules.
    """
    text = frame_to_json(ann)
    return atomic_write_text(path, text)


def write_prediction(layout: ResultLayout, ann: FrameAnnotation) -> bool:
    """Write ``ann`` as a prediction unless that frame is manual; return whether it was written.

    The frame counts as manual (and nothing is touched) when its PNG exists, or its JSON
    exists and is manual, unreadable or malformed -- we never overwrite what we cannot read.
    """
    path = layout.frame_json(ann.frame)
    if layout.frame_png(ann.frame).exists():
        return False
    if path.exists():
        try:
            if frame_source(path) != "prediction":
                return False
        except AnnotationError:
            return False
    layout.ensure_folder()
    write_frame(path, dataclasses.replace(ann, source="prediction"))
    return True


def write_manual(layout: ResultLayout, ann: FrameAnnotation, image: np.ndarray | None = None) -> Path:
    """Save a user's frame as manual and return the JSON path.

    If a readable file already exists, its unknown top-level keys and its ``other_shapes`` are
    kept unless ``ann`` provides its own (``ann.extra`` keys win; non-empty
    ``ann.other_shapes`` replaces the old list). An existing file that cannot be parsed is
    copied to ``<name>.json.bak`` before being replaced.

    ``image`` (H, W[, 3|4] uint8, RGB order) optionally writes the frame as the PNG next to the
    JSON -- the pair Annolid needs to treat the frame as a manual seed -- and sets ``imagePath``
    to it unless ``ann.extra`` has one.
    """
    path = layout.frame_json(ann.frame)
    layout.ensure_folder()
    extra = dict(ann.extra)
    other_shapes = list(ann.other_shapes)
    if path.exists():
        try:
            old = read_frame(path, ann.frame)
        except AnnotationError:
            shutil.copyfile(path, path.with_name(path.name + ".bak"))
        else:
            for key, value in old.extra.items():
                extra.setdefault(key, value)
            if not other_shapes:
                other_shapes = old.other_shapes
    if image is not None:
        png = layout.frame_png(ann.frame)
        atomic_write_bytes(png, _encode_png(image))
        extra.setdefault("imagePath", png.name)
    new = dataclasses.replace(
        ann,
        source="manual",
        seed_frame=None,
        seed_digest=None,
        end_frame=None,
        end_digest=None,
        model=None,
        short_side=None,
        extra=extra,
        other_shapes=other_shapes,
    )
    return write_frame(path, new)


def _encode_png(image: np.ndarray) -> bytes:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    elif arr.ndim != 2:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


# ------------------------------------------------------------------------------------------
# whole folders
# ------------------------------------------------------------------------------------------
def load_annotations(layout: ResultLayout, frames: Iterable[int] | None = None) -> dict[int, FrameAnnotation]:
    """Read all frame JSONs of a result folder (or only ``frames``; missing ones are skipped).

    Returns a dict sorted by frame. A malformed file raises :class:`AnnotationError` naming it.
    """
    files = layout.frame_files()
    if frames is not None:
        wanted = {int(f) for f in frames}
        files = {f: p for f, p in files.items() if f in wanted}
    return {frame: read_frame(path, frame) for frame, path in files.items()}


def no_keypoints_reason(ann: FrameAnnotation) -> str:
    """Why a labelled frame has no keypoints to track from, in the user's terms, with the fix."""
    kinds = [s.get("shape_type") if isinstance(s, dict) else None for s in ann.other_shapes]
    misspelt = sorted({k for k in kinds if isinstance(k, str) and k != "point" and k.strip().lower() == "point"})
    outlines = sum(inst.polygon is not None for inst in ann.instances)
    if misspelt:
        found = f"its shapes have shape_type {misspelt[0]!r}, but keypoints are 'point' shapes (lower case)"
    elif kinds or outlines:
        counts: dict[str, int] = {}
        for k in kinds:
            counts[str(k)] = counts.get(str(k), 0) + 1
        if outlines:
            counts["polygon"] = outlines
        listed = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        found = f"it has no keypoints ('point' shapes), only {listed}"
    else:
        found = "it has no shapes at all, so no keypoints"
    return (
        f"{found}; a seed frame needs at least one keypoint. Add point shapes for the body parts (napari: "
        "Seed tools -> Add keypoints, then 'Save frame as manual seed'; or in LabelMe), or delete the file"
    )


def manual_frames(layout: ResultLayout) -> list[int]:
    """Sorted frame numbers whose file is manual (see the module docstring).

    A JSON that is not readable JSON raises :class:`AnnotationError` naming it (it cannot seed
    tracking, and silently skipping it would hide the user's labels).
    """
    return [frame for frame, path in layout.frame_files().items() if frame_source(path) == "manual"]
