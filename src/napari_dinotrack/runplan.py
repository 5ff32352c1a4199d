"""Which frames a run tracks, and from which seeds, decided from the result folder alone.

The manual frames cut the video into stretches. With ``direction="both"`` a stretch between two
manual frames is tracked forward from the earlier and backward from the later, and the two
passes are merged; frames before the first manual frame are tracked backward from it, frames
after the last one forward. With ``direction="forward"`` only the forward passes run, and frames
before the first manual frame are not tracked.

A prediction is *current* when it descends from the seeds of its stretch as they are now: it
records the manual frame (and that frame's content digest) it was tracked forward from, and,
when tracked two ways, the one it was tracked backward from. Everything else is stale and gets
(re)tracked. This one rule gives resume after a crash or stop (missing frames are stale),
re-tracking both sides of a correction (the stretch's seeds changed) and re-tracking after
editing a manual frame (its digest changed) — and leaves every other stretch alone.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .errors import InputError
from .io.annotations import FrameAnnotation
from .runsettings import DIRECTIONS, Direction

__all__ = ["DIRECTIONS", "Direction", "RunPlan", "Stretch", "plan_run"]


@dataclass(frozen=True)
class Stretch:
    """Frames ``first``..``last`` to track: forward from frame ``start``, backward from frame ``end``.

    ``start`` is a manual frame or a current result to resume from (None: backward only);
    ``end`` a manual frame (None: forward only). ``forward_seed``/``backward_seed`` are the
    manual frames the results descend from, recorded with each prediction.
    """

    first: int
    last: int
    start: int | None
    end: int | None
    forward_seed: int | None
    backward_seed: int | None

    @property
    def n_frames(self) -> int:
        return self.last - self.first + 1

    @property
    def two_way(self) -> bool:
        return self.start is not None and self.end is not None


@dataclass(frozen=True)
class RunPlan:
    """The stretches to track, in order, and which existing results stay valid."""

    stretches: tuple[Stretch, ...]
    manual: tuple[int, ...]
    keep: tuple[int, ...]  # frames whose existing results stay valid and stay in the table
    direction: Direction = "both"

    @property
    def first(self) -> int:
        return min(s.first for s in self.stretches)

    @property
    def last(self) -> int:
        return max(s.last for s in self.stretches)

    @property
    def init_frame(self) -> int:
        """The frame the run starts from (a seed, or a result to resume from)."""
        s = self.stretches[0]
        return s.start if s.start is not None else s.end  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        """Frames a run writes."""
        return sum(s.n_frames for s in self.stretches)

    @property
    def n_steps(self) -> int:
        """Tracker steps a run takes: a two-way stretch is tracked twice."""
        return sum(s.n_frames * (2 if s.two_way else 1) for s in self.stretches)

    def describe(self) -> str:
        """The stretches in words, e.g. ``frames 1..19 both ways between 0 and 20, 21..29 forward from 20``."""
        parts = []
        for s in self.stretches:
            span = f"{s.first}..{s.last}" if s.last > s.first else f"{s.first}"
            if s.two_way:
                parts.append(f"{span} both ways between {s.start} and {s.end}")
            elif s.start is None:
                parts.append(f"{span} backward from {s.end}")
            else:
                parts.append(f"{span} forward from {s.start}")
        return "frames " + ", ".join(parts)


class _Lineage:
    def __init__(self, annotations: dict[int, FrameAnnotation], direction: Direction):
        self.annotations = annotations
        self.direction = direction
        self.manual = sorted(f for f, a in annotations.items() if a.is_manual)
        self._digests: dict[int, str] = {}

    def before(self, frame: int) -> int | None:
        """The last manual frame before ``frame``."""
        i = bisect.bisect_left(self.manual, frame)
        return self.manual[i - 1] if i else None

    def after(self, frame: int) -> int | None:
        """The first manual frame after ``frame``."""
        i = bisect.bisect_right(self.manual, frame)
        return self.manual[i] if i < len(self.manual) else None

    def digest(self, frame: int | None) -> str | None:
        if frame is None:
            return None
        if frame not in self._digests:
            self._digests[frame] = self.annotations[frame].digest()
        return self._digests[frame]

    def seeds(self, frame: int) -> tuple[int | None, int | None]:
        """The (forward, backward) seeds a result at ``frame`` must descend from now."""
        before, after = self.before(frame), self.after(frame)
        return before, (after if self.direction == "both" else None)

    def is_current(self, frame: int) -> bool:
        ann = self.annotations.get(frame)
        if ann is None:
            return False
        if ann.is_manual:
            return True
        forward, backward = self.seeds(frame)
        if forward is None and backward is None:
            return False
        if (ann.seed_frame, ann.seed_digest) != (forward, self.digest(forward)):
            return False
        if self.direction == "forward":
            return True
        return (ann.end_frame, ann.end_digest) == (backward, self.digest(backward))


def plan_run(
    annotations: dict[int, FrameAnnotation],
    n_frames: int,
    start_frame: int | None = None,
    end_frame: int | None = None,
    where: str = "the result folder",
    direction: Direction = "both",
) -> RunPlan | None:
    """The work to do, or None when every frame in range is already current.

    ``start_frame`` forces a re-track from the keypoints on that frame (forward, to ``end_frame``
    or the end); otherwise every stale frame up to ``end_frame`` is (re)tracked.
    """
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    lineage = _Lineage({f: a for f, a in annotations.items() if 0 <= f < n_frames}, direction)
    if not lineage.manual:
        raise InputError(
            f"{where}: no manually labelled frame to start from. Label the keypoints on one frame "
            "and save it as a seed (napari: 'Save frame as seed'; or a LabelMe JSON in that folder)."
        )
    last = n_frames - 1 if end_frame is None else end_frame
    if not 0 <= last < n_frames:
        raise InputError(f"end frame {end_frame} is outside the video (0..{n_frames - 1})")
    if start_frame is not None:
        stretches = _forced(lineage, start_frame, last, n_frames, where)
    else:
        stretches = [s for s in (_stale_part(lineage, s) for s in _stretches(lineage, last)) if s is not None]
    if not stretches:
        return None
    written = {f for s in stretches for f in range(s.first, s.last + 1)}
    keep = tuple(f for f in sorted(lineage.annotations) if f not in written and lineage.is_current(f))
    return RunPlan(tuple(stretches), tuple(lineage.manual), keep, direction)


def _stretches(lineage: _Lineage, last: int) -> list[Stretch]:
    """Every stretch of the video up to ``last``, as if nothing were tracked yet."""
    manual = lineage.manual
    out = []
    if lineage.direction == "both" and manual[0] > 0:
        out.append(Stretch(0, min(manual[0] - 1, last), None, manual[0], None, manual[0]))
    for a, b in zip(manual, [*manual[1:], None], strict=True):
        if a >= last:
            break
        if b is not None and lineage.direction == "both":
            if b - a > 1:
                out.append(Stretch(a + 1, min(b - 1, last), a, b, a, b))
        else:
            stop = last if b is None else min(b - 1, last)
            if stop > a:
                out.append(Stretch(a + 1, stop, a, None, a, None))
    return out


def _stale_part(lineage: _Lineage, s: Stretch) -> Stretch | None:
    """The part of stretch ``s`` that needs tracking: from its first stale frame on (backward: down to its last)."""
    stale = [f for f in range(s.first, s.last + 1) if not lineage.is_current(f)]
    if not stale:
        return None
    if s.start is None:  # backward only: resume downwards from the lowest current frame above the stale ones
        top = max(stale)
        return Stretch(s.first, top, None, top + 1, None, s.backward_seed)
    first = min(stale)
    return Stretch(
        first,
        s.last,
        first - 1,
        s.end if s.last == (s.end or 0) - 1 else None,
        s.forward_seed,
        s.backward_seed if s.last == (s.end or 0) - 1 else None,
    )


def _forced(lineage: _Lineage, start_frame: int, last: int, n_frames: int, where: str) -> list[Stretch]:
    """``start_frame`` given: re-track forward from its keypoints through every later stretch up to ``last``."""
    if not 0 <= start_frame < n_frames:
        raise InputError(f"start frame {start_frame} is outside the video (0..{n_frames - 1})")
    if last < start_frame:
        raise InputError(
            f"end frame {last} is before start frame {start_frame}: give an end frame after "
            "the start frame (or leave it out to track to the end)"
        )
    if start_frame not in lineage.annotations:
        raise InputError(
            f"{where}: frame {start_frame} has no keypoints to start from. Label it and save it as "
            f"a seed, or start from a frame that has keypoints (manual frames: {lineage.manual[:10]})."
        )
    out = []
    begin = start_frame
    while begin < last:
        nxt = lineage.after(begin)
        two_way = lineage.direction == "both" and nxt is not None and nxt <= last + 1
        stop = (nxt - 1) if nxt is not None and nxt <= last + 1 else last
        if stop > begin:
            forward = begin if lineage.annotations[begin].is_manual else lineage.before(begin)
            out.append(Stretch(begin + 1, stop, begin, nxt if two_way else None, forward, nxt if two_way else None))
        if nxt is None or nxt > last:
            break
        begin = nxt
    return out
