"""End-to-end runs of DinoKeypointVideoProcessor on generated videos with known ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack import DinoKeypointVideoProcessor, TrackerConfig
from napari_dinotrack.io.labelme import load_annotations, read_frame, write_manual
from napari_dinotrack.io.mask_store import MaskStore
from napari_dinotrack.io.tables import read_tracks_csv

PIXEL = "pixel:8"  # weight-free backbone whose features are the patches' colours
SHORT = 320


def errors_against_truth(clip, layout, frames):
    anns = load_annotations(layout)
    errs, hidden_flagged = [], []
    for f in frames:
        for inst in anns[f].instances:
            for kp in inst.keypoints:
                gt = clip.positions[inst.name, kp.name][f]
                if clip.visible[inst.name, kp.name][f]:
                    errs.append(float(np.hypot(kp.x - gt[0], kp.y - gt[1])))
                else:
                    hidden_flagged.append(not kp.visible)
    return np.array(errs), np.array(hidden_flagged)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """The results in a folder (hidden bookkeeping files, which hold file times, left out)."""
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def test_tracks_a_generated_video_and_writes_every_output(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=30, n_instances=2, occluder=(10, 14))
    seed_bytes = layout.frame_json(0).read_bytes()
    summary = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT).process_video()
    assert (summary.first_frame, summary.last_frame, summary.frames_tracked) == (0, 29, 29)

    errs, hidden_flagged = errors_against_truth(clip, layout, range(1, 30))
    assert np.median(errs) < 1.5 and np.mean(errs < 5) >= 0.95, (np.median(errs), np.mean(errs < 5))
    assert hidden_flagged.mean() >= 0.7  # the occluded parts are reported as not visible

    assert layout.frame_json(0).read_bytes() == seed_bytes  # the user's frame is never rewritten
    anns = load_annotations(layout)
    assert sorted(anns) == list(range(30))
    assert all(anns[f].source == "prediction" and anns[f].seed_frame == 0 for f in range(1, 30))

    rows = read_tracks_csv(layout.tracks_csv)
    keys = [(r["frame"], r["instance"], r["keypoint"]) for r in rows]
    assert len(keys) == len(set(keys)) == 30 * 8
    assert [r["frame"] for r in rows] == sorted(r["frame"] for r in rows)
    for r in rows:
        kp = anns[r["frame"]].instance(r["instance"]).keypoint(r["keypoint"])
        assert r["visible"] == kp.visible and 0.0 <= r["score"] <= 1.0
        assert (r["x"] is None) == (not kp.visible)
        if kp.visible:
            assert abs(r["x"] - kp.x) < 1e-3 and abs(r["y"] - kp.y) < 1e-3

    # left and right ears stay on their own sides of every animal
    for inst in clip.instance_names:
        for f in range(1, 30):
            a = anns[f].instance(inst)
            left, right = a.keypoint("leftear"), a.keypoint("rightear")
            if left.visible and right.visible:
                got = np.array([left.x - right.x, left.y - right.y])
                truth = clip.positions[inst, "leftear"][f] - clip.positions[inst, "rightear"][f]
                assert got @ truth > 0, (inst, f)


def test_same_input_gives_byte_identical_outputs(labelled_clip, tmp_path):
    _, video, layout = labelled_clip(n_frames=12, n_instances=2)
    outputs = []
    for run in range(2):
        out = tmp_path / f"run{run}"
        out.mkdir()
        (out / layout.frame_json(0).name).write_bytes(layout.frame_json(0).read_bytes())
        DinoKeypointVideoProcessor(video, result_folder=out, model_name=PIXEL, short_side=SHORT).process_video()
        outputs.append(folder_bytes(out))
    assert outputs[0] == outputs[1] and len(outputs[0]) >= 13


def test_stop_midway_keeps_results_and_a_rerun_finishes(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=30)
    processor = DinoKeypointVideoProcessor(
        video, model_name=PIXEL, short_side=SHORT, runtime_config=TrackerConfig(batch_size=4)
    )
    seen = []
    for result in processor.iter_results():
        seen.append(result.frame)
        if result.frame == 10:
            processor.stop()
    assert seen[-1] == 10 and seen[0] == 0
    anns = load_annotations(layout)
    assert sorted(anns) == list(range(11))
    assert {r["frame"] for r in read_tracks_csv(layout.tracks_csv)} == set(range(11))

    plan = processor.plan()
    assert (plan.init_frame, plan.first) == (10, 11)
    summary = processor.process_video()
    assert summary.frames_tracked == 19 and not summary.stopped
    rows = read_tracks_csv(layout.tracks_csv)
    assert len(rows) == len({(r["frame"], r["keypoint"]) for r in rows}) == 30 * 4
    errs, _ = errors_against_truth(clip, layout, range(1, 30))
    assert np.median(errs) < 1.5


def test_a_hard_crash_loses_at_most_the_frames_in_flight(labelled_clip, tmp_path):
    clip, video, layout = labelled_clip(n_frames=30)
    script = textwrap.dedent(f"""
        import os
        from napari_dinotrack import DinoKeypointVideoProcessor
        def die(done, total):
            if done == 12:
                os._exit(17)  # no cleanup at all, like a power cut
        DinoKeypointVideoProcessor({str(video)!r}, model_name={PIXEL!r}, short_side={SHORT},
                                   progress_callback=die).process_video()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr
    survived = sorted(load_annotations(layout))  # every file on disk must still parse
    assert survived[0] == 0 and len(survived) >= 2

    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    assert processor.plan().first == survived[-1] + 1
    processor.process_video()
    rows = read_tracks_csv(layout.tracks_csv)
    assert sorted({r["frame"] for r in rows}) == list(range(30))
    assert len(rows) == 30 * 4
    errs, _ = errors_against_truth(clip, layout, range(1, 30))
    assert np.median(errs) < 1.5


