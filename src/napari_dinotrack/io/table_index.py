"""The tidy table kept equal to the frame JSONs, checked at a cost of one ``stat`` per frame.

The table (``<stem>_tracks.csv``) is derived data: it holds exactly the rows of the frame JSONs
in the result folder, in frame order. Its index (``.<stem>_tracks.index.json``) records, for every
frame whose rows the table holds, the identity of the JSON they came from (modification time,
size, inode) and the identity of the table file itself. :meth:`TracksTable.sync` therefore only
``stat``\\ s the JSONs when nothing changed, and re-reads just the JSONs that did.

A run appends rows as it goes (:meth:`TracksTable.begin_run`, :meth:`~TracksTable.append`,
:meth:`~TracksTable.end_run`). While it does, the index says which run range it is and how long
the table was before the first append, so after a kill the next :meth:`~TracksTable.sync` drops
the appended tail and re-reads only the frames that run may have written. Whatever the index
cannot vouch for (a deleted, truncated or edited table, a missing or damaged index) is rebuilt
from all the JSONs.

A JSON rewritten within the same clock tick as the index was written, with the same size and
inode, would look unchanged; such "racy" frames (as git calls them) keep a digest of their rows
in the index and are re-read once more at the next check.

The index also records which video the folder belongs to (:class:`VideoRecord`), so that a run
on another video refuses to adopt the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AnnotationError, InputError
from .annotations import FrameAnnotation
from .atomic import atomic_write_bytes, atomic_write_text
from .labelme import read_frame
from .paths import ResultLayout
from .tables import HEADER_LINE, TracksCsvAppender, csv_block

__all__ = ["Identity", "SyncReport", "TracksTable", "VideoRecord", "check_folder_belongs", "identity_of"]

FORMAT = 1
RACY_NS = 2_000_000_000  # file systems with the coarsest clocks (FAT) tick every 2 s

Identity = tuple[int, int, int]  # mtime_ns, size, inode of one file version


def identity_of(path: str | os.PathLike[str]) -> Identity | None:
    """The identity of the file version at ``path`` now (None: not a readable regular file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino) if _is_regular(st.st_mode) else None


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


@dataclass(frozen=True)
class VideoRecord:
    """The video a result folder belongs to."""

    name: str
    size: int
    frames: int
    width: int
    height: int

    @classmethod
    def of(cls, path: str | os.PathLike[str], frames: int, width: int, height: int) -> VideoRecord:
        path = Path(path)
        return cls(path.name, path.stat().st_size, int(frames), int(width), int(height))

    def same_video(self, other: VideoRecord) -> bool:
        """Same bytes (perhaps renamed), or the same name and shape (perhaps re-encoded)."""
        if self.size == other.size:
            return True
        return (self.name, self.frames, self.width, self.height) == (
            other.name,
            other.frames,
            other.width,
            other.height,
        )

    def describe(self) -> str:
        return f"{self.name} ({self.frames} frames, {self.width}x{self.height}, {self.size} bytes)"


@dataclass
class SyncReport:
    """What bringing the table up to date took."""

    stats: int = 0  # JSON files stat'ed
    reread: list[int] = field(default_factory=list)  # frames whose JSON was read again
    dropped: list[int] = field(default_factory=list)  # frames whose JSON is gone
    rebuilt: bool = False  # the table could not be trusted and was made from all JSONs
    rewritten: bool = False  # the table file was written


