"""The tidy table equals what the JSONs say after every run, however it ended, and at every start."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from napari_dinotrack import DinoKeypointVideoProcessor
from napari_dinotrack.cli import main
from napari_dinotrack.errors import FolderInUseError
from napari_dinotrack.io import table_index
from napari_dinotrack.io.labelme import read_frame, write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.table_index import TracksTable

PIXEL = "pixel:8"
SHORT = "160"


def track(video: Path, *extra: str) -> int:
    return main(["track", str(video), "--model", PIXEL, "--short-side", SHORT, "--quiet", *extra])


def run_script(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout
    )


def test_the_issue_scenario_an_interrupted_start_frame_retrack(tmp_path, monkeypatch, capsys, table_matches_jsons):
    """sample 120 frames, track, re-track from 20 and press Ctrl-C, track again: the table has all 120 frames."""
    from napari_dinotrack.cli.progress import FrameProgress

    assert main(["sample", str(tmp_path / "d"), "--frames", "120"]) == 0
    video = tmp_path / "d" / "sample_mouse.mp4"
    layout = ResultLayout(video)
    assert track(video) == 0
    table_matches_jsons(layout)

    def ctrl_c_at_frame_40(self, done, total):
        if done == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(FrameProgress, "__call__", ctrl_c_at_frame_40)
    assert track(video, "--start-frame", "20") == 130
    monkeypatch.undo()
    table_matches_jsons(layout)  # the interrupted run left the table right

    capsys.readouterr()
    assert track(video) == 0
    assert "already tracked" in capsys.readouterr().out
    table_matches_jsons(layout)
    frames = {int(line.split(",")[0]) for line in layout.tracks_csv.read_text().splitlines()[1:]}
    assert frames == set(range(120))


def test_a_real_sigint_from_outside(labelled_clip, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=60)
    assert track(video) == 0
    before = layout.frame_json(30).stat().st_mtime_ns
    env = dict(os.environ)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_dinotrack.cli",
            "track",
            str(video),
            "--model",
            PIXEL,
            "--short-side",
            SHORT,
            "--quiet",
            "--start-frame",
            "5",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while layout.frame_json(30).stat().st_mtime_ns == before and proc.poll() is None:
        assert time.monotonic() < deadline, "the re-track never reached frame 30"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err  # 0: it had just finished
    assert "Traceback" not in err
    table_matches_jsons(layout)


def test_stop_in_a_track_from_here_run(labelled_clip, table_matches_jsons):
    """The dock's 'Track from here' then 'Stop': the frames after the stop keep their rows."""
    _, video, layout = labelled_clip(n_frames=30)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT))
    processor.process_video()
    for result in processor.iter_results(start_frame=10):
        if result.frame == 15:
            processor.stop()
    assert processor.last_run_stopped
    table_matches_jsons(layout)
    assert len(layout.tracks_csv.read_text().splitlines()) == 1 + 30 * 4


def test_closing_the_results_early_keeps_the_table_right(labelled_clip, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=20)
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT))
    processor.process_video()
    results = processor.iter_results(start_frame=3)
    for result in results:
        if result.frame == 8:
            break
    results.close()  # the napari activity dock's cancel
    table_matches_jsons(layout)


def test_kill_right_after_the_last_json_is_written(labelled_clip, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=12)
    result = run_script(f"""
        import os
        from napari_dinotrack import DinoKeypointVideoProcessor
        from napari_dinotrack.io import results

        original = results.write_prediction
        def write_then_die(layout, ann):
            done = original(layout, ann)
            if ann.frame == 11:
                os._exit(9)  # like kill -9 between the JSON and its rows
            return done
        results.write_prediction = write_then_die
        DinoKeypointVideoProcessor({str(video)!r}, model_name={PIXEL!r}, short_side={SHORT}).process_video()
    """)
    assert result.returncode == 9, result.stderr
    assert layout.frame_json(11).exists()
    processor = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT))
    assert processor.plan() is None  # every JSON is there: nothing to track ...
    assert processor.process_video().frames_tracked == 0
    table_matches_jsons(layout)  # ... and the start of the run still brought the table up to date


