"""Many videos on real Dask clusters: a LocalCluster, a killed worker, and a scheduler started by hand.

These start worker processes, so they share their clusters and videos as much as they can.
"""

from __future__ import annotations

import csv
import itertools
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from napari_dinotrack.batch import CURRENT, FAILED, STOPPED, TRACKED, track_many
from napari_dinotrack.cli import main
from napari_dinotrack.io.labelme import load_annotations
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.tables import read_tracks_csv

N_FRAMES = 24


def _tables(videos: list[Path]) -> dict[str, list[dict]]:
    return {v.stem: read_tracks_csv(ResultLayout(v).tracks_csv) for v in videos if ResultLayout(v).tracks_csv.exists()}


def _result_files(videos: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for v in videos for p in ResultLayout(v).folder.rglob("*") if p.is_file()}


def _assert_complete(video: Path, n_frames: int) -> None:
    layout = ResultLayout(video)
    assert sorted(load_annotations(layout)) == list(range(n_frames))
    rows = read_tracks_csv(layout.tracks_csv)
    assert [(r["frame"], r["keypoint"]) for r in rows] == [
        (f, k) for f in range(n_frames) for k in ("nose", "leftear", "rightear", "tail_base")
    ]


@pytest.fixture(scope="module")
def local_batch(fast, make_videos, tmp_path_factory: pytest.TempPathFactory):
    """4 videos, the third broken, tracked by a LocalCluster of 2 worker processes."""
    videos = make_videos(tmp_path_factory.mktemp("local"), broken=2, n_frames=N_FRAMES)
    summary = track_many(videos, fast, workers=2, quiet=True)
    return videos, summary


def test_local_cluster_tracks_the_good_videos_and_reports_the_broken_one(local_batch):
    videos, summary = local_batch
    assert [r.status for r in summary.results] == [TRACKED, TRACKED, FAILED, TRACKED]
    assert summary.exit_code == 3
    broken = summary.results[2]
    assert str(videos[2]) in broken.error and "Cannot open" in broken.error
    for i in (0, 1, 3):
        assert summary.results[i].frames == N_FRAMES - 1
        assert 0 < summary.results[i].mean_score <= 1
        _assert_complete(videos[i], N_FRAMES)
    # both workers took part and each loaded the backbone once, not once per video
    workers = {r.worker for r in summary.results if r.status == TRACKED}
    assert len(workers) == 2
    assert sum(r.model_loaded for r in summary.results) == 2


def test_rerun_does_nothing_more_and_writes_the_summary(local_batch, tmp_path, capsys):
    videos, _ = local_batch
    before = _result_files(videos)
    summary_csv = tmp_path / "summary.csv"
    code = main(
        [
            "batch",
            *map(str, videos),
            "--workers",
            "2",
            "--model",
            "pixel:",
            "--short-side",
            "64",
            "--summary",
            str(summary_csv),
            "--quiet",
        ]
    )
    out = capsys.readouterr()
    assert code == 3, out.err
    assert _result_files(videos) == before  # no result file rewritten
    with summary_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["video", "frames", "seconds", "fps", "status", "mean_score", "error"]
    assert [(r["status"], r["frames"]) for r in rows] == [(CURRENT, "0"), (CURRENT, "0"), (FAILED, "0"), (CURRENT, "0")]
    assert str(videos[2]) in rows[2]["error"]
    assert "3 up to date, 1 failed" in out.out and "mouse2.mp4" in out.out
    assert "Dask dashboard: http" in out.err


def test_external_scheduler_gives_the_local_results(fast, make_videos, dask_cli_cluster, local_batch, tmp_path):
    local_videos, local_summary = local_batch
    videos = make_videos(tmp_path, broken=2, n_frames=N_FRAMES)
    summary = track_many(videos, fast, scheduler=dask_cli_cluster, quiet=True)
    assert [r.status for r in summary.results] == [r.status for r in local_summary.results]
    assert [r.mean_score for r in summary.results] == pytest.approx([r.mean_score for r in local_summary.results])
    external, local = _tables(videos), _tables(local_videos)
    assert external.keys() == local.keys() == {"mouse0", "mouse1", "mouse3"}
    for name, rows in external.items():
        assert [(r["frame"], r["keypoint"], r["visible"]) for r in rows] == [
            (r["frame"], r["keypoint"], r["visible"]) for r in local[name]
        ]
        xy = [v for r in rows for v in (r["x"], r["y"]) if v is not None]
        assert xy == pytest.approx([v for r in local[name] for v in (r["x"], r["y"]) if v is not None], abs=1e-2)
    # each worker has one GPU slot: it never tracked two videos at once although it has two threads
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for r in summary.results:
        if r.status == TRACKED:
            by_worker.setdefault(r.worker, []).append((r.started, r.started + r.seconds))
    for spans in by_worker.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


def test_a_worker_killed_mid_run_and_a_rerun_complete_the_job(fast, make_videos, dask_cli_cluster, tmp_path):
    from distributed import Client

    n_frames = 160
    videos = make_videos(tmp_path, n=3, n_frames=n_frames)
    outcome: dict = {}
    batch = threading.Thread(
        target=lambda: outcome.update(summary=track_many(videos, fast, scheduler=dask_cli_cluster, quiet=True))
    )
    with Client(dask_cli_cluster) as client:
        pids = client.run(os.getpid)
        batch.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and batch.is_alive() and time.monotonic() < deadline:
            # a worker whose video has some frames written (task keys name the video)
            for addr, keys in client.processing().items():
                for video in videos:
                    if any(f"-{video.stem}-" in str(k) for k in keys) and _frames_written(video) > 10:
                        os.kill(pids[addr], signal.SIGKILL)
                        victim = video
            time.sleep(0.05)
        batch.join(timeout=300)
    assert victim is not None, "no video was running to kill its worker"
    assert not batch.is_alive()
    first = outcome["summary"]
    assert all(r.status in (TRACKED, FAILED) for r in first.results)

    again = track_many(videos, fast, scheduler=dask_cli_cluster, quiet=True)
    assert again.exit_code == 0
    assert {r.status for r in again.results} <= {TRACKED, CURRENT}
    for video in videos:
        _assert_complete(video, n_frames)
    # the killed video resumed after the frames written before the kill, it did not start over
    i = videos.index(victim)
    assert 0 < first.results[i].frames + again.results[i].frames < n_frames - 1


def _frames_written(video: Path) -> int:
    return sum(1 for _ in ResultLayout(video).folder.glob("*.json"))


def test_stop_ends_every_video_after_its_current_frame_and_keeps_what_was_written(fast, make_videos, tmp_path):
    n_frames = 300
    videos = make_videos(tmp_path, n=2, n_frames=n_frames)
    stop = threading.Event()
    summary = track_many(
        videos,
        fast,
        workers=1,
        quiet=True,
        stop=stop,
        on_frames=lambda video, done, total: stop.set() if done >= 5 else None,
    )
    assert summary.exit_code == 3
    assert [r.status for r in summary.results] == [STOPPED, STOPPED]
    assert "stopped after" in summary.results[0].error and "stopped before it started" in summary.results[1].error
    assert 5 <= summary.results[0].frames < n_frames - 1
    # the frames tracked before the stop are on disk, complete, and the next run resumes after them
    assert sorted(load_annotations(ResultLayout(videos[0]))) == list(range(summary.results[0].frames + 1))
    assert not ResultLayout(videos[1]).tracks_csv.exists()
