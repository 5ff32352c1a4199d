"""Merging the forward and backward passes of a stretch between two seeds."""

from __future__ import annotations

import numpy as np

from napari_dinotrack.tracking.keypoints.tracker import TrackOutput
from napari_dinotrack.tracking.twoway import merge_passes


def out(xy, visible=(True,), score=(1.0,)) -> TrackOutput:
    return TrackOutput(np.asarray(xy, np.float32), np.asarray(visible, bool), np.asarray(score, np.float32))


def test_agreeing_passes_are_weighted_towards_the_nearer_seed():
    fwd, bwd = out([[10.0, 0.0]]), out([[14.0, 0.0]])
    near_start, _ = merge_passes(fwd, bwd, frame=1, start=0, end=4)  # 1 frame from the forward seed
    near_end, _ = merge_passes(fwd, bwd, frame=3, start=0, end=4)
    assert near_start.xy[0, 0] == np.float32(11.0) and near_end.xy[0, 0] == np.float32(13.0)
    # at the far seed's own neighbourhood nothing jumps: the result meets that seed's pass
    at_end, _ = merge_passes(fwd, bwd, frame=4, start=0, end=4)
    assert at_end.xy[0, 0] == np.float32(14.0)


def test_disagreeing_passes_are_not_averaged_and_the_better_supported_one_wins():
    fwd = out([[10.0, 0.0]], score=(0.9,))
    bwd = out([[60.0, 0.0]], score=(0.2,))
    merged, apart = merge_passes(fwd, bwd, frame=5, start=0, end=10)
    assert merged.xy[0].tolist() == [10.0, 0.0] and merged.visible[0]
    assert apart[0] == np.float32(50.0)


def test_a_keypoint_one_pass_lost_comes_from_the_other():
    fwd = out([[10.0, 0.0]], visible=(False,), score=(0.1,))
    bwd = out([[30.0, 5.0]], visible=(True,), score=(0.8,))
    merged, apart = merge_passes(fwd, bwd, frame=2, start=0, end=10)  # near the forward seed
    assert merged.visible[0] and merged.xy[0].tolist() == [30.0, 5.0]
    assert apart[0] == 0.0  # nothing to compare


def test_lost_by_both_stays_hidden_where_the_nearer_pass_carries_it():
    fwd = out([[10.0, 0.0]], visible=(False,), score=(0.1,))
    bwd = out([[30.0, 0.0]], visible=(False,), score=(0.2,))
    merged, _ = merge_passes(fwd, bwd, frame=8, start=0, end=10)
    assert not merged.visible[0] and merged.xy[0].tolist() == [30.0, 0.0]
