"""The tracker step alone and next to a busy thread: what sharing the interpreter or the memory costs it.

The host-budget clip (640x480, two animals x 4 keypoints, ``pixel:`` at short side 480) is
extracted once; the tracker then runs over it on one torch thread, alone and while a second
thread of the same process works:

* ``python``: pure Python (building JSON, as the result writer does) for 2 or 5 ms of every 12,
  with the interpreter's default switch interval and a short one;
* ``copy``: stacking batches of 8 frames with NumPy without a pause (memory traffic, as the
  feature worker gathers a batch);
* ``pixel``: ``pixel:`` feature extraction of batches of 8 frames without a pause.

Both the step's wall time and the CPU time its thread got are recorded. Runs alternate; medians
of the mean step per run are reported.

    python benchmarks/bench_step_contention.py --out benchmarks/results/step_contention_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

# (neighbour, busy ms per PERIOD_MS for "python", switch interval s)
CASES = [
    ("none", 0.0, 0.005),
    ("python", 2.0, 0.005),
    ("python", 5.0, 0.005),
    ("python", 5.0, 0.0002),
    ("copy", 0.0, 0.005),
    ("pixel", 0.0, 0.005),
]
NAMES = {"none": "alone", "copy": "next to a thread stacking frames", "pixel": "next to pixel: extraction"}
PERIOD_MS = 12.0
BATCH = 8


def _inputs(frames: int):
    from napari_dinotrack.backbone.base import compute_geometry
    from napari_dinotrack.backbone.loader import load_backbone
    from napari_dinotrack.synthetic import make_clip
    from napari_dinotrack.tracking.keypoints.flow import to_gray

    clip = make_clip(n_frames=frames, height=480, width=640, n_instances=2)
    geometry = compute_geometry(480, 640, 480, 16)
    backbone = load_backbone("pixel:")
    frames_rgb = np.asarray(clip.frames)
    feats = [f for i in range(0, frames, BATCH) for f in backbone.extract(frames_rgb[i : i + BATCH], geometry)]
    return clip.annotation(0), feats, [to_gray(f) for f in frames_rgb], geometry, frames_rgb, backbone


def _python(stop: threading.Event, busy_ms: float) -> None:
    frame = {"shapes": [{"label": f"k{i}", "points": [[i * 1.5, i * 2.5]], "flags": {}} for i in range(8)]}
    while not stop.is_set():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < busy_ms / 1000:
            json.dumps(frame)
        time.sleep((PERIOD_MS - busy_ms) / 1000)


def _batches(frames: np.ndarray):
    starts = range(0, len(frames) - BATCH + 1, BATCH)
    while True:
        for i in starts:
            yield list(frames[i : i + BATCH])


def _copy(stop: threading.Event, frames: np.ndarray) -> None:
    for batch in _batches(frames):
        if stop.is_set():
            return
        np.stack(batch)


def _pixel(stop: threading.Event, frames: np.ndarray, backbone, geometry) -> None:
    torch.set_num_threads(1)  # the feature worker's share on a 2-core machine
    for batch in _batches(frames):
        if stop.is_set():
            return
        backbone.extract(np.stack(batch), geometry)


def step_ms(inputs, neighbour: str, busy_ms: float, interval: float) -> tuple[float, float]:
    """Mean tracker step over the clip with the given company: (wall ms, CPU ms of the tracking thread)."""
    from napari_dinotrack.tracking.config import TrackerConfig
    from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker

    seed, feats, grays, geometry, frames, backbone = inputs
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    stop = threading.Event()
    work = {
        "python": (_python, (stop, busy_ms)),
        "copy": (_copy, (stop, frames)),
        "pixel": (_pixel, (stop, frames, backbone, geometry)),
    }
    worker = None
    if neighbour in work:
        target, args = work[neighbour]
        worker = threading.Thread(target=target, args=args, daemon=True)
        worker.start()
    try:
        tracker = KeypointTracker(TrackerConfig(), geometry, "cpu")
        tracker.start(seed, feats[0], grays[0])
        t0, cpu0 = time.perf_counter(), time.thread_time()
        for t in range(1, len(feats)):
            tracker.step(feats[t], grays[t])
        steps = len(feats) - 1
        return 1000 * (time.perf_counter() - t0) / steps, 1000 * (time.thread_time() - cpu0) / steps
    finally:
        stop.set()
        if worker is not None:
            worker.join()
        sys.setswitchinterval(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the run loop tracks
    torch.set_grad_enabled(False)
    inputs = _inputs(args.frames)
    runs: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for neighbour, busy_ms, interval in CASES:
            if neighbour == "python":
                key = f"python {busy_ms:g} ms per {PERIOD_MS:g} ms, switch interval {interval * 1000:g} ms"
            else:
                key = NAMES[neighbour]
            wall, thread_cpu = step_ms(inputs, neighbour, busy_ms, interval)
            runs.setdefault(key, []).append(wall)
            cpu.setdefault(key, []).append(thread_cpu)
    report = {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "clip": {"size": [640, 480], "frames": args.frames, "animals": 2, "keypoints": 8, "model": "pixel:"},
        "load_average": [load_before, os.getloadavg()[0]],
        "step_ms": {key: {"median": float(np.median(v)), "all": v} for key, v in runs.items()},
        "step_cpu_ms": {key: {"median": float(np.median(v)), "all": v} for key, v in cpu.items()},
    }
    for key, value in report["step_ms"].items():
        print(f"{key}: {value['median']:.2f} ms per step, {report['step_cpu_ms'][key]['median']:.2f} ms of CPU")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