@pytest.mark.parametrize("damage", ["delete", "truncate", "edit", "delete index"])
def test_a_damaged_table_is_rebuilt_at_the_next_start(labelled_clip, damage, capsys, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=10)
    assert track(video) == 0
    text = layout.tracks_csv.read_text()
    if damage == "delete":
        layout.tracks_csv.unlink()
    elif damage == "truncate":
        layout.tracks_csv.write_text(text[: len(text) // 2])
    elif damage == "edit":
        layout.tracks_csv.write_text(text.replace(",1,", ",0,", 1))
    else:
        layout.tracks_index.unlink()
        layout.tracks_csv.write_text(text[: len(text) // 3])
    assert track(video) == 0
    assert "already tracked" in capsys.readouterr().out
    table_matches_jsons(layout)


def test_a_full_disk_names_the_file_and_the_next_run_heals(labelled_clip, monkeypatch, capsys, table_matches_jsons):
    from napari_dinotrack.io import atomic

    _, video, layout = labelled_clip(n_frames=24)
    real_write, calls = atomic._write_data, []

    def disk_fills_up(fh, data):
        calls.append(1)
        if len(calls) > 12:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fh, data)

    monkeypatch.setattr(atomic, "_write_data", disk_fills_up)
    assert track(video) == 2
    err = capsys.readouterr().err
    assert "disk is full" in err and str(layout.folder) in err and "Traceback" not in err
    assert ".tmp" not in err
    monkeypatch.undo()

    assert track(video) == 0  # space again: the run resumes and the table catches up
    table_matches_jsons(layout)
    assert len(layout.tracks_csv.read_text().splitlines()) == 1 + 24 * 4


def test_a_file_that_cannot_be_replaced(labelled_clip, monkeypatch, capsys, table_matches_jsons):
    """An immutable (chattr +i) frame file: exit 2 naming it; the table stays right."""
    from napari_dinotrack.io import atomic

    _, video, layout = labelled_clip(n_frames=12)
    locked = layout.frame_json(7)
    real_replace = os.replace

    def immutable(src, dst, *args, **kwargs):
        if Path(dst) == locked:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", immutable)
    assert track(video) == 2
    err = capsys.readouterr().err
    assert locked.name in err and "chattr" in err and "Traceback" not in err
    table_matches_jsons(layout)
    monkeypatch.undo()
    assert track(video) == 0
    table_matches_jsons(layout)


def test_two_runs_never_write_one_folder(labelled_clip, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=16)
    first = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT))
    second = DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT))
    running = first.iter_results()
    next(running)
    with pytest.raises(FolderInUseError) as info:
        second.process_video()
    message = str(info.value)
    assert str(layout.folder) in message and f"process {os.getpid()}" in message
    for _ in running:
        pass
    table_matches_jsons(layout)
    assert second.process_video().frames_tracked == 0  # the lock went with the first run


