"""Similarity heatmap: the numeric part without Qt, then the click -> layer path in a viewer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.napari.heatmap import (
    HEATMAP_LAYER,
    FeatureCache,
    HeatmapRequest,
    compute_heatmap,
    patch_at,
    similarity_map,
    upsample_to_frame,
)


def test_patch_lookup_and_upsampling_align():
    geom = compute_geometry(100, 150, 64, 16)  # scale 0.64, work 64x96, grid 4x6
    assert (geom.grid_height, geom.grid_width) == (4, 6)
    assert patch_at(0, 0, geom) == (0, 0)
    assert patch_at(99.9, 149.9, geom) == (3, 5)
    assert patch_at(30, 30, geom) == (1, 1)  # 30 px * 0.64 = 19.2 working px -> patch 1
    sim = np.zeros((4, 6), np.float32)
    sim[1, 1] = 1.0
    image = upsample_to_frame(sim, geom)
    assert image.shape == (100, 150)
    peak = np.unravel_index(np.argmax(image), image.shape)
    assert patch_at(*peak, geom) == (1, 1)  # the bright spot sits on the patch's own pixels


def test_similarity_map_is_cosine():
    feats = np.random.default_rng(0).normal(size=(8, 3, 4)).astype(np.float32)
    sim = similarity_map(feats, feats[:, 2, 1])
    assert sim.shape == (3, 4) and sim[2, 1] == pytest.approx(1.0, abs=1e-5)
    assert np.all(sim <= 1.0 + 1e-5) and np.all(sim >= -1.0 - 1e-5)


def test_feature_cache_is_lru():
    cache = FeatureCache(2)
    cache.put("a", np.zeros(1))
    cache.put("b", np.zeros(1))
    assert cache.get("a") is not None
    cache.put("c", np.zeros(1))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2


def test_compute_heatmap_with_pixel_backbone_caches_frames():
    from napari_dinotrack.backbone.pixel import PixelBackbone
    from napari_dinotrack.synthetic import make_clip

    clip = make_clip(n_frames=3, height=96, width=128)
    calls: list[int] = []

    def get_frame(t: int) -> np.ndarray:
        calls.append(t)
        return clip.frames[t]

    cache = FeatureCache(4)
    nose = clip.positions["animal1", "nose"][1]
    req = HeatmapRequest(1, float(nose[1]), float(nose[0]))
    first = compute_heatmap(req, get_frame, PixelBackbone(), 96, cache, "clip")
    assert first.image.shape == (96, 128) and not first.cached
    assert first.image[int(nose[1]), int(nose[0])] > 0.9
    again = compute_heatmap(HeatmapRequest(1, 10.0, 10.0), get_frame, PixelBackbone(), 96, cache, "clip")
    assert again.cached and calls == [1]
    seeded = compute_heatmap(
        HeatmapRequest(2, 10.0, 10.0, reference_frame=0), get_frame, PixelBackbone(), 96, cache, "clip"
    )
    assert calls == [1, 2, 0] and seeded.image.shape == (96, 128)


def test_click_shows_heatmap_layer(make_napari_viewer_proxy, open_tracker, sample_video: Path, clip_shape, qtbot):
    _, height, width = clip_shape
    viewer = make_napari_viewer_proxy()
    widget = open_tracker(viewer, sample_video)
    viewer.dims.set_current_step(0, 3)
    widget.display_panel.opacity.value = 0.5
    widget.display_panel.heatmap.value = True
    assert widget.heatmap._on_mouse_drag in viewer.mouse_drag_callbacks

    # a click as napari delivers it to a drag callback: press, then release without moving
    event = SimpleNamespace(type="mouse_press", position=(3.0, 40.0, 60.0), button=1, modifiers=())
    gen = widget.heatmap._on_mouse_drag(viewer, event)
    next(gen)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(gen)
    qtbot.waitUntil(lambda: HEATMAP_LAYER in viewer.layers, timeout=15000)
    layer = viewer.layers[HEATMAP_LAYER]
    assert layer.data.shape == (1, height, width)  # the video frame's shape, on frame 3 only
    assert layer.translate[0] == 3 and layer.colormap.name == "inferno" and layer.opacity == 0.5
    assert layer.data[0, 40, 60] == pytest.approx(layer.data.max(), abs=0.05)
    assert viewer.layers.index(layer) == viewer.layers.index(widget.image_layer) + 1  # right above the video

    # a second click on the same frame reuses the cached features
    previous = widget.heatmap.last_result
    widget.heatmap.request(3, 100.0, 20.0)
    qtbot.waitUntil(lambda: widget.heatmap.last_result is not previous, timeout=15000)
    assert widget.heatmap.last_result.cached and widget.heatmap.last_result.seconds < previous.seconds + 0.5

    # compare with the seed frame's patch
    widget.display_panel.from_seed.value = True
    previous = widget.heatmap.last_result
    widget.heatmap.request(3, 40.0, 60.0)
    qtbot.waitUntil(lambda: widget.heatmap.last_result is not previous, timeout=15000)
    assert widget.heatmap.last_result.request.reference_frame == 0
    qtbot.waitUntil(lambda: widget.heatmap.worker is None or not widget.heatmap.worker.is_running, timeout=5000)
    widget.display_panel.heatmap.value = False
    assert widget.heatmap._on_mouse_drag not in viewer.mouse_drag_callbacks
    widget.shutdown()
