"""The stage profile (`track --profile`, `process_video(profile=...)`) and the run loop it watches."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from napari_dinotrack import DinoKeypointVideoProcessor, TrackerConfig
from napari_dinotrack.cli import main
from napari_dinotrack.profiling import HOST_BUDGET_MS, STAGES, RunProfile
from napari_dinotrack.tracking.keypoints import flow, follow

PIXEL = "pixel:8"
SHORT = 160


def folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def test_track_profile_writes_every_stage_of_every_frame(labelled_clip, tmp_path, capsys):
    _, video, _ = labelled_clip(n_frames=12, n_instances=2, polygons=True)
    out = tmp_path / "profile.json"
    assert (
        main(
            [
                "track",
                str(video),
                "--model",
                PIXEL,
                "--short-side",
                str(SHORT),
                "--quiet",
                "--batch-size",
                "4",
                "--profile",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "tracker_step" in err and "host time" in err and str(out) in err  # the table, and where the JSON is

    data = json.loads(out.read_text())
    assert data["frames"] == 12  # the seed frame and the 11 tracked ones
    assert data["per_frame"]["frame"] == list(range(12))
    assert set(data["stages"]) == {s.name for s in STAGES}
    assert data["setup"]["model"] == PIXEL and data["setup"]["batch_size"] == 4
    per = {k: np.array(v) for k, v in data["per_frame"].items()}
    tracked = per["frame"] > 0
    stages = ("decode", "backbone", "tracker_step", "tracker_step_cpu", "optical_flow", "mask_propagation", "write")
    for stage in (*stages, "loop"):
        assert (per[stage][tracked] > 0).all(), stage  # each of them took time on every tracked frame
    # the flow is timed inside the tracker step, and the loop holds its stages
    assert (per["optical_flow"] <= per["tracker_step"]).all()
    # the step's CPU time is what the thread got of its wall time, never more
    assert (per["tracker_step_cpu"] <= per["tracker_step"] + 0.05).all()
    not_own = ("loop", "optical_flow", "tracker_step_cpu")
    inside = sum(per[s.name] for s in STAGES if s.thread == "main" and s.name not in not_own)
    assert (inside <= per["loop"] + 1e-3).all()
    host = per["loop"] - per["tracker_step"] - per["mask_propagation"] + per["optical_flow"]
    assert data["host_ms_per_frame"] == pytest.approx(host[1:].mean(), abs=1e-3)  # the start-up frame aside
    assert data["host_budget_ms"] == HOST_BUDGET_MS
    # the timer around the tracker's optical flow is gone after the run
    assert follow.track_points is flow.track_points
    assert not hasattr(flow.track_points, "__wrapped__")


def test_profiling_changes_no_result(labelled_clip, tmp_path):
    _, video, layout = labelled_clip(n_frames=10, n_instances=2)
    outputs = []
    for profile in (None, tmp_path / "p.json"):
        out = tmp_path / f"run-{profile is None}"
        out.mkdir()
        (out / layout.frame_json(0).name).write_bytes(layout.frame_json(0).read_bytes())
        summary = DinoKeypointVideoProcessor(
            video, result_folder=out, model_name=PIXEL, short_side=SHORT
        ).process_video(profile=profile)
        assert (summary.profile is None) == (profile is None)
        outputs.append(folder_bytes(out))
    assert outputs[0] == outputs[1]
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["frames"] == 10


def test_a_profile_object_collects_a_run(labelled_clip):
    _, video, _ = labelled_clip(n_frames=9)
    profile = RunProfile()
    summary = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=SHORT).process_video(profile=profile)
    assert summary.profile is profile and profile.n_frames == 9
    assert profile.summary()["stages"]["tracker_step"]["mean_ms"] > 0
    assert "tracker_step" in profile.table()


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_results_do_not_depend_on_the_batch_size(labelled_clip, tmp_path, batch_size):
    """The backbone works ahead in batches; what is tracked stays exactly the same."""
    _, video, layout = labelled_clip(n_frames=11, n_instances=2, polygons=True)
    outputs = []
    for size in (8, batch_size):
        out = tmp_path / f"b{size}"
        out.mkdir(exist_ok=True)
        (out / layout.frame_json(0).name).write_bytes(layout.frame_json(0).read_bytes())
        DinoKeypointVideoProcessor(
            video, result_folder=out, model_name=PIXEL, short_side=SHORT, runtime_config=TrackerConfig(batch_size=size)
        ).process_video()
        outputs.append({k: v for k, v in folder_bytes(out).items() if not k.endswith("_tracker_config.json")})
    assert outputs[0] == outputs[1] and len(outputs[0]) >= 11


def test_the_batch_size_setting_reaches_the_model(labelled_clip, tiny_dinov3):
    from napari_dinotrack.backbone.loader import load_backbone

    _, video, _ = labelled_clip(n_frames=40)
    backbone = load_backbone(str(tiny_dinov3), device="cpu")  # its own batch size is 8
    sizes = []
    backbone.model.register_forward_hook(
        lambda _m, _a, kwargs, _o: sizes.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    DinoKeypointVideoProcessor(
        video, model_name=backbone, short_side=64, runtime_config=TrackerConfig(batch_size=32)
    ).process_video()
    assert sizes == [32, 8]  # frames 0..39


def test_the_callers_thread_settings_are_kept(labelled_clip):
    _, video, _ = labelled_clip(n_frames=10)
    before = torch.get_num_threads()
    seen = {
        torch.get_num_threads()
        for _ in DinoKeypointVideoProcessor(
            video, model_name=PIXEL, short_side=SHORT, runtime_config=TrackerConfig(batch_size=3)
        ).iter_results()
    }
    assert seen == {before} and torch.get_num_threads() == before


def test_leaving_early_ends_the_feature_thread(labelled_clip):
    _, video, _ = labelled_clip(n_frames=30)
    processor = DinoKeypointVideoProcessor(
        video, model_name=PIXEL, short_side=SHORT, runtime_config=TrackerConfig(batch_size=4)
    )
    results = processor.iter_results()
    for r in results:
        if r.frame == 5:
            break
    results.close()
    assert not [t for t in threading.enumerate() if t.name == "dinotrack-features" and t.is_alive()]
    assert processor.plan().init_frame == 5  # what was tracked is on disk


def test_a_backbone_failure_reaches_the_caller_and_keeps_what_was_tracked(labelled_clip):
    from napari_dinotrack.backbone.pixel import PixelBackbone

    class Failing(PixelBackbone):
        calls = 0

        def extract(self, frames, geometry):
            Failing.calls += 1
            if Failing.calls == 3:  # the third batch
                raise RuntimeError("out of memory (simulated)")
            return super().extract(frames, geometry)

    _, video, _ = labelled_clip(n_frames=20)
    processor = DinoKeypointVideoProcessor(
        video, model_name=Failing(8), short_side=SHORT, runtime_config=TrackerConfig(batch_size=4)
    )
    with pytest.raises(RuntimeError, match="simulated"):
        processor.process_video()
    assert processor.plan().init_frame == 7  # frames 0..7 (two batches) were tracked and written


def test_thread_and_compile_options(labelled_clip, tiny_dinov3, capsys, monkeypatch):
    from napari_dinotrack.backbone.hf import HFDinoBackbone

    _, video, layout = labelled_clip(n_frames=6)
    assert main(["track", str(video), "--model", PIXEL, "--short-side", str(SHORT), "--quiet", "--threads", "0"]) == 2
    assert "threads must be 1 or more" in capsys.readouterr().err
    compiled = []
    monkeypatch.setattr(HFDinoBackbone, "compile", lambda self: compiled.append(self.name) or self)
    assert (
        main(
            [
                "track",
                str(video),
                "--model",
                str(tiny_dinov3),
                "--short-side",
                "64",
                "--quiet",
                "--threads",
                "1",
                "--compile",
            ]
        )
        == 0
    )
    assert compiled == [str(tiny_dinov3)]
    assert sorted(layout.frame_files()) == list(range(6))