def _correct_nose(clip, layout, frame: int) -> bytes:
    fixed = read_frame(layout.frame_json(frame))
    fixed.source = "manual"
    nose = fixed.instances[0].keypoint("nose")
    nose.x, nose.y = (float(v) for v in clip.positions["animal1", "nose"][frame] + 0.5)
    write_manual(layout, fixed)
    return layout.frame_json(frame).read_bytes()


def test_forward_only_correction_retracks_only_what_follows_it(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=24)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT, direction="forward")
    processor.process_video()
    before = {f: layout.frame_json(f).read_bytes() for f in range(24)}
    corrected = _correct_nose(clip, layout, 12)

    summary = processor.process_video()
    assert summary.frames_tracked == 11
    for f in range(12):
        assert layout.frame_json(f).read_bytes() == before[f], f
    assert layout.frame_json(12).read_bytes() == corrected
    later = load_annotations(layout, frames=range(13, 24))
    assert all(a.seed_frame == 12 and a.end_frame is None and a.source == "prediction" for a in later.values())
    rows = read_tracks_csv(layout.tracks_csv)
    assert len(rows) == 24 * 4
    row = next(r for r in rows if r["frame"] == 12 and r["keypoint"] == "nose")
    assert abs(row["x"] - read_frame(layout.frame_json(12)).instances[0].keypoint("nose").x) < 1e-3


def test_two_way_correction_retracks_both_sides_up_to_the_next_seeds_and_nothing_else(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=30)
    write_manual(layout, clip.annotation(20))
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    first = processor.process_video()
    assert first.frames_tracked == 28  # 1..19 two ways, 21..29 forward
    between = load_annotations(layout, frames=range(1, 20))
    assert all((a.seed_frame, a.end_frame) == (0, 20) for a in between.values())
    before = {f: layout.frame_json(f).read_bytes() for f in range(30)}

    corrected = _correct_nose(clip, layout, 10)
    summary = processor.process_video()
    assert summary.frames_tracked == 18  # 1..9 and 11..19: both sides of frame 10, up to the seeds around it
    assert layout.frame_json(10).read_bytes() == corrected
    for f in (0, 20, *range(21, 30)):
        assert layout.frame_json(f).read_bytes() == before[f], f
    anns = load_annotations(layout)
    assert all((anns[f].seed_frame, anns[f].end_frame) == (0, 10) for f in range(1, 10))
    assert all((anns[f].seed_frame, anns[f].end_frame) == (10, 20) for f in range(11, 20))
    assert processor.plan() is None  # all current now
    rows = read_tracks_csv(layout.tracks_csv)
    assert len(rows) == 30 * 4


def test_two_way_tracks_frames_before_the_first_seed_backward(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=20, seed_frame=8)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    summary = processor.process_video()
    assert summary.frames_tracked == 19 and summary.first_frame == 0
    anns = load_annotations(layout)
    assert all((anns[f].seed_frame, anns[f].end_frame) == (None, 8) for f in range(8))
    assert all((anns[f].seed_frame, anns[f].end_frame) == (8, None) for f in range(9, 20))
    errs, _ = errors_against_truth(clip, layout, range(8))
    assert np.median(errs) < 4.0  # tracked, not just copied from the seed
    forward = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT, direction="forward")
    assert forward.plan() is None  # forward-only leaves frames before the first seed alone


