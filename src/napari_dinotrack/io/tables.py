"""Tidy keypoint table (CSV), one row per keypoint per frame.

Columns, exactly: ``frame,instance,keypoint,x,y,visible,score``.

* ``x``/``y``: full-resolution pixels with 3 decimals, **empty** when the keypoint is not visible
  (or its coordinates are not finite); ``visible``: ``1``/``0``; ``score``: 4 decimals (empty if
  not finite).
* Rows are ordered by frame, then instance order, then keypoint order as in the annotation.
* Lines end with ``\\n``; UTF-8; one line per row.
* Names never start a spreadsheet formula or break a line: names with line breaks or a leading
  ``=``, ``+``, ``-``, ``@`` are refused when a seed is read (:func:`~.names.name_problem`); should
  one come from code, its cell gets a leading ``'`` and its line breaks become spaces.

:class:`TracksCsvAppender` writes rows live during tracking (flushed per frame);
:func:`read_tracks_csv` drops a truncated last line left by a crash mid-write.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import InputError
from .annotations import FrameAnnotation
from .atomic import atomic_write_text, output_error
from .names import FORMULA_STARTS, LINE_BREAKS

__all__ = [
    "COLUMNS",
    "HEADER_LINE",
    "TracksCsvAppender",
    "csv_block",
    "read_tracks_csv",
    "rows_for",
    "write_tracks_csv",
]

COLUMNS: tuple[str, ...] = ("frame", "instance", "keypoint", "x", "y", "visible", "score")
HEADER_LINE = ",".join(COLUMNS)
_SPACES = str.maketrans(dict.fromkeys(LINE_BREAKS, " "))


def _fmt(value: float, digits: int) -> str:
    value = float(value)
    if not math.isfinite(value):
        return ""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _name_cell(name: str) -> str:
    """A name as a cell no spreadsheet runs as a formula and no line reader splits."""
    text = str(name).translate(_SPACES)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def rows_for(ann: FrameAnnotation) -> list[tuple[int, str, str, str, str, int, str]]:
    """CSV rows of one frame, cells already formatted as written (x/y/score text, visible 1/0)."""
    rows = []
    frame = int(ann.frame)
    for inst in ann.instances:
        instance = _name_cell(inst.name)
        for kp in inst.keypoints:
            shown = bool(kp.visible) and math.isfinite(kp.x) and math.isfinite(kp.y)
            x = _fmt(kp.x, 3) if shown else ""
            y = _fmt(kp.y, 3) if shown else ""
            rows.append((frame, instance, _name_cell(kp.name), x, y, 1 if kp.visible else 0, _fmt(kp.score, 4)))
    return rows


def csv_block(ann: FrameAnnotation) -> str:
    """The table lines of one frame, exactly as written (each ends with a newline)."""
    return _csv_text(rows_for(ann))


def _csv_text(rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue()


def write_tracks_csv(path: str | os.PathLike[str], annotations: Iterable[FrameAnnotation]) -> Path:
    """Write the whole table atomically (frames sorted; stable for equal frames)."""
    anns = sorted(annotations, key=lambda a: int(a.frame))
    rows: list[Iterable[Any]] = [COLUMNS]
    for ann in anns:
        rows.extend(rows_for(ann))
    return atomic_write_text(path, _csv_text(rows))


class TracksCsvAppender:
    """Append rows frame by frame during tracking; safe to reopen after a crash.

    Opening writes the header if the file is new or empty, checks it otherwise, and first cuts
    off a partial last line (a crash mid-write) so new rows never glue onto it. Each
    :meth:`append` writes one frame's rows and flushes. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_partial_last_line(self.path)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size:
                with open(self.path, encoding="utf-8", newline="", errors="replace") as fh:
                    first = fh.readline().rstrip("\r\n")
                if first != HEADER_LINE:
                    raise InputError(
                        f"{self.path}: not a tracks table (header {first!r}, expected "
                        f"{HEADER_LINE!r}). Move it away or choose another file."
                    )
            self._fh: io.TextIOWrapper | None = open(  # noqa: SIM115 - closed in close()
                self.path, "a", encoding="utf-8", newline=""
            )
            if not size:
                self._write(HEADER_LINE + "\n")
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def append(self, ann: FrameAnnotation) -> None:
        """Write the rows of one frame and flush them to the OS."""
        self.write_text(csv_block(ann))

    def write_text(self, text: str) -> None:
        """Append lines already formatted as table rows, and flush them."""
        if self._fh is None:
            raise ValueError(f"{self.path}: appender is closed")
        try:
            self._write(text)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def _write(self, text: str) -> None:
        assert self._fh is not None
        self._fh.write(text)
        self._fh.flush()

    def close(self) -> None:
        """Close the file (idempotent); a failure to flush the last rows is an OutputError."""
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError as exc:
                raise output_error(self.path, exc) from None

    @property
    def closed(self) -> bool:
        return self._fh is None

    def __enter__(self) -> TracksCsvAppender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _drop_partial_last_line(path: Path, chunk: int = 65536) -> None:
    """Truncate ``path`` after its last newline (nothing to do if it ends with one)."""
    if not path.exists():
        return
    with open(path, "r+b") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return
        pos = end
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            block = fh.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                return
            pos = start
        fh.truncate(0)


def read_tracks_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a tracks table into dicts with typed values.

    Keys are :data:`COLUMNS`: ``frame`` int, ``instance``/``keypoint`` str, ``x``/``y`` float or
    None (not visible), ``visible`` bool, ``score`` float or None. A last line without its
    newline (crash mid-write) is dropped; anything else that is not a table row raises
    :class:`~napari_dinotrack.errors.InputError` naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a tracks table") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a tracks table (not UTF-8 text: {exc.reason})") from None
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # rfind -1 -> "" (only a partial header)
    lines = text.split("\n")[:-1]
    if not lines:
        return []
    if lines[0].rstrip("\r") != HEADER_LINE:
        raise InputError(f"{path}: not a tracks table (header {lines[0][:200]!r}, expected {HEADER_LINE!r})")
    out = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip("\r"):
            continue
        try:
            out.append(_parse_row(line))
        except (ValueError, csv.Error) as exc:
            raise InputError(f"{path}, line {lineno}: not a table row ({exc})") from None
    return out


def _parse_row(line: str) -> dict[str, Any]:
    rows = list(csv.reader([line.rstrip("\r")]))
    row = rows[0] if len(rows) == 1 else []
    if len(row) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} fields, got {len(row)}")
    frame, instance, keypoint, x, y, visible, score = row
    if not frame.isascii() or not frame.isdigit():
        raise ValueError(f"frame must be a whole number >= 0, got {frame!r}")
    if visible not in ("0", "1"):
        raise ValueError(f"visible must be 0 or 1, got {visible!r}")
    return {
        "frame": int(frame),
        "instance": instance,
        "keypoint": keypoint,
        "x": _number(x, "x"),
        "y": _number(y, "y"),
        "visible": visible == "1",
        "score": _number(score, "score"),
    }


def _number(text: str, what: str) -> float | None:
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {text!r}")
    return value
