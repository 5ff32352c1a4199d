"""Batch throughput: the same videos tracked by a local Dask cluster of 1 worker and of 2 workers.

    python benchmarks/bench_batch.py --out benchmarks/results/batch_cpu.json

For each backbone (the weight-free ``pixel:`` and a random-weight ViT-S/16, which costs what the
real one costs) the generated videos are tracked from their seed by ``track_many`` on a
``LocalCluster`` of 1 and of 2 worker processes (torch's threads split between them). Reported:
frames/s over the tracking span (first video started to last video finished, cluster start-up
excluded), wall time including start-up, and each worker's peak resident memory. Runs alternate
between 1 and 2 workers and the best of ``--repeats`` counts (the machine may be shared). First,
for sizing workers, the peak memory of one ``napari-dinotrack track`` process with the ViT-S/16 at
the default working size (a 640x480 clip -> 1024x768, one batch of 8 frames).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_dinotrack.batch import track_many
from napari_dinotrack.batch.cluster import usable_cpus
from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.runsettings import RunSettings
from napari_dinotrack.synthetic import make_clip
from napari_dinotrack.synthetic.models import save_random_dinov3


def peak_rss_mb() -> float:
    """Peak resident memory of the calling process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_videos(folder: Path, n: int, n_frames: int) -> list[Path]:
    clip = make_clip(n_frames=n_frames, n_instances=2, speed=2.5)
    videos = []
    for i in range(n):
        video = clip.write(folder / f"mouse{i}.mp4")
        videos.append(video)
    return videos


def reset_results(videos: list[Path], n_frames: int) -> None:
    """Leave only the seed (frame 0) in each result folder."""
    clip = make_clip(n_frames=n_frames, n_instances=2, speed=2.5)
    for video in videos:
        layout = ResultLayout(video)
        shutil.rmtree(layout.folder, ignore_errors=True)
        layout.ensure_folder()
        write_manual(layout, clip.annotation(0))


def vit_weights_mb(folder: Path) -> float:
    from safetensors.torch import load_file

    return sum(t.numel() * 4 for t in load_file(folder / "model.safetensors").values()) / 2**20


def track_peak_rss_mb(model: Path, work: Path, short_side: int) -> float:
    """Peak resident memory of one ``napari-dinotrack track`` process (run before any worker exists)."""
    clip = make_clip(n_frames=9, height=480, width=640, n_instances=2, speed=2.5)
    video = clip.write(work / "rss.mp4")
    layout = ResultLayout(video)
    layout.ensure_folder()
    write_manual(layout, clip.annotation(0))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_dinotrack.cli",
            "track",
            str(video),
            "--model",
            str(model),
            "--short-side",
            str(short_side),
            "--device",
            "cpu",
            "--quiet",
        ],
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert after > before, "a larger process ran first; measure before starting any other child"
    return after / 1024


def run_once(videos: list[Path], settings: RunSettings, workers: int) -> dict:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        started = time.perf_counter() - start
        summary = track_many(videos, settings, scheduler=cluster.scheduler_address, quiet=True, say=lambda _: None)
        with Client(cluster) as client:
            rss = sorted(client.run(peak_rss_mb).values())
    wall = time.perf_counter() - start
    assert summary.ok, summary.table()
    first = min(r.started for r in summary.results)
    last = max(r.started + r.seconds for r in summary.results)
    frames = summary.frames
    return {
        "workers": workers,
        "frames": frames,
        "tracking_s": last - first,
        "fps": frames / (last - first),
        "cluster_start_s": started,
        "wall_s": wall,
        "worker_peak_rss_mb": rss,
        "model_loads": sum(r.model_loaded for r in summary.results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--vit-short-side", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    report: dict = {
        "machine": platform.processor() or platform.machine(),
        "cpus": usable_cpus(),
        "torch": torch.__version__,
        "videos": args.videos,
        "frames_per_video": args.frames,
        "clip": "make_clip(n_instances=2), 224x160, 8 keypoints",
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        vit = save_random_dinov3(work / "random-vits16", seed=0)
        report["vit_parameters_mb_fp32"] = vit_weights_mb(vit)
        report["track_process_peak_rss_mb"] = {
            "model": "random-vits16",
            "short_side": RunSettings().short_side,
            "working_size": "1024x768",
            "batch_size": 8,
            "mb": track_peak_rss_mb(vit, work, RunSettings().short_side),
        }
        print(json.dumps(report["track_process_peak_rss_mb"]), flush=True)
        videos = write_videos(work, args.videos, args.frames)
        backbones = [
            ("pixel:", RunSettings(model="pixel:", short_side=160)),
            ("random-vits16", RunSettings(model=str(vit), short_side=args.vit_short_side)),
        ]
        # 1 and 2 workers alternate, so a change in the machine's load hits both alike
        for name, settings in backbones:
            for _ in range(args.repeats):
                for workers in (1, 2):
                    reset_results(videos, args.frames)
                    load = os.getloadavg()[0]
                    result = run_once(videos, settings, workers)
                    result |= {"backbone": name, "short_side": settings.short_side, "load_average_before": load}
                    report["runs"].append(result)
                    print(json.dumps(result), flush=True)
    for name, _ in backbones:
        best = {w: max(r["fps"] for r in report["runs"] if r["backbone"] == name and r["workers"] == w) for w in (1, 2)}
        report[f"best_fps_{name}"] = best
        report[f"speedup_2_workers_{name}"] = best[2] / best[1]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
