"""Small helpers for the viewer's layer list: the plugin's metadata on a layer, finding and adding layers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .reader import META_KEY

if TYPE_CHECKING:
    import napari

__all__ = ["adding_quietly", "find_flagged", "fits_video", "layer_meta", "layers_of_type", "view_centre"]


def layer_meta(layer: Any) -> dict[str, Any]:
    """What the plugin stored in a layer's metadata (``{}`` for None or a foreign layer)."""
    if layer is None:
        return {}
    meta = getattr(layer, "metadata", None) or {}
    got = meta.get(META_KEY, {})
    return got if isinstance(got, dict) else {}


def layers_of_type(viewer: napari.viewer.Viewer, kind: type) -> list[Any]:
    """The viewer's layers of one napari layer class, bottom to top."""
    return [lyr for lyr in viewer.layers if isinstance(lyr, kind)]


def find_flagged(viewer: napari.viewer.Viewer, kind: type, flag: str) -> Any:
    """The first layer of ``kind`` whose plugin metadata has ``flag`` set, else None."""
    return next((lyr for lyr in layers_of_type(viewer, kind) if layer_meta(lyr).get(flag)), None)


@contextlib.contextmanager
def adding_quietly(viewer: napari.viewer.Viewer, keep_on_top: Callable[[], Any]) -> Iterator[None]:
    """Add layers inside this block without disturbing the user.

    napari selects a newly added layer and puts it on top; afterwards the layer ``keep_on_top()``
    (the keypoints, which must stay clickable) goes back to the top and the selection goes back
    to the layer the user was working on.
    """
    layers = viewer.layers
    active = layers.selection.active
    yield
    top = keep_on_top()
    if top is not None and top in layers:
        i = layers.index(top)
        if i != len(layers) - 1:
            layers.move(i, len(layers))
    if active is not None and active in layers:
        layers.selection.active = active


def fits_video(layer: Any, image: Any) -> bool:
    """Whether ``layer`` (e.g. a Labels layer) covers the video ``image`` pixel for pixel, frame for frame.

    napari's "New labels layer" sizes the new layer to the selected layer, so with the keypoints
    selected it makes a small, offset layer that cannot hold the video's masks.
    """
    if image is None or layer is None:
        return False
    shape = tuple(int(n) for n in image.data.shape[:3])
    if tuple(int(n) for n in layer.data.shape) != shape:
        return False
    return bool(np.allclose(layer.translate, image.translate[:3]) and np.allclose(layer.scale, image.scale[:3]))


def view_centre(viewer: napari.viewer.Viewer, image: Any) -> tuple[float, float]:
    """The centre of the canvas as ``(y, x)`` in the pixels of ``image`` (world coordinates if None)."""
    centre = np.asarray(viewer.camera.center, dtype=float)
    world = np.zeros(viewer.dims.ndim)
    world[:] = viewer.dims.point
    world[-2:] = centre[-2:]
    if image is not None:
        data = np.asarray(image.world_to_data(world), dtype=float)
        return float(data[-2]), float(data[-1])
    return float(centre[-2]), float(centre[-1])
