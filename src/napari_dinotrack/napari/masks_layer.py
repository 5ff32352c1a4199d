"""The masks Labels layer: follows a run's instance masks live, and saves the frames the user paints.

The layer's data is a :class:`~napari_dinotrack.napari.live_labels.LiveLabels`: freshly tracked
frames come from memory, the rest lazily from the result folder's mask store. Each instance name
keeps one label value for the whole video (the mask store's order), so an animal keeps its colour.

Painting maps label values to animals explicitly: the values the mask store already knows keep
their animals, and the keypoints' animals (in the order they appear) take the next values, so in a
new layer label 1 is the first animal, label 2 the second, and so on. The dock shows this mapping;
saving a painted frame warns about a label that stands for no animal, and about an animal with
keypoints but no mask on a frame where other animals have one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from .convert import labels_to_masks, masks_to_labels
from .live_labels import LiveLabels
from .panels import PROBLEM_SIGN
from .reader import META_KEY
from .video_context import VideoContext
from .viewer_layers import adding_quietly, fits_video, layers_of_type

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
        frame_animals: the animals with keypoints on a frame (all frames for None), in order.
        warn: shows a warning to the user.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        picker: Any,
        keep_on_top: Callable[[], Any],
        current_frame: Callable[[], int],
        video_context: Callable[[], VideoContext],
        frame_animals: Callable[[int | None], list[str]],
        warn: Callable[[str], None],
    ) -> None:
        self.viewer = viewer
        self._picker = picker
        self._keep_on_top = keep_on_top
        self._current_frame = current_frame
        self._video_context = video_context
        self._frame_animals = frame_animals
        self._warn = warn
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
        self._learn_store_values(store)
        shape = (ctx.n_frames, ctx.height, ctx.width)
        if layer is not None and tuple(layer.data.shape) == shape:
            live = LiveLabels(*shape, base=layer.data, dtype=np.uint16)
            layer.data = live  # same layer object: its settings and undo history stay
        elif create:
            live = LiveLabels(*shape, base=lazy_labels(store, *shape, dtype=np.uint16), dtype=np.uint16)
            with adding_quietly(self.viewer, self._keep_on_top):
                layer = self.viewer.add_labels(
                    live,
                    name=f"{ctx.stem} masks",
                    opacity=0.4,
                    metadata={META_KEY: {"video_path": str(ctx.video_path)}},
                )
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
        if live is None:  # no Labels layer could be made for this video
            return
        for r in with_masks:
            names = [inst.name for inst in r.annotation.instances]
            values = [self._label_value(n) for n in names]
            live.update(r.frame, masks_to_labels(r.masks, ctx.height, ctx.width, values))
        layer = self.layer
        if layer is not None and self._current_frame() in {r.frame for r in with_masks}:
            layer.refresh()

    def _learn_store_values(self, store: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            for i, name in enumerate(store.names()):
                self.label_values.setdefault(name, i + 1)

    def names_by_value(self) -> dict[int, str]:
        """Label value -> animal: the mask store's values, then the keypoints' animals in order."""
        from ..io.mask_store import MaskStore

        with contextlib.suppress(UserError):
            self._learn_store_values(MaskStore(self._video_context().layout.masks_dir))
        for name in self._frame_animals(None):
            self._label_value(name)
        return {v: n for n, v in sorted(self.label_values.items(), key=lambda kv: kv[1])}

    def describe_labels(self) -> str:
        """The mapping for the user, e.g. ``Paint with: 1 = animal1, 2 = animal2``."""
        mapping = self.names_by_value()
        if not mapping:
            return ""
        return "Paint with: " + ", ".join(f"{v} = {n}" for v, n in mapping.items())

    def status_line(self, image: Any) -> str:
        """The mapping, preceded by a warning about Labels layers that do not fit the video ``image``."""
        import napari.layers

        misfits = [
            lyr
            for lyr in layers_of_type(self.viewer, napari.layers.Labels)
            if image is not None and not fits_video(lyr, image)
        ]
        line = self.describe_labels()
        if misfits:
            size = "×".join(str(n) for n in image.data.shape[:3])
            names = ", ".join(f"'{lyr.name}'" for lyr in misfits)
            line = (
                f"{PROBLEM_SIGN} {names} is not the video's size ({size} frames×rows×columns, no offset) and "
                f"cannot hold its masks: use 'New masks layer'. {line}"
            )
        return line

    def _label_value(self, name: str) -> int:
        if name not in self.label_values:
            self.label_values[name] = max(self.label_values.values(), default=0) + 1
        return self.label_values[name]

    def forget(self, frames: list[int]) -> None:
        """These frames' masks changed on disk: show them from there."""
        if self.live is not None:
            self.live.forget(frames)
            if self.layer is not None and self.layer.data is self.live:
                self.layer.refresh()

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
        names_by_value = self.names_by_value()
        for t in todo:
            labels = live.frame(t)
            masks, names = labels_to_masks(labels, names_by_value)
            self._check_painted(t, names)
            # every known animal is written (empty if unpainted), so the store numbers them as the dock does
            missing = [n for n in names_by_value.values() if n not in names]
            if missing:
                masks = np.concatenate([masks, np.zeros((len(missing), *labels.shape), bool)])
                names = names + missing
            order = sorted(range(len(names)), key=lambda i: self.label_values.get(names[i], len(names_by_value) + i))
            store.write(t, masks[order], [names[i] for i in order])
        live.clear_edited(todo)
        return todo

    def _check_painted(self, frame: int, painted: list[str]) -> None:
        """Warn about a label that is no animal, and an animal left without a mask on a painted frame."""
        known = set(self.label_values)
        animals = self._frame_animals(frame)
        strays = [n for n in painted if n not in known]
        if strays:
            self._warn(
                f"Frame {frame}: {', '.join(strays)} stand(s) for no animal with keypoints, so tracking "
                f"ignores it. {self.describe_labels()}."
            )
        unmasked = [n for n in animals if n not in painted]
        if painted and unmasked:
            self._warn(
                f"Frame {frame}: {', '.join(unmasked)} has keypoints but no mask; it is tracked without one. "
                f"{self.describe_labels()}."
            )
