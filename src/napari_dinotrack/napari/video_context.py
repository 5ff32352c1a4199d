"""Which video the dock works on, where its results are, and its frame size, read from the chosen layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .viewer_layers import layer_meta

if TYPE_CHECKING:
    from ..io.paths import ResultLayout

__all__ = ["VideoContext", "video_context"]


@dataclass
class VideoContext:
    """Where the current video and its results are, and the frame geometry."""

    video_path: Path
    layout: ResultLayout
    result_folder: str | None
    n_frames: int
    height: int
    width: int

    @property
    def stem(self) -> str:
        return self.video_path.stem


def video_context(image: Any, points: Any) -> VideoContext:
    """The context of the video Image layer and the keypoints Points layer; UserError if unknown.

    The video path comes from the layers' plugin metadata (the image's wins), else from the file
    napari opened the image from; the frame size from the image, else from the metadata (a result
    folder opened without its video).
    """
    from ..io.paths import ResultLayout

    meta = {**layer_meta(points), **layer_meta(image)}
    path = meta.get("video_path")
    if not path and image is not None:
        src = getattr(getattr(image, "source", None), "path", None)
        path = str(src) if src else None
    if not path:
        raise UserError(
            "Open a video first (File → Open, or File → Open Sample → napari-dinotrack), "
            "and choose it as the video layer."
        )
    result_folder = meta.get("result_folder")
    video_path = Path(path)
    if result_folder and Path(result_folder) == video_path.parent / video_path.stem:
        result_folder = None  # the default folder: let ResultLayout derive it
    layout = ResultLayout(video_path, result_folder)
    if image is not None:
        shape = image.data.shape
        n, h, w = int(shape[0]), int(shape[1]), int(shape[2])
    else:
        n, h, w = int(meta.get("n_frames", 0)), int(meta.get("height", 0)), int(meta.get("width", 0))
    return VideoContext(video_path, layout, result_folder, n, h, w)
