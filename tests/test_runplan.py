"""Which frames a run re-tracks: resume, correction, edited seeds, explicit ranges."""

from __future__ import annotations

import pytest

from napari_dinotrack.errors import InputError
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.runplan import plan_run


def manual(frame: int, x: float = 10.0) -> FrameAnnotation:
    return FrameAnnotation(frame, 100, 100, [Instance("m", [Keypoint("nose", x, 20.0)])], source="manual")


def predicted(frame: int, seed: FrameAnnotation) -> FrameAnnotation:
    ann = manual(frame)
    ann.source, ann.seed_frame, ann.seed_digest = "prediction", seed.frame, seed.digest()
    return ann


def tracked(n: int, seed: FrameAnnotation, upto: int) -> dict[int, FrameAnnotation]:
    anns = {seed.frame: seed}
    anns.update({f: predicted(f, seed) for f in range(seed.frame + 1, upto + 1)})
    return anns


def test_fresh_seed_tracks_everything_after_it():
    plan = plan_run({3: manual(3)}, 10)
    assert (plan.init_frame, plan.first, plan.last) == (3, 4, 9)
    assert plan.keep == (3,)


def test_resume_after_a_crash_continues_at_the_first_missing_frame():
    anns = tracked(10, manual(0), upto=6)
    plan = plan_run(anns, 10)
    assert (plan.init_frame, plan.first, plan.last) == (6, 7, 9)
    assert plan.keep == tuple(range(7))


def test_complete_results_mean_nothing_to_do():
    assert plan_run(tracked(10, manual(0), upto=9), 10) is None


def test_a_correction_retracks_from_there_and_keeps_earlier_frames():
    anns = tracked(10, manual(0), upto=9)
    anns[5] = manual(5, x=30.0)  # the user fixed frame 5
    plan = plan_run(anns, 10)
    assert (plan.init_frame, plan.first, plan.last) == (5, 6, 9)
    assert plan.keep == (0, 1, 2, 3, 4, 5)


def test_editing_the_seed_itself_makes_all_its_predictions_stale():
    anns = tracked(10, manual(0), upto=9)
    anns[0] = manual(0, x=12.0)
    plan = plan_run(anns, 10)
    assert (plan.init_frame, plan.first) == (0, 1)


def test_explicit_start_retracks_even_current_frames_but_keeps_later_ones_outside_the_range():
    anns = tracked(10, manual(0), upto=9)
    plan = plan_run(anns, 10, start_frame=2, end_frame=5)
    assert (plan.init_frame, plan.first, plan.last) == (2, 3, 5)
    assert plan.keep == (0, 1, 2, 6, 7, 8, 9)


def test_no_manual_frame_is_a_clear_error():
    with pytest.raises(InputError, match="no manually labelled frame"):
        plan_run({}, 10, where="clip/")


def test_start_frame_without_keypoints_is_a_clear_error():
    with pytest.raises(InputError, match="frame 7 has no keypoints"):
        plan_run({0: manual(0)}, 10, start_frame=7)


@pytest.mark.parametrize("start,end", [(-1, None), (10, None), (None, 10)])
def test_frames_outside_the_video_are_rejected(start, end):
    with pytest.raises(InputError, match="outside the video"):
        plan_run({0: manual(0)}, 10, start_frame=start, end_frame=end)
