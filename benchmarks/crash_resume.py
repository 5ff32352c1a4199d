"""Kill ``napari-dinotrack track`` with SIGKILL at random moments, over and over, and check nothing written is wrong.

Each round starts ``track`` on a generated clip (resuming, or re-tracking from a random frame when
everything is current) and kills it with ``kill -9`` at a random moment: half the rounds at any
time after the start, half once frames are being written. After every kill: every frame JSON
still parses, and bringing the table up to date (what the next run does first) makes it equal to
the JSONs. At the end one uninterrupted run finishes the video; then the table equals the JSONs,
every frame is there once, no temporary file and no held lock is left, and the keypoints are
as close to the ground truth as after a run that was never interrupted.

    python benchmarks/crash_resume.py --kills 20 --out benchmarks/results/crash_resume_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_dinotrack.io.folder_lock import FolderLock
from napari_dinotrack.io.labelme import load_annotations, read_frame, write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.table_index import TracksTable
from napari_dinotrack.io.tables import HEADER_LINE, csv_block
from napari_dinotrack.synthetic import make_clip

MODEL, SHORT = "pixel:8", "320"


def expected_table(layout: ResultLayout) -> str:
    return HEADER_LINE + "\n" + "".join(csv_block(read_frame(p, f)) for f, p in layout.frame_files().items())


def newest_write(layout: ResultLayout) -> int:
    return max((p.stat().st_mtime_ns for p in layout.frame_files().values()), default=0)


def one_round(video: Path, layout: ResultLayout, rng: random.Random, n_frames: int, env: dict) -> dict:
    args = [
        sys.executable,
        "-m",
        "napari_dinotrack.cli",
        "track",
        str(video),
        "--model",
        MODEL,
        "--short-side",
        SHORT,
        "--quiet",
    ]
    start_frame = None
    if len(layout.frame_files()) == n_frames and rng.random() < 0.8:
        start_frame = rng.randrange(0, n_frames - 10)
        args += ["--start-frame", str(start_frame)]
    mode = "while writing" if rng.random() < 0.5 else "any time"
    before = newest_write(layout)
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if mode == "while writing":
        while newest_write(layout) == before and proc.poll() is None and time.monotonic() - started < 60:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.5))
    else:
        time.sleep(rng.uniform(0.2, 15.0))  # starting up (imports, probing, templates) takes seconds
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    elapsed = time.monotonic() - started

    load_annotations(layout)  # every file on disk parses
    tmp_left = sorted(p.name for p in layout.folder.iterdir() if p.name.endswith(".tmp"))
    report = TracksTable(layout).sync()  # what the next run does first
    table_ok = layout.tracks_csv.read_text(encoding="utf-8") == expected_table(layout)
    return {
        "mode": mode,
        "start_frame": start_frame,
        "killed_after_s": round(elapsed, 2),
        "killed": killed,
        "exit_code": proc.returncode,
        "temp_files_left": len(tmp_left),
        "frames_on_disk": len(layout.frame_files()),
        "table_rebuilt": report.rebuilt,
        "jsons_reread": len(report.reread),
        "table_ok_after_sync": table_ok,
        "error": stderr.strip().splitlines()[-1] if proc.returncode not in (0, -9) and stderr.strip() else None,
    }


def run(kills: int, seed: int, n_frames: int) -> dict:
    rng = random.Random(seed)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(n_frames=n_frames, n_instances=2, speed=2.0)
        video = clip.write(Path(tmp) / "clip.mp4")
        layout = ResultLayout(video)
        layout.ensure_folder()
        write_manual(layout, clip.annotation(0))
        rounds, t0 = [], time.monotonic()
        while sum(r["killed"] for r in rounds) < kills and len(rounds) < 4 * kills:
            rounds.append(one_round(video, layout, rng, n_frames, env))
        final = subprocess.run(
            [
                sys.executable,
                "-m",
                "napari_dinotrack.cli",
                "track",
                str(video),
                "--model",
                MODEL,
                "--short-side",
                SHORT,
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        reference = ResultLayout(video, Path(tmp) / "uninterrupted")
        reference.ensure_folder()
        write_manual(reference, clip.annotation(0))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "napari_dinotrack.cli",
                "track",
                str(video),
                "--model",
                MODEL,
                "--short-side",
                SHORT,
                "--quiet",
                "--out",
                str(reference.folder),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        anns = load_annotations(layout)
        rows = layout.tracks_csv.read_text(encoding="utf-8").splitlines()[1:]
        keys = [tuple(r.split(",")[:3]) for r in rows]

        def median_error(annotations: dict) -> float:
            errs = [
                np.hypot(kp.x - clip.positions[i.name, kp.name][f][0], kp.y - clip.positions[i.name, kp.name][f][1])
                for f, a in annotations.items()
                for i in a.instances
                for kp in i.keypoints
                if clip.visible[i.name, kp.name][f]
            ]
            return round(float(np.median(errs)), 3)

        checks = {
            "final_exit_code": final.returncode,
            "every_frame_once": sorted(anns) == list(range(n_frames)) and len(keys) == len(set(keys)) == n_frames * 8,
            "table_equals_jsons": layout.tracks_csv.read_text(encoding="utf-8") == expected_table(layout),
            "no_temp_files": not any(p.name.endswith(".tmp") for p in layout.folder.iterdir()),
            "lock_free": FolderLock(layout.folder).owner() is None,
            "median_error_px": median_error(anns),
            "median_error_px_uninterrupted": median_error(load_annotations(reference)),
            "table_ok_after_every_kill": all(r["table_ok_after_sync"] for r in rounds),
            "no_user_visible_errors": not any(r["error"] for r in rounds),
        }
        checks["passed"] = (
            checks["final_exit_code"] == 0
            and checks["every_frame_once"]
            and checks["table_equals_jsons"]
            and checks["no_temp_files"]
            and checks["lock_free"]
            and checks["table_ok_after_every_kill"]
            and checks["no_user_visible_errors"]
            and checks["median_error_px"] < checks["median_error_px_uninterrupted"] + 0.5
        )
        return {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "seed": seed,
            "n_frames": n_frames,
            "kills": sum(r["killed"] for r in rounds),
            "rounds": rounds,
            "checks": checks,
            "seconds": round(time.monotonic() - t0, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to deliver (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the kill times")
    parser.add_argument("--frames", type=int, default=150, help="frames in the generated clip")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args()
    result = run(args.kills, args.seed, args.frames)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps(result["checks"], indent=2))
    print(f"{result['kills']} kills in {len(result['rounds'])} rounds, {result['seconds']} s")
    return 0 if result["checks"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
