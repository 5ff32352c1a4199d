"""The user's corrections to the keypoints layer, saved as manual frames.

Every frame the user touches (drag, add, delete, hide) becomes "dirty": its rows are marked
``source="manual"`` and, :data:`SAVE_DEBOUNCE_MS` after the last change, the frame is written as
a manual annotation (``write_manual``), which the tracker then uses as a seed. The debounce
makes one drag write one file, not one per mouse move. Points placed in a row by *Add keypoints*
are not labels yet: their frame is saved once the user moves one of them (or saves the frame).

The helper functions are pure (numpy / pandas only); :class:`KeypointEditor` is the glue that
listens to the napari Points layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QObject, QTimer

from ..errors import UserError
from .convert import (
    FEATURE_COLUMNS,
    RowsUpdate,
    feature_defaults,
    features_table,
    frames_of,
    points_to_annotation,
    row_frames,
)
from .video_context import VideoContext

if TYPE_CHECKING:
    from pathlib import Path

    from napari.layers import Points

    from ..io.annotations import FrameAnnotation
    from .layer_styles import KeypointsStyle

__all__ = ["SAVE_DEBOUNCE_MS", "KeypointEditor", "missing_names", "name_added_points", "row_of_points"]

#: user edits are saved this long after the last change
SAVE_DEBOUNCE_MS = 400


def missing_names(
    data: np.ndarray, features: pd.DataFrame, frame: int, instance: str, names: Sequence[str]
) -> list[str]:
    """The keypoint ``names`` that ``instance`` has no point for on ``frame``, in order."""
    have: set[str] = set()
    if len(features):
        mine = (row_frames(data) == frame) & (features["instance"].astype(str) == instance).to_numpy()
        have = set(features.loc[mine, "keypoint"].astype(str))
    return [n for n in names if n not in have]


def row_of_points(frame: int, centre_yx: tuple[float, float], count: int, spacing: float) -> np.ndarray:
    """``count`` Points rows ``(t, y, x)`` on ``frame``: a horizontal row centred on ``centre_yx``."""
    cy, cx = centre_yx
    offsets = (np.arange(count) - (count - 1) / 2.0) * spacing
    return np.column_stack([np.full(count, float(frame)), np.full(count, cy), cx + offsets])


def name_added_points(
    data: np.ndarray, features: pd.DataFrame, indices: Sequence[int] | np.ndarray, names: Sequence[str]
) -> bool:
    """Give each added row the next of ``names`` its instance lacks on that frame (in place).

    Returns False when there was nothing to name (no rows, or no name/instance columns).
    """
    if not len(indices) or "keypoint" not in features.columns or "instance" not in features.columns:
        return False
    n = len(data)
    frames = row_frames(data)
    col = features.columns.get_loc("keypoint")
    for i in sorted({int(i) % n for i in indices}):
        inst = str(features["instance"].iloc[i])
        same = (frames == frames[i]) & (features["instance"].astype(str).to_numpy() == inst)
        same[i] = False
        taken = set(features["keypoint"].astype(str).to_numpy()[same])
        missing = [name for name in names if name not in taken]
        if missing:
            features.iloc[i, col] = missing[0]
    return True


class KeypointEditor:
    """Follows the keypoints Points layer and saves what the user changes on it.

    Args:
        style: colours the points (by name; hollow when hidden).
        keypoint_names: the names new points get, in order.
        instance_name: the instance new points belong to.
        current_frame: the frame on screen.
        video_context: where the results go (raises UserError when no video is chosen).
        report: shows a one-line status message.
        parent: owns the save timer.
    """

    def __init__(
        self,
        style: KeypointsStyle,
        *,
        keypoint_names: Callable[[], list[str]],
        instance_name: Callable[[], str],
        current_frame: Callable[[], int],
        video_context: Callable[[], VideoContext],
        report: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        self.style = style
        self._keypoint_names = keypoint_names
        self._instance_name = instance_name
        self._current_frame = current_frame
        self._video_context = video_context
        self._report = report
        self.layer: Points | None = None
        #: frames changed by the user and not saved yet
        self.dirty: set[int] = set()
        #: frames where "Add keypoints" put points in a row that the user has not placed yet
        self.placing: set[int] = set()
        self._removing_frames: set[int] = set()
        self._save_timer = QTimer(parent)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DEBOUNCE_MS)
        self._save_timer.timeout.connect(self.flush)

    # ---------------------------------------------------------------- the layer
    def attach(self, layer: Points | None) -> None:
        """Follow ``layer`` (None: none); the previous layer's pending edits are saved first."""
        if self.layer is layer:
            return
        if self.layer is not None:
            self.flush()
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                self.layer.events.data.disconnect(self._on_data)
        self.layer = layer
        if layer is not None:
            self._ensure_features(layer)
            layer.events.data.connect(self._on_data)
            self.update_defaults()

    def _ensure_features(self, layer: Points) -> None:
        """Give a layer made elsewhere the feature columns the editor relies on."""
        feats = layer.features
        missing = [c for c in FEATURE_COLUMNS if c not in feats.columns]
        if not missing:
            return
        defaults = feature_defaults(self._instance_name(), "point")
        new = feats.copy()
        for c in missing:
            new[c] = [defaults[c]] * len(new)
        with layer.events.data.blocker(self._on_data):
            layer.features = new

    def update_defaults(self) -> None:
        """Points added by hand get the current instance and the first keypoint name."""
        layer = self.layer
        if layer is None:
            return
        with contextlib.suppress(Exception):
            layer.feature_defaults = feature_defaults(self._instance_name(), self._keypoint_names()[0])

    def protected_frames(self) -> set[int]:
        """Frames the user is working on: a run's results must not replace their rows."""
        return self.dirty | self.placing

    def set_rows(self, layer: Points, data: np.ndarray, features: pd.DataFrame) -> None:
        """Replace the layer's rows in place (same layer object); not an edit, so nothing is marked dirty."""
        with layer.events.data.blocker(self._on_data):
            layer.data = data
            layer.features = features
            if len(features):
                self._colour(layer)

    def apply_rows(self, layer: Points, update: RowsUpdate) -> None:
        """Apply a :class:`~.convert.RowsUpdate`: change rows in place and append new ones (not an edit).

        Only the changed and appended rows' features and labels are computed; colours and
        symbols are numpy arrays over the whole layer.
        """
        if update.is_empty:
            return
        if update.full:
            assert update.full_data is not None and update.full_features is not None
            self.set_rows(layer, update.full_data, update.full_features)
            return
        n0 = len(layer.data)
        n_added = len(update.added_data)
        data = np.asarray(layer.data)
        if len(update.changed):
            data = data.copy()
            data[update.changed] = update.changed_data
        if n_added:
            data = np.concatenate([data, update.added_data])
        rows = np.concatenate([update.changed, np.arange(n0, n0 + n_added)])
        values = pd.concat([update.changed_features, update.added_features], ignore_index=True)
        with layer.events.data.blocker(self._on_data):
            layer.data = data  # new rows get the default features and label for now
            feats = layer.features
            for column in FEATURE_COLUMNS:
                feats.iloc[rows, feats.columns.get_loc(column)] = values[column].to_numpy()
            if n_added:  # labels of the new rows only, from their real features
                layer.text.remove(np.arange(n0, n0 + n_added))
                layer.text.apply(feats)
            self._colour(layer, rows)

    def restyle(self, layer: Points) -> None:
        """Recolour the points after their names, visibility or the colouring changed."""
        if self._colour(layer):
            layer.refresh()

    def _colour(self, layer: Points, rows: np.ndarray | None = None) -> bool:
        """Colour (and give symbols to) every point; ``rows``: only these may have changed their symbol."""
        feats = layer.features
        face, border = self.style.colors(feats)
        if len(face) != len(layer.data):
            return False
        layer.face_color = face
        layer.border_color = border
        symbols = self.style.symbols(feats)
        # setting symbols converts each one in Python: skip it when the rows that changed already match
        if (
            rows is None
            or [str(getattr(sym, "value", sym)) for sym in np.asarray(layer.symbol)[rows]] != symbols[rows].tolist()
        ):
            layer.symbol = symbols
        return True

    # ---------------------------------------------------------------- seed tools
    def add_instance_keypoints(
        self, layer: Points, frame: int, view_centre: Callable[[], tuple[float, float]]
    ) -> list[int]:
        """Place the instance's missing keypoints in a row at the view centre ``(y, x)``; return the new rows."""
        inst = self._instance_name()
        feats = layer.features
        missing = missing_names(layer.data, feats, frame, inst, self._keypoint_names())
        if not missing:
            self._report(f"{inst} already has all its keypoints on frame {frame}.")
            return []
        cy, cx = view_centre()
        try:
            ctx = self._video_context()
            spacing = max(6.0, min(ctx.width, ctx.height) / (2.0 * (len(missing) + 1)))
            cy = float(np.clip(cy, 0, ctx.height - 1))
            cx = float(np.clip(cx, 0, ctx.width - 1))
        except UserError:
            spacing = 12.0
        n = len(missing)
        rows_features = [feature_defaults(inst, name) for name in missing]
        new_feats = features_table({c: [row[c] for row in rows_features] for c in FEATURE_COLUMNS})
        new_rows = row_of_points(frame, (cy, cx), n, spacing)
        n0 = len(layer.data)
        self.set_rows(
            layer,
            np.concatenate([np.asarray(layer.data).reshape(-1, 3), new_rows]),
            pd.concat([feats[list(FEATURE_COLUMNS)].reset_index(drop=True), new_feats], ignore_index=True),
        )
        rows = list(range(n0, n0 + n))
        layer.selected_data = set()  # a drag then moves the one point under the mouse, not the whole row
        with contextlib.suppress(Exception):
            layer.mode = "select"
        self.placing.add(frame)  # saved once a point is moved: the row itself is no label
        self._report(
            f"Added {', '.join(missing)} for {inst} on frame {frame}: drag each onto its "
            "body part; the frame is saved as soon as you move one."
        )
        return rows

    def toggle_visibility(self, layer: Points | None) -> None:
        """Flip hidden/visible for the selected keypoints (and save their frames)."""
        if layer is None or not layer.selected_data:
            self._report("Select keypoints first (select mode, click or drag a box).")
            return
        idx = np.fromiter(sorted(layer.selected_data), int)
        feats = layer.features
        col = feats.columns.get_loc("visible")
        feats.iloc[idx, col] = ~feats["visible"].to_numpy(dtype=bool)[idx]
        self.restyle(layer)
        self.mark_dirty(frames_of(layer.data[idx]))

    def unsaved_labelled_frame(self, frame: int, ctx: VideoContext) -> set[int]:
        """``{frame}`` if it has keypoints on the layer but no file yet (they are a seed to save), else ``{}``."""
        layer = self.layer
        if layer is None or not len(layer.data) or ctx.layout.frame_json(frame).exists():
            return set()
        return {frame} if (row_frames(layer.data) == frame).any() else set()

    # ---------------------------------------------------------------- edits
    def _on_data(self, event: Any) -> None:
        from napari.layers.base import ActionType

        layer = self.layer
        if layer is None:
            return
        action = getattr(event, "action", None)
        indices = np.asarray([i for i in (getattr(event, "data_indices", ()) or ()) if i is not None], dtype=int)
        if action == ActionType.REMOVING:
            # the rows are still there: remember their frames for the REMOVED event that follows
            self._removing_frames = frames_of(np.asarray(layer.data)[indices]) if len(indices) else set()
            return
        if action not in (ActionType.ADDED, ActionType.CHANGED, ActionType.REMOVED):
            return
        if action == ActionType.REMOVED:
            frames, self._removing_frames = self._removing_frames, set()
            frames = frames or {self._current_frame()}
        else:
            data = np.asarray(layer.data)
            if action == ActionType.CHANGED and len(indices) == len(data) and len(frames_of(data)) > 1:
                return  # the whole layer was replaced by a script: not a user correction
            frames = frames_of(data[indices]) if len(indices) else {self._current_frame()}
            if action == ActionType.ADDED:
                if name_added_points(data, layer.features, indices, self._keypoint_names()):
                    with contextlib.suppress(Exception):
                        layer.text.refresh(layer.features)
                self.restyle(layer)
        self.mark_dirty(frames)

    def mark_dirty(self, frames: set[int]) -> None:
        """These frames are user corrections now: mark their rows manual and save them soon."""
        layer = self.layer
        if layer is not None and frames and len(layer.data):
            rows = np.isin(row_frames(layer.data), list(frames))
            if "source" in layer.features.columns:
                layer.features.loc[rows, "source"] = "manual"
        self.dirty |= set(frames)
        self.placing -= set(frames)
        self._save_timer.start()

    def flush(self, force: set[int] | None = None) -> dict[int, Path]:
        """Save every edited frame (plus ``force``) as manual now; return the written files."""
        from napari.utils.notifications import show_error

        from ..errors import AnnotationError
        from ..io.labelme import read_frame, write_manual

        self._save_timer.stop()
        force = force or set()
        frames = sorted(self.dirty | force)
        self.dirty.clear()
        layer = self.layer
        written: dict[int, Path] = {}
        if not frames or layer is None:
            return written
        try:
            ctx = self._video_context()
        except UserError as exc:
            show_error(f"Cannot save the corrections: {exc}")
            return written
        data, feats = np.asarray(layer.data), layer.features
        for t in frames:
            path = ctx.layout.frame_json(t)
            old = None
            if path.exists():
                with contextlib.suppress(AnnotationError, OSError):
                    old = read_frame(path, t)
            ann = points_to_annotation(
                data, feats, t, ctx.height, ctx.width, template=old, default_instance=self._instance_name()
            )
            outline_from_mask_store(ann, ctx.layout.masks_dir)
            if (
                not any(inst.keypoints for inst in ann.instances)
                and (old is None or not old.is_manual)
                and t not in force
            ):
                continue  # nothing left on a frame that was never a seed: nothing to save
            try:
                written[t] = write_manual(ctx.layout, ann)
            except (OSError, ValueError) as exc:
                show_error(f"Could not save frame {t}: {exc}")
        if written:
            shown = ", ".join(str(t) for t in list(written)[:8]) + (" …" if len(written) > 8 else "")
            self._report(f"Saved frame {shown} as manual.")
        return written


def outline_from_mask_store(ann: FrameAnnotation, masks_dir: Path) -> None:
    """Give each instance the outline of its stored (painted or tracked) mask on that frame.

    The JSON then agrees with the masks the tracker will start from, and a repainted mask
    changes the frame's content, so the frames after it are re-tracked.
    """
    from ..io.mask_store import MaskStore, mask_to_polygon

    if not masks_dir.is_dir():
        return
    masks = MaskStore(masks_dir).read_masks(ann.frame, [inst.name for inst in ann.instances])
    if masks is None:
        return
    for inst, mask in zip(ann.instances, masks, strict=True):
        outline = mask_to_polygon(mask) if mask.any() else None
        if outline is not None and len(outline) >= 3:
            inst.polygon = outline