def test_two_way_merge_lands_on_the_later_seed(labelled_clip):
    """Near the later seed the backward pass carries the result: no jump onto the seed."""
    clip, video, layout = labelled_clip(n_frames=24)
    write_manual(layout, clip.annotation(23))
    DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT).process_video()
    anns = load_annotations(layout)
    seed = anns[23]
    near = anns[22]
    for inst_near, inst_seed in zip(near.instances, seed.instances, strict=True):
        for kp_near, kp_seed in zip(inst_near.keypoints, inst_seed.keypoints, strict=True):
            truth_step = np.hypot(
                *(clip.positions[inst_seed.name, kp_seed.name][23] - clip.positions[inst_seed.name, kp_seed.name][22])
            )
            assert np.hypot(kp_near.x - kp_seed.x, kp_near.y - kp_seed.y) < truth_step + 3.0
            assert "disagreement_px" in kp_near.extra


def test_templates_from_a_later_manual_frame_are_used(labelled_clip):
    """A correction teaches the tracker: its appearance joins the seed's templates."""
    clip, video, layout = labelled_clip(n_frames=16)
    later = clip.annotation(15)
    write_manual(layout, later)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    seen_templates = []
    from napari_dinotrack.tracking.keypoints import tracker as tracker_module

    original = tracker_module.KeypointTracker.add_templates

    def spy(self, features, annotation):
        seen_templates.append(annotation.frame)
        return original(self, features, annotation)

    tracker_module.KeypointTracker.add_templates = spy
    try:
        processor.process_video()
    finally:
        tracker_module.KeypointTracker.add_templates = original
    assert 15 in seen_templates and 0 in seen_templates


def test_instance_masks_from_seed_polygons_follow_the_animals(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=16, n_instances=2, crossing=True, speed=4.0, polygons=True)
    DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT).process_video()
    anns = load_annotations(layout)
    store = MaskStore(layout.masks_dir)
    assert store.frames() == list(range(16))
    ious = []
    for f in range(1, 16):
        masks = store.read_masks(f, clip.instance_names)
        for i, name in enumerate(clip.instance_names):
            gt = clip.masks[f, i]
            ious.append((masks[i] & gt).sum() / max((masks[i] | gt).sum(), 1))
            inst = anns[f].instance(name)
            assert inst.polygon is not None and len(inst.polygon) >= 3
            for kp in inst.keypoints:
                if kp.visible:  # no keypoint strays onto the other animal
                    other = clip.masks[f, 1 - i]
                    assert not other[round(kp.y), round(kp.x)] or gt[round(kp.y), round(kp.x)], (f, name, kp)
    assert np.mean(ious) > 0.75
    errs, _ = errors_against_truth(clip, layout, range(1, 16))
    assert np.median(errs) < 1.5


def test_seed_labelled_for_another_video_size_is_rejected(labelled_clip):
    _, video, layout = labelled_clip(n_frames=6)
    data = json.loads(layout.frame_json(0).read_text())
    data["imageWidth"] = 1920
    layout.frame_json(0).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="1920"):
        DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT).process_video()


def test_a_backbone_object_can_be_passed_in(labelled_clip):
    from napari_dinotrack.backbone.pixel import PixelBackbone

    _, video, _ = labelled_clip(n_frames=8)
    results = list(DinoKeypointVideoProcessor(video, model_name=PixelBackbone(8), short_side=SHORT).iter_results())
    assert [r.frame for r in results] == list(range(8))
    assert results[0].reseeded and not results[1].reseeded
    assert results[-1].frames_done == results[-1].frames_total == 7


def test_without_propagation_the_seed_polygon_does_not_pin_keypoints(labelled_clip):
    """Masks clamp only on frames they are current for: a frame-0 outline must not hold the animal back."""
    clip, video, layout = labelled_clip(n_frames=24, speed=4.0, polygons=True)
    config = TrackerConfig(mask_propagation="none", clamp_to_mask=True, reject_outside_mask=True)
    DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT, runtime_config=config).process_video()
    errs, _ = errors_against_truth(clip, layout, range(12, 24))  # by now the animal has left its seed outline
    assert not clip.masks[0, 0][
        round(clip.positions["animal1", "nose"][23][1]), round(clip.positions["animal1", "nose"][23][0])
    ]
    assert np.median(errs) < 1.5 and np.mean(errs < 5) > 0.95
    assert not MaskStore(layout.masks_dir).frames()[1:]  # nothing propagated, nothing stored for predictions


