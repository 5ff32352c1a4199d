"""Similarity heatmap: how alike is every patch of the frame to the patch you clicked?

While the toggle is on, a click on the video (outside napari's add and paint modes, where a
click means a new point or paint) computes the cosine similarity between the
backbone feature of the clicked patch (of the current frame, or optionally of the seed frame
at the same place) and every patch of the current frame. The map is upsampled to the video
frame size and shown as the ``dino similarity`` Image layer (colormap "inferno") on that frame
only. Per-frame features are kept in a small LRU cache, so more clicks on a frame are instant.
The computation runs in a worker thread; only the layer update happens on the GUI thread, and it
leaves the user's selected layer selected (so the next drag still moves a point).

The numeric part (:func:`patch_at`, :func:`similarity_map`, :func:`upsample_to_frame`,
:class:`FeatureCache`, :func:`compute_heatmap`) needs neither Qt nor napari.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .reader import META_KEY
from .viewer_layers import adding_quietly

if TYPE_CHECKING:
    import napari

    from ..backbone.base import Backbone, WorkGeometry

__all__ = [
    "HEATMAP_LAYER",
    "FeatureCache",
    "HeatmapController",
    "HeatmapRequest",
    "HeatmapResult",
    "compute_heatmap",
    "patch_at",
    "similarity_map",
    "upsample_to_frame",
]

HEATMAP_LAYER = "dino similarity"
#: layer modes in which a click edits the layer: it is not meant for the heatmap
EDITING_MODES = frozenset(
    {
        "add",
        "paint",
        "fill",
        "erase",
        "polygon",
        "add_rectangle",
        "add_ellipse",
        "add_line",
        "add_path",
        "add_polyline",
        "add_polygon",
        "add_polygon_lasso",
        "vertex_insert",
    }
)


class FeatureCache:
    """Thread-safe LRU of per-frame patch features (``(features (C, gh, gw), geometry)`` pairs)."""

    def __init__(self, max_frames: int = 4) -> None:
        self.max_frames = int(max_frames)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        """The cached features for ``key`` (marks them recently used), else None."""
        with self._lock:
            feats = self._items.get(key)
            if feats is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return feats

    def put(self, key: Hashable, features: Any) -> None:
        """Store ``features`` under ``key``, evicting the least recently used beyond the limit."""
        with self._lock:
            self._items[key] = features
            self._items.move_to_end(key)
            while len(self._items) > self.max_frames:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def patch_at(y: float, x: float, geometry: WorkGeometry) -> tuple[int, int]:
    """Patch-grid cell ``(row, col)`` that holds video pixel ``(y, x)``."""
    gy = int(np.floor(y * geometry.scale / geometry.patch_size))
    gx = int(np.floor(x * geometry.scale / geometry.patch_size))
    work_rows = max(1, int(np.ceil(geometry.work_height / geometry.patch_size)))
    work_cols = max(1, int(np.ceil(geometry.work_width / geometry.patch_size)))
    return int(np.clip(gy, 0, work_rows - 1)), int(np.clip(gx, 0, work_cols - 1))


def similarity_map(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity ``(gh, gw)`` of every patch of ``features`` ``(C, gh, gw)`` to ``reference`` ``(C,)``.

    Features from the engine are already unit-norm; both sides are normalised again anyway.
    """
    feats = np.asarray(features, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32).reshape(-1)
    ref = ref / max(float(np.linalg.norm(ref)), 1e-6)
    norms = np.maximum(np.linalg.norm(feats, axis=0), 1e-6)
    return np.tensordot(ref, feats, axes=(0, 0)) / norms


def upsample_to_frame(sim: np.ndarray, geometry: WorkGeometry) -> np.ndarray:
    """A patch-grid map -> ``(H, W)`` float32 at video resolution, exactly over the frame.

    The grid covers the padded working image; the padding is cropped before resizing back to
    the native frame size, so patch centres land where their pixels are.
    """
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(sim, dtype=np.float32))[None, None]
    t = F.interpolate(t, size=(geometry.padded_height, geometry.padded_width), mode="bilinear", align_corners=False)
    t = t[..., : geometry.work_height, : geometry.work_width]
    t = F.interpolate(t, size=(geometry.native_height, geometry.native_width), mode="bilinear", align_corners=False)
    return t[0, 0].numpy()


@dataclass(frozen=True)
class HeatmapRequest:
    """One click: which frame and pixel, and (optionally) the seed frame to take the patch from."""

    frame: int
    y: float
    x: float
    reference_frame: int | None = None


