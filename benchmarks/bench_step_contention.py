"""The tracker step alone and next to a thread that runs Python: what sharing the interpreter costs it.

The host-budget clip (640x480, two animals x 4 keypoints, ``pixel:`` at short side 480) is
extracted once; the tracker then runs over it on one torch thread, alone and while a second
thread runs pure Python (building JSON, as the result writer does) for 2 or 5 ms of every 12,
with the interpreter's default switch interval and a short one. Runs alternate; medians of the
mean step per run are reported.

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

CASES = [(0.0, 0.005), (2.0, 0.005), (5.0, 0.005), (5.0, 0.0002)]  # (busy ms per 12 ms, switch interval s)
PERIOD_MS = 12.0


def _inputs(frames: int):
    from napari_dinotrack.backbone.base import compute_geometry
    from napari_dinotrack.backbone.loader import load_backbone
    from napari_dinotrack.synthetic import make_clip
    from napari_dinotrack.tracking.keypoints.flow import to_gray

    clip = make_clip(n_frames=frames, height=480, width=640, n_instances=2)
    geometry = compute_geometry(480, 640, 480, 16)
    backbone = load_backbone("pixel:")
    feats = [f for i in range(0, frames, 8) for f in backbone.extract(clip.frames[i : i + 8], geometry)]
    return clip.annotation(0), feats, [to_gray(f) for f in clip.frames], geometry


def _busy(stop: threading.Event, busy_ms: float) -> None:
    frame = {"shapes": [{"label": f"k{i}", "points": [[i * 1.5, i * 2.5]], "flags": {}} for i in range(8)]}
    while not stop.is_set():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < busy_ms / 1000:
            json.dumps(frame)
        time.sleep((PERIOD_MS - busy_ms) / 1000)


def step_ms(seed, feats, grays, geometry, busy_ms: float, interval: float) -> float:
    """Mean tracker step over the clip, in ms, with the given company."""
    from napari_dinotrack.tracking.config import TrackerConfig
    from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker

    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    stop = threading.Event()
    worker = threading.Thread(target=_busy, args=(stop, busy_ms), daemon=True) if busy_ms > 0 else None
    if worker is not None:
        worker.start()
    try:
        tracker = KeypointTracker(TrackerConfig(), geometry, "cpu")
        tracker.start(seed, feats[0], grays[0])
        t0 = time.perf_counter()
        for t in range(1, len(feats)):
            tracker.step(feats[t], grays[t])
        return 1000 * (time.perf_counter() - t0) / (len(feats) - 1)
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
    seed, feats, grays, geometry = _inputs(args.frames)
    runs: dict[str, list[float]] = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for busy_ms, interval in CASES:
            key = f"busy {busy_ms:g} ms per {PERIOD_MS:g} ms, switch interval {interval * 1000:g} ms"
            runs.setdefault(key, []).append(step_ms(seed, feats, grays, geometry, busy_ms, interval))
    report = {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "clip": {"size": [640, 480], "frames": args.frames, "animals": 2, "keypoints": 8, "model": "pixel:"},
        "load_average": [load_before, os.getloadavg()[0]],
        "step_ms": {key: {"median": float(np.median(v)), "all": v} for key, v in runs.items()},
    }
    for key, value in report["step_ms"].items():
        print(f"{key}: {value['median']:.2f} ms per step")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