@dataclass
class _Index:
    frames: dict[int, Identity]
    csv: Identity | None  # None while a run appends
    appending_from: int | None = None  # while a run appends: bytes of the table before its first row
    run: tuple[int, int] | None = None  # while a run appends: the frames it may rewrite
    racy: dict[int, str] = field(default_factory=dict)  # frame -> digest of its rows
    written_ns: int = 0
    video: VideoRecord | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "video": asdict(self.video) if self.video else None,
            "csv": list(self.csv) if self.csv else None,
            "appending_from": self.appending_from,
            "run": list(self.run) if self.run else None,
            "written_ns": self.written_ns,
            "racy": {str(f): d for f, d in sorted(self.racy.items())},
            "frames": [[f, *ident] for f, ident in sorted(self.frames.items())],
        }
        return json.dumps(data, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> _Index:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError("unknown index format")
        video = data.get("video")
        run = data.get("run")
        return cls(
            frames={int(f): (int(m), int(s), int(i)) for f, m, s, i in data["frames"]},
            csv=tuple(int(v) for v in data["csv"]) if data.get("csv") else None,  # type: ignore[arg-type]
            appending_from=None if data.get("appending_from") is None else int(data["appending_from"]),
            run=(int(run[0]), int(run[1])) if run else None,
            racy={int(f): str(d) for f, d in (data.get("racy") or {}).items()},
            written_ns=int(data.get("written_ns", 0)),
            video=VideoRecord(**video) if video else None,
        )


def _load_index(path: Path) -> _Index | None:
    try:
        return _Index.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        return None


def check_folder_belongs(layout: ResultLayout, video: VideoRecord) -> None:
    """InputError when ``layout``'s folder holds the results of another video than ``video``."""
    index = _load_index(layout.tracks_index)
    if index is None or index.video is None or index.video.same_video(video):
        return
    raise InputError(
        f"{layout.folder} holds the results of {index.video.describe()}, not of {video.describe()}. "
        "Choose another result folder (--out), or move that folder away if it really is this video."
    )


class TracksTable:
    """The tracks table of one result folder and its index.

    ``video`` (optional) is recorded in the index whenever it is written; without it the
    recorded video is kept.
    """

    def __init__(self, layout: ResultLayout, video: VideoRecord | None = None) -> None:
        self.layout = layout
        self.video = video
        self._appender: TracksCsvAppender | None = None
        self._appended: dict[int, Identity | None] = {}
        self._held: dict[int, tuple[Identity, str]] = {}

    @property
    def path(self) -> Path:
        return self.layout.tracks_csv

    # ------------------------------------------------------------------ steady state
    def sync(self) -> SyncReport:
        """Make the table equal to the frame JSONs now; cheap when nothing changed."""
        report = SyncReport()
        current = self._stat_frames()
        report.stats = len(current)
        index = _load_index(self.layout.tracks_index)
        csv_id = identity_of(self.path)
        if index is not None and index.appending_from is None and index.csv is not None and csv_id == index.csv:
            suspects = self._changed(index, current)
            if not suspects and not self._video_changed(index):
                return report
            if all(self._racy_unchanged(index, f, current) for f in suspects):
                report.reread = sorted(suspects)
                self._write_index(dict(index.frames), None, csv_id, index.video, current)
                return report
            blocks = self._read_blocks(0)
            if blocks is not None and set(blocks) == set(index.frames):
                return self._reconcile(index.frames, blocks, suspects, current, index.video, report)
        elif (
            index is not None
            and index.appending_from is not None
            and csv_id is not None
            and csv_id[1] >= index.appending_from
        ):
            blocks = self._read_blocks(0, index.appending_from)
            if blocks is not None and set(blocks) == set(index.frames):
                first, last = index.run or (0, -1)
                suspects = self._changed(index, current) | {f for f in current if first <= f <= last}
                return self._reconcile(index.frames, blocks, suspects, current, index.video, report)
        report.rebuilt = True
        video = index.video if index is not None else None
        return self._reconcile({}, {}, set(current), current, video, report)

    # ------------------------------------------------------------------ one run
    def begin_run(self, first: int, last: int) -> None:
        """Take the rows of frames ``first``..``last`` out of the table and start appending."""
        self.sync()
        index = _load_index(self.layout.tracks_index)
        assert index is not None and index.csv is not None  # sync() just wrote it
        frames = dict(index.frames)
        in_range = [f for f in frames if first <= f <= last]
        if in_range:
            blocks = self._read_blocks(0)
            if blocks is None:  # changed under us: start from the JSONs
                blocks, frames = {}, {}
                self.path.unlink(missing_ok=True)
            else:
                self._held = {f: (frames.pop(f), blocks.pop(f)) for f in in_range}
                self._write_csv(blocks)
        self._appender = TracksCsvAppender(self.path)
        size = self.path.stat().st_size
        self._appended = {}
        self._write_raw_index(_Index(frames, None, size, (first, last), {}, time.time_ns(), self.video or index.video))

    def append(self, ann: FrameAnnotation, identity: Identity | None) -> None:
        """Append one frame's rows; ``identity`` is that of the JSON just written with the same content."""
        assert self._appender is not None, "begin_run() first"
        self._appender.append(ann)
        self._appended[ann.frame] = identity
        self._held.pop(ann.frame, None)

    def append_existing(self, frame: int) -> None:
        """Put back the rows of a frame whose JSON this run leaves as it is (a manual frame)."""
        assert self._appender is not None, "begin_run() first"
        held = self._held.get(frame)
        if held is None or identity_of(self.layout.frame_json(frame)) != held[0]:
            return  # read again at the end of the run
        self._appender.write_text(held[1])
        self._appended[frame] = held[0]
        del self._held[frame]

    def end_run(self) -> SyncReport:
        """Close the run: the table sorted and equal to the JSONs again."""
        if self._appender is None:
            return self.sync()
        self._appender.close()
        self._appender = None
        index = _load_index(self.layout.tracks_index)
        if index is None or index.appending_from is None:
            return self.sync()
        report = SyncReport()
        current = self._stat_frames()
        report.stats = len(current)
        prefix = self._read_blocks(0, index.appending_from)
        tail = self._read_blocks(index.appending_from, None, header=False)
        if prefix is None or tail is None or set(prefix) != set(index.frames):
            return self.sync()
        frames = dict(index.frames)
        suspects: set[int] = set()
        for f, block in tail.items():
            ident = self._appended.get(f)
            if ident is None:
                suspects.add(f)
            frames[f] = ident or (0, 0, 0)
            prefix[f] = block
        for f, (ident, block) in self._held.items():
            if f not in frames:
                frames[f], prefix[f] = ident, block
        self._held, self._appended = {}, {}
        suspects |= self._changed(_Index(frames, None), current)
        return self._reconcile(frames, prefix, suspects, current, index.video, report, force_write=True)

    def abandon_run(self) -> None:
        """Stop appending without tidying up (the next :meth:`sync` repairs the table)."""
        if self._appender is not None:
            with contextlib.suppress(OSError):
                self._appender.close()
            self._appender = None

    # ------------------------------------------------------------------ internals
    def _stat_frames(self) -> dict[int, Identity]:
        """Identity of every frame JSON: one ``stat`` each."""
        out: dict[int, Identity] = {}
        try:
            entries = list(os.scandir(self.layout.folder))
        except OSError:
            return out
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            frame = self.layout.frame_of(entry.name)
            if frame is None:
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if _is_regular(st.st_mode):
                out[frame] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return out

    def _video_changed(self, index: _Index) -> bool:
        return self.video is not None and index.video != self.video

    @staticmethod
    def _changed(index: _Index, current: dict[int, Identity]) -> set[int]:
        changed = {f for f, ident in current.items() if index.frames.get(f) != ident}
        changed |= set(index.frames) - set(current)
        changed |= {f for f in index.racy if f in current}
        return changed

    def _racy_unchanged(self, index: _Index, frame: int, current: dict[int, Identity]) -> bool:
        """True when ``frame`` is only suspect for being racy and its rows are still the recorded ones."""
        if frame not in index.racy or index.frames.get(frame) != current.get(frame):
            return False
        block = self._block_from_json(frame)
        return block is not None and _digest(block) == index.racy[frame]

    def _block_from_json(self, frame: int) -> str | None:
        try:
            return csv_block(read_frame(self.layout.frame_json(frame), frame))
        except (AnnotationError, OSError):
            return None  # unreadable: no rows until it is fixed (the run reports it)

    def _reconcile(
        self,
        frames: dict[int, Identity],
        blocks: dict[int, str],
        suspects: set[int],
        current: dict[int, Identity],
        video: VideoRecord | None,
        report: SyncReport,
        force_write: bool = False,
    ) -> SyncReport:
        frames = dict(frames)
        dirty = force_write
        for f in sorted(suspects):
            if f not in current:
                if f in blocks:
                    del blocks[f]
                    dirty = True
                    report.dropped.append(f)
                frames.pop(f, None)
                continue
            ident = current[f]  # taken before the read: a later change shows as a new identity
            block = self._block_from_json(f)
            report.reread.append(f)
            if block is None:
                if blocks.pop(f, None) is not None:
                    dirty = True
                frames.pop(f, None)
                continue
            if blocks.get(f) != block:
                blocks[f] = block
                dirty = True
            frames[f] = ident
        csv_id = identity_of(self.path)
        if dirty or csv_id is None:
            self._write_csv(blocks)
            report.rewritten = True
            csv_id = identity_of(self.path)
        self._write_index(frames, blocks, csv_id, video, current)
        return report

    def _write_csv(self, blocks: dict[int, str]) -> None:
        text = HEADER_LINE + "\n" + "".join(blocks[f] for f in sorted(blocks))
        atomic_write_text(self.path, text)

    def _write_index(
        self,
        frames: dict[int, Identity],
        blocks: dict[int, str] | None,
        csv_id: Identity | None,
        video: VideoRecord | None,
        current: dict[int, Identity],
    ) -> None:
        now = time.time_ns()
        racy = {}
        for f, ident in frames.items():
            if ident[0] >= now - RACY_NS:
                block = blocks.get(f) if blocks is not None else self._block_from_json(f)
                if block is not None:
                    racy[f] = _digest(block)
        self._write_raw_index(_Index(frames, csv_id, None, None, racy, now, self.video or video))

    def _write_raw_index(self, index: _Index) -> None:
        atomic_write_bytes(self.layout.tracks_index, index.to_json().encode("utf-8"))

    def _read_blocks(self, start: int, stop: int | None = None, header: bool = True) -> dict[int, str] | None:
        """Rows of the table bytes ``start:stop`` grouped by frame (None: not a table we wrote)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(start)
                data = fh.read() if stop is None else fh.read(stop - start)
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a crash mid-line: the partial row is not the frame's
        lines = text.split("\n")[:-1]
        if header:
            if not lines or lines[0] != HEADER_LINE:
                return None
            lines = lines[1:]
        blocks: dict[int, list[str]] = {}
        last = None
        for line in lines:
            head, sep, _ = line.partition(",")
            if not sep or not head.isdigit():
                return None
            frame = int(head)
            if frame != last and frame in blocks:
                return None  # a frame in two places: not a table we wrote
            blocks.setdefault(frame, []).append(line + "\n")
            last = frame
        return {f: "".join(lines_) for f, lines_ in blocks.items()}


def _digest(block: str) -> str:
    return hashlib.sha1(block.encode("utf-8")).hexdigest()[:16]
