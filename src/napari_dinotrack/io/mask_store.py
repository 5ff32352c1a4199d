"""Instance masks on disk and as outlines.

Masks are the heaviest thing a tracking run produces, so they are stored one lossless PNG label
image per frame (``<frame:09d>.png``: 0 = background, ``k`` = the instance that ``instances.json``
maps to ``k``) rather than as one big array. Label values are stable for the whole result folder:
an animal keeps its value on every frame, which keeps the colours of a napari Labels layer steady.
Reading back is lazy (:func:`lazy_labels`), so memory does not grow with the video's length.
"""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..errors import OutputError
from .atomic import atomic_write_bytes, atomic_write_text, output_error

if TYPE_CHECKING:
    import dask.array
    from dask.typing import Key

__all__ = ["MaskStore", "lazy_labels", "mask_to_polygon", "polygon_to_mask"]

# A label image is mostly runs of one value: PNG's per-row filters (tried in turn by default) cost
# most of the encoding time and do nothing for it, and run-length deflate makes the smallest files.
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_NONE,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
]
# fillPoly works on fixed-point vertices; 4 fractional bits keep sub-pixel vertices in place
# instead of snapping each one to the nearest pixel (which shifts thin outlines by up to 0.5 px).
_POLY_SHIFT = 4
_FRAME_FILE = re.compile(r"^(\d{9})\.png$")


