"""`napari-dinotrack eval` as users run it: a tracked folder and a labels CSV in, a table, JSON and a plot out."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.cli import main
from napari_dinotrack.evaluation import evaluate, read_labels_csv, read_result_folder
from napari_dinotrack.io.labelme import write_manual

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
POOLED = (
    "pck5",
    "pck10",
    "pck_bbox",
    "median_px",
    "mean_px",
    "identity_swaps",
    "lr_swaps",
    "hidden_recall",
    "visible_recall",
    "ttff_median_frames",
    "ttff_median_fraction",
    "never_failed",
    "points",
)


def _copy_results(tracked_clip, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tracked_clip.layout.folder, tmp_path / tracked_clip.layout.folder.name))


def test_eval_prints_a_table_and_writes_json_and_a_plot(tracked_clip, tmp_path, capsys):
    out_json, out_png = tmp_path / "out" / "scores.json", tmp_path / "out" / "errors.png"
    code = main(
        [
            "eval",
            str(tracked_clip.layout.folder),
            str(tracked_clip.labels),
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    rows = {line.split()[0] for line in out.out.splitlines() if line.strip()}
    assert {"nose", "leftear", "rightear", "tail_base", "all"} <= rows
    assert "11 frames scored (1..11)" in out.out and "manual frame" in out.out

    data = json.loads(out_json.read_text())
    assert set(POOLED) <= set(data)
    assert set(data["per_keypoint"]) == {"nose", "leftear", "rightear", "tail_base"}
    assert data["frames_scored"] == 11 and data["frames_skipped"] == 1
    assert data["labels"] == str(tracked_clip.labels) and data["result_folder"] == str(tracked_clip.layout.folder)
    # the generated clip is easy for the tracker: labels and predictions line up frame by frame and key by key
    assert data["pck10"] >= 0.9 and data["median_px"] < 3
    assert data["identity_swaps"] == 0 and data["lr_swaps"] == 0
    assert data["hidden_points"] > 0 and data["hidden_recall"] is not None  # the occluder hid noses
    # the command reports exactly what the library computes
    pred, manual = read_result_folder(tracked_clip.layout.folder)
    expected = evaluate(pred, read_labels_csv(tracked_clip.labels), manual).to_dict()
    assert {k: data[k] for k in POOLED} == {k: expected[k] for k in POOLED}

    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_manual_frames_are_not_scored(tracked_clip, tmp_path, capsys):
    """A corrected frame is the user's own label: moving its points far away changes nothing but the count."""
    folder = _copy_results(tracked_clip, tmp_path)
    corrected = tracked_clip.clip.annotation(5)
    for inst in corrected.instances:
        for kp in inst.keypoints:
            kp.x += 40.0
    write_manual(tracked_clip.layout.__class__(tracked_clip.video, folder), corrected)
    out_json = tmp_path / "scores.json"
    assert main(["eval", str(folder), str(tracked_clip.labels), "--json", str(out_json)]) == 0
    data = json.loads(out_json.read_text())
    assert data["frames_scored"] == 10 and data["frames_skipped"] == 2
    assert data["pck10"] >= 0.9
    assert "2 labelled manual frame(s) not scored (0..5)" in capsys.readouterr().out


