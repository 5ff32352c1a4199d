"""Memory does not grow with the video: peak RSS tracking a 1,000- and a 10,000-frame video, and napari's layers.

Each video is a generated 320x240 clip of two animals walking to and fro (a 100-frame clip played
forwards and backwards, streamed to the encoder so it never sits in memory), seeded on frame 0
and tracked from start to end with the ``pixel:`` backbone in a fresh process, which reports its
peak resident memory (``VmHWM``) and its resident memory every tenth of the run. Then every frame
also gets instance masks in the mask store, and napari's reader opens each video with its results
in a fresh process: its layers' types say whether they are lazy, and the process's memory what
opening them costs.

    python benchmarks/bench_memory.py --out benchmarks/results/memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from long_clip import write_walk_video
from napari_dinotrack.io.mask_store import MaskStore
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic import make_clip

HEIGHT, WIDTH = 240, 320

CHILD_TRACK = textwrap.dedent("""
    import json, sys, time
    from napari_dinotrack import DinoKeypointVideoProcessor

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    samples = []
    def progress(done, total):
        if done % max(1, total // 10) == 0 or done == total:
            samples.append((done, round(status("VmRSS:"), 1)))
    start = time.perf_counter()
    summary = DinoKeypointVideoProcessor(sys.argv[1], model_name="pixel:", short_side=int(sys.argv[2]),
                                         progress_callback=progress).process_video()
    print(json.dumps({"frames_tracked": summary.frames_tracked, "seconds": time.perf_counter() - start,
                      "peak_rss_mb": status("VmHWM:"), "rss_mb_by_frame": samples}))
""")

CHILD_OPEN = textwrap.dedent("""
    import json, sys, time
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    import dask.array, numpy, pandas  # what the reader's layers are made of, loaded before measuring
    from napari_dinotrack.napari.reader import read_video
    before = status("VmRSS:")
    start = time.perf_counter()
    layers = read_video(sys.argv[1])
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "rss_added_mb": status("VmRSS:") - before, "layers": []}
    for data, meta, kind in layers:
        out["layers"].append({"kind": kind, "name": meta.get("name"), "type": type(data).__name__,
                              "lazy": not isinstance(data, numpy.ndarray),
                              "shape": list(getattr(data, "shape", ())),
                              "in_memory_mb": round(getattr(data, "nbytes", 0) / 2**20, 2)
                              if isinstance(data, numpy.ndarray) else 0.0})
    print(json.dumps(out))
""")


def child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def add_masks(video: Path, n_frames: int) -> float:
    """Masks for every frame, as a run with masks would leave them."""
    clip = make_clip(n_frames=1, height=HEIGHT, width=WIDTH, n_instances=2)
    store = MaskStore(ResultLayout(video).masks_dir)
    start = time.perf_counter()
    for t in range(n_frames):
        store.write(t, clip.masks[0], ["animal1", "animal2"])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--lengths", default="1000,10000")
    args = ap.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    result: dict = {"video": f"{WIDTH}x{HEIGHT}", "model": "pixel:", "short_side": HEIGHT, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in lengths:
            video = write_walk_video(Path(tmp) / f"walk{n}.mp4", n, HEIGHT, WIDTH)
            run = child(CHILD_TRACK, str(video), str(HEIGHT))
            run["ms_per_frame"] = 1000 * run["seconds"] / run["frames_tracked"]
            run["masks_written_s"] = add_masks(video, n)
            run["napari_reader"] = child(CHILD_OPEN, str(video))
            result["runs"][str(n)] = run
            print(n, json.dumps({k: v for k, v in run.items() if k != "rss_mb_by_frame"}), flush=True)
    peaks = [result["runs"][str(n)]["peak_rss_mb"] for n in lengths]
    result["peak_ratio_longest_over_shortest"] = peaks[-1] / peaks[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("peak RSS", peaks, "ratio", round(result["peak_ratio_longest_over_shortest"], 3))


if __name__ == "__main__":
    main()