@dataclass
class HeatmapResult:
    """The upsampled similarity image ``(H, W)`` of ``request.frame`` and how it was made."""

    request: HeatmapRequest
    image: np.ndarray
    patch: tuple[int, int]
    seconds: float
    cached: bool


def _features(backbone: Backbone, frame: np.ndarray, geometry: WorkGeometry) -> np.ndarray:
    out = backbone.extract(np.ascontiguousarray(frame)[None], geometry)
    return out[0].float().cpu().numpy()


def compute_heatmap(
    request: HeatmapRequest,
    get_frame: Callable[[int], np.ndarray],
    backbone: Backbone,
    short_side: int,
    cache: FeatureCache,
    cache_key: Hashable = None,
) -> HeatmapResult:
    """Features (cached per frame) -> similarity to the clicked patch -> ``(H, W)`` image.

    ``get_frame(t)`` returns frame ``t`` as ``(H, W, 3)`` uint8. ``cache_key`` identifies the
    video + backbone + working size, so cached features are never reused across them.
    """
    from ..backbone.base import compute_geometry

    t0 = time.perf_counter()
    cached = True

    def feats_of(t: int) -> tuple[np.ndarray, WorkGeometry]:
        nonlocal cached
        key = (cache_key, int(t))
        frame = None
        hit = cache.get(key)
        if hit is None:
            cached = False
            frame = np.asarray(get_frame(int(t)))
            geom = compute_geometry(frame.shape[0], frame.shape[1], short_side, backbone.patch_size)
            hit = _features(backbone, frame, geom)
            cache.put(key, (hit, geom))
            return hit, geom
        return hit

    feats, geom = feats_of(request.frame)
    gy, gx = patch_at(request.y, request.x, geom)
    if request.reference_frame is not None and request.reference_frame != request.frame:
        ref_feats, _ = feats_of(request.reference_frame)
        reference = ref_feats[:, gy, gx]
    else:
        reference = feats[:, gy, gx]
    sim = similarity_map(feats, reference)
    image = upsample_to_frame(sim, geom)
    return HeatmapResult(request, image.astype(np.float32), (gy, gx), time.perf_counter() - t0, cached)


