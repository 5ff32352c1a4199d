"""Finding the frames worth a second look."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dinotrack.errors import ConfigError
from napari_dinotrack.io.labelme import load_annotations
from napari_dinotrack.proofreading.suspicious import (
    KeypointTable,
    SuspicionSettings,
    by_frame,
    find_suspicious,
    step_to,
)


def test_a_clean_track_has_nothing_suspicious(walking):
    assert find_suspicious(KeypointTable.from_annotations(walking)) == []


def test_each_reason_is_found_on_its_frame(walking, frame_annotation, layout, write_folder):
    walking[5] = frame_annotation(5, animal1_nose={"x": 90.0})  # a jump there (and back on frame 6)
    walking[8] = frame_annotation(8, animal2_tail_base={"score": 0.2})
    for t in (11, 12, 13):  # lost for three frames: listed once, where it was lost
        walking[t] = frame_annotation(t, animal2_nose={"visible": False, "score": 0.1})
    walking[16] = frame_annotation(16, animal1_tail_base={"extra": {"disagreement_px": 14.5}})
    write_folder(layout, walking)
    found = find_suspicious(KeypointTable.from_annotations(load_annotations(layout)))
    got = {(s.frame, s.instance, s.keypoint, s.reason) for s in found}
    assert got == {
        (5, "animal1", "nose", "jump"),
        (6, "animal1", "nose", "jump"),
        (8, "animal2", "tail_base", "low score"),
        (11, "animal2", "nose", "lost"),
        (16, "animal1", "tail_base", "disagreement"),
    }
    assert [s.frame for s in found] == sorted(s.frame for s in found)
    frames = by_frame(found)
    assert list(frames) == [5, 6, 8, 11, 16]
    jump = frames[5][0]
    assert jump.value == pytest.approx(90.0 - 28.0) and jump.describe() == "animal1 nose: jump of 62 px/frame"
    assert frames[16][0].value == pytest.approx(14.5) and "passes 14 px apart" in frames[16][0].describe()


def test_manual_frames_are_never_suspicious_and_a_jump_into_one_blames_the_frame_before(walking, frame_annotation):
    walking[7] = frame_annotation(7, "manual", animal1_nose={"x": 80.0, "score": 0.0})
    found = {(s.frame, s.reason) for s in find_suspicious(KeypointTable.from_annotations(walking))}
    # 6 -> 7 jumps into the manual frame: the prediction on 6 is the doubtful one; 7 -> 8 jumps back
    assert found == {(6, "jump"), (8, "jump")}


def test_jumps_are_relative_to_the_keypoints_own_speed():
    frames = np.arange(30)
    fast = dict(frame=frames, instance=["a"] * 30, keypoint=["nose"] * 30, x=12.0 * frames, y=np.zeros(30))
    table = KeypointTable.from_columns(**fast)
    assert find_suspicious(table) == []  # 12 px every frame is this animal's normal pace
    x = 12.0 * frames
    x[20] += 80.0
    found = find_suspicious(KeypointTable.from_columns(**{**fast, "x": x}))
    assert {s.frame for s in found} == {20, 21} and {s.reason for s in found} == {"jump"}
    strict = SuspicionSettings(jump_factor=100.0)
    assert find_suspicious(KeypointTable.from_columns(**{**fast, "x": x}), strict) == []


def test_thresholds_are_settings_with_ranges(walking, frame_annotation):
    walking[3] = frame_annotation(3, animal1_nose={"score": 0.45})
    table = KeypointTable.from_annotations(walking)
    assert [s.frame for s in find_suspicious(table)] == [3]
    assert find_suspicious(table, SuspicionSettings(min_score=0.4)) == []
    with pytest.raises(ConfigError, match="min_score"):
        SuspicionSettings(min_score=2.0)


def test_series_gives_score_and_speed_over_time(walking, frame_annotation):
    walking[4] = frame_annotation(4, animal1_nose={"visible": False})
    series = KeypointTable.from_annotations(walking).series("animal1", "nose")
    assert series.frame.tolist() == list(range(20))
    assert np.isnan(series.step[0]) and np.isnan(series.step[4])
    assert series.step[1] == pytest.approx(2.0) and series.step[5] == pytest.approx(2.0)  # 4 px over 2 frames
    assert series.typical_step == pytest.approx(2.0)
    assert series.manual[0] and not series.manual[1:].any()


def test_step_to_next_and_previous():
    frames = [3, 8, 15]
    assert step_to(frames, 0, +1) == 3 and step_to(frames, 3, +1) == 8 and step_to(frames, 15, +1) is None
    assert step_to(frames, 8, -1) == 3 and step_to(frames, 9, -1) == 8 and step_to(frames, 3, -1) is None
    assert step_to([], 5, +1) is None
