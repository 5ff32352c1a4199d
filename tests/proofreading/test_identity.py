"""Swapping two animals' identities over a frame range of a result folder."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dinotrack.errors import AnnotationError, InputError
from napari_dinotrack.io.labelme import frame_source, load_annotations, read_frame
from napari_dinotrack.io.mask_store import MaskStore
from napari_dinotrack.io.tables import read_tracks_csv, write_tracks_csv
from napari_dinotrack.proofreading.identity import swap_identities
from napari_dinotrack.runplan import plan_run


def _positions(ann, name):
    inst = ann.instance(name)
    return [(k.name, k.x, k.y, k.visible, k.score) for k in inst.keypoints]


@pytest.fixture
def folder(layout, walking, write_folder):
    walking[3].instances[0].keypoints[0].extra["disagreement_px"] = 3.0
    write_folder(layout, walking)
    write_tracks_csv(layout.tracks_csv, walking.values())
    store = MaskStore(layout.masks_dir)
    for t in range(20):
        masks = np.zeros((2, 120, 160), bool)
        masks[0, 20:40, :] = True
        masks[1, 60:80, :] = True
        store.write(t, masks, ["animal1", "animal2"])
    return layout


def test_swap_exchanges_names_in_files_masks_and_table(folder, walking):
    before = load_annotations(folder)
    report = swap_identities(folder, "animal1", "animal2", 5, 9)
    assert report.swapped == (5, 6, 7, 8, 9) and report.manual_kept == () and report.masks_swapped == report.swapped
    after = load_annotations(folder)
    for t in range(20):
        a, b = ("animal2", "animal1") if 5 <= t <= 9 else ("animal1", "animal2")
        assert _positions(after[t], a) == _positions(before[t], "animal1")
        assert _positions(after[t], b) == _positions(before[t], "animal2")
        assert [i.name for i in after[t].instances] == ["animal1", "animal2"]  # each name keeps its slot
        assert after[t].source == before[t].source and after[t].seed_frame == before[t].seed_frame
    assert after[3].instances[0].keypoints[0].extra == {"disagreement_px": 3.0}  # extras ride along
    # the run plan still sees every prediction as current: nothing is re-tracked because of the swap
    assert plan_run(before, 20) is None and plan_run(after, 20) is None
    # masks follow the names
    store = MaskStore(folder.masks_dir)
    assert store.read_masks(6, ["animal1"])[0][60:80].all() and not store.read_masks(6, ["animal1"])[0][20:40].any()
    assert store.read_masks(4, ["animal1"])[0][20:40].all()
    # the table too, and nothing else changed in it
    rows = read_tracks_csv(folder.tracks_csv)
    assert len(rows) == 20 * 4
    nose7 = next(r for r in rows if r["frame"] == 7 and r["instance"] == "animal2" and r["keypoint"] == "nose")
    assert nose7["y"] == pytest.approx(30.0)  # animal1's old row
    assert [r["frame"] for r in rows] == sorted(r["frame"] for r in rows)
    # swapping again undoes it, byte for byte
    texts = {t: folder.frame_json(t).read_text() for t in range(20)}
    swap_identities(folder, "animal2", "animal1", 5, 9)
    swap_identities(folder, "animal2", "animal1", 5, 9)
    assert {t: folder.frame_json(t).read_text() for t in range(20)} == texts


def test_manual_frames_are_kept_unless_asked(folder):
    report = swap_identities(folder, "animal1", "animal2", 0, 4)
    assert report.manual_kept == (0,) and report.swapped == (1, 2, 3, 4)
    assert read_frame(folder.frame_json(0)).instances[0].keypoints[0].y == pytest.approx(30.0)
    assert "Manual frames kept as labelled: 0" in report.describe()
    report = swap_identities(folder, "animal1", "animal2", 0, 0, include_manual=True)
    assert report.swapped == (0,)
    ann = read_frame(folder.frame_json(0))
    assert ann.instance("animal2").keypoints[0].y == pytest.approx(30.0)
    assert frame_source(folder.frame_json(0)) == "manual"


def test_an_animal_missing_on_some_frames_is_renamed_there(layout, frame_annotation, write_folder):
    anns = {t: frame_annotation(t, instances=("animal1",) if t % 2 else ("animal1", "animal2")) for t in range(1, 6)}
    write_folder(layout, anns)
    swap_identities(layout, "animal1", "animal2", 1, 5)
    got = load_annotations(layout)
    assert [i.name for i in got[1].instances] == ["animal2"] and got[1].instances[0].keypoints[0].y == 30.0
    assert sorted(i.name for i in got[2].instances) == ["animal1", "animal2"]


def test_bad_requests_and_unreadable_files_change_nothing(folder):
    with pytest.raises(InputError, match="two different animals"):
        swap_identities(folder, "animal1", "animal1", 0, 5)
    with pytest.raises(InputError, match="not a range"):
        swap_identities(folder, "animal1", "animal2", 9, 5)
    folder.frame_json(8).write_text("{ broken")
    texts = {t: folder.frame_json(t).read_text() for t in range(20)}
    with pytest.raises(AnnotationError, match="000000008"):
        swap_identities(folder, "animal1", "animal2", 5, 9)
    assert {t: folder.frame_json(t).read_text() for t in range(20)} == texts
    assert swap_identities(folder, "mouse", "rat", 0, 7).swapped == ()