def polygon_to_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise an outline (N, 2) of x/y pixel coordinates to an (H, W) bool mask.

    Coordinates are pixel centres (the convention of ``cv2.findContours``), so an outline taken
    from a mask fills back the same pixels. Fewer than 3 vertices give an empty mask.
    """
    mask = np.zeros((int(height), int(width)), np.uint8)
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    if len(poly) < 3 or not np.all(np.isfinite(poly)):
        return mask.astype(bool)
    pts = np.round(poly * (1 << _POLY_SHIFT)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_POLY_SHIFT)
    return mask.astype(bool)


def mask_to_polygon(mask: np.ndarray, tolerance_frac: float = 0.003) -> np.ndarray:
    """Outline (N, 2) float32 x/y of the largest connected component of ``mask``.

    The outline is simplified with Douglas-Peucker at ``tolerance_frac`` of its perimeter.
    An empty mask gives a (0, 2) array; a component one or two pixels across may give fewer
    than 3 points.
    """
    m = np.asarray(mask).astype(np.uint8)
    if m.ndim != 2 or not m.any():
        return np.zeros((0, 2), np.float32)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    # Choose by pixel count, not contour area: a 1-pixel-wide component has zero contour area.
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if n > 2:
        m = (labels == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len)
    epsilon = float(tolerance_frac) * cv2.arcLength(contour, True)
    if epsilon > 0 and len(contour) > 3:
        simplified = cv2.approxPolyDP(contour, epsilon, True)
        if len(simplified) >= 3:
            contour = simplified
    return contour.reshape(-1, 2).astype(np.float32)


class MaskStore:
    """Per-frame instance label images in one folder (usually ``ResultLayout.masks_dir``).

    Every write is atomic, so a reader (the napari layer) never sees a half-written frame, and
    a crash mid-run leaves only complete frames behind. One writer per folder at a time: the
    instance table is read, extended and replaced without a lock.
    """

    INDEX_FILE = "instances.json"

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self._names: list[str] = []  # label k + 1 -> name, as last read from the folder
        self._names_read: tuple[int, int, int] | None = None  # the instance table's version read into _names

    @staticmethod
    def writes(name: str) -> bool:
        """Whether ``name`` is a file a mask store writes (tells its files from others')."""
        return name == MaskStore.INDEX_FILE or _FRAME_FILE.match(name) is not None

    def _make_folder(self) -> None:
        """Create the folder; never write through a link someone put in its place."""
        if self.folder.is_symlink():
            raise OutputError(
                self.folder,
                "is a symbolic link, and masks are only written into a real folder",
                "Remove the link (what it points to is left alone) and run again.",
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError(self.folder, "is a file, not a folder", "Move that file away and run again.") from None
        except OSError as exc:
            raise output_error(self.folder, exc) from None

    # --- instance table -----------------------------------------------------------------
    def _load_names(self) -> list[str]:
        path = self.folder / self.INDEX_FILE
        try:
            st = path.stat()
        except FileNotFoundError:
            self._names_read = None
            return []
        version = (st.st_mtime_ns, st.st_size, st.st_ino)
        if version == self._names_read:
            return self._names  # the table is written atomically: same version, same names
        table = json.loads(path.read_text(encoding="utf-8"))
        by_value = {int(k): str(v) for k, v in table.items()}
        if sorted(by_value) != list(range(1, len(by_value) + 1)):
            raise ValueError(f"{path}: label values must be 1..N, got {sorted(by_value)}")
        self._names_read = version
        return [by_value[k] for k in range(1, len(by_value) + 1)]

    def names(self) -> list[str]:
        """All instance names seen so far; the name at position ``k`` has label value ``k + 1``."""
        self._names = self._load_names()
        return list(self._names)

    def _register(self, names: list[str]) -> list[str]:
        # re-read first: another MaskStore on the same folder may have added names since
        self._names = self._load_names()
        new = [n for n in dict.fromkeys(names) if n not in self._names]
        if new:
            self._names = self._names + new
            table = {str(k + 1): n for k, n in enumerate(self._names)}
            atomic_write_text(self.folder / self.INDEX_FILE, json.dumps(table, indent=1))
            self._names_read = None
        return self._names

    # --- frames -------------------------------------------------------------------------
    def path(self, frame: int) -> Path:
        """File of ``frame`` (it may not exist)."""
        return self.folder / f"{int(frame):09d}.png"

    def write(self, frame: int, masks: np.ndarray, names: list[str]) -> Path:
        """Store the (I, H, W) bool ``masks`` of instances ``names`` for ``frame``.

        Where masks overlap, the instance listed first wins. Names not seen before get the
        next free label values.
        """
        masks = np.asarray(masks).astype(bool, copy=False)
        if masks.ndim != 3 or masks.shape[0] != len(names):
            raise ValueError(f"expected ({len(names)}, H, W) masks, got shape {masks.shape}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate instance names: {names}")
        self._make_folder()
        table = self._register(list(names))
        if len(table) > np.iinfo(np.uint16).max:
            raise ValueError(f"too many instances for a 16-bit label image: {len(table)}")
        dtype = np.uint8 if len(table) < 255 else np.uint16
        labels = np.zeros(masks.shape[1:], dtype)
        rows = np.flatnonzero(masks.any(axis=(0, 2)))
        if len(rows):  # animals cover a small part of the frame: paint the rows they are in
            box = labels[rows[0] : rows[-1] + 1]
            # painting in reverse order lets the lower index overwrite the higher one on overlaps
            for i in range(len(names) - 1, -1, -1):
                np.putmask(box, masks[i, rows[0] : rows[-1] + 1], table.index(names[i]) + 1)
        ok, png = cv2.imencode(".png", labels, _PNG_PARAMS)
        if not ok:
            raise OSError(f"could not encode the masks of frame {frame}")
        return atomic_write_bytes(self.path(frame), png.tobytes())

    def read(self, frame: int) -> tuple[np.ndarray, list[str]] | None:
        """(label image (H, W), names) of ``frame``, or None if it has no masks.

        ``names[k]`` is the instance with label value ``k + 1``.
        """
        labels = self.read_labels(frame)
        return None if labels is None else (labels, self.names())

    def read_labels(self, frame: int) -> np.ndarray | None:
        """Just the (H, W) label image of ``frame``, or None (skips the instance table)."""
        path = self.path(frame)
        if not path.exists():
            return None
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise OSError(f"unreadable mask file {path}")
        return labels

    def read_masks(self, frame: int, names: list[str]) -> np.ndarray | None:
        """(I, H, W) bool masks of ``names`` at ``frame`` (all-False for unknown names), or None."""
        got = self.read(frame)
        if got is None:
            return None
        labels, known = got
        out = np.zeros((len(names), *labels.shape), bool)
        for i, name in enumerate(names):
            if name in known:
                out[i] = labels == known.index(name) + 1
        return out

    def frames(self) -> list[int]:
        """Frames that have a mask file, sorted."""
        if not self.folder.is_dir():
            return []
        found = (_FRAME_FILE.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)


def lazy_labels(
    store: MaskStore, n_frames: int, height: int, width: int, dtype: np.dtype | type | None = None
) -> dask.array.Array:
    """(T, H, W) dask array of the store's label images, zeros where a frame has none.

    One task per frame, each reading its PNG only when computed, so no pixel memory is held and
    frames written after this call show up on the next read. ``dtype`` defaults to uint8, or
    uint16 once the store knows 255 or more instances.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    if dtype is None:
        dtype = np.uint8 if len(store.names()) < 255 else np.uint16
    dtype = np.dtype(dtype)
    shape = (int(height), int(width))
    n_frames = int(n_frames)
    # A fresh name per call: the files change while tracking runs, so equal-looking graphs must
    # never be merged or cached as one. A plain task dict (~260 bytes a frame) builds and slices
    # faster than map_blocks/from_array, whose per-block bookkeeping takes seconds at 10^5 frames.
    name = f"dinotrack-mask-labels-{uuid.uuid4().hex}"
    load = functools.partial(_load_label_frame, store, shape, dtype)
    dsk: dict[Key, Any] = {(name, t, 0, 0): (load, t) for t in range(n_frames)}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks=((1,) * n_frames, (shape[0],), (shape[1],)), dtype=dtype)


def _load_label_frame(store: MaskStore, shape: tuple[int, int], dtype: np.dtype, frame: int) -> np.ndarray:
    labels = store.read_labels(frame)
    if labels is None:
        return np.zeros((1, *shape), dtype)
    if labels.shape != shape:
        raise ValueError(
            f"mask of frame {frame} is {labels.shape[1]}x{labels.shape[0]}, expected {shape[1]}x{shape[0]}"
        )
    return labels.astype(dtype, copy=False)[None]
