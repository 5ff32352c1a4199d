"""Frame-exact video decoding for the engine and the napari viewer (no Qt / napari imports).

Everything goes through the ffmpeg binary shipped with ``imageio-ffmpeg``:

* :func:`probe_video` gives the exact frame count (by decoding the stream once), fps and size;
* :class:`VideoReader` gives random access by chunks of frames (input-side seek, bounded LRU
  cache) and a fast sequential iterator that decodes ahead in a background thread;
* :func:`lazy_video` wraps a reader as a dask array for napari;
* :func:`write_video` encodes frames with libx264 (tests and sample data).

Frames are always ``uint8`` RGB ``(H, W, 3)``, whatever the pixel format of the file. Frame
``i`` is the ``i``-th frame the decoder outputs, which is what annotation files index.

Seeking uses each frame's presentation timestamp, read once when the video is probed, so it is
exact on variable-frame-rate videos too (phone and screen recordings, dropped-frame captures):
a seek aims midway between frame ``i - 1`` and frame ``i``. Where timestamps go backwards, it
starts from an earlier frame that can be reached and counts frames from there.

File names always reach ffmpeg as ``file:<absolute path>``, so a name such as
``concat:a.mp4|b.mp4`` is read as the plain file it is, never through an ffmpeg protocol.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import subprocess
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import imageio_ffmpeg
import numpy as np

from ..errors import VideoError

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "lazy_video",
    "probe_video",
    "write_video",
]

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")

_REENCODE_HINT = (
    "If the file plays elsewhere, re-encode it, e.g. `ffmpeg -i input -c:v libx264 -pix_fmt yuv420p output.mp4`."
)


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder reports about a video file."""

    path: Path
    n_frames: int
    fps: float
    width: int
    height: int
    #: presentation time of every frame, in units of :attr:`time_base` seconds (None: the file gave none)
    pts: np.ndarray | None = field(default=None, compare=False, repr=False)
    time_base: float = 0.0

    @property
    def timestamps(self) -> np.ndarray | None:
        """Presentation time of every frame in seconds from the start of the video."""
        return None if self.pts is None else self.pts * self.time_base

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of the whole decoded video: ``(n_frames, height, width, 3)``."""
        return (self.n_frames, self.height, self.width, 3)


# --------------------------------------------------------------------------- ffmpeg helpers


def _passthrough_params() -> list[str]:
    # image2pipe is a constant-frame-rate muxer, so by default ffmpeg would duplicate or drop
    # frames to match the nominal rate; passthrough keeps exactly the decoded frames, which
    # is also what count_frames_and_secs counts. `-vsync` was removed in ffmpeg 8 and
    # `-fps_mode` only exists since 5.1.
    version = imageio_ffmpeg.get_ffmpeg_version()
    m = re.search(r"(\d+)\.(\d+)", version)
    if m and (int(m.group(1)), int(m.group(2))) < (5, 1):
        return ["-vsync", "passthrough"]
    return ["-fps_mode", "passthrough"]


_PASSTHROUGH: list[str] | None = None


def _output_params(extra: list[str] | None = None) -> list[str]:
    global _PASSTHROUGH
    if _PASSTHROUGH is None:
        _PASSTHROUGH = _passthrough_params()
    return ["-map", "0:v:0", *_PASSTHROUGH, *(extra or [])]


def _ffmpeg_input(path: Path) -> str:
    """The name ffmpeg reads ``path`` by: always the file protocol, never one a name could pick."""
    return "file:" + os.path.abspath(path)


_BANNER = re.compile(r"^(ffmpeg version|built with|configuration:|lib[a-z]+\s+\d|Copyright)")
_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def _short(err: BaseException, max_lines: int = 6) -> str:
    # ffmpeg errors carry the whole stderr; the last lines say what went wrong. The version
    # banner and the "[in#0 @ 0x...]" prefixes say nothing to a user.
    lines = []
    for ln in str(err).splitlines():
        ln = _LOG_PREFIX.sub("", ln.strip())
        if ln and not _BANNER.match(ln) and not ln.startswith(("===", "Could not load meta information")):
            lines.append(ln)
    return " | ".join(lines[-max_lines:]) if lines else type(err).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"Video file not found: {path}. Check the path (and the drive is mounted).")
    if path.is_dir():
        raise VideoError(f"{path} is a folder, not a video file. Choose a video file instead.")


def _seek_params(start: int, fps: float) -> list[str]:
    # Without timestamps: ffmpeg keeps the frames whose timestamp is >= the seek time. Aiming
    # a quarter frame early absorbs rounding of the time string, of container time bases (ms in
    # mkv) and of a nominal fps (29.97); not half a frame, which coarse time bases (avi: 1/fps)
    # round either way.
    if start <= 0:
        return []
    return ["-ss", f"{(start - 0.25) / fps:.6f}"]


def _seek(info: VideoInfo, start: int, stop: int) -> tuple[list[str], int]:
    """Input options that make ffmpeg's first output frame ``start - skip``, and ``skip``.

    ffmpeg decodes from the keyframe before the seek time, shifts timestamps by the seek time
    rounded to the stream's time base, and drops the frames that end up before zero. In time
    base units, a frame is kept when its pts is at least ``round(seek / time_base)``; so the
    seek aims at ``(latest earlier pts + pts of start) / 2 + 0.5``, the middle of the values that
    round into the right range, with room for the microsecond rounding of ``-ss``. Where
    timestamps go backwards (a damaged file), an earlier frame that such a seek does land on is
    chosen, and the frames up to ``start`` are skipped.
    """
    pts = info.pts
    if pts is None:
        return _seek_params(start, info.fps), 0
    if start <= 0:
        return [], 0
    tb = info.time_base
    margin = 0.5e-6 / tb + 1e-9  # -ss is read in whole microseconds
    latest_before = np.maximum.accumulate(pts[:start])  # [k - 1]: the latest pts of frames 0..k-1
    earliest_after = int(pts[start:stop].min())
    for k in range(start, 0, -1):
        earliest_after = min(earliest_after, int(pts[k]))
        before, here = int(latest_before[k - 1]), int(pts[k])
        if here - before <= 2 * margin:
            continue
        aim = (before + here) / 2 + 0.5
        # kept: pts >= round(aim +- margin); frames 0..k-1 must fall below, k and all after it above
        if aim - margin > 0 and aim - margin >= before + 0.5 and earliest_after >= math.floor(aim + margin + 0.5):
            return ["-ss", f"{aim * tb:.6f}"], start - k
    return [], start


# --------------------------------------------------------------------------- probing

_probe_cache: dict[tuple[str, int, int], VideoInfo] = {}
_probe_lock = threading.Lock()


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Return the exact frame count, fps and frame size of a video.

    The frame count is exact because the whole stream is decoded once (fast, no pixel
    conversion); results are cached in-process per (file, size, mtime), so probing the same
    unchanged file again is free.

    Raises:
        VideoError: the file is missing, is not a video, or has no decodable frames.
    """
    path = Path(path).expanduser()
    _check_file(path)
    key = _file_key(path)
    with _probe_lock:
        cached = _probe_cache.get(key)
    if cached is not None:
        return cached

    try:
        gen = imageio_ffmpeg.read_frames(
            _ffmpeg_input(path), input_params=["-hide_banner"], output_params=_output_params()
        )
        try:
            meta = next(gen)
        finally:
            gen.close()
    except (OSError, RuntimeError, StopIteration) as err:
        raise VideoError(
            f"Cannot open {path} as a video: ffmpeg says '{_short(err)}'. Is it really a "
            f"video file ({', '.join(VIDEO_SUFFIXES)})? {_REENCODE_HINT}"
        ) from err

    pts, time_base = _frame_pts(path)
    n_frames = len(pts)
    if not n_frames:
        raise VideoError(f"{path} contains no decodable video frames. {_REENCODE_HINT}")
    frame_pts = None if any(p is None for p in pts) else np.array(pts, dtype=np.int64)
    if frame_pts is None or time_base <= 0:
        frame_pts = None  # some frames carry no timestamp: seek by the frame rate
        secs = 0.0
    else:
        secs = float(frame_pts.max() - frame_pts.min()) * time_base

    fps = float(meta.get("fps") or 0.0)
    if not math.isfinite(fps) or fps <= 0:
        # Some containers carry no frame rate; seeking needs one, so derive it.
        fps = (n_frames - 1) / secs if secs > 0 else 0.0
    if not math.isfinite(fps) or fps <= 0:
        raise VideoError(f"{path} reports no frame rate, so frames cannot be located. {_REENCODE_HINT}")

    width, height = (int(v) for v in meta["size"])
    info = VideoInfo(
        path=path,
        n_frames=int(n_frames),
        fps=fps,
        width=width,
        height=height,
        pts=frame_pts,
        time_base=time_base if frame_pts is not None else 0.0,
    )
    with _probe_lock:
        _probe_cache[key] = info
    return info


