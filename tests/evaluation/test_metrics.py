"""The metrics against small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dinotrack.errors import InputError
from napari_dinotrack.evaluation import evaluate, left_right_pairs, tracks_from_arrays

NAN = np.nan


def _tracks(frames, keys, xy, visible=None, labelled=None):
    xy = np.asarray(xy, float)
    if visible is None:
        visible = np.isfinite(xy).all(-1)
    return tracks_from_arrays(frames, keys, xy, visible, labelled)


@pytest.fixture
def one_animal():
    """Nose at (100, 100), tail at (130, 140): box diagonal 50 px, so PCK@bbox needs <= 2.5 px, failure > 20 px.

    Frame 0 is the manual seed. Nose errors on frames 1-4: 5, reported hidden, 10, 2;
    tail errors: 0, 10.5, 20, 21.
    """
    keys = [("m", "nose"), ("m", "tail")]
    truth = _tracks(range(5), keys, [[[100, 100], [130, 140]]] * 5)
    offsets = np.array(
        [
            [[3, 4], [0, 0]],
            [[0, 0], [0, 10.5]],
            [[6, 8], [12, 16]],
            [[0, 2], [0, 21]],
        ],
        float,
    )
    xy = truth.xy[1:] + offsets
    visible = np.ones((4, 2), bool)
    visible[1, 0] = False  # frame 2: the visible nose is reported hidden
    pred = tracks_from_arrays(range(1, 5), keys, xy, visible)
    return pred, truth


def test_pck_thresholds_are_inclusive_and_a_hidden_report_is_a_miss(one_animal):
    pred, truth = one_animal
    report = evaluate(pred, truth, skip_frames=[0])
    pooled = report.pooled
    assert pooled["points"] == 8
    assert pooled["pck5"] == pytest.approx(3 / 8)  # 5, 2, 0
    assert pooled["pck10"] == pytest.approx(4 / 8)  # and 10 (10.5 is a miss)
    assert pooled["pck_bbox"] == pytest.approx(2 / 8)  # 2 and 0 are within 2.5 px
    # the nose reported hidden is left out of median and mean: errors 5, 10, 2, 0, 10.5, 20, 21
    assert pooled["median_px"] == pytest.approx(10.0)
    assert pooled["mean_px"] == pytest.approx(68.5 / 7)
    assert pooled["visible_recall"] == pytest.approx(7 / 8)
    assert pooled["hidden_recall"] is None and pooled["hidden_points"] == 0
    nose = report.per_keypoint["nose"]
    assert (nose["points"], nose["pck5"], nose["pck10"], nose["median_px"]) == (4, 0.5, 0.75, 5.0)
    assert list(report.per_keypoint) == ["nose", "tail"]
    assert np.isinf(report.per_frame_error[1, 0]) and report.per_frame_error[0, 0] == pytest.approx(5.0)


def test_time_to_first_failure(one_animal):
    pred, truth = one_animal
    report = evaluate(pred, truth, skip_frames=[0])
    # from the seed (frame 0): the nose fails at frame 2 (reported hidden), the tail at frame 4 (21 > 20 px;
    # 20 px on frame 3 is not a failure)
    assert report.per_keypoint["nose"]["ttff_median_frames"] == 2
    assert report.per_keypoint["nose"]["ttff_median_fraction"] == pytest.approx(0.5)
    assert report.per_keypoint["tail"]["ttff_median_frames"] == 4
    assert report.pooled["ttff_median_frames"] == pytest.approx(3.0)
    assert report.pooled["ttff_median_fraction"] == pytest.approx(0.75)
    assert report.pooled["never_failed"] == 0.0
    # a perfect prediction never fails and counts its whole span
    perfect = evaluate(tracks_from_arrays(range(1, 5), truth.keys, truth.xy[1:], truth.visible[1:]), truth, [0])
    assert perfect.pooled["never_failed"] == 1.0
    assert perfect.pooled["ttff_median_frames"] == 4 and perfect.pooled["ttff_median_fraction"] == 1.0
    assert perfect.pooled["pck5"] == 1.0 and perfect.pooled["median_px"] == 0.0


def test_failure_threshold_grows_with_the_animal():
    """0.1 x diagonal above 20 px: with a 300 px box, 25 px is not yet a failure but 31 px is."""
    keys = [("horse", "nose"), ("horse", "tail")]
    truth = _tracks(range(3), keys, [[[0, 0], [180, 240]]] * 3)  # diagonal 300
    pred = _tracks([1, 2], keys, [[[15, 20], [180, 240]], [[0, 31], [180, 240]]])
    report = evaluate(pred, truth, [0])
    assert report.per_keypoint["nose"]["ttff_median_frames"] == 2


def test_manual_and_skipped_frames_are_not_scored_and_unpredicted_frames_are_reported(one_animal):
    pred, truth = one_animal
    report = evaluate(pred, truth, skip_frames=[0, 2])
    assert report.frames.tolist() == [1, 3, 4]
    assert report.frames_skipped == [0, 2]
    assert report.pooled["points"] == 6 and report.pooled["visible_recall"] == 1.0
    # predictions for frames 1-2 only: labelled frames 3 and 4 have none and are not scored
    short = tracks_from_arrays([1, 2], pred.keys, pred.xy[:2], pred.visible[:2])
    report = evaluate(short, truth, skip_frames=[0])
    assert report.frames.tolist() == [1, 2] and report.frames_unpredicted == [3, 4]
    assert report.to_dict()["frames_scored"] == 2


def test_bbox_uses_every_labelled_visible_keypoint_and_the_median_diagonal_when_alone():
    keys = [("m", "nose"), ("m", "tail")]
    # diagonals 50, 100, 70 px; on frame 4 the tail is labelled hidden, so the nose uses the median, 70 px
    truth_xy = [[[0, 0], [30, 40]], [[0, 0], [60, 80]], [[0, 0], [42, 56]], [[0, 0], [NAN, NAN]]]
    truth = _tracks([1, 2, 3, 4], keys, truth_xy)
    assert truth.labelled[3, 1] and not truth.visible[3, 1]
    # only the nose is predicted: the box still comes from all labels (threshold 3.5 px on frame 4)
    for error, hit in ((3.4, True), (3.6, False)):
        pred = _tracks([4], [("m", "nose")], [[[error, 0]]])
        report = evaluate(pred, truth)
        assert report.pooled["pck_bbox"] == float(hit)
        assert report.keys_only_in_labels == [("m", "tail")]
    pred = _tracks([1, 2], [("m", "nose")], [[[2.6, 0]], [[4.9, 0]]])  # thresholds 2.5 and 5 px
    assert evaluate(pred, truth).pooled["pck_bbox"] == 0.5


def test_identity_swaps_need_a_far_prediction_nearer_another_animals_label():
    keys = [("a", "nose"), ("b", "nose")]
    truth = _tracks(
        range(4),
        keys,
        [
            [[0, 0], [30, 0]],
            [[0, 0], [30, 0]],
            [[0, 0], [12, 0]],
            [[0, 0], [NAN, NAN]],  # b's nose hidden: nothing to be confused with
        ],
    )
    pred = _tracks(
        range(4),
        keys,
        [
            [[25, 0], [30, 0]],  # 25 px off, 5 px from b's nose: a swap
            [[14, 0], [30, 0]],  # 14 px off but 16 px from b's nose: just wrong
            [[8, 0], [12, 0]],  # nearer b's nose, but within 10 px of its own: not a swap
            [[25, 0], [30, 0]],
        ],
        visible=np.ones((4, 2), bool),
    )
    report = evaluate(pred, truth)
    assert report.pooled["identity_swaps"] == 1
    assert report.per_keypoint["nose"]["identity_swaps"] == 1
    assert report.pooled["hidden_recall"] == 0.0  # b's hidden nose was reported visible


def test_left_right_pairs_match_names_case_and_separators():
    keys = [
        ("m", "LeftEar"),
        ("m", "right_ear"),
        ("m", "left-paw"),
        ("m", "Right Paw"),
        ("m", "nose"),
        ("m", "left_eye"),
        ("n", "right_eye"),
    ]
    assert sorted(left_right_pairs(keys)) == [(0, 1), (2, 3)]  # left_eye's partner is on another animal


def test_lr_swaps_need_both_sides_nearer_the_partner():
    keys = [("m", "LeftEar"), ("m", "right_ear")]
    truth = _tracks(range(4), keys, [[[0, 0], [10, 0]]] * 4)
    pred = _tracks(
        range(4),
        keys,
        [
            [[9, 0], [1, 0]],  # both swapped
            [[9, 0], [12, 0]],  # only the left one is nearer its partner
            [[6, 0], [4, 0]],  # both (slightly) swapped
            [[9, 0], [1, 0]],
        ],
        visible=np.array([[1, 1], [1, 1], [1, 1], [1, 0]], bool),
    )  # last frame: the right ear reported hidden
    report = evaluate(pred, truth)
    assert report.pooled["lr_swaps"] == 2
    assert report.per_keypoint["LeftEar"]["lr_swaps"] == 2 and report.per_keypoint["right_ear"]["lr_swaps"] == 2


def test_hidden_and_visible_recall():
    keys = [("m", "nose"), ("m", "tail"), ("m", "paw")]
    truth = _tracks([1, 2], keys, [[[0, 0], [NAN, NAN], [NAN, NAN]], [[0, 0], [NAN, NAN], [5, 5]]])
    pred = tracks_from_arrays(
        [1, 2],
        keys,
        xy=np.array([[[0, 0], [1, 1], [2, 2]], [[0, 0], [1, 1], [NAN, NAN]]], float),
        visible=np.array([[True, False, True], [False, True, False]]),
        labelled=np.array([[True, True, True], [True, True, False]]),  # frame 2: no paw written
    )
    report = evaluate(pred, truth)
    # hidden labels predicted: tail@1 (reported hidden), paw@1 (visible), tail@2 (visible)
    assert report.pooled["hidden_points"] == 3
    assert report.pooled["hidden_recall"] == pytest.approx(1 / 3)
    # visible labels: nose@1 reported, nose@2 reported hidden, paw@2 not written at all
    assert report.pooled["points"] == 3
    assert report.pooled["visible_recall"] == pytest.approx(1 / 3)
    assert report.pooled["pck10"] == pytest.approx(1 / 3)


def test_no_common_keys_names_both_sides():
    truth = _tracks([0], [("mouse", "snout")], [[[0, 0]]])
    pred = _tracks([0], [("animal1", "nose")], [[[0, 0]]])
    with pytest.raises(InputError, match=r"mouse/snout.*animal1/nose"):
        evaluate(pred, truth)


def test_nothing_to_score_gives_none_not_nan():
    keys = [("m", "nose")]
    report = evaluate(_tracks([5], keys, [[[0, 0]]]), _tracks([1], keys, [[[0, 0]]]))
    assert len(report.frames) == 0 and report.frames_unpredicted == [1]
    assert report.pooled["points"] == 0 and report.pooled["pck10"] is None and report.pooled["median_px"] is None
    assert "-" in report.table()


def test_table_has_a_row_per_keypoint_and_a_pooled_row(one_animal):
    pred, truth = one_animal
    lines = evaluate(pred, truth, [0]).table().splitlines()
    assert lines[0].split()[:4] == ["keypoint", "points", "PCK@5", "PCK@10"]
    rows = {line.split()[0]: line.split() for line in lines[2:6] if line and not line.startswith("-")}
    assert rows["nose"][1:4] == ["4", "0.500", "0.750"]
    assert rows["all"][1:4] == ["8", "0.375", "0.500"]
