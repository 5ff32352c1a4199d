"""The batch summary: one row per video (video, frames, seconds, fps, status, mean score, error).

Printed as a table at the end of a batch and written as CSV; its exit code is 0 when every video
is tracked or already up to date and :data:`EXIT_SOME_FAILED` otherwise.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..io.atomic import atomic_write_text
from .jobs import STATUSES, VideoResult

__all__ = ["COLUMNS", "EXIT_SOME_FAILED", "BatchSummary"]

COLUMNS = ("video", "frames", "seconds", "fps", "status", "mean_score", "error")
EXIT_SOME_FAILED = 3


@dataclass
class BatchSummary:
    """The outcome of every video of a batch, in the order they were given."""

    results: list[VideoResult]

    @property
    def ok(self) -> bool:
        """Every video tracked or already up to date."""
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else EXIT_SOME_FAILED

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    def counts(self) -> str:
        """E.g. ``4 videos: 3 tracked, 1 failed``."""
        counts = Counter(r.status for r in self.results)
        parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
        return f"{len(self.results)} video{'s' if len(self.results) != 1 else ''}: {', '.join(parts) or 'none'}"

    def rows(self) -> list[dict[str, str]]:
        """The summary as text cells, keyed by :data:`COLUMNS`."""
        return [
            {
                "video": r.video,
                "frames": str(r.frames),
                "seconds": f"{r.seconds:.1f}",
                "fps": f"{r.fps:.1f}",
                "status": r.status,
                "mean_score": "" if r.mean_score is None else f"{r.mean_score:.4f}",
                "error": r.error,
            }
            for r in self.results
        ]

    def table(self) -> str:
        """An aligned text table; the errors, in full, follow it."""
        header = {c: c.replace("_", " ") for c in COLUMNS}
        rows = self.rows()
        names = _short_names([r.video for r in self.results])
        rows = [dict(row, video=name) for row, name in zip(rows, names, strict=True)]
        shown = [c for c in COLUMNS if c != "error"]
        width = {c: max(len(header[c]), *(len(row[c]) for row in rows)) for c in shown}
        right = {"frames", "seconds", "fps", "mean_score"}

        def line(cells: dict[str, str]) -> str:
            return "  ".join(cells[c].rjust(width[c]) if c in right else cells[c].ljust(width[c]) for c in shown)

        lines = [line(header), "  ".join("-" * width[c] for c in shown), *(line(row) for row in rows)]
        lines += [f"{r.status}: {r.error}" for r in self.results if r.error]
        return "\n".join(line.rstrip() for line in lines)

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the summary as CSV (UTF-8, atomically) and return its path."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, buf.getvalue())


def _short_names(videos: list[str]) -> list[str]:
    """The videos relative to their common folder (just the file names when they share one)."""
    folders = [os.path.dirname(os.path.abspath(v)) for v in videos]
    try:
        common = os.path.commonpath(folders) if folders else ""
    except ValueError:  # different drives
        return videos
    return [os.path.relpath(os.path.abspath(v), common) for v in videos]
