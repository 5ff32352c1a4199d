"""Many videos at once, on this machine or a Dask cluster: :func:`track_many`.

One Dask task per video, each the normal tracker with the video's own seeds and resume rules
(:mod:`.jobs`); a ``LocalCluster`` or any running scheduler, GPU-aware, with one model load per
worker (:mod:`.cluster`, :mod:`.worker`); whole-batch progress (:mod:`.progress`) and a summary
table written as CSV (:mod:`.summary`). ``dask.distributed`` is the optional extra ``batch``;
importing this package does not import it.
"""

from __future__ import annotations

from .jobs import CURRENT, FAILED, NO_SEED, STOPPED, TRACKED, VideoJob, VideoResult, track_video
from .run import collect_videos, track_many
from .summary import EXIT_SOME_FAILED, BatchSummary

__all__ = [
    "CURRENT",
    "EXIT_SOME_FAILED",
    "FAILED",
    "NO_SEED",
    "STOPPED",
    "TRACKED",
    "BatchSummary",
    "VideoJob",
    "VideoResult",
    "collect_videos",
    "track_many",
    "track_video",
]
