"""`napari-dinotrack track` as users run it: real model loading path, exit codes, messages."""

from __future__ import annotations

import json

from napari_dinotrack.cli import main
from napari_dinotrack.io.labelme import load_annotations
from napari_dinotrack.io.tables import read_tracks_csv


def test_track_with_a_local_dinov3_folder(labelled_clip, tiny_dinov3, capsys):
    _, video, layout = labelled_clip(n_frames=10, n_instances=2)
    code = main(["track", str(video), "--model", str(tiny_dinov3), "--short-side", "96", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Tracked 9 frames" in out.out
    assert "9/9 [" in out.err  # the progress bar reached the end
    assert sorted(load_annotations(layout)) == list(range(10))
    rows = read_tracks_csv(layout.tracks_csv)
    assert len(rows) == 10 * 8
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    # a second run finds nothing stale and says how to force a re-run
    assert main(["track", str(video), "--model", str(tiny_dinov3), "--short-side", "96"]) == 0
    assert "already tracked" in capsys.readouterr().out


def test_default_model_is_found_through_dinov3_location(labelled_clip, tiny_dinov3, monkeypatch, capsys):
    _, video, layout = labelled_clip(n_frames=5)
    monkeypatch.setenv("DINOV3_LOCATION", str(tiny_dinov3))
    assert main(["track", str(video), "--short-side", "64", "--quiet"]) == 0, capsys.readouterr().err
    assert len(read_tracks_csv(layout.tracks_csv)) == 5 * 4


def test_missing_weights_give_one_clear_message_and_exit_2(labelled_clip, capsys, monkeypatch, tmp_path):
    _, video, _ = labelled_clip(n_frames=4)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    assert main(["track", str(video), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dinov3-vits16" in err and "DINOV3_LOCATION" in err and "dinov2" in err
    assert "Traceback" not in err


def test_no_seed_is_a_clear_error(tmp_path, capsys):
    from napari_dinotrack.synthetic import make_clip

    video = make_clip(n_frames=4).write(tmp_path / "unlabelled.mp4")
    assert main(["track", str(video), "--model", "pixel:8", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no manually labelled frame" in err and "unlabelled" in err


def test_corrupt_seed_file_is_named_and_left_untouched(labelled_clip, capsys):
    _, video, layout = labelled_clip(n_frames=4)
    broken = b'{"shapes": [ {"label": "nose", '
    layout.frame_json(0).write_bytes(broken)
    assert main(["track", str(video), "--model", "pixel:8", "--quiet"]) == 2
    assert layout.frame_json(0).name in capsys.readouterr().err
    assert layout.frame_json(0).read_bytes() == broken


def test_bad_config_file_is_named(labelled_clip, tmp_path, capsys):
    _, video, _ = labelled_clip(n_frames=4)
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"velocity_smothing": 1.0}))
    assert main(["track", str(video), "--model", "pixel:8", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "settings.json" in err and "velocity_smoothing" in err


def test_missing_video_exit_code_2(tmp_path, capsys):
    assert main(["track", str(tmp_path / "nope.mp4")]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_cli_outputs_match_the_ground_truth(labelled_clip, capsys):
    """Several animals, a left/right pair per animal and an occluder, tracked from the command line."""
    import numpy as np

    clip, video, layout = labelled_clip(n_frames=20, n_instances=2, occluder=(8, 11))
    assert main(["track", str(video), "--model", "pixel:8", "--short-side", "320", "--quiet"]) == 0
    rows = read_tracks_csv(layout.tracks_csv)
    assert len(rows) == 20 * 8
    visible_errors, hidden_reported_visible = [], 0
    for r in rows:
        truth = clip.positions[r["instance"], r["keypoint"]][r["frame"]]
        if not clip.visible[r["instance"], r["keypoint"]][r["frame"]]:
            hidden_reported_visible += r["visible"]
        elif r["visible"]:
            visible_errors.append(np.hypot(r["x"] - truth[0], r["y"] - truth[1]))
    assert np.median(visible_errors) < 1.5 and max(visible_errors) < 5
    assert hidden_reported_visible <= 2  # of 24 hidden (frame, part) rows
    for f in range(1, 20):  # the JSON of every frame agrees with the table
        ann = load_annotations(layout, frames=[f])[f]
        for inst in ann.instances:
            for kp in inst.keypoints:
                row = next(r for r in rows if (r["frame"], r["instance"], r["keypoint"]) == (f, inst.name, kp.name))
                assert row["visible"] == kp.visible and (not kp.visible or abs(row["x"] - kp.x) < 1e-3)


def test_direction_forward_and_both(labelled_clip, capsys):
    _, video, layout = labelled_clip(n_frames=12, seed_frame=5)
    assert main(["track", str(video), "--model", "pixel:8", "--short-side", "160", "--direction", "forward"]) == 0
    out = capsys.readouterr()
    assert "frames 6..11 forward from 5" in out.err and "Tracked 6 frames" in out.out
    assert sorted(load_annotations(layout)) == list(range(5, 12))  # nothing before the seed
    assert main(["track", str(video), "--model", "pixel:8", "--short-side", "160"]) == 0  # both: the default
    out = capsys.readouterr()
    assert "frames 0..4 backward from 5" in out.err and "Tracked 5 frames" in out.out
    assert sorted(load_annotations(layout)) == list(range(12))
    assert main(["track", str(video), "--model", "pixel:8", "--direction", "sideways"]) == 2
    assert "--direction" in capsys.readouterr().err
