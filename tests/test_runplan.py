"""Which frames a run re-tracks: resume, correction, edited seeds, explicit ranges, both directions."""

from __future__ import annotations

import itertools

import pytest

from napari_dinotrack.errors import InputError
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.runplan import plan_run


def manual(frame: int, x: float = 10.0) -> FrameAnnotation:
    return FrameAnnotation(frame, 100, 100, [Instance("m", [Keypoint("nose", x, 20.0)])], source="manual")


def predicted(frame: int, seed: FrameAnnotation, end: FrameAnnotation | None = None) -> FrameAnnotation:
    ann = manual(frame)
    ann.source, ann.seed_frame, ann.seed_digest = "prediction", seed.frame, seed.digest()
    if end is not None:
        ann.end_frame, ann.end_digest = end.frame, end.digest()
    return ann


def tracked(n: int, seed: FrameAnnotation, upto: int) -> dict[int, FrameAnnotation]:
    anns = {seed.frame: seed}
    anns.update({f: predicted(f, seed) for f in range(seed.frame + 1, upto + 1)})
    return anns


def test_fresh_seed_tracks_everything_after_it():
    plan = plan_run({3: manual(3)}, 10, direction="forward")
    assert (plan.init_frame, plan.first, plan.last) == (3, 4, 9)
    assert plan.keep == (3,)


def test_resume_after_a_crash_continues_at_the_first_missing_frame():
    anns = tracked(10, manual(0), upto=6)
    plan = plan_run(anns, 10, direction="forward")
    assert (plan.init_frame, plan.first, plan.last) == (6, 7, 9)
    assert plan.keep == tuple(range(7))


def test_complete_results_mean_nothing_to_do():
    assert plan_run(tracked(10, manual(0), upto=9), 10, direction="forward") is None


def test_a_correction_retracks_from_there_and_keeps_earlier_frames():
    anns = tracked(10, manual(0), upto=9)
    anns[5] = manual(5, x=30.0)  # the user fixed frame 5
    plan = plan_run(anns, 10, direction="forward")
    assert (plan.init_frame, plan.first, plan.last) == (5, 6, 9)
    assert plan.keep == (0, 1, 2, 3, 4, 5)


def test_editing_the_seed_itself_makes_all_its_predictions_stale():
    anns = tracked(10, manual(0), upto=9)
    anns[0] = manual(0, x=12.0)
    plan = plan_run(anns, 10, direction="forward")
    assert (plan.init_frame, plan.first) == (0, 1)


def test_explicit_start_retracks_even_current_frames_but_keeps_later_ones_outside_the_range():
    anns = tracked(10, manual(0), upto=9)
    plan = plan_run(anns, 10, start_frame=2, end_frame=5, direction="forward")
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


def two_way(seeds: list[FrameAnnotation], n: int) -> dict[int, FrameAnnotation]:
    """Every frame tracked both ways between the seeds (backward before the first, forward after the last)."""
    anns = {s.frame: s for s in seeds}
    bounds = [None, *seeds, None]
    for before, after in itertools.pairwise(bounds):
        lo = 0 if before is None else before.frame + 1
        hi = n if after is None else after.frame
        for f in range(lo, hi):
            if before is None:
                ann = predicted(f, after)
                ann.seed_frame = ann.seed_digest = None
                ann.end_frame, ann.end_digest = after.frame, after.digest()
            else:
                ann = predicted(f, before, after)
            anns[f] = ann
    return anns


def test_both_ways_a_fresh_seed_tracks_back_to_the_start_and_on_to_the_end():
    plan = plan_run({3: manual(3)}, 10)
    assert [(s.first, s.last, s.start, s.end) for s in plan.stretches] == [(0, 2, None, 3), (4, 9, 3, None)]
    assert (plan.first, plan.last, plan.n_frames) == (0, 9, 9)


def test_both_ways_between_two_seeds_each_frame_is_tracked_from_both_ends():
    plan = plan_run({0: manual(0), 6: manual(6)}, 10)
    assert [(s.first, s.last, s.start, s.end, s.two_way) for s in plan.stretches] == [
        (1, 5, 0, 6, True),
        (7, 9, 6, None, False),
    ]
    assert plan.n_steps == 5 * 2 + 3


def test_both_ways_complete_results_mean_nothing_to_do():
    assert plan_run(two_way([manual(2), manual(6)], 10), 10) is None


def test_both_ways_a_correction_retracks_both_sides_up_to_the_neighbouring_seeds_only():
    anns = two_way([manual(0), manual(10), manual(20)], 30)
    anns[5] = manual(5, x=40.0)  # the user fixed frame 5
    plan = plan_run(anns, 30)
    assert [(s.first, s.last, s.start, s.end) for s in plan.stretches] == [(1, 4, 0, 5), (6, 9, 5, 10)]
    assert set(plan.keep) == set(range(30)) - set(range(1, 5)) - set(range(6, 10))


def test_both_ways_a_forward_only_result_between_two_seeds_is_stale():
    anns = tracked(10, manual(0), upto=9)
    anns[6] = manual(6)
    plan = plan_run(anns, 10)
    assert [(s.first, s.last, s.end) for s in plan.stretches] == [(1, 5, 6), (7, 9, None)]


def test_both_ways_a_stopped_run_resumes_inside_its_stretch():
    anns = two_way([manual(0), manual(10)], 12)
    for f in (7, 8, 9):  # the run was stopped after frame 6
        del anns[f]
    plan = plan_run(anns, 12)
    assert [(s.first, s.last, s.start, s.end, s.forward_seed, s.backward_seed) for s in plan.stretches] == [
        (7, 9, 6, 10, 0, 10)
    ]


def test_both_ways_frames_before_the_first_seed_resume_downwards():
    anns = two_way([manual(5)], 10)
    for f in (0, 1, 2):  # stopped while tracking backward
        del anns[f]
    plan = plan_run(anns, 10)
    assert [(s.first, s.last, s.start, s.end) for s in plan.stretches] == [(0, 2, None, 3)]


def test_forward_results_stay_current_when_the_direction_is_forward():
    anns = two_way([manual(0), manual(10)], 20)
    assert plan_run(anns, 20, direction="forward") is None


def test_unknown_direction_is_a_clear_error():
    with pytest.raises(InputError, match="direction must be one of"):
        plan_run({0: manual(0)}, 10, direction="sideways")  # type: ignore[arg-type]
