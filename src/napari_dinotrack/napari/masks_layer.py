"""The masks Labels layer: follows a run's instance masks live, and saves the frames the user paints.

The layer's data is a :class:`~napari_dinotrack.napari.live_labels.LiveLabels`: freshly tracked
frames come from memory, the rest lazily from the result folder's mask store. Each instance name
keeps one label value for the whole video (the mask store's order), so an animal keeps its colour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from .convert import labels_to_masks, masks_to_labels
from .live_labels import LiveLabels
from .reader import META_KEY
from .video_context import VideoContext
from .viewer_layers import adding_quietly

if TYPE_CHECKING:
    from napari.layers import Labels

    import napari

    from ..pipeline import FrameResult

__all__ = ["MasksLayerController"]


class MasksLayerController:
    """Keeps the masks layer chosen in ``picker`` in step with the run and the user's paint.

    Args:
        viewer: the napari viewer.
        picker: the masks layer combo box (its ``value`` is the layer, or None).
        keep_on_top: the layer that must stay on top when the masks layer is added.
        current_frame: the frame on screen.
        video_context: where the results are (raises UserError when no video is chosen).
    """

    def __init__(self, viewer: napari.viewer.Viewer, picker: Any, keep_on_top: Callable[[], Any],
                 current_frame: Callable[[], int], video_context: Callable[[], VideoContext]) -> None:
        self.viewer = viewer
        self._picker = picker
        self._keep_on_top = keep_on_top
        self._current_frame = current_frame
        self._video_context = video_context
        self.live: LiveLabels | None = None
        #: instance name -> label value
        self.label_values: dict[str, int] = {}

    @property
    def layer(self) -> Labels | None:
        """The chosen masks layer, if any."""
        return self._picker.value

    def adopt(self, layer: Labels | None) -> None:
        """A picked masks layer becomes paintable (its frames then also seed the tracker)."""
        if layer is None or isinstance(layer.data, LiveLabels):
            return
        with contextlib.suppress(UserError):
            self.live_labels(self._video_context(), create=False)

    def live_labels(self, ctx: VideoContext, create: bool = True) -> LiveLabels | None:
        """The masks layer's data as a :class:`LiveLabels` (wrapping what it showed), created if asked."""
        from ..io.mask_store import MaskStore, lazy_labels

        layer = self.layer
        if layer is not None and isinstance(layer.data, LiveLabels):
            self.live = layer.data
            return layer.data
        store = MaskStore(ctx.layout.masks_dir)
        with contextlib.suppress(OSError, ValueError):
            for i, name in enumerate(store.names()):
                self.label_values.setdefault(name, i + 1)
        shape = (ctx.n_frames, ctx.height, ctx.width)
        if layer is not None and tuple(layer.data.shape) == shape:
            live = LiveLabels(*shape, base=layer.data, dtype=np.uint16)
            layer.data = live  # same layer object: its settings and undo history stay
        elif create:
            live = LiveLabels(*shape, base=lazy_labels(store, *shape, dtype=np.uint16), dtype=np.uint16)
            with adding_quietly(self.viewer, self._keep_on_top):
                layer = self.viewer.add_labels(live, name=f"{ctx.stem} masks", opacity=0.4,
                                               metadata={META_KEY: {"video_path": str(ctx.video_path)}})
                self._picker.value = layer
        else:
            return None
        self.live = live
        return live

    def show(self, results: list[FrameResult], ctx: VideoContext) -> None:
        """Put the masks of these results into the layer (created on the first frame with masks)."""
        with_masks = [r for r in results if r.masks is not None]
        if not with_masks:
            return
        live = self.live_labels(ctx)
        assert live is not None
        for r in with_masks:
            names = [inst.name for inst in r.annotation.instances]
            values = [self._label_value(n) for n in names]
            live.update(r.frame, masks_to_labels(r.masks, ctx.height, ctx.width, values))
        layer = self.layer
        if layer is not None and self._current_frame() in {r.frame for r in with_masks}:
            layer.refresh()

    def _label_value(self, name: str) -> int:
        if name not in self.label_values:
            self.label_values[name] = max(self.label_values.values(), default=0) + 1
        return self.label_values[name]

    def run_finished(self) -> None:
        """The run's masks are all on disk now: serve them from there, keep few frames in memory."""
        if self.live is not None:
            self.live.max_frames = 8

    def save_painted(self, frames: set[int] | None = None) -> list[int]:
        """Write painted mask frames (all, or ``frames``) to the result folder's mask store."""
        from ..io.mask_store import MaskStore

        live = self.live
        layer = self.layer
        if live is None or layer is None or layer.data is not live:
            return []
        todo = [t for t in live.edited_frames() if frames is None or t in frames]
        if not todo:
            return []
        store = MaskStore(self._video_context().layout.masks_dir)
        names_by_value = {v: n for n, v in self.label_values.items()}
        for t in todo:
            store.write(t, *labels_to_masks(live.frame(t), names_by_value))
        live.clear_edited(todo)
        return todo