_SHOWINFO = re.compile(rb"\sn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)\s")
_TIME_BASE = re.compile(rb"config in time_base:\s*(\d+)/(\d+)")


def _frame_pts(path: Path) -> tuple[list[int | None], float]:
    """Presentation timestamp of every frame the decoder outputs, in order, and their time base (s).

    One decoding pass without pixel conversion; the list's length is the exact frame count. A
    frame without a timestamp is None.
    """
    out = _run_showinfo(path, "showinfo=checksum=0")
    if out is None:  # an ffmpeg older than the checksum option
        out = _run_showinfo(path, "showinfo")
    assert out is not None
    tb = _TIME_BASE.search(out)
    time_base = int(tb.group(1)) / int(tb.group(2)) if tb and int(tb.group(2)) else 0.0
    found = _SHOWINFO.findall(out)
    if [int(n) for n, _ in found] != list(range(len(found))):
        raise VideoError(f"Cannot read the frame times of {path}; ffmpeg's report is not understood. {_REENCODE_HINT}")
    return [None if p == b"NOPTS" else int(p) for _, p in found], time_base


def _run_showinfo(path: Path, filter_: str) -> bytes | None:
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-i",
        _ffmpeg_input(path),
        "-map",
        "0:v:0",
        "-vf",
        filter_,
        *_output_params()[2:],
        "-f",
        "null",
        "-",
    ]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        if b"checksum" in proc.stderr and "checksum" in filter_:
            return None
        raise VideoError(
            f"Cannot count the frames of {path}: ffmpeg says "
            f"'{_short(RuntimeError(proc.stderr.decode('utf-8', 'replace')))}'. "
            f"The file may be truncated or corrupt. {_REENCODE_HINT}"
        )
    return proc.stderr


