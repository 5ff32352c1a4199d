"""Every bad input a user can give the command line: exit 2 and one message naming the file or setting."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from napari_dinotrack.cli import main
from napari_dinotrack.io.paths import ResultLayout

PIXEL = "pixel:8"


def track(video: Path, *extra: str) -> int:
    return main(["track", str(video), "--model", PIXEL, "--short-side", "160", "--quiet", *extra])


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return err


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "text",
    [
        '{"min_similarity": NaN}',
        '{"motion_prior_weight": Infinity}',
        '{"batch_size": 4.5}',
        '{"batch_size": "8"}',
        "[1, 2]",
        '"x"',
        "[" * 100_000 + "]" * 100_000,
        '{"a": \xff}',
    ],
)
def test_bad_settings_files(labelled_clip, tmp_path, capsys, text):
    _, video, layout = labelled_clip(n_frames=4)
    config = tmp_path / "settings.json"
    config.write_bytes(text.encode("utf-8", "surrogateescape") if "\xff" not in text else b'{"a": \xff}')
    assert track(video, "--config", str(config)) == 2
    assert "settings.json" in error_of(capsys)
    assert sorted(layout.frame_files()) == [0]  # nothing was tracked with them


@pytest.mark.parametrize(
    "setting",
    [
        "min_similarity=NaN",
        "min_similarity=nan",
        "motion_prior_weight=-Infinity",
        "mask_propagation=cutie",
        "batch_size=0",
        "unknown_knob=1",
    ],
)
def test_bad_settings_on_the_command_line(labelled_clip, capsys, setting):
    _, video, _ = labelled_clip(n_frames=4)
    assert track(video, "--set", setting) == 2
    assert setting.split("=")[0] in error_of(capsys)


def test_a_folder_given_as_the_settings_file(labelled_clip, tmp_path, capsys):
    _, video, _ = labelled_clip(n_frames=4)
    assert track(video, "--config", str(tmp_path)) == 2
    assert f"{tmp_path}: is a folder" in error_of(capsys)


# ------------------------------------------------------------------ model and working size


@pytest.mark.parametrize("model", ["pixel:0", "pixel:3", "pixel:abc", "pixel:-4", "pixel:4096"])
def test_bad_pixel_backbones(labelled_clip, capsys, model):
    _, video, _ = labelled_clip(n_frames=4)
    assert main(["track", str(video), "--model", model, "--quiet"]) == 2
    err = error_of(capsys)
    assert model in err and "multiple of 4" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--model", "pixel:64", "--short-side", "32"], "at least one patch"),
        (["--short-side", "16"], "short_side"),
        (["--short-side", "100000"], "short_side"),
    ],
)
def test_working_sizes_that_cannot_work(labelled_clip, capsys, args, words):
    _, video, _ = labelled_clip(n_frames=4)
    argv = ["track", str(video), "--model", PIXEL, "--quiet", *args]
    assert main(argv) == 2
    assert words in error_of(capsys)


def test_the_model_is_named_only_once_it_has_loaded(labelled_clip, capsys, monkeypatch, tmp_path):
    _, video, _ = labelled_clip(n_frames=4)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    assert main(["track", str(video), "--model", "dinov2-small"]) == 2
    assert "Tracking" not in error_of(capsys)
    assert main(["track", str(video), "--model", PIXEL, "--short-side", "160"]) == 0
    assert f"with {PIXEL} ->" in capsys.readouterr().err


# ------------------------------------------------------------------ frame range


def test_an_end_frame_before_the_start_frame(labelled_clip, capsys):
    _, video, _ = labelled_clip(n_frames=40)
    assert track(video) == 0
    capsys.readouterr()
    assert track(video, "--start-frame", "30", "--end-frame", "10") == 2
    err = error_of(capsys)
    assert "end frame 10 is before start frame 30" in err and "already tracked" not in err


# ------------------------------------------------------------------ seeds without keypoints


@pytest.mark.parametrize(
    ("shapes", "words"),
    [
        ([], "no shapes at all"),
        (None, "no shapes at all"),
        (
            [
                {"label": "box", "points": [[1, 1], [5, 5]], "shape_type": "rectangle"},
                {"label": "c", "points": [[9, 9], [12, 9]], "shape_type": "circle"},
                {"label": "l", "points": [[1, 1], [9, 9]], "shape_type": "line"},
            ],
            "only 1 circle, 1 line, 1 rectangle",
        ),
        ([{"label": "nose", "points": [[10, 10]], "shape_type": "Point"}], "'Point'"),
    ],
)
def test_a_seed_without_keypoints(tmp_path, capsys, shapes, words):
    from napari_dinotrack.synthetic import make_clip

    video = make_clip(n_frames=6).write(tmp_path / "clip.mp4")
    layout = ResultLayout(video)
    layout.ensure_folder()
    data = {"version": "5.5.0", "flags": {}, "imagePath": "", "imageData": None, "imageHeight": 160, "imageWidth": 224}
    if shapes is not None:
        data["shapes"] = shapes
    layout.frame_json(0).write_text(json.dumps(data))
    assert track(video) == 2
    err = error_of(capsys)
    assert layout.frame_json(0).name in err and words in err and "at least one keypoint" in err
    assert sorted(layout.frame_files()) == [0]  # no empty predictions


def test_a_deeply_nested_seed_file(labelled_clip, capsys):
    _, video, layout = labelled_clip(n_frames=4)
    layout.frame_json(0).write_text('{"shapes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert track(video) == 2
    assert layout.frame_json(0).name in error_of(capsys)


# ------------------------------------------------------------------ sample


@pytest.mark.parametrize("args", [["--frames", "0"], ["--frames", "1"], ["--animals", "0"], ["--animals", "-2"]])
def test_sample_with_nothing_to_track(tmp_path, capsys, args):
    assert main(["sample", str(tmp_path / "s"), *args]) == 2
    assert args[0] in error_of(capsys)
    assert not (tmp_path / "s").exists()


def test_sample_given_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["sample", str(target)]) == 2
    assert f"{target} is a file" in error_of(capsys)
    assert target.read_text() == "mine"


# ------------------------------------------------------------------ where results go


def test_a_read_only_result_folder_is_named(labelled_clip, capsys, monkeypatch):
    _, video, layout = labelled_clip(n_frames=6)
    folder = str(layout.folder)
    real_open, real_mkdir = os.open, os.mkdir

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(folder) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)

    def read_only_mkdir(path, *args, **kwargs):
        if str(path).startswith(folder):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(os, "mkdir", read_only_mkdir)
    assert track(video, "--out", folder) == 2
    err = error_of(capsys)
    assert f"{folder}: cannot be written (Read-only file system)" in err and ".tmp" not in err


@pytest.mark.parametrize("which", ["tracks_csv", "config_json", "tracks_index"])
def test_a_folder_where_a_result_file_goes(labelled_clip, capsys, which):
    _, video, layout = labelled_clip(n_frames=6)
    in_the_way = getattr(layout, which)
    in_the_way.mkdir()
    assert track(video) == 2
    assert f"{in_the_way}: is a folder" in error_of(capsys)
    assert in_the_way.is_dir()


def test_a_result_folder_that_is_a_file(labelled_clip, tmp_path, capsys):
    _, video, _ = labelled_clip(n_frames=4)
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("mine")
    assert track(video, "--out", str(not_a_folder)) == 2
    assert str(not_a_folder) in error_of(capsys)
    assert not_a_folder.read_text() == "mine"


def test_a_planted_masks_link_is_not_followed(labelled_clip, tmp_path, capsys):
    _, video, layout = labelled_clip(n_frames=6, polygons=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    layout.masks_dir.symlink_to(elsewhere, target_is_directory=True)
    assert track(video) == 2
    assert f"{layout.masks_dir}: is a symbolic link" in error_of(capsys)
    assert list(elsewhere.iterdir()) == []


def test_the_folder_of_another_video_is_refused(labelled_clip, tmp_path, capsys):
    from napari_dinotrack.synthetic import make_clip

    _, video, layout = labelled_clip(name="mouse", n_frames=8)
    assert track(video) == 0
    before = {p.name: p.read_bytes() for p in layout.folder.iterdir() if p.is_file()}
    other = make_clip(n_frames=12, seed=3).write(tmp_path / "rat.mp4")
    capsys.readouterr()
    assert track(other, "--out", str(layout.folder)) == 2
    err = error_of(capsys)
    assert "mouse.mp4" in err and "rat.mp4" in err and str(layout.folder) in err
    assert {p.name: p.read_bytes() for p in layout.folder.iterdir() if p.is_file()} == before

    copy = tmp_path / "mouse_copy.mp4"  # the same video under another name still belongs there
    copy.write_bytes(video.read_bytes())
    assert track(copy, "--out", str(layout.folder)) == 0
    assert "already tracked" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil","x")',
        "+1+1",
        "-2",
        "@SUM(A1)",
        "nose\ntip",
        "nose\rtip",
        "nose\u0085tip",
        "nose\u2028tip",
    ],
)
def test_a_seed_with_an_unsafe_name(labelled_clip, capsys, name):
    _, video, layout = labelled_clip(n_frames=6)
    data = json.loads(layout.frame_json(0).read_text())
    data["shapes"][0]["label"] = name
    layout.frame_json(0).write_text(json.dumps(data))
    assert track(video) == 2
    err = error_of(capsys)
    assert layout.frame_json(0).name in err and ("formula" in err or "line break" in err)
    assert sorted(layout.frame_files()) == [0]
    assert not layout.tracks_csv.exists() or name not in layout.tracks_csv.read_text()
