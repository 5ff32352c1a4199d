"""One video of a batch, the video list and the summary, without a cluster."""

from __future__ import annotations

import csv
import sys

import pytest

from napari_dinotrack.batch import CURRENT, FAILED, NO_SEED, TRACKED, BatchSummary, VideoJob, VideoResult, track_video
from napari_dinotrack.batch.models import ModelCache
from napari_dinotrack.batch.run import collect_videos
from napari_dinotrack.cli import main
from napari_dinotrack.errors import InputError
from napari_dinotrack.synthetic import make_clip


def test_one_model_serves_every_video_and_finished_videos_are_left_alone(fast, make_videos, tmp_path):
    videos = make_videos(tmp_path, n=2, n_frames=8)
    models = ModelCache()
    progress: list[tuple[int, int]] = []
    first = track_video(VideoJob(str(videos[0]), fast), models, progress=lambda d, t: progress.append((d, t)))
    second = track_video(VideoJob(str(videos[1]), fast), models)
    assert (first.status, first.frames, first.model_loaded) == (TRACKED, 7, True)
    assert (second.status, second.frames, second.model_loaded) == (TRACKED, 7, False)
    assert models.loads == 1
    assert progress[-1] == (7, 7)
    again = track_video(VideoJob(str(videos[0]), fast), models)
    assert (again.status, again.frames, again.error) == (CURRENT, 0, "")
    assert again.mean_score == pytest.approx(first.mean_score)


def test_a_video_without_seed_is_reported_and_skipped(fast, tmp_path):
    video = make_clip(n_frames=4).write(tmp_path / "unlabelled.mp4")
    result = track_video(VideoJob(str(video), fast), ModelCache())
    assert result.status == NO_SEED and not result.ok
    assert "unlabelled.mp4" in result.error and "label one frame" in result.error
    assert not (tmp_path / "unlabelled").exists()  # nothing written for it


def test_a_bad_label_file_fails_that_video_with_the_file_named(fast, make_videos, tmp_path):
    video = make_videos(tmp_path, n=1, n_frames=4)[0]
    seed = next((video.parent / video.stem).glob("*.json"))
    seed.write_text('{"shapes": [')
    result = track_video(VideoJob(str(video), fast), ModelCache())
    assert result.status == FAILED
    assert seed.name in result.error


def test_video_list_folders_comments_and_repeats(make_videos, tmp_path):
    videos = make_videos(tmp_path, n=2, n_frames=4)
    listing = tmp_path / "videos.txt"
    moved = tmp_path / "more" / videos[0].name
    moved.parent.mkdir()
    videos[0].rename(moved)
    listing.write_text("# my videos\n\nmouse1.mp4\n  more  \n")
    # a folder stands for its videos; relative lines are relative to the list; no video twice
    assert collect_videos([videos[1]], listing) == [str(videos[1]), str(moved)]
    with pytest.raises(InputError, match=r"nope\.txt"):
        collect_videos([], tmp_path / "nope.txt")
    with pytest.raises(InputError, match="no videos"):
        collect_videos([])


def test_summary_table_and_csv(tmp_path):
    summary = BatchSummary(
        [
            VideoResult("/data/a.mp4", TRACKED, frames=100, seconds=4.0, mean_score=0.8),
            VideoResult("/data/b.mp4", FAILED, error="/data/b.mp4: cannot be opened"),
        ]
    )
    assert summary.exit_code == 3 and summary.counts() == "2 videos: 1 tracked, 1 failed"
    table = summary.table().splitlines()
    assert table[0].split() == ["video", "frames", "seconds", "fps", "status", "mean", "score"]
    assert table[2].split() == ["a.mp4", "100", "4.0", "25.0", "tracked", "0.8000"]
    assert table[-1] == "failed: /data/b.mp4: cannot be opened"
    with summary.write_csv(tmp_path / "out" / "summary.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1] == {
        "video": "/data/b.mp4",
        "frames": "0",
        "seconds": "0.0",
        "fps": "0.0",
        "status": "failed",
        "mean_score": "",
        "error": "/data/b.mp4: cannot be opened",
    }
    assert BatchSummary([VideoResult("a", CURRENT)]).exit_code == 0


def test_bad_arguments_exit_2_before_any_cluster_starts(make_videos, tmp_path, capsys):
    video = make_videos(tmp_path, n=1, n_frames=4)[0]
    assert main(["batch", str(video), str(tmp_path / "missing.mp4"), "--model", "pixel:"]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["batch", str(video), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]) == 2
    assert "--scheduler" in capsys.readouterr().err
    assert main(["batch", str(video), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["batch"]) == 2
    assert "no videos given" in capsys.readouterr().err


def test_without_distributed_the_message_names_the_extra(make_videos, tmp_path, capsys, monkeypatch):
    video = make_videos(tmp_path, n=1, n_frames=4)[0]
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["batch", str(video), "--model", "pixel:"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "napari-dinotrack[batch]"' in err and "Traceback" not in err


def test_time_left_counts_started_and_waiting_videos(monkeypatch):
    from napari_dinotrack.batch import progress as progress_module

    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    bar = progress_module.BatchProgress(4, quiet=True)
    bar.start()
    assert bar.seconds_left() is None  # nothing known yet
    clock[0] = 10.0
    bar.frames("a.mp4", 50, 100)
    # 5 frames/s; a has 50 frames left, the 3 videos not started are assumed as long as a
    assert bar.fps == 5.0 and bar.seconds_left() == (50 + 3 * 100) / 5
    clock[0] = 20.0
    bar.finished(VideoResult("a.mp4", TRACKED, frames=100, seconds=20.0))
    assert bar.frames_done == 100 and bar.seconds_left() == 3 * 100 / 5
