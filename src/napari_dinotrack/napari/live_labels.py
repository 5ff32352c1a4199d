"""A label volume a Labels layer can show while a run adds frames to it, and the user paints on it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["LiveLabels"]


class LiveLabels:
    """A ``(T, H, W)`` label volume: recent frames from memory, the rest from ``base``.

    napari slices it like an array (``shape``, ``dtype``, ``ndim``, ``__getitem__``). While a
    run is going, :meth:`update` stores each new frame's label image (a bounded LRU of
    ``max_frames``); frames not in memory come from ``base`` (e.g. the lazy on-disk mask
    store), or zeros. Painting works too (``__setitem__``, as napari's Labels layer does it):
    painted frames stay in memory until :meth:`clear_edited` and are listed by
    :meth:`edited_frames`, so they can be saved. Thread-safe.
    """

    def __init__(
        self, n_frames: int, height: int, width: int, base: Any = None, dtype: Any = np.uint16, max_frames: int = 64
    ) -> None:
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

    def forget(self, frames: Iterable[int]) -> None:
        """Drop these frames from memory (their files changed); painted frames are kept."""
        with self._lock:
            for t in frames:
                self._frames.pop(int(t), None)

    def frames_in_memory(self) -> list[int]:
        """Frames currently served from memory (painted ones included)."""
        with self._lock:
            return sorted(set(self._frames) | set(self._edited))

    def edited_frames(self) -> list[int]:
        """Frames the user painted on."""
        with self._lock:
            return sorted(self._edited)

    def clear_edited(self, frames: Iterable[int] | None = None) -> None:
        """The paint edits (all, or of ``frames``) were saved: they stop being edits but stay shown.

        A numpy ``base`` (the layer the user painted in) takes them over; otherwise (the base is the
        mask store, which now has them) they stay in memory until evicted.
        """
        with self._lock:
            for t in list(self._edited) if frames is None else frames:
                painted = self._edited.pop(int(t), None)
                if painted is None:
                    continue
                if isinstance(self.base, np.ndarray) and self.base.flags.writeable:
                    self.base[int(t)] = painted
                    self._frames.pop(int(t), None)
                else:
                    self._frames[int(t)] = painted
                    self._frames.move_to_end(int(t))

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
                out[sel] = self.frame(int(t))[
                    tuple(np.asarray(k)[sel] if isinstance(k, np.ndarray | list) else k for k in rest)
                ]
            return out
        frames = range(*tkey.indices(self.shape[0])) if isinstance(tkey, slice) else [int(t) for t in np.asarray(tkey)]
        stack = [self.frame(t)[rest] for t in frames]
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
