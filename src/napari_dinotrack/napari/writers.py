"""napari writers: the keypoints Points layer saved as DeepLabCut ``.h5``/``.csv`` or movement ``.nc``.

File → Save Selected Layers (Ctrl+S) with the keypoints layer selected offers these formats. The
layer's rows ``(t, y, x)`` and features (``instance``, ``keypoint``, ``visible``, ``score``) go
through movement like ``napari-dinotrack export``: every frame of the video (when the layer knows
its video), hidden points NaN, scores as confidence, the result folder's skeleton where the format
keeps one. Saving writes only the chosen file; the result folder and its manual frames are never
touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .reader import META_KEY

__all__ = ["write_dlc_csv", "write_dlc_h5", "write_netcdf"]


def _write(path: str, data: Any, meta: dict[str, Any], to: str) -> list[str]:
    from ..exchange.dataset import points_dataset
    from ..exchange.export import write_dataset
    from ..exchange.skeleton import read_skeleton
    from ..io.paths import ResultLayout
    from ..io.video import probe_video

    info = meta.get("metadata", {}).get(META_KEY, {})
    video, folder = info.get("video_path"), info.get("result_folder")
    video_info = probe_video(video) if video and Path(video).is_file() else None
    attrs = {"video_path": video}
    if video_info is not None:
        attrs.update(frame_height=video_info.height, frame_width=video_info.width)
    ds = points_dataset(
        data,
        meta.get("features", {}),
        n_frames=video_info.n_frames if video_info else None,
        fps=video_info.fps if video_info else None,
        attrs=attrs,
    )
    keypoints = {str(k) for k in ds["keypoints"].values}
    edges = []
    if video:
        edges = [e for e in read_skeleton(ResultLayout(video, folder)) if set(e) <= keypoints]
    return [str(p) for p in write_dataset(ds, to, path, edges=edges)]


def write_dlc_h5(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save a keypoints layer as a DeepLabCut ``.h5`` (multi-animal layout, likelihood = score)."""
    return _write(path, data, meta, "dlc")


def write_dlc_csv(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save a keypoints layer as a DeepLabCut ``.csv``."""
    return _write(path, data, meta, "dlc")


def write_netcdf(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save a keypoints layer as a movement poses dataset (``.nc``), which movement's own napari widget opens."""
    return _write(path, data, meta, "netcdf")