def _forget_probe(path: Path) -> None:
    resolved = str(path.resolve())
    with _probe_lock:
        for key in [k for k in _probe_cache if k[0] == resolved]:
            del _probe_cache[key]


# --------------------------------------------------------------------------- reader

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class VideoReader:
    """Random and sequential access to the frames of one video.

    ``read_chunk`` / ``get_frame`` / ``get_frames`` seek (one short ffmpeg run per chunk of
    ``chunk_size`` frames) and keep the last ``cache_chunks`` decoded chunks in a thread-safe
    LRU cache, so memory stays bounded whatever the video length. ``iter_frames`` decodes
    sequentially in a background thread, which is much faster for whole-video passes.

    Returned arrays are read-only (they may be views into the cache); ``.copy()`` them to edit.

    Args:
        path: the video file.
        chunk_size: frames per random-access chunk (and per dask block in :func:`lazy_video`).
        cache_chunks: how many decoded chunks to keep.
    """

    def __init__(self, path: str | Path, chunk_size: int = 8, cache_chunks: int = 16) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if cache_chunks < 1:
            raise ValueError(f"cache_chunks must be >= 1, got {cache_chunks}")
        self.info: VideoInfo = probe_video(path)
        self.path: Path = self.info.path
        self.chunk_size = int(chunk_size)
        self.cache_chunks = int(cache_chunks)
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        # Chunks being decoded right now, so concurrent dask workers asking for the same
        # chunk wait for one decode instead of starting several ffmpeg processes.
        self._pending: dict[int, threading.Event] = {}
        self._stops: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        self._closed = False

    # -- properties

    @property
    def n_frames(self) -> int:
        """Number of frames in the video."""
        return self.info.n_frames

    @property
    def n_chunks(self) -> int:
        """Number of random-access chunks (the last one may be partial)."""
        return -(-self.info.n_frames // self.chunk_size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(n_frames, height, width, 3)``."""
        return self.info.shape

    def cached_chunks(self) -> list[int]:
        """Indices of the chunks currently in the cache, least recently used first."""
        with self._lock:
            return list(self._cache)

    def __len__(self) -> int:
        return self.info.n_frames

    def __repr__(self) -> str:
        i = self.info
        return (
            f"VideoReader({str(i.path)!r}, {i.n_frames} frames, {i.width}x{i.height}, "
            f"{i.fps:g} fps, chunk_size={self.chunk_size})"
        )

    # -- lifecycle

    def close(self) -> None:
        """Drop the cache and stop running ``iter_frames`` decoders. Further reads fail."""
        self._closed = True
        with self._lock:
            self._cache.clear()
            stops = list(self._stops)
        for ev in stops:
            ev.set()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # Locks and cached pixels do not travel (e.g. to dask worker processes).
        return {"path": self.path, "chunk_size": self.chunk_size, "cache_chunks": self.cache_chunks}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, state["path"], state["chunk_size"], state["cache_chunks"])

    def _check_open(self) -> None:
        if self._closed:
            raise VideoError(f"The reader of {self.path} is closed; open a new VideoReader.")

    def _check_index(self, index: int, n: int, what: str) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"{what} index must be an integer, got {type(index).__name__}")
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise VideoError(
                f"{what} index {index} is out of range for {self.path.name}, which has {n} "
                f"{what}s (valid: 0..{n - 1}). Check the index against the video length."
            )
        return index

    # -- random access

    def read_chunk(self, index: int) -> np.ndarray:
        """Decode (or fetch from cache) chunk ``index``: frames ``[index*chunk_size, ...)``.

        Returns a read-only ``(n, H, W, 3)`` uint8 array; ``n == chunk_size`` except for the
        last chunk.
        """
        self._check_open()
        index = self._check_index(index, self.n_chunks, "chunk")
        while True:
            with self._lock:
                chunk = self._cache.get(index)
                if chunk is not None:
                    self._cache.move_to_end(index)
                    return chunk
                waiter = self._pending.get(index)
                if waiter is None:
                    done = self._pending[index] = threading.Event()
                    break
            # Someone else is decoding this chunk; on their failure we retry ourselves.
            waiter.wait()
        try:
            start = index * self.chunk_size
            stop = min(start + self.chunk_size, self.info.n_frames)
            chunk = self._decode_range(start, stop)
            chunk.flags.writeable = False
            with self._lock:
                if not self._closed:
                    self._cache[index] = chunk
                    while len(self._cache) > self.cache_chunks:
                        self._cache.popitem(last=False)
            return chunk
        finally:
            with self._lock:
                del self._pending[index]
            done.set()

    def _run_ffmpeg(self, input_params: list[str], extra_output: list[str], count: int) -> list:
        frames = []
        gen = imageio_ffmpeg.read_frames(
            _ffmpeg_input(self.path),
            input_params=["-hide_banner", *input_params],
            output_params=_output_params(extra_output),
        )
        try:
            meta = next(gen)
            w, h = meta["size"]
            if (w, h) != (self.info.width, self.info.height):
                raise VideoError(
                    f"{self.path} decodes at {w}x{h} but was probed at "
                    f"{self.info.width}x{self.info.height}; was the file replaced? "
                    "Open it again."
                )
            for raw in gen:
                frames.append(raw)
                if len(frames) == count:
                    break
        except (OSError, RuntimeError) as err:
            raise VideoError(
                f"Decoding {self.path} failed: ffmpeg says '{_short(err)}'. The file may be "
                f"truncated or corrupt. {_REENCODE_HINT}"
            ) from err
        finally:
            gen.close()
        return frames

    def _decode_range(self, start: int, stop: int) -> np.ndarray:
        count = stop - start
        input_params, skip = _seek(self.info, start, stop)
        frames = self._run_ffmpeg(input_params, ["-frames:v", str(count + skip)], count + skip)[skip:]
        if len(frames) < count:
            # Timestamps that do not follow the nominal fps (variable frame rate, broken
            # index) can defeat time seeking; select by decode index instead: slow (decodes
            # from the start) but exact.
            logger.warning(
                "Seeking in %s returned %d of %d frames at frame %d; falling back to a decode from the start.",
                self.path,
                len(frames),
                count,
                start,
            )
            frames = self._run_ffmpeg(
                [],
                ["-vf", f"select=between(n\\,{start}\\,{stop - 1})", "-frames:v", str(count)],
                count,
            )
        if len(frames) < count:
            raise VideoError(
                f"{self.path} yielded only {len(frames)} of frames {start}..{stop - 1}; the "
                f"file may be truncated or its frame count unreliable. {_REENCODE_HINT}"
            )
        return self._to_array(frames)

    def _to_array(self, frames: list) -> np.ndarray:
        h, w = self.info.height, self.info.width
        nbytes = h * w * 3
        for raw in frames:
            # rgb24 frames have no row padding; anything else means a size mismatch.
            if len(raw) != nbytes:
                raise VideoError(
                    f"{self.path}: a decoded frame has {len(raw)} bytes, expected {nbytes} for "
                    f"{w}x{h} RGB. {_REENCODE_HINT}"
                )
        return np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), h, w, 3)

    def get_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative counts from the end) as a read-only ``(H, W, 3)`` array."""
        index = self._check_index(index, self.info.n_frames, "frame")
        chunk = self.read_chunk(index // self.chunk_size)
        return chunk[index % self.chunk_size]

    def get_frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start <= i < stop`` as a read-only ``(stop - start, H, W, 3)`` array."""
        n = self.info.n_frames
        if not (0 <= start <= stop <= n):
            raise VideoError(
                f"Frame range {start}:{stop} is out of range for {self.path.name}, which has "
                f"{n} frames. Use 0 <= start <= stop <= {n}."
            )
        if start == stop:
            return np.empty((0, self.info.height, self.info.width, 3), np.uint8)
        cs = self.chunk_size
        first, last = start // cs, (stop - 1) // cs
        if first == last:
            return self.read_chunk(first)[start - first * cs : stop - first * cs]
        parts = [self.read_chunk(c) for c in range(first, last + 1)]
        out = np.concatenate(parts)[start - first * cs : stop - first * cs]
        out.flags.writeable = False
        return out

    def __getitem__(self, index: int) -> np.ndarray:
        return self.get_frame(index)

    # -- sequential access

    def iter_frames(
        self, start: int = 0, stop: int | None = None, prefetch: int = 32
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for ``start <= index < stop``, decoding ahead in a thread.

        One ffmpeg process decodes sequentially from ``start`` (no per-chunk seeks) and a
        daemon thread keeps up to ``prefetch`` frames queued ahead of the consumer. Leaving
        the loop early (``break``, ``.close()``, an exception) stops the thread and ffmpeg.
        Frames are read-only and bypass the random-access cache.

        Raises:
            VideoError: bad range, or decoding failed (raised here, in the consumer).
        """
        stop = self._checked_range(start, stop)
        return self._iter(start, stop, max(1, int(prefetch)))

    def iter_frames_reversed(
        self, start: int = 0, stop: int | None = None, chunk: int = 32
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for ``stop > index >= start``, last frame first.

        Decoding runs forward, so the range is decoded in chunks of ``chunk`` frames from its end,
        each one reversed: memory holds one chunk, and each chunk costs one seek.
        """
        stop = self._checked_range(start, stop)
        return self._iter_reversed(start, stop, max(1, int(chunk)))

    def _checked_range(self, start: int, stop: int | None) -> int:
        """``stop`` (None: the end) once ``start:stop`` is known to lie within the video; VideoError if not."""
        self._check_open()
        n = self.info.n_frames
        stop = n if stop is None else stop
        if not (0 <= start <= stop <= n):
            raise VideoError(
                f"Frame range {start}:{stop} is out of range for {self.path.name}, which has "
                f"{n} frames. Use 0 <= start <= stop <= {n}."
            )
        return stop

    def _iter_reversed(self, start: int, stop: int, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
        hi = stop
        while hi > start:
            lo = max(start, hi - chunk)
            frames = list(self._iter(lo, hi, chunk))
            yield from reversed(frames)
            hi = lo

    def _iter(self, start: int, stop: int, prefetch: int) -> Iterator[tuple[int, np.ndarray]]:
        if start == stop:
            return
        q: queue.Queue = queue.Queue(maxsize=prefetch)
        stop_event = threading.Event()
        with self._lock:
            self._stops.add(stop_event)
        thread = threading.Thread(
            target=self._produce,
            args=(start, stop, q, stop_event),
            name=f"dinotrack-decode-{self.path.name}",
            daemon=True,
        )
        thread.start()
        index = start
        try:
            while index < stop:
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    # The producer always ends with a sentinel, unless it was stopped by
                    # close(); never wait on a dead thread.
                    if thread.is_alive() or not q.empty():
                        continue
                    if self._closed:
                        raise VideoError(f"The reader of {self.path} was closed while iterating.") from None
                    break
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    if isinstance(item.exc, VideoError):
                        raise item.exc
                    raise VideoError(
                        f"Decoding {self.path} failed at frame {index}: '{_short(item.exc)}'. "
                        f"The file may be truncated or corrupt. {_REENCODE_HINT}"
                    ) from item.exc
                yield index, item
                index += 1
        finally:
            stop_event.set()
            # Free a producer blocked on a full queue right away (it also polls the event).
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            thread.join(timeout=5.0)

    def _produce(self, start: int, stop: int, q: queue.Queue, stop_event: threading.Event) -> None:
        def put(item: object) -> bool:
            while not stop_event.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        h, w = self.info.height, self.info.width
        nbytes = h * w * 3
        count = stop - start
        input_params, skip = _seek(self.info, start, stop)
        produced = 0
        try:
            gen = imageio_ffmpeg.read_frames(
                _ffmpeg_input(self.path),
                input_params=["-hide_banner", *input_params],
                output_params=_output_params(["-frames:v", str(count + skip)]),
            )
            try:
                meta = next(gen)
                if tuple(meta["size"]) != (w, h):
                    raise VideoError(
                        f"{self.path} decodes at {meta['size'][0]}x{meta['size'][1]} but was "
                        f"probed at {w}x{h}; was the file replaced? Open it again."
                    )
                for raw in gen:
                    if stop_event.is_set():
                        return
                    if skip:  # frames before ``start`` that the seek could not avoid
                        skip -= 1
                        continue
                    if len(raw) != nbytes:
                        raise VideoError(
                            f"{self.path}: a decoded frame has {len(raw)} bytes, expected "
                            f"{nbytes} for {w}x{h} RGB. {_REENCODE_HINT}"
                        )
                    frame = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
                    if not put(frame):
                        return
                    produced += 1
                    # The container may hold more frames than counted: ignore them.
                    if produced >= count:
                        break
            finally:
                # Closing the generator closes ffmpeg's pipes and reaps the process.
                gen.close()
            if produced < count:
                logger.warning(
                    "%s ended after %d frames, %d expected from frame %d.",
                    self.path,
                    start + produced,
                    stop,
                    start,
                )
            put(_END)
        except BaseException as exc:
            put(_Failure(exc))


# --------------------------------------------------------------------------- dask


def lazy_video(source: str | Path | VideoReader, chunk_size: int | None = None) -> da.Array:
    """A lazy ``(T, H, W, 3)`` uint8 dask array over a video, for napari.

    Each block of ``chunk_size`` frames is one :meth:`VideoReader.read_chunk` call, so
    scrubbing back and forth hits the reader's LRU cache; the graph keeps the reader alive.

    Args:
        source: a video path, or an open :class:`VideoReader` to share its cache.
        chunk_size: frames per block; defaults to the reader's chunk size (8 for a path).
    """
    reader = source if isinstance(source, VideoReader) else VideoReader(source, chunk_size=chunk_size or 8)
    cs = int(chunk_size or reader.chunk_size)
    if cs < 1:
        raise ValueError(f"chunk_size must be >= 1, got {cs}")
    info = reader.info
    n = info.n_frames
    starts = range(0, n, cs)
    sizes = tuple(min(cs, n - s) for s in starts)
    try:
        key = _file_key(info.path)
    except OSError:
        key = (str(info.path), 0, 0)
    from dask.base import tokenize

    name = f"video-{info.path.stem}-{tokenize(key, cs, id(reader))}"
    dsk: dict[tuple[str, int, int, int, int], tuple[Any, ...]]
    if cs == reader.chunk_size:
        dsk = {(name, i, 0, 0, 0): (reader.read_chunk, i) for i in range(len(sizes))}
    else:
        # Blocks that straddle reader chunks still go through its cache.
        dsk = {
            (name, i, 0, 0, 0): (reader.get_frames, s, s + size)
            for i, (s, size) in enumerate(zip(starts, sizes, strict=True))
        }
    chunks = (sizes, (info.height,), (info.width,), (3,))
    return da.Array(dsk, name, chunks, dtype=np.uint8)


# --------------------------------------------------------------------------- writing


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 10.0,
    quality: float = 10,
    chroma: str = "444",
    keyframe_interval: int | None = None,
) -> Path:
    """Encode ``(T, H, W, 3)`` (or grayscale ``(T, H, W)``) uint8 frames to an H.264 file.

    ``chroma="444"`` (yuv444p, no macro-block padding) keeps any size, odd ones too, and with
    ``quality=10`` is near-lossless; ``chroma="420"`` is what cameras and most encoders produce
    (even sizes only). Meant for tests, sample data and benchmarks.

    Returns:
        The path written.
    """
    path = Path(path)
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_video needs uint8 frames, got {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(
            f"write_video needs frames shaped (T, H, W, 3) or (T, H, W) with T >= 1, got {np.asarray(frames).shape}"
        )
    _, h, w, _ = arr.shape
    if chroma not in ("444", "420"):
        raise ValueError(f"chroma must be '444' or '420', got {chroma!r}")
    try:
        writer = imageio_ffmpeg.write_frames(
            _ffmpeg_input(path),
            (w, h),
            fps=fps,
            codec="libx264",
            quality=quality,
            pix_fmt_out="yuv444p" if chroma == "444" else "yuv420p",
            macro_block_size=1 if chroma == "444" else 2,
            output_params=["-g", str(keyframe_interval)] if keyframe_interval else None,
        )
        writer.send(None)  # start ffmpeg
        try:
            for frame in arr:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
    except (OSError, RuntimeError) as err:
        raise VideoError(f"Writing {path} failed: ffmpeg says '{_short(err)}'.") from err
    _forget_probe(path)
    return path
