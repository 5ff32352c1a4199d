"""Which backbone and working resolution made the predictions of a result folder.

Each prediction may record the ``model`` (the backbone's name) and ``short_side`` it was made with
(see :class:`~..io.annotations.FrameAnnotation`). After switching the backbone, the predictions of
the old one are still "current" for the run plan (their seeds did not change), so Track would call
everything up to date; :func:`made_by_other_model` finds them so that the user can be offered a
re-track. Predictions that record nothing (older files) are never counted as another model's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..io.annotations import FrameAnnotation
from ..io.labelme import load_annotations
from ..io.paths import ResultLayout

__all__ = ["OtherModel", "made_by_other_model", "other_model_frames"]


@dataclass(frozen=True)
class OtherModel:
    """Predictions made with another backbone or short side than the one chosen now."""

    frames: tuple[int, ...]
    made_with: tuple[tuple[str | None, int | None], ...]  # the (model, short side) pairs found
    model: str  # the one chosen now
    short_side: int

    def describe(self) -> str:
        """One sentence for the user."""
        was = "; ".join(f"{m or 'an unknown model'} at short side {s or '?'}" for m, s in self.made_with)
        lo, hi = self.frames[0], self.frames[-1]
        return (
            f"{len(self.frames)} tracked frames ({lo}–{hi}) were made with {was}, not {self.model} at "
            f"short side {self.short_side}."
        )


def other_model_frames(annotations: dict[int, FrameAnnotation], model: str, short_side: int) -> OtherModel | None:
    """The predictions among ``annotations`` recorded with another model or short side, else None."""
    frames: list[int] = []
    made_with: dict[tuple[str | None, int | None], None] = {}
    for frame, ann in sorted(annotations.items()):
        if ann.is_manual or (ann.model is None and ann.short_side is None):
            continue
        other_model = ann.model is not None and ann.model != model
        other_size = ann.short_side is not None and ann.short_side != short_side
        if other_model or other_size:
            frames.append(frame)
            made_with[(ann.model, ann.short_side)] = None
    if not frames:
        return None
    return OtherModel(tuple(frames), tuple(made_with), model, int(short_side))


def made_by_other_model(layout: ResultLayout, model: str, short_side: int) -> OtherModel | None:
    """:func:`other_model_frames` of a result folder (reads every frame file; call it off the GUI thread)."""
    if not layout.folder.is_dir():
        return None
    return other_model_frames(load_annotations(layout), model, short_side)