def test_a_run_in_another_process_is_named_and_a_killed_one_leaves_no_stuck_lock(
    labelled_clip, capsys, table_matches_jsons
):
    _, video, layout = labelled_clip(n_frames=10)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from napari_dinotrack.io.folder_lock import FolderLock
        FolderLock({str(layout.folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert track(video) == 2
        err = capsys.readouterr().err
        assert str(layout.folder) in err and f"process {holder.pid}" in err and "Traceback" not in err
    finally:
        holder.kill()  # kill -9: the lock file stays behind
        holder.wait()
    assert layout.lock_file.exists()
    assert track(video) == 0
    table_matches_jsons(layout)


def test_checking_a_current_table_costs_a_stat_per_frame(labelled_clip, monkeypatch, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=20)
    DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT)).process_video()
    an_hour_ago = time.time_ns() - 3600 * 10**9
    for path in layout.frame_files().values():  # older than the racy window
        os.utime(path, ns=(an_hour_ago, an_hour_ago))
    TracksTable(layout).sync()

    reads = []
    real_read = table_index.read_frame
    monkeypatch.setattr(table_index, "read_frame", lambda path, frame: reads.append(frame) or real_read(path, frame))
    report = TracksTable(layout).sync()
    assert reads == [] and report.stats == 20 and not report.rewritten

    corrected = read_frame(layout.frame_json(5))
    corrected.source = "manual"
    corrected.instances[0].keypoints[0].x += 3.0
    write_manual(layout, corrected)
    report = TracksTable(layout).sync()
    assert reads == [5] and report.rewritten and not report.rebuilt
    table_matches_jsons(layout)


def test_a_killed_run_is_repaired_by_rereading_only_its_frames(labelled_clip, monkeypatch, table_matches_jsons):
    _, video, layout = labelled_clip(n_frames=40)
    DinoKeypointVideoProcessor(video, model_name=PIXEL, short_side=int(SHORT)).process_video()
    an_hour_ago = time.time_ns() - 3600 * 10**9
    for path in layout.frame_files().values():
        os.utime(path, ns=(an_hour_ago, an_hour_ago))
    TracksTable(layout).sync()
    result = run_script(f"""
        import os
        from napari_dinotrack import DinoKeypointVideoProcessor
        def die(done, total):
            if done == 5:
                os._exit(9)
        DinoKeypointVideoProcessor({str(video)!r}, model_name={PIXEL!r}, short_side={SHORT},
                                   progress_callback=die).process_video(start_frame=20, end_frame=30)
    """)
    assert result.returncode == 9, result.stderr
    index = json.loads(layout.tracks_index.read_text())
    assert index["appending_from"] and index["run"] == [21, 30]  # the kill left the table mid-run

    reads = []
    real_read = table_index.read_frame
    monkeypatch.setattr(table_index, "read_frame", lambda path, frame: reads.append(frame) or real_read(path, frame))
    report = TracksTable(layout).sync()
    assert not report.rebuilt and set(reads) <= set(range(21, 31))
    table_matches_jsons(layout)


def test_temp_files_of_killed_writes_are_cleaned_and_nobody_elses(labelled_clip, table_matches_jsons):
    from napari_dinotrack.io.processes import host_tag

    _, video, layout = labelled_clip(n_frames=10)
    result = run_script(f"""
        import os
        from napari_dinotrack import DinoKeypointVideoProcessor
        from napari_dinotrack.io import atomic
        real_replace = os.replace
        def die_inside_the_write(src, dst):
            if str(dst).endswith("_000000006.json"):
                os._exit(9)  # kill -9 after the temporary file is written, before it replaces the target
            real_replace(src, dst)
        atomic.os.replace = die_inside_the_write
        DinoKeypointVideoProcessor({str(video)!r}, model_name={PIXEL!r}, short_side={SHORT}).process_video()
    """)
    assert result.returncode == 9, result.stderr
    left = [p.name for p in layout.folder.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".clip_000000006.json.dt")

    folder = layout.folder
    legacy = folder / ".clip_000000003.json.0123456789ab.tmp"  # written by an older version
    theirs = [
        folder / f".notes.txt.dt{host_tag()}-999999999-abcdef12.tmp",
        folder / "draft.tmp",
        folder / ".holiday.json.0123456789ab.tmp",
    ]
    live = folder / f".clip_000000004.json.dt{host_tag()}-{os.getpid()}-abcdef12.tmp"  # a write in progress
    for path in (legacy, *theirs, live):
        path.write_text("x")
    assert track(video) == 0
    remaining = {p.name for p in folder.iterdir() if p.name.endswith(".tmp")}
    assert remaining == {p.name for p in (*theirs, live)}
    table_matches_jsons(layout)
