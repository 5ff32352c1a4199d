"""Sample data: a small generated clip of a walking "animal" with one labelled seed frame.

File -> Open Sample -> napari-dinotrack -> "Synthetic mouse clip" writes a short H.264 video
and a manual LabelMe seed on frame 0 into a fresh temporary folder and opens both, so that
pressing Track in the "DINO Keypoint Tracker" dock works at once. The dock pre-selects the
weight-free ``pixel:`` backbone for it, or the default DINOv3 model if its weights are already
in the local Hugging Face cache.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

__all__ = ["make_sample_data", "sample_clip_files", "suggested_model"]

SAMPLE_FRAMES = 40
SAMPLE_HEIGHT = 192
SAMPLE_WIDTH = 256


def suggested_model() -> str:
    """The default catalog model when its weights are available offline, else ``"pixel:"``."""
    try:
        from ..backbone.catalog import DEFAULT_MODEL
        from ..backbone.loader import available_locally

        if available_locally(DEFAULT_MODEL):
            return DEFAULT_MODEL
    except Exception:  # any hub/cache problem just means "not available"
        pass
    return "pixel:"


def sample_clip_files(
    folder: str | Path | None = None,
    n_frames: int = SAMPLE_FRAMES,
    height: int = SAMPLE_HEIGHT,
    width: int = SAMPLE_WIDTH,
) -> Path:
    """Write the sample video (and its frame-0 manual seed) into ``folder``; return the video path."""
    from ..synthetic import write_sample

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="dinotrack-sample-"))
    return write_sample(folder, n_frames=n_frames, height=height, width=width)


def make_sample_data(folder: str | Path | None = None) -> list[tuple[Any, dict[str, Any], str]]:
    """The sample as napari LayerDataTuples: the lazy video Image and the seed keypoints."""
    from .reader import META_KEY, read_video

    video = sample_clip_files(folder)
    layers = read_video(str(video))
    # the body-part dots are ~8 px wide: 512 px short side gives ~6 px patches, which follow them well
    hints = {"model": suggested_model(), "short_side": 512}
    for _, kwargs, _ in layers:
        kwargs.setdefault("metadata", {}).setdefault(META_KEY, {}).update(suggest=hints)
    return layers