def test_stop_before_the_run_starts_is_not_lost(labelled_clip):
    _, video, layout = labelled_clip(n_frames=10)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    processor.stop()
    summary = processor.process_video()
    assert summary.stopped and summary.frames_tracked == 0
    assert sorted(load_annotations(layout)) == [0]
    assert processor.process_video().frames_tracked == 9  # the flag does not leak into the next run


def test_seed_masks_come_from_the_store_unless_the_outline_was_edited_elsewhere(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=4, polygons=True)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    seed = load_annotations(layout)[0]
    painted = clip.masks[0, 0].copy()
    ys, xs = np.nonzero(painted)
    painted[ys.min() - 3 : ys.min(), xs.min() : xs.min() + 4] = True  # a small touch-up above the body
    MaskStore(layout.masks_dir).write(0, painted[None], ["animal1"])
    assert np.array_equal(processor._seed_masks(seed)[0], painted)

    seed.instances[0].polygon = seed.instances[0].polygon + 60.0  # outline moved in another tool
    used = processor._seed_masks(seed)[0]
    assert not np.array_equal(used, painted) and (used & painted).sum() < 0.5 * painted.sum()


def test_a_real_dino_model_drives_keypoints_and_masks_together(labelled_clip, tiny_dinov3):
    """The Hugging Face path end to end: its features feed the tracker and the mask propagation."""
    clip, video, layout = labelled_clip(n_frames=8, n_instances=2, crossing=True, polygons=True)
    config = TrackerConfig(restrict_search_to_mask=True)
    results = list(
        DinoKeypointVideoProcessor(
            video, model_name=str(tiny_dinov3), short_side=160, runtime_config=config
        ).iter_results()
    )
    assert [r.frame for r in results] == list(range(8))
    assert all(r.masks is not None and r.masks.shape == (2, *clip.frames.shape[1:3]) for r in results)
    assert MaskStore(layout.masks_dir).frames() == list(range(8))
    assert all(0.0 <= kp.score <= 1.0 for r in results for i in r.annotation.instances for kp in i.keypoints)


def test_two_way_with_seeds_that_label_different_keypoints(labelled_clip):
    """The later seed lacks a keypoint: the forward pass alone carries it, nothing breaks."""
    clip, video, layout = labelled_clip(n_frames=16)
    later = clip.annotation(15)
    later.instances[0].keypoints = [kp for kp in later.instances[0].keypoints if kp.name != "nose"]
    write_manual(layout, later)
    summary = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT).process_video()
    assert summary.frames_tracked == 14
    anns = load_annotations(layout)
    for f in range(1, 15):
        assert anns[f].keypoint_names() == anns[0].keypoint_names()
        nose = anns[f].instances[0].keypoint("nose")
        assert nose.extra["disagreement_px"] == 0.0  # only one pass saw it
    errs, _ = errors_against_truth(clip, layout, range(1, 15))
    assert np.median(errs) < 4.0


def test_a_two_way_run_stopped_halfway_resumes_where_it_stopped(labelled_clip):
    clip, video, layout = labelled_clip(n_frames=30)
    write_manual(layout, clip.annotation(29))
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT)
    written = []
    for result in processor.iter_results():
        if not result.provisional and not result.reseeded:
            written.append(result.frame)
        if len(written) == 10:
            processor.stop()
    assert written == list(range(1, 11))  # the forward pass writes, merged with the backward one
    plan = processor.plan()
    assert plan.describe() == "frames 11..28 both ways between 10 and 29"
    summary = processor.process_video()
    assert summary.frames_tracked == 18 and processor.plan() is None
    anns = load_annotations(layout)
    assert all((anns[f].seed_frame, anns[f].end_frame) == (0, 29) for f in range(1, 29))
    assert len(read_tracks_csv(layout.tracks_csv)) == 30 * 4
    errs, _ = errors_against_truth(clip, layout, range(1, 29))
    assert np.median(errs) < 4.0


def test_a_direction_that_does_not_exist_is_refused_before_anything_runs(labelled_clip):
    from napari_dinotrack.errors import UserError

    _, video, layout = labelled_clip(n_frames=4)
    with pytest.raises(UserError, match="direction"):
        DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT, direction="sideways")  # type: ignore[arg-type]
    assert sorted(load_annotations(layout)) == [0]
