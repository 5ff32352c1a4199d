"""Tidy keypoint table (CSV), one row per keypoint per frame.

Columns, exactly: ``frame,instance,keypoint,x,y,visible,score``.

* ``x``/``y``: full-resolution pixels with 3 decimals, **empty** when the keypoint is not visible
  (or its coordinates are not finite); ``visible``: ``1``/``0``; ``score``: 4 decimals (empty if
  not finite).
* Rows are ordered by frame, then instance order, then keypoint order as in the annotation.
* Lines end with ``\\n``; UTF-8.

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

from .annotations import FrameAnnotation
from .atomic import atomic_write_text

__all__ = ["COLUMNS", "TracksCsvAppender", "read_tracks_csv", "rows_for", "write_tracks_csv"]

COLUMNS: tuple[str, ...] = ("frame", "instance", "keypoint", "x", "y", "visible", "score")
_HEADER_LINE = ",".join(COLUMNS)


def _fmt(value: float, digits: int) -> str:
    value = float(value)
    if not math.isfinite(value):
        return ""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def rows_for(ann: FrameAnnotation) -> list[tuple[int, str, str, str, str, int, str]]:
    """CSV rows of one frame, cells already formatted as written (x/y/score text, visible 1/0)."""
    rows = []
    frame = int(ann.frame)
    for inst in ann.instances:
        for kp in inst.keypoints:
            shown = bool(kp.visible) and math.isfinite(kp.x) and math.isfinite(kp.y)
            x = _fmt(kp.x, 3) if shown else ""
            y = _fmt(kp.y, 3) if shown else ""
            rows.append((frame, inst.name, kp.name, x, y, 1 if kp.visible else 0,
                         _fmt(kp.score, 4)))
    return rows


def _csv_text(rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue()


def write_tracks_csv(path: str | os.PathLike[str], annotations: Iterable[FrameAnnotation]
                     ) -> Path:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_last_line(self.path)
        size = self.path.stat().st_size if self.path.exists() else 0
        if size:
            with open(self.path, encoding="utf-8", newline="") as fh:
                first = fh.readline().rstrip("\r\n")
            if first != _HEADER_LINE:
                raise ValueError(
                    f"{self.path}: not a tracks table (header {first!r}, expected "
                    f"{_HEADER_LINE!r}). Move it away or choose another file.")
        self._fh: io.TextIOWrapper | None = open(  # noqa: SIM115 - closed in close()
            self.path, "a", encoding="utf-8", newline="")
        if not size:
            self._fh.write(_HEADER_LINE + "\n")
            self._fh.flush()

    def append(self, ann: FrameAnnotation) -> None:
        """Write the rows of one frame and flush them to the OS."""
        if self._fh is None:
            raise ValueError(f"{self.path}: appender is closed")
        self._fh.write(_csv_text(rows_for(ann)))
        self._fh.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def closed(self) -> bool:
        return self._fh is None

    def __enter__(self) -> TracksCsvAppender:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
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
    newline (crash mid-write) is dropped; any other malformed row raises ``ValueError`` naming
    the file and line.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # rfind -1 -> "" (only a partial header)
    lines = text.splitlines()
    if not lines:
        return []
    if lines[0].rstrip("\r") != _HEADER_LINE:
        raise ValueError(f"{path}: not a tracks table (header {lines[0]!r}, expected "
                         f"{_HEADER_LINE!r})")
    out = []
    for lineno, row in enumerate(csv.reader(lines[1:]), start=2):
        if not row:
            continue
        try:
            if len(row) != len(COLUMNS):
                raise ValueError(f"expected {len(COLUMNS)} fields, got {len(row)}")
            frame, instance, keypoint, x, y, visible, score = row
            if visible not in ("0", "1"):
                raise ValueError(f"visible must be 0 or 1, got {visible!r}")
            out.append({
                "frame": int(frame),
                "instance": instance,
                "keypoint": keypoint,
                "x": float(x) if x else None,
                "y": float(y) if y else None,
                "visible": visible == "1",
                "score": float(score) if score else None,
            })
        except ValueError as exc:
            raise ValueError(f"{path}, line {lineno}: {exc}") from exc
    return out
