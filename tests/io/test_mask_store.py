"""Mask outlines and the per-frame mask store."""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
import pytest

from napari_dinotrack.io.mask_store import MaskStore, lazy_labels, mask_to_polygon, polygon_to_mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


@pytest.mark.parametrize("shape", [(20, 33, 9, 15), (60, 90, 25, 40), (6, 10, 4, 4)])
def test_polygon_round_trip_keeps_blobs(shape):
    cy, cx, ry, rx = shape
    mask = _ellipse(120, 160, cy, cx, ry, rx)
    poly = mask_to_polygon(mask)
    assert poly.dtype == np.float32 and poly.ndim == 2 and poly.shape[1] == 2
    assert 3 <= len(poly) < mask.sum()  # simplified, not every boundary pixel
    back = polygon_to_mask(poly, 120, 160)
    assert back.dtype == bool and back.shape == (120, 160)
    assert _iou(back, mask) > 0.9


def test_polygon_uses_largest_component_and_empty_mask():
    mask = _ellipse(80, 100, 40, 30, 15, 20) | _ellipse(80, 100, 10, 85, 4, 4)
    poly = mask_to_polygon(mask)
    assert poly[:, 0].max() < 60  # the small blob on the right is not outlined
    assert mask_to_polygon(np.zeros((10, 10), bool)).shape == (0, 2)
    assert not polygon_to_mask(np.zeros((0, 2)), 10, 10).any()


def test_polygon_to_mask_sub_pixel_vertices():
    square = np.array([[10.4, 10.4], [19.6, 10.4], [19.6, 19.6], [10.4, 19.6]])
    m = polygon_to_mask(square, 30, 30)
    # pixel centres 11..19 are inside; rounding each vertex first would shift or grow the square
    assert m[11:20, 11:20].all() and m.sum() <= 11 * 11
    assert not m[:, 21:].any() and not m[21:].any()


def _masks(h: int = 40, w: int = 50) -> tuple[np.ndarray, list[str]]:
    m = np.zeros((2, h, w), bool)
    m[0, 5:20, 5:25] = True
    m[1, 15:35, 20:45] = True  # overlaps instance 0 on [15:20, 20:25]
    return m, ["mouse", "rat"]


def test_store_round_trip_and_overlap_goes_to_lower_index(tmp_path):
    store = MaskStore(tmp_path / "clip_masks")
    masks, names = _masks()
    store.write(7, masks, names)
    labels, known = store.read(7)
    assert labels.dtype == np.uint8 and labels.shape == (40, 50)
    assert known == names
    assert (labels[15:20, 20:25] == 1).all()  # the first instance wins the overlap
    back = store.read_masks(7, names)
    assert back[0].tolist() == masks[0].tolist()
    assert (back[1] == (masks[1] & ~masks[0])).all()
    assert store.read(8) is None and store.read_masks(8, names) is None
    assert store.frames() == [7]
    assert (tmp_path / "clip_masks" / "000000007.png").is_file()


def test_store_label_values_are_stable(tmp_path):
    store = MaskStore(tmp_path / "m")
    masks, _ = _masks()
    store.write(0, masks, ["a", "b"])
    store.write(1, masks[::-1], ["b", "c"])  # order changes, "c" is new
    store.write(2, masks[:1], ["a"])
    assert store.names() == ["a", "b", "c"]
    table = json.loads((tmp_path / "m" / "instances.json").read_text())
    assert table == {"1": "a", "2": "b", "3": "c"}
    lab1, _ = store.read(1)
    assert set(np.unique(lab1)) == {0, 2, 3}
    assert (lab1[masks[1]] == 2).all()  # "b" keeps value 2 although it is listed first now
    # a fresh store object on the same folder sees the same table
    again = MaskStore(tmp_path / "m")
    assert again.names().index("c") + 1 == 3 and "zebra" not in again.names()
    assert again.read_masks(1, ["c", "zebra"])[1].sum() == 0
    assert again.frames() == [0, 1, 2]


def test_store_writes_atomically_and_many_instances(tmp_path):
    store = MaskStore(tmp_path / "m")
    names = [f"i{k}" for k in range(300)]
    masks = np.zeros((300, 20, 20), bool)
    for k in range(300):
        masks[k].flat[k] = True
    store.write(3, masks, names)
    labels, _ = store.read(3)
    assert labels.dtype == np.uint16 and labels.flat[299] == 300
    for k in range(5):
        store.write(k, masks, names)
    leftovers = [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
    with pytest.raises(ValueError):
        store.write(0, masks[:2], ["x"])


def test_lazy_labels_reads_frames_on_demand(tmp_path):
    store = MaskStore(tmp_path / "m")
    masks, names = _masks()
    store.write(2, masks, names)
    arr = lazy_labels(store, 5, 40, 50)
    assert arr.shape == (5, 40, 50) and arr.dtype == np.uint8
    assert arr.chunks[0] == (1,) * 5
    assert not arr[0].compute().any()
    np.testing.assert_array_equal(arr[2].compute(), store.read(2)[0])
    # frames written after the array was built show up on the next read
    store.write(4, masks[1:], ["rat"])
    assert set(np.unique(arr[4].compute())) == {0, 2}


def test_lazy_labels_long_video_allocates_nothing(tmp_path):
    import dask.array  # noqa: F401 - import cost must not count below

    store = MaskStore(tmp_path / "m")
    masks, names = _masks(480, 640)
    store.write(99_999, masks, names)
    tracemalloc.start()
    t0 = time.perf_counter()
    arr = lazy_labels(store, 100_000, 480, 640)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert arr.shape == (100_000, 480, 640)  # 30 GB if it were materialised
    assert peak < 100e6 and elapsed < 10
    assert arr[99_999].compute().max() == 2


def test_label_pngs_are_plain_pngs_other_tools_read(tmp_path):
    from PIL import Image

    store = MaskStore(tmp_path / "m")
    masks, names = _masks()
    store.write(0, masks, names)
    with Image.open(store.path(0)) as png:
        assert png.format == "PNG"
        np.testing.assert_array_equal(np.asarray(png), store.read(0)[0])


def test_two_stores_on_one_folder_never_give_two_animals_one_value(tmp_path):
    masks, _ = _masks()
    tracker, painter = MaskStore(tmp_path / "m"), MaskStore(tmp_path / "m")
    tracker.write(0, masks[:1], ["mouse"])
    painter.write(1, masks[:1], ["rat"])  # e.g. a frame painted in the viewer meanwhile
    tracker.write(2, masks, ["mouse", "weasel"])
    assert MaskStore(tmp_path / "m").names() == ["mouse", "rat", "weasel"]
    assert set(np.unique(tracker.read(2)[0])) == {0, 1, 3}
