"""Video stack speed and memory, plus import times of the package's entry points.

python benchmarks/bench_video.py --out benchmarks/results/video_cpu.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_dinotrack.io.video import VideoReader, lazy_video, probe_video, write_video


def textured_frames(n: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width + n * 2, 3), dtype=np.uint8)
    return np.stack([base[:, 2 * t : 2 * t + width] for t in range(n)])


def rss_mb() -> float:
    """Current resident memory (the generated frames are freed before measuring, unlike a peak)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    report: dict = {"machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        write_video(video, textured_frames(args.frames, 480, 640), fps=30.0, quality=6)
        gc.collect()

        start = time.perf_counter()
        info = probe_video(video)
        report["probe_first_s"] = time.perf_counter() - start
        start = time.perf_counter()
        probe_video(video)
        report["probe_cached_s"] = time.perf_counter() - start

        rss_before = rss_mb()
        with VideoReader(video) as reader:
            start = time.perf_counter()
            growth = 0.0
            for n, _ in enumerate(reader.iter_frames(), 1):
                if n % 50 == 0:
                    growth = max(growth, rss_mb() - rss_before)
            report["sequential_fps"] = n / (time.perf_counter() - start)
            report["max_rss_growth_full_pass_mb"] = growth
            rng = np.random.default_rng(1)
            cold, warm = [], []
            for index in rng.choice(info.n_frames, 12, replace=False):
                start = time.perf_counter()
                reader.get_frame(int(index))
                cold.append(time.perf_counter() - start)
                start = time.perf_counter()
                reader.get_frame(int(index))
                warm.append(time.perf_counter() - start)
            report["random_access_uncached_ms"] = 1000 * statistics.median(cold)
            report["random_access_cached_ms"] = 1000 * statistics.median(warm)
            for i in range(0, info.n_frames, 8):  # scrub the whole video: the chunk cache must stay bounded
                reader.get_frame(i)
            report["cached_chunks_after_scrub"] = len(reader.cached_chunks())
            report["rss_growth_after_scrub_mb"] = rss_mb() - rss_before
        array = lazy_video(video)
        start = time.perf_counter()
        array[info.n_frames // 2].compute()
        report["dask_frame_ms"] = 1000 * (time.perf_counter() - start)
        report["video"] = {"frames": info.n_frames, "size": [info.width, info.height], "fps": info.fps}
    report["import_s"] = {
        m: import_seconds(m)
        for m in (
            "napari_dinotrack",
            "napari_dinotrack.cli",
            "napari_dinotrack.pipeline",
            "napari_dinotrack.napari.widget",
        )
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
