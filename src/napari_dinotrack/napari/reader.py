"""napari reader: videos (lazily decoded) with their tracking results, and result folders.

* ``mouse.mp4`` (``.avi``, ``.mov``, ``.mkv``) -> a lazy RGB Image layer named ``mouse``; if
  the result folder ``mouse/`` exists, also the keypoints Points layer, and a Labels layer when
  it holds masks.
* a result folder of ``<stem>_<frame:09d>.json`` files (Annolid / LabelMe) -> the keypoints
  Points layer only.

:func:`get_reader` decides from the path alone (suffix, or a cheap folder listing) and returns
None for anything else; it never raises.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["get_reader", "read_result_folder", "read_video", "video_layer_data"]

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[str | list[str]], list[LayerData]]

#: Keep in sync with napari.yaml; io.video.VIDEO_SUFFIXES is the engine's list.
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
_FRAME_JSON = re.compile(r"^(?P<prefix>.+)_(?P<frame>\d{9})\.json$")

#: metadata key under which the plugin keeps its per-layer information
META_KEY = "dinotrack"


def _single_path(path: str | list[str] | tuple[str, ...]) -> Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        return Path(path)
    except TypeError:
        return None


def _is_result_folder(path: Path) -> bool:
    try:
        return path.is_dir() and any(_FRAME_JSON.match(p.name) for p in path.iterdir())
    except OSError:
        return False


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """Return a reader for a video file or a result folder, else None (cheap; never raises)."""
    p = _single_path(path)
    if p is None:
        return None
    if p.suffix.lower() in _VIDEO_SUFFIXES and not p.is_dir():
        return read_video
    if _is_result_folder(p):
        return read_result_folder
    return None


def video_layer_data(path: str | Path, extra_meta: dict[str, Any] | None = None) -> LayerData:
    """The lazy RGB Image LayerDataTuple of a video (``rgb=True``, name = the video's stem)."""
    from ..io.video import lazy_video, probe_video

    path = Path(path)
    info = probe_video(path)
    meta = {
        "video_path": str(path),
        "n_frames": info.n_frames,
        "fps": info.fps,
        "height": info.height,
        "width": info.width,
        **(extra_meta or {}),
    }
    return (
        lazy_video(path),
        {"name": path.stem, "rgb": True, "metadata": {META_KEY: meta}, "axis_labels": ("t", "y", "x")},
        "image",
    )


def _result_layers(
    layout: Any, n_frames: int, height: int, width: int, video_path: str | None, name_stem: str
) -> list[LayerData]:
    from ..io.labelme import load_annotations
    from ..io.mask_store import MaskStore, lazy_labels
    from .layer_styles import keypoints_layer_data

    layers: list[LayerData] = []
    meta: dict[str, Any] = {"video_path": video_path, "result_folder": str(layout.folder)}
    annotations = load_annotations(layout)
    if annotations:
        first = next(iter(annotations.values()))
        meta.update(height=first.image_height, width=first.image_width)
        layers.append(keypoints_layer_data(annotations, f"{name_stem} keypoints", {META_KEY: meta}))
    store = MaskStore(layout.masks_dir)
    if n_frames and store.frames():
        labels = lazy_labels(store, n_frames, height, width)
        layers.append((labels, {"name": f"{name_stem} masks", "opacity": 0.4, "metadata": {META_KEY: meta}}, "labels"))
    return layers


def read_video(path: str | list[str]) -> list[LayerData]:
    """Layers of a video file: the lazy Image, plus keypoints/masks from its result folder."""
    from ..io.paths import ResultLayout

    p = _single_path(path)
    if p is None:
        return []
    image = video_layer_data(p)
    layers = [image]
    meta = image[1]["metadata"][META_KEY]
    layout = ResultLayout(p)
    if layout.folder.is_dir():
        meta["result_folder"] = str(layout.folder)
        try:
            layers += _result_layers(layout, meta["n_frames"], meta["height"], meta["width"], str(p), p.stem)
        except (OSError, ValueError) as exc:  # a broken label file must not hide the video
            from napari.utils.notifications import show_warning

            show_warning(f"Opened {p.name} without its results: {exc}")
    return layers


def _sibling_video(folder: Path, prefix: str) -> Path | None:
    for stem in dict.fromkeys((folder.name, prefix)):
        for suffix in _VIDEO_SUFFIXES:
            for candidate in (folder.parent / f"{stem}{suffix}", folder.parent / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def read_result_folder(path: str | list[str]) -> list[LayerData]:
    """Keypoints of a result folder of ``<stem>_<frame:09d>.json`` files (points only).

    The video next to the folder (``<folder>.mp4`` etc.), if any, is remembered in the layer's
    metadata so the tracker widget can find it; it is not opened.
    """
    from ..io.paths import ResultLayout

    p = _single_path(path)
    if p is None:
        return []
    prefixes = sorted({m.group("prefix") for m in map(_FRAME_JSON.match, (q.name for q in p.iterdir())) if m})
    if not prefixes:
        return []
    prefix = p.name if p.name in prefixes else prefixes[0]
    video = _sibling_video(p, prefix)
    layout = ResultLayout(video or p.parent / f"{prefix}.mp4", result_folder=p)
    return _result_layers(layout, 0, 0, 0, str(video) if video else None, prefix)