def test_the_video_path_finds_its_result_folder(tracked_clip, capsys):
    assert main(["eval", str(tracked_clip.video), str(tracked_clip.labels)]) == 0
    assert "11 frames scored" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "frame,instance,keypoint,x,y\n1,animal1,nose,10,20\n2,animal1,nose,ten,20\n",
            "line 3: x 'ten' is not a number",
        ),
        ("frame,instance,keypoint,x\n1,animal1,nose,10\n", "missing column(s) y"),
        ("frame,instance,keypoint,x,y\n1,animal1,nose,,20\n", "y is given but x is empty"),
        ("", "the file is empty"),
    ],
)
def test_bad_labels_file_exits_2_with_file_and_line(tracked_clip, tmp_path, capsys, content, message):
    labels = tmp_path / "bad.csv"
    labels.write_text(content, encoding="utf-8")
    assert main(["eval", str(tracked_clip.layout.folder), str(labels)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and message in err and "Traceback" not in err


def test_labels_folder_and_swapped_arguments_exit_2(tracked_clip, tmp_path, capsys):
    assert main(["eval", str(tracked_clip.layout.folder), str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["eval", str(tracked_clip.labels), str(tracked_clip.layout.folder)]) == 2
    assert "give the result folder (or the video)" in capsys.readouterr().err


def test_folder_without_predictions_exits_2(tracked_clip, tmp_path, capsys):
    folder = tmp_path / "clip"
    folder.mkdir()
    shutil.copy(tracked_clip.layout.frame_json(0), folder)  # the manual seed only
    assert main(["eval", str(folder), str(tracked_clip.labels)]) == 2
    err = capsys.readouterr().err
    assert "no predictions" in err and "only manual frames" in err
    assert main(["eval", str(tmp_path / "nowhere"), str(tracked_clip.labels)]) == 2
    assert "no such result folder" in capsys.readouterr().err


def test_labels_for_other_animals_exit_2_naming_both_sides(tracked_clip, tmp_path, capsys):
    labels = tmp_path / "rats.csv"
    labels.write_text("frame,instance,keypoint,x,y\n1,rat,snout,10,20\n", encoding="utf-8")
    assert main(["eval", str(tracked_clip.layout.folder), str(labels)]) == 2
    err = capsys.readouterr().err
    assert "rat/snout" in err and "animal1/nose" in err and "rats.csv" in err


def test_plot_without_matplotlib_names_the_extra_before_writing_anything(tracked_clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    out_json = tmp_path / "scores.json"
    code = main(
        [
            "eval",
            str(tracked_clip.layout.folder),
            str(tracked_clip.labels),
            "--json",
            str(out_json),
            "--plot",
            str(tmp_path / "errors.png"),
        ]
    )
    assert code == 2
    assert 'pip install "napari-dinotrack[plot]"' in capsys.readouterr().err
    assert not out_json.exists()


@pytest.mark.skipif(not (DATA / "dlc_openfield_m4s1" / "labels.csv").exists(), reason="shared data folder absent")
def test_real_labelled_mouse_video(tmp_path, capsys):
    """Track 30 frames of a human-labelled open-field mouse from its frame-0 labels and score them."""
    from napari_dinotrack.io.paths import ResultLayout
    from napari_dinotrack.io.video import probe_video

    video = DATA / "dlc_openfield_m4s1" / "video.mp4"
    labels = DATA / "dlc_openfield_m4s1" / "labels.csv"
    info = probe_video(video)
    folder = tmp_path / "m4s1"
    layout = ResultLayout(video, folder)
    layout.ensure_folder()
    write_manual(layout, read_labels_csv(labels).annotation(0, info.height, info.width))
    assert (
        main(
            [
                "track",
                str(video),
                "--out",
                str(folder),
                "--model",
                "pixel:",
                "--short-side",
                "384",
                "--end-frame",
                "29",
                "--quiet",
            ]
        )
        == 0
    )
    out_json = tmp_path / "m4s1.json"
    assert main(["eval", str(folder), str(labels), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "86 labelled frame(s) have no prediction and are not scored (30..115)" in out
    data = json.loads(out_json.read_text())
    assert data["frames_scored"] == 29 and data["points"] == 29 * 4 and data["frames_unpredicted"] == 86
    assert set(data["per_keypoint"]) == {"snout", "leftear", "rightear", "tailbase"}
    assert all(0.0 <= data[k] <= 1.0 for k in ("pck5", "pck10", "pck_bbox", "visible_recall"))
    assert np.isfinite(data["median_px"]) and data["median_px"] <= data["mean_px"] * 3
    print(json.dumps({k: data[k] for k in POOLED}), file=sys.stderr)
