"""Keypoint tracks as dense arrays: human labels from a CSV, predictions from a result folder.

Both sides of an evaluation become a :class:`Tracks`: one row per frame, one column per
(instance, keypoint), so the metrics are array operations whatever the source.

The labels CSV has the columns ``frame,instance,keypoint,x,y`` (more columns are ignored, so a
``*_tracks.csv`` written by the tracker reads too). ``frame`` is the 0-based decode index of the
video, x/y are video pixels, and an empty x and y mean "labelled, not visible". Any row that
cannot be read exactly raises :class:`~napari_dinotrack.errors.InputError` naming the file and
line: a half-read label file would silently change the scores.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.annotations import FrameAnnotation, Instance, Keypoint

__all__ = ["LABEL_COLUMNS", "Tracks", "read_labels_csv", "read_result_folder", "tracks_from_arrays"]

LABEL_COLUMNS = ("frame", "instance", "keypoint", "x", "y")
"""Columns a labels CSV must have (in any order)."""

Key = tuple[str, str]
_LABELS_HINT = (
    "Each row must be frame,instance,keypoint,x,y with a whole frame number >= 0 and x/y both given or both empty."
)


@dataclass
class Tracks:
    """Keypoint positions of a video as arrays over (frame, key).

    ``frames`` (T,) holds sorted unique frame numbers, ``keys`` the K (instance, keypoint) names in
    a stable order. ``xy`` (T, K, 2) is NaN where nothing was labelled or predicted. ``visible``
    (T, K): for labels, labelled and visible (x/y given); for predictions, the tracker's visible
    flag. ``labelled`` (T, K): a row exists for that frame and key, visible or not.
    """

    frames: np.ndarray
    keys: list[Key]
    xy: np.ndarray
    visible: np.ndarray
    labelled: np.ndarray

    def __post_init__(self) -> None:
        t, k = len(self.frames), len(self.keys)
        if self.xy.shape != (t, k, 2) or self.visible.shape != (t, k) or self.labelled.shape != (t, k):
            raise ValueError(
                f"Tracks arrays disagree with {t} frames x {k} keys: xy {self.xy.shape}, "
                f"visible {self.visible.shape}, labelled {self.labelled.shape}"
            )
        if t > 1 and np.any(np.diff(self.frames) <= 0):
            raise ValueError("Tracks.frames must be sorted and unique")
        if len(set(self.keys)) != k:
            raise ValueError("Tracks.keys must be unique")

    def annotation(self, frame: int, height: int, width: int) -> FrameAnnotation:
        """The visible labelled points of ``frame`` as a manual annotation, e.g. to seed tracking from labels."""
        row = int(np.searchsorted(self.frames, frame))
        if row >= len(self.frames) or self.frames[row] != frame:
            raise InputError(f"frame {frame} has no labels (labelled frames: {_span(self.frames)})")
        instances: dict[str, Instance] = {}
        for col, (inst, name) in enumerate(self.keys):
            if self.visible[row, col]:
                x, y = self.xy[row, col]
                instances.setdefault(inst, Instance(inst)).keypoints.append(Keypoint(name, float(x), float(y)))
        return FrameAnnotation(int(frame), height, width, list(instances.values()))


def tracks_from_arrays(
    frames: Sequence[int] | np.ndarray,
    keys: Sequence[Key],
    xy: np.ndarray,
    visible: np.ndarray,
    labelled: np.ndarray | None = None,
) -> Tracks:
    """Tracks from in-memory arrays (frames need not be sorted).

    ``labelled`` defaults to every cell: each (frame, key) given counts as a row, so a point with
    ``visible`` False is "labelled not visible" (labels) or "predicted hidden" (predictions).
    """
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    xy = np.asarray(xy, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    labelled = np.ones(visible.shape, bool) if labelled is None else np.asarray(labelled, dtype=bool)
    if len(np.unique(frames)) != len(frames):
        raise ValueError("frames must be unique")
    order = np.argsort(frames, kind="stable")
    tracks = Tracks(
        frames[order],
        [(str(i), str(k)) for i, k in keys],
        xy[order].copy(),
        visible[order] & labelled[order],
        labelled[order].copy(),
    )
    if np.any(tracks.visible & ~np.isfinite(tracks.xy).all(-1)):
        raise ValueError("a visible point needs finite x and y")
    return tracks


def _tracks_from_cells(cells: dict[tuple[int, Key], tuple[float, float, bool]], keys: list[Key]) -> Tracks:
    """Tracks from {(frame, key): (x, y, visible)}; ``keys`` fixes the column order."""
    frames = np.array(sorted({frame for frame, _ in cells}), dtype=np.int64)
    row_of = {int(f): r for r, f in enumerate(frames)}
    col_of = {key: c for c, key in enumerate(keys)}
    xy = np.full((len(frames), len(keys), 2), np.nan)
    visible = np.zeros((len(frames), len(keys)), bool)
    labelled = np.zeros_like(visible)
    for (frame, key), (x, y, shown) in cells.items():
        r, c = row_of[frame], col_of[key]
        xy[r, c] = (x, y)
        visible[r, c] = shown
        labelled[r, c] = True
    return Tracks(frames, keys, xy, visible, labelled)


# ------------------------------------------------------------------------------------------
# labels CSV
# ------------------------------------------------------------------------------------------
def read_labels_csv(path: str | os.PathLike[str]) -> Tracks:
    """Read human labels ``frame,instance,keypoint,x,y`` (empty x and y = labelled, not visible).

    Keys keep the order in which they first appear. Raises :class:`InputError` naming the file
    and line for anything that cannot be read exactly.
    """
    path = Path(path).expanduser()
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise InputError(
                f"{path}: the file is empty; expected a header line "
                f"{','.join(LABEL_COLUMNS)} followed by one row per labelled point."
            )
        column = _columns(path, header)
        cells: dict[tuple[int, Key], tuple[float, float, bool]] = {}
        first_line: dict[tuple[int, Key], int] = {}
        keys: dict[Key, None] = {}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise _row_error(path, line, f"{len(row)} fields, but the header has {len(header)}")
            frame = _frame_number(path, line, row[column["frame"]])
            key = (
                _name(path, line, row[column["instance"]], "instance"),
                _name(path, line, row[column["keypoint"]], "keypoint"),
            )
            xy = _position(path, line, row[column["x"]], row[column["y"]])
            if (frame, key) in cells:
                raise _row_error(
                    path,
                    line,
                    f"frame {frame}, {key[0]}/{key[1]} is labelled twice (also on line {first_line[frame, key]})",
                )
            cells[frame, key] = (*xy, True) if xy is not None else (math.nan, math.nan, False)
            first_line[frame, key] = line
            keys.setdefault(key)
    except csv.Error as exc:
        raise _row_error(path, reader.line_num, f"not readable as CSV ({exc})") from exc
    if not cells:
        raise InputError(
            f"{path}: the file has a header but no label rows; add one row per labelled point "
            f"({','.join(LABEL_COLUMNS)})."
        )
    return _tracks_from_cells(cells, list(keys))


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the labels CSV file (frame,instance,keypoint,x,y) instead.")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such labels file; check the path.") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}, line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the labels as UTF-8 CSV."
        ) from exc


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    for name in LABEL_COLUMNS:
        if names.count(name) > 1:
            raise InputError(f"{path}, line 1: column {name!r} appears {names.count(name)} times; keep one.")
    missing = [name for name in LABEL_COLUMNS if name not in names]
    if missing:
        raise InputError(
            f"{path}, line 1: missing column(s) {', '.join(missing)}; the header must name "
            f"{','.join(LABEL_COLUMNS)} (found: {','.join(header)[:120]})."
        )
    return {name: names.index(name) for name in LABEL_COLUMNS}


def _row_error(path: Path, line: int, problem: str) -> InputError:
    return InputError(f"{path}, line {line}: {problem}. {_LABELS_HINT}")


def _frame_number(path: Path, line: int, text: str) -> int:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        raise _row_error(path, line, f"frame {text!r} is not a number") from None
    if not value.is_integer():
        raise _row_error(path, line, f"frame {text!r} is not a whole number")
    if value < 0:
        raise _row_error(path, line, f"frame {text!r} is negative (frames count from 0)")
    return int(value)


def _name(path: Path, line: int, text: str, what: str) -> str:
    if not text.strip():
        raise _row_error(path, line, f"the {what} name is empty")
    return text


def _position(path: Path, line: int, x_text: str, y_text: str) -> tuple[float, float] | None:
    x_text, y_text = x_text.strip(), y_text.strip()
    if not x_text and not y_text:
        return None
    if not x_text or not y_text:
        given, empty = ("x", "y") if x_text else ("y", "x")
        raise _row_error(path, line, f"{given} is given but {empty} is empty")
    values = []
    for axis, text in (("x", x_text), ("y", y_text)):
        try:
            value = float(text)
        except ValueError:
            raise _row_error(path, line, f"{axis} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise _row_error(path, line, f"{axis} {text!r} is not a finite number")
        values.append(value)
    return values[0], values[1]


def _span(frames: Iterable[int]) -> str:
    frames = sorted(int(f) for f in frames)
    if not frames:
        return "none"
    return f"{frames[0]}" if len(frames) == 1 else f"{len(frames)} frames, {frames[0]}..{frames[-1]}"


# ------------------------------------------------------------------------------------------
# result folder
# ------------------------------------------------------------------------------------------
def read_result_folder(path: str | os.PathLike[str]) -> tuple[Tracks, set[int]]:
    """The tracker's predictions in a result folder, and the folder's manual frames.

    ``path`` is the result folder (``<video dir>/<video stem>/``) or the video, whose default
    result folder is used. Only prediction frames go into the returned tracks: manual frames are
    the user's own labels, returned separately so an evaluation can leave them out. Raises
    :class:`InputError` when the folder is missing or holds no predictions, and
    :class:`~napari_dinotrack.errors.AnnotationError` for a LabelMe file that cannot be read.
    """
    from ..io.labelme import load_annotations
    from ..io.paths import ResultLayout

    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        raise InputError(
            f"{path}: is a {path.suffix} file; give the result folder (or the video) the tracker "
            "wrote, e.g. napari-dinotrack eval RESULT_DIR LABELS.csv."
        )
    if path.is_file():
        layout = ResultLayout(path)
    elif path.is_dir():
        # the default layout names files after the folder; an adopted prefix wins (renamed folders)
        folder = path.resolve()
        layout = ResultLayout(folder.with_name(folder.name + ".mp4"), result_folder=path)
    else:
        raise InputError(
            f"{path}: no such result folder; give the folder the tracker wrote "
            "(<video dir>/<video stem>/) or the video."
        )
    annotations = load_annotations(layout)
    manual = {frame for frame, ann in annotations.items() if ann.is_manual}
    cells: dict[tuple[int, Key], tuple[float, float, bool]] = {}
    keys: dict[Key, None] = {}
    for frame, ann in annotations.items():
        if ann.is_manual:
            continue
        for inst in ann.instances:
            for kp in inst.keypoints:
                cells[frame, (inst.name, kp.name)] = (kp.x, kp.y, bool(kp.visible))
                keys.setdefault((inst.name, kp.name))
    if not cells:
        found = f"only manual frames ({_span(manual)})" if manual else "no frame files"
        raise InputError(
            f"{layout.folder}: no predictions to score ({found}); track the video first, "
            "e.g. napari-dinotrack track VIDEO."
        )
    return _tracks_from_cells(cells, list(keys)), manual