class HeatmapController:
    """Connects the click, the worker and the ``dino similarity`` layer of one viewer.

    Args:
        viewer: the napari viewer.
        image_layer: returns the video Image layer (or None).
        backbone: loads/returns the backbone for a choice (called in the worker thread).
        backbone_key: the current backbone choice, hashable (read on the GUI thread).
        short_side: returns the working short side.
        reference_frame: given the current frame, the seed frame to take the clicked patch
            from, or None to use the current frame itself.
        on_error: called with a message when the computation fails.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image_layer: Callable[[], Any],
        backbone: Callable[[Any], Backbone],
        backbone_key: Callable[[], Hashable],
        short_side: Callable[[], int],
        reference_frame: Callable[[int], int | None] | None = None,
        on_error: Callable[[str], None] | None = None,
        cache_frames: int = 4,
    ) -> None:
        self.viewer = viewer
        self._image_layer = image_layer
        self._backbone = backbone
        self._backbone_key = backbone_key
        self._short_side = short_side
        self._reference_frame = reference_frame
        self._on_error = on_error
        self.cache = FeatureCache(cache_frames)
        self.opacity = 0.6
        self.enabled = False
        self.worker: Any = None
        self.last_result: HeatmapResult | None = None
        self._pending: HeatmapRequest | None = None

    # -- toggle and mouse -------------------------------------------------------------------
    def set_enabled(self, on: bool) -> None:
        """Start/stop listening to clicks on the canvas."""
        on = bool(on)
        if on == self.enabled:
            return
        self.enabled = on
        callbacks = self.viewer.mouse_drag_callbacks
        if on:
            callbacks.append(self._on_mouse_drag)
            # a click now asks for a heatmap: a Points layer left in add mode would also add a point
            for layer in self.viewer.layers:
                if type(layer).__name__ == "Points" and str(getattr(layer, "mode", "")) == "add":
                    layer.mode = "select"
        elif self._on_mouse_drag in callbacks:
            callbacks.remove(self._on_mouse_drag)

    def _on_mouse_drag(self, viewer: Any, event: Any):  # generator: click = press + release without drag
        if getattr(event, "button", 1) != 1 or getattr(event, "modifiers", ()):
            return
        active = self.viewer.layers.selection.active
        if str(getattr(active, "mode", "")) in EDITING_MODES:
            return  # the click adds a point or paints: that is what the user asked for
        start = np.asarray(event.position, dtype=float)
        yield
        moved = False
        while event.type == "mouse_move":
            if np.abs(np.asarray(event.position, dtype=float) - start).max() > 2:
                moved = True
            yield
        if not moved:
            self.click(tuple(start))

    def click(self, world_position: tuple[float, ...]) -> Any:
        """Compute the heatmap for a click at a world position (``(t, y, x)``); returns the worker."""
        layer = self._image_layer()
        if layer is None:
            return None
        pos = np.asarray(layer.world_to_data(world_position), dtype=float)
        n_frames, height, width = layer.data.shape[0], layer.data.shape[1], layer.data.shape[2]
        t = round(pos[0]) if len(pos) >= 3 else int(self.viewer.dims.current_step[0])
        y, x = float(pos[-2]), float(pos[-1])
        if not (0 <= t < n_frames and 0 <= y < height and 0 <= x < width):
            return None
        return self.request(t, y, x)

    # -- work -----------------------------------------------------------------------------
    def request(self, frame: int, y: float, x: float) -> Any:
        """Compute (in a worker thread) and show the heatmap for video pixel ``(y, x)`` of ``frame``."""
        from napari.qt.threading import create_worker

        layer = self._image_layer()
        if layer is None:
            if self._on_error:
                self._on_error("Choose the video layer first.")
            return None
        ref = self._reference_frame(frame) if self._reference_frame is not None else None
        req = HeatmapRequest(int(frame), float(y), float(x), ref)
        if self.worker is not None and self.worker.is_running:
            self._pending = req  # computed when the running one is done; only the last click counts
            return self.worker
        data = layer.data  # grabbed on the GUI thread; computed in the worker
        choice = self._backbone_key()
        short_side = int(self._short_side())
        key = (id(data), choice, short_side)

        def get_frame(t: int) -> np.ndarray:
            frame_data = data[t]
            return np.asarray(frame_data.compute() if hasattr(frame_data, "compute") else frame_data)

        def run() -> HeatmapResult:
            return compute_heatmap(req, get_frame, self._backbone(choice), short_side, self.cache, key)

        worker = create_worker(run, _ignore_errors=True)
        worker.returned.connect(self._show)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._next)
        self.worker = worker
        worker.start()
        return worker

    def _next(self) -> None:
        req, self._pending = self._pending, None
        if req is not None and self.enabled:
            self.request(req.frame, req.y, req.x)

    def _failed(self, exc: BaseException) -> None:
        if self._on_error:
            self._on_error(f"Similarity heatmap failed: {exc}")

    def _show(self, result: HeatmapResult) -> None:
        """Put the map into the ``dino similarity`` layer (GUI thread)."""
        self.last_result = result
        image_layer = self._image_layer()
        data = result.image[None]
        scale = np.ones(3)
        translate = np.array([float(result.request.frame), 0.0, 0.0])
        if image_layer is not None:
            scale = np.asarray(image_layer.scale, dtype=float)[-3:]
            translate = np.asarray(image_layer.translate, dtype=float)[-3:].copy()
            translate[0] += result.request.frame * scale[0]
        # black at the median similarity: what lights up is what resembles the clicked patch
        low = float(np.median(result.image))
        limits = (min(low, 0.99), 1.0)
        if HEATMAP_LAYER in self.viewer.layers:
            layer = self.viewer.layers[HEATMAP_LAYER]
            layer.data = data
            layer.scale = scale
            layer.translate = translate
            layer.contrast_limits = limits
            layer.opacity = self.opacity
            layer.visible = True
        else:
            with adding_quietly(self.viewer, lambda: None):  # the selected layer stays selected
                layer = self.viewer.add_image(
                    data,
                    name=HEATMAP_LAYER,
                    colormap="inferno",
                    opacity=self.opacity,
                    blending="translucent",
                    scale=scale,
                    translate=translate,
                    contrast_limits=limits,
                    metadata={META_KEY: {"heatmap": True}},
                )
                if image_layer is not None and image_layer in self.viewer.layers:
                    src = self.viewer.layers.index(layer)
                    dst = self.viewer.layers.index(image_layer) + 1
                    if src != dst:
                        self.viewer.layers.move(src, dst)

    def set_opacity(self, value: float) -> None:
        """Opacity of the heatmap layer (also for later maps)."""
        self.opacity = float(value)
        if HEATMAP_LAYER in self.viewer.layers:
            self.viewer.layers[HEATMAP_LAYER].opacity = self.opacity
