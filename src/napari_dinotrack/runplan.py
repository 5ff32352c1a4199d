"""Which frames a run tracks, decided from the result folder alone.

A prediction is *current* when it descends from the latest manual frame at or before it, and
that manual frame still has the content it had when the prediction was made. Everything else
after the first manual frame is stale and gets (re)tracked. This single rule gives resume after
a crash or stop (missing frames are stale), re-tracking after a correction (later predictions
descend from an older seed) and re-tracking after editing a manual frame (its digest changed).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .errors import InputError
from .io.annotations import FrameAnnotation


@dataclass(frozen=True)
class RunPlan:
    """Track frames ``first``..``last`` starting from the annotation at ``init_frame``."""

    init_frame: int
    first: int
    last: int
    manual: tuple[int, ...]
    keep: tuple[int, ...]  # frames whose existing results stay valid and stay in the table

    @property
    def n_frames(self) -> int:
        return self.last - self.first + 1


class _Lineage:
    def __init__(self, annotations: dict[int, FrameAnnotation]):
        self.annotations = annotations
        self.manual = sorted(f for f, a in annotations.items() if a.is_manual)
        self._digests: dict[int, str] = {}

    def seed_of(self, frame: int) -> int | None:
        i = bisect.bisect_right(self.manual, frame)
        return self.manual[i - 1] if i else None

    def digest(self, frame: int) -> str:
        if frame not in self._digests:
            self._digests[frame] = self.annotations[frame].digest()
        return self._digests[frame]

    def is_current(self, frame: int) -> bool:
        ann = self.annotations.get(frame)
        if ann is None:
            return False
        if ann.is_manual:
            return True
        seed = self.seed_of(frame)
        return seed is not None and ann.seed_frame == seed and ann.seed_digest == self.digest(seed)


def plan_run(
    annotations: dict[int, FrameAnnotation], n_frames: int, start_frame: int | None = None,
    end_frame: int | None = None, where: str = "the result folder",
) -> RunPlan | None:
    """The work to do, or None when every frame in range is already current."""
    lineage = _Lineage({f: a for f, a in annotations.items() if 0 <= f < n_frames})
    if not lineage.manual:
        raise InputError(
            f"{where}: no manually labelled frame to start from. Label the keypoints on one frame "
            "and save it as a seed (napari: 'Save frame as seed'; or a LabelMe JSON in that folder)."
        )
    last = n_frames - 1 if end_frame is None else end_frame
    if not 0 <= last < n_frames:
        raise InputError(f"end frame {end_frame} is outside the video (0..{n_frames - 1})")
    if start_frame is not None:
        if not 0 <= start_frame < n_frames:
            raise InputError(f"start frame {start_frame} is outside the video (0..{n_frames - 1})")
        if last < start_frame:
            raise InputError(f"end frame {last} is before start frame {start_frame}: give an end frame after "
                             "the start frame (or leave it out to track to the end)")
        if start_frame not in lineage.annotations:
            raise InputError(
                f"{where}: frame {start_frame} has no keypoints to start from. Label it and save it as "
                f"a seed, or start from a frame that has keypoints (manual frames: {lineage.manual[:10]})."
            )
        init = start_frame
    else:
        stale = next((f for f in range(lineage.manual[0] + 1, last + 1) if not lineage.is_current(f)), None)
        if stale is None:
            return None
        init = stale - 1
    first = init + 1
    if first > last:
        return None
    keep = tuple(f for f in sorted(lineage.annotations) if not first <= f <= last and lineage.is_current(f))
    return RunPlan(init, first, last, tuple(lineage.manual), keep)
