"""Swap two animals' identities over a range of frames of a result folder, losing nothing.

When the tracker lets two look-alike animals trade places, every frame after the swap carries the
wrong names. :func:`swap_identities` exchanges the names (and LabelMe ``group_id`` values) of two
instances on every frame of a range, in the frame JSONs, the mask store and the tracks table.
Each instance keeps everything attached to it: keypoints, scores, outline, extras.

Rules:

* Everything in the range is read and checked before anything is written: a file that cannot be
  read aborts the swap with nothing changed. Every write is atomic.
* Predictions stay predictions of the same seed (their lineage is unchanged), so a later run does
  not re-track them just because of the swap.
* Manual frames are the user's labels. By default they are left exactly as they are and listed in
  :attr:`SwapReport.manual_kept` (a swap usually starts after the last correct manual frame).
  With ``include_manual=True`` they are swapped too and stay manual.
* Frames that have neither animal are untouched. Swapping the same range again undoes a swap.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass

from ..errors import InputError
from ..io.annotations import FrameAnnotation
from ..io.atomic import atomic_write_text
from ..io.labelme import read_frame, write_frame, write_manual
from ..io.mask_store import MaskStore
from ..io.paths import ResultLayout
from ..io.tables import COLUMNS, rows_for

__all__ = ["SwapReport", "swap_identities", "swapped_annotation"]


@dataclass(frozen=True)
class SwapReport:
    """What :func:`swap_identities` changed."""

    first: str
    second: str
    swapped: tuple[int, ...]  # frames whose files now carry the exchanged names
    manual_kept: tuple[int, ...]  # manual frames in range left as labelled
    masks_swapped: tuple[int, ...]  # frames whose stored masks were exchanged too

    def describe(self) -> str:
        """One line for the user."""
        if not self.swapped:
            text = f"Nothing swapped: neither {self.first} nor {self.second} is on a predicted frame in that range."
        else:
            lo, hi = self.swapped[0], self.swapped[-1]
            text = (
                f"Swapped {self.first} ↔ {self.second} on {len(self.swapped)} frames ({lo}–{hi}); swap again to undo."
            )
        if self.manual_kept:
            shown = ", ".join(map(str, self.manual_kept[:6])) + (" …" if len(self.manual_kept) > 6 else "")
            text += f" Manual frames kept as labelled: {shown}."
        return text


def swapped_annotation(ann: FrameAnnotation, first: str, second: str) -> FrameAnnotation | None:
    """A copy of ``ann`` with instances ``first`` and ``second`` renamed into each other, else None (neither there)."""
    names = {inst.name for inst in ann.instances}
    if first not in names and second not in names:
        return None
    rename = {first: second, second: first}
    groups = {inst.name: inst.group_id for inst in ann.instances}
    instances = []
    for inst in ann.instances:
        if inst.name not in rename:
            instances.append(inst)
            continue
        new_name = rename[inst.name]
        # the group id follows the name when both animals are on the frame
        group_id = groups.get(new_name, inst.group_id)
        instances.append(dataclasses.replace(inst, name=new_name, group_id=group_id))
    order = {inst.name: i for i, inst in enumerate(ann.instances)}
    instances.sort(key=lambda inst: order.get(inst.name, len(order)))  # each name keeps its slot in the file
    return dataclasses.replace(ann, instances=instances)


def swap_identities(
    layout: ResultLayout, first: str, second: str, start: int, end: int, *, include_manual: bool = False
) -> SwapReport:
    """Exchange the identities of instances ``first`` and ``second`` on frames ``start``..``end`` (inclusive).

    See the module docstring for the rules. Raises :class:`~..errors.InputError` for a bad request
    and :class:`~..errors.AnnotationError` (nothing written) for an unreadable frame file.
    """
    first, second = str(first).strip(), str(second).strip()
    if not first or not second or first == second:
        raise InputError(f"Choose two different animals to swap (got {first!r} and {second!r}).")
    if start < 0 or end < start:
        raise InputError(f"Frames {start}–{end} are not a range: the first frame must be ≥ 0 and ≤ the last.")
    files = {f: p for f, p in layout.frame_files().items() if start <= f <= end}
    annotations = {f: read_frame(p, f) for f, p in files.items()}  # all read (and checked) before any write
    changed: dict[int, FrameAnnotation] = {}
    manual_kept: list[int] = []
    for frame, ann in annotations.items():
        new = swapped_annotation(ann, first, second)
        if new is None:
            continue
        if ann.is_manual and not include_manual:
            manual_kept.append(frame)
            continue
        changed[frame] = new
    for frame, ann in changed.items():
        if ann.is_manual:
            write_manual(layout, ann)
        else:
            write_frame(files[frame], ann)
    masks = _swap_masks(layout, sorted(changed), first, second)
    _swap_table_rows(layout, changed)
    return SwapReport(first, second, tuple(sorted(changed)), tuple(manual_kept), tuple(masks))


def _swap_masks(layout: ResultLayout, frames: list[int], first: str, second: str) -> list[int]:
    if not layout.masks_dir.is_dir():
        return []
    store = MaskStore(layout.masks_dir)
    known = store.names()
    if first not in known and second not in known:
        return []
    stored = set(store.frames())
    rename = {first: second, second: first}
    done = []
    for frame in frames:
        if frame not in stored:
            continue
        masks = store.read_masks(frame, known)
        if masks is None:
            continue
        store.write(frame, masks, [rename.get(name, name) for name in known])
        done.append(frame)
    return done


def _swap_table_rows(layout: ResultLayout, changed: dict[int, FrameAnnotation]) -> None:
    """Rewrite the table rows of the changed frames; every other line stays as it was."""
    path = layout.tracks_csv
    if not changed or not path.is_file():
        return
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    if tuple(header.split(",")) != COLUMNS:
        return  # not our table: leave it alone rather than guess
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    written: set[int] = set()
    out = [header]
    for line in lines:
        cell = line.split(",", 1)[0]
        frame = int(cell) if cell.isdigit() else None
        if frame not in changed:
            out.append(line)
            continue
        if frame not in written:  # the frame's rows, in its (new) instance order, where its first row was
            writer.writerows(rows_for(changed[frame]))
            out.extend(buf.getvalue().splitlines())
            buf.seek(0)
            buf.truncate()
            written.add(frame)
    atomic_write_text(path, "\n".join(out) + "\n")
