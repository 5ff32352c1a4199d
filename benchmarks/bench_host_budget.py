"""The stage profile and the host-side budget, in the setting of docs/benchmarks.md "Host-side budget".

A generated 640x480 clip of 150 frames with two animals x 4 keypoints, tracked with the weight-free
``pixel:`` backbone at short side 480 (so the backbone costs next to nothing), without masks and
with masks from the seed polygons. Each run is a fresh ``napari-dinotrack track ... --profile``
process; cases alternate within each repeat so that they share the machine's load. Also measured:
decoding the clip alone, what the profile itself costs (runs with and without ``--profile``,
alternating), and how many tensor operations one tracker step issues (each is a kernel launch on
a GPU). ``--components`` also measures the CPU time of the parts a run's threads share the cores
with, each alone in a fresh process (this checkout and ``--baseline-src`` alternately): a mask
propagation step, writing one frame (with and without masks) and ``pixel:`` feature extraction.

    python benchmarks/bench_host_budget.py --label after --out benchmarks/results/host_budget_after_cpu.json
    python benchmarks/bench_host_budget.py --label t1 --track-args="--threads 1" --out ...
    python benchmarks/bench_host_budget.py --baseline-src ../before/src --components --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.video import VideoReader
from napari_dinotrack.synthetic import make_clip

CASES = {"plain": False, "masks": True}  # case -> seed with polygons
# the rate has four significant figures where the seconds have one decimal (0.7 ms/frame on 150 frames)
TRACKED = re.compile(r"Tracked (\d+) frames in ([0-9.]+) s \(([0-9.]+) frames/s\)")


def make_inputs(folder: Path, frames: int, height: int, width: int) -> dict[str, Path]:
    clip = make_clip(n_frames=frames, height=height, width=width, n_instances=2)
    videos = {}
    for case, polygons in CASES.items():
        video = clip.write(folder / f"{case}.mp4")
        layout = ResultLayout(video)
        layout.ensure_folder()
        write_manual(layout, clip.annotation(0, with_polygons=polygons))
        videos[case] = video
    return videos


def decode_seconds(video: Path) -> float:
    with VideoReader(video) as reader:
        start = time.perf_counter()
        for _ in reader.iter_frames():
            pass
        return time.perf_counter() - start


def track_once(video: Path, work: Path, profile: bool, track_args: list[str], src: str | None = None) -> dict:
    """One CLI run on a fresh copy of the video's seed folder (``src``: run that checkout's package instead)."""
    run_dir = Path(tempfile.mkdtemp(dir=work))
    copy = run_dir / video.name
    shutil.copy(video, copy)
    shutil.copytree(video.with_suffix(""), copy.with_suffix(""))
    cmd = [
        sys.executable,
        "-m",
        "napari_dinotrack.cli",
        "track",
        str(copy),
        "--model",
        "pixel:",
        "--short-side",
        "480",
        "--quiet",
        *track_args,
    ]
    prof_path = run_dir / "profile.json"
    if profile:
        cmd += ["--profile", str(prof_path)]
    env = dict(os.environ, PYTHONPATH=src) if src else None
    load_before = os.getloadavg()[0]
    cpu_before = _children_cpu_s()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    cpu_s = _children_cpu_s() - cpu_before  # the whole process with its threads and decoder, start-up included
    match = TRACKED.search(proc.stdout)
    assert match, proc.stdout + proc.stderr
    frames, rate = int(match.group(1)), float(match.group(3))
    seconds = frames / rate
    out = {
        "frames": frames,
        "seconds": seconds,
        "ms_per_frame": 1000 * seconds / frames,
        "cpu_s": cpu_s,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    if profile:
        out["profile"] = json.loads(prof_path.read_text())
    shutil.rmtree(run_dir)
    return out


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage_means(profile: dict) -> dict[str, float]:
    return {name: row["mean_ms"] for name, row in profile["stages"].items()}


def summarise(runs: list[dict]) -> dict:
    """Medians over repeats, and the profile of the median run."""
    ms = [r["ms_per_frame"] for r in runs]
    median_run = sorted(runs, key=lambda r: r["ms_per_frame"])[len(runs) // 2]
    prof = median_run["profile"]
    means = [stage_means(r["profile"]) for r in runs]

    def med(key: str) -> float:
        return float(np.median([m[key] for m in means]))

    return {
        "cli_ms_per_frame": {"median": float(np.median(ms)), "min": min(ms), "max": max(ms), "all": ms},
        "host_ms_per_frame": float(np.median([r["profile"]["host_ms_per_frame"] for r in runs])),
        "run_cpu_s": {"median": float(np.median([r["cpu_s"] for r in runs])), "all": [r["cpu_s"] for r in runs]},
        "tracker_step_ms": med("tracker_step"),
        "optical_flow_ms": med("optical_flow"),
        "tracker_step_without_flow_ms": med("tracker_step") - med("optical_flow"),
        # the CPU time the tracking thread got in the step: what is missing it waited for a core or the GIL
        "tracker_step_cpu_ms": med("tracker_step_cpu") if "tracker_step_cpu" in means[0] else None,
        "mask_propagation_ms": med("mask_propagation"),
        "loop_ms": med("loop"),
        "stage_ms_median_of_runs": {k: med(k) for k in means[0]},
        "median_run_profile": prof,
        "loads": [(r["load_before"], r["load_after"]) for r in runs],
    }


def tracker_ops(video: Path, work: Path) -> dict:
    """Tensor operations dispatched per tracker step (each one a kernel launch on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from napari_dinotrack import DinoKeypointVideoProcessor
    from napari_dinotrack.tracking.keypoints import tracker as tracker_module

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    counts: list[int] = []
    original = tracker_module.KeypointTracker.step

    def counted(self, *args, **kwargs):
        with Count() as c:
            out = original(self, *args, **kwargs)
        counts.append(c.n)
        return out

    run_dir = Path(tempfile.mkdtemp(dir=work))
    copy = run_dir / video.name
    shutil.copy(video, copy)
    shutil.copytree(video.with_suffix(""), copy.with_suffix(""))
    tracker_module.KeypointTracker.step = counted
    try:
        DinoKeypointVideoProcessor(copy, model_name="pixel:", short_side=480).process_video(end_frame=40)
    finally:
        tracker_module.KeypointTracker.step = original
        shutil.rmtree(run_dir)
    return {"median": float(np.median(counts)), "min": int(min(counts)), "max": int(max(counts)), "steps": len(counts)}


def profile_cost(frames: int = 20000, batch: int = 8) -> dict:
    """Microseconds per frame of what a profiled run records, as the run loop records it."""
    from napari_dinotrack.profiling import RunProfile, recording, timed

    profile = RunProfile()
    profile.begin(0, frames - 1)
    start = time.perf_counter()
    for first in range(0, frames, batch):
        batch_frames = list(range(first, min(first + batch, frames)))
        for idx in batch_frames:  # feature thread, per frame: waiting for the decoder
            t0 = time.perf_counter()
            profile.add("decode", idx, time.perf_counter() - t0)
        with recording(profile, batch_frames), timed("preprocess"):  # feature thread, per batch
            pass
        profile.add_spread("colour", batch_frames, 0.0)
        profile.add_spread("backbone", batch_frames, 0.0 - profile.total("preprocess", batch_frames))
        profile.add("wait_features", first, 0.0)
        for idx in batch_frames:  # tracking loop, per frame
            t0, cpu0 = time.perf_counter(), time.thread_time()
            with recording(profile, (idx,)), timed("optical_flow"):  # the flow timer inside the step
                pass
            t1, cpu1 = time.perf_counter(), time.thread_time()
            profile.add("tracker_step_cpu", idx, cpu1 - cpu0)
            for stage in ("mask_propagation", "tracker_step", "results", "wait_writer", "write", "loop", "consumer"):
                profile.add(stage, idx, t1 - t0)
    seconds = time.perf_counter() - start
    return {"us_per_frame": 1e6 * seconds / frames}


def eager_op_us(n: int = 20000) -> float:
    """Host time of one small eager torch operation: what each of the tracker's operations costs at least."""
    import torch

    x = torch.zeros(8, 2)
    for _ in range(1000):
        x = x + 1.0
    start = time.perf_counter()
    for _ in range(n):
        x = x + 1.0
    return 1e6 * (time.perf_counter() - start) / n


def tracker_threads(video: Path, work: Path, repeats: int) -> dict:
    """Tracker step time with the tracking loop on 1 and on 2 torch threads, alternating, in this process."""
    from napari_dinotrack import DinoKeypointVideoProcessor, lookahead
    from napari_dinotrack.profiling import RunProfile

    out: dict[str, list[float]] = {"1": [], "2": []}
    default = lookahead.TRACKING_THREADS
    try:
        for _ in range(repeats):
            for threads in out:
                lookahead.TRACKING_THREADS = int(threads)
                run_dir = Path(tempfile.mkdtemp(dir=work))
                copy = run_dir / video.name
                shutil.copy(video, copy)
                shutil.copytree(video.with_suffix(""), copy.with_suffix(""))
                profile = RunProfile()
                DinoKeypointVideoProcessor(copy, model_name="pixel:", short_side=480).process_video(profile=profile)
                out[threads].append(profile.summary()["stages"]["tracker_step"]["mean_ms"])
                shutil.rmtree(run_dir)
    finally:
        lookahead.TRACKING_THREADS = default
    return {"tracker_step_ms": out, "median_1": float(np.median(out["1"])), "median_2": float(np.median(out["2"]))}


def component_costs(frames: int) -> dict:
    """CPU milliseconds per frame of the mask step, the writer and ``pixel:`` extraction, in this process."""
    import torch

    from napari_dinotrack.backbone.base import compute_geometry
    from napari_dinotrack.backbone.pixel import PixelBackbone
    from napari_dinotrack.io.results import ResultWriter
    from napari_dinotrack.tracking.masks import DinoMaskPropagator

    torch.set_num_threads(1)  # as the tracking loop runs
    clip = make_clip(n_frames=frames, height=480, width=640, n_instances=2)
    with tempfile.TemporaryDirectory() as tmp:
        video = clip.write(Path(tmp) / "clip.mp4")
        with VideoReader(video) as reader:  # decoded frames, as a run sees them
            images = np.stack([img for _, img in reader.iter_frames()])
        backbone = PixelBackbone(16)
        geometry = compute_geometry(480, 640, 480, 16)
        batches = [images[i : i + 8] for i in range(0, len(images) - 7, 8)]
        extract = []
        for batch in batches:
            t0 = time.thread_time()
            backbone.extract(batch, geometry)
            extract.append((time.thread_time() - t0) / len(batch))
        feats = torch.cat([backbone.extract(images[i : i + 8], geometry) for i in range(0, len(images), 8)])
        prop = DinoMaskPropagator()
        prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geometry, images[0])
        steps, masks = [], []
        for t in range(1, len(images)):
            t0 = time.thread_time()
            masks.append(prop.step(feats[t], images[t]).numpy())
            steps.append(time.thread_time() - t0)
        writes = {}
        for case in ("plain", "masks"):
            annotations = [clip.annotation(t) for t in range(1, len(images))]
            t0 = time.process_time()  # the writer's thread, as in a run (this thread only queues)
            with ResultWriter(ResultLayout(video, Path(tmp) / case), 1, len(images) - 1) as writer:
                for ann, frame_masks in zip(annotations, masks, strict=True):
                    writer.put(ann, frame_masks if case == "masks" else None)
            writes[case] = (time.process_time() - t0) / len(annotations)
    return {
        "mask_step_cpu_ms": 1000 * float(np.median(steps)),
        "write_cpu_ms": {case: 1000 * seconds for case, seconds in writes.items()},
        "pixel_extract_cpu_ms": 1000 * float(np.median(extract)),
        "masks": np.stack(masks),
    }


def compare_components(src: str | None, baseline_src: str | None, repeats: int, frames: int, work: Path) -> dict:
    """:func:`component_costs` in fresh processes, this checkout and the baseline alternately; medians.

    Writing is timed as the CPU time of queueing the frames and closing the writer (its thread does
    the work; the table's start and end of run are in it too).
    """
    runs: dict[str, list[dict]] = {"after": [], "before": []}
    for repeat in range(repeats):
        order = (("before", baseline_src), ("after", src))
        for label, path in order if repeat % 2 == 0 else order[::-1]:  # neither always follows the other
            if label == "before" and baseline_src is None:
                continue
            out = work / f"components_{label}.npz"
            cmd = [sys.executable, __file__, "--out", str(out), "--component-child", "--frames", str(frames)]
            env = dict(os.environ, PYTHONPATH=path) if path else None
            subprocess.run(cmd, check=True, env=env)
            with np.load(out) as data:
                runs[label].append({"costs": json.loads(str(data["costs"])), "masks": data["masks"]})
    result: dict = {}
    for label, got in runs.items():
        if not got:
            continue
        costs = [g["costs"] for g in got]
        result[label] = {
            "mask_step_cpu_ms": float(np.median([c["mask_step_cpu_ms"] for c in costs])),
            "write_cpu_ms": {k: float(np.median([c["write_cpu_ms"][k] for c in costs])) for k in ("plain", "masks")},
            "pixel_extract_cpu_ms": float(np.median([c["pixel_extract_cpu_ms"] for c in costs])),
            "all": costs,
        }
    if runs["before"]:
        before, after = runs["before"][0]["masks"], runs["after"][0]["masks"]
        result["masks_identical_to_before"] = bool(np.array_equal(before, after))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", default="", help="what this run measures (e.g. before/after)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--cases", default="plain,masks")
    ap.add_argument("--overhead-repeats", type=int, default=3, help="profiled/unprofiled pairs (0: skip)")
    ap.add_argument("--track-args", default="", help="extra options for every `track` run")
    ap.add_argument(
        "--baseline-src",
        default=None,
        help="the src folder of another checkout (e.g. before a change), run alternately with this one",
    )
    ap.add_argument("--no-ops", action="store_true", help="skip counting the tracker's tensor operations")
    ap.add_argument("--components", action="store_true", help="also the CPU time of masks, writer and pixel:")
    ap.add_argument("--component-repeats", type=int, default=3)
    ap.add_argument("--component-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--threads-repeats",
        type=int,
        default=0,
        help="also compare 1 and 2 threads for the backbone (CLI --threads) and the tracking loop",
    )
    args = ap.parse_args()
    if args.component_child:  # one measurement in a fresh process, for compare_components
        costs = component_costs(args.frames)
        masks = costs.pop("masks")
        np.savez(args.out, costs=json.dumps(costs), masks=masks)
        return
    track_args = shlex.split(args.track_args)
    cases = [c for c in args.cases.split(",") if c]

    import torch

    result: dict = {
        "label": args.label,
        "machine": os.uname().machine,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "track_args": track_args,
        "setting": {
            "video": "640x480",
            "frames": args.frames,
            "animals": 2,
            "keypoints_per_animal": 4,
            "model": "pixel:",
            "short_side": 480,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = make_inputs(work, args.frames, 480, 640)
        dec = float(np.median([decode_seconds(videos["plain"]) for _ in range(3)]))
        result["decode_s"] = {"median": dec, "ms_per_frame": 1000 * dec / args.frames}
        runs: dict[str, list[dict]] = {c: [] for c in cases}
        baseline: dict[str, list[dict]] = {c: [] for c in cases}
        for rep in range(args.repeats):
            for case in cases:
                if args.baseline_src:
                    baseline[case].append(track_once(videos[case], work, True, [], args.baseline_src))
                    print(f"rep {rep} {case} baseline: {baseline[case][-1]['ms_per_frame']:.1f} ms/frame", flush=True)
                runs[case].append(track_once(videos[case], work, True, track_args))
                print(
                    f"rep {rep} {case}: {runs[case][-1]['ms_per_frame']:.1f} ms/frame "
                    f"(host {runs[case][-1]['profile']['host_ms_per_frame']:.2f})",
                    flush=True,
                )
        result["cases"] = {c: summarise(r) for c, r in runs.items()}
        if args.baseline_src:
            result["baseline_cases"] = {c: summarise(r) for c, r in baseline.items()}
            result["speedup_over_baseline"] = {
                c: result["baseline_cases"][c]["cli_ms_per_frame"]["median"]
                / result["cases"][c]["cli_ms_per_frame"]["median"]
                for c in cases
            }
        if args.overhead_repeats:
            on, off = [], []
            for _ in range(args.overhead_repeats):
                off.append(track_once(videos["plain"], work, False, track_args)["ms_per_frame"])
                on.append(track_once(videos["plain"], work, True, track_args)["ms_per_frame"])
            result["profile_overhead"] = {
                "with_profile_ms": on,
                "without_ms": off,
                "ratio_of_medians": float(np.median(on) / np.median(off)),
            }
            print(f"profile overhead: {result['profile_overhead']['ratio_of_medians']:.3f}", flush=True)
        result["profile_cost"] = profile_cost()
        print("profile cost", result["profile_cost"], flush=True)
        if args.threads_repeats:
            feature = {"1": [], "2": []}
            for _ in range(args.threads_repeats):
                for n in feature:
                    feature[n].append(
                        track_once(videos["plain"], work, False, [*track_args, "--threads", n])["ms_per_frame"]
                    )
            result["backbone_threads_cli_ms_per_frame"] = feature
            result["tracking_loop_threads"] = tracker_threads(videos["plain"], work, args.threads_repeats)
            print("threads", json.dumps(feature), json.dumps(result["tracking_loop_threads"]), flush=True)
        if args.components:
            src = str(Path(__file__).resolve().parents[1] / "src")
            result["components"] = compare_components(src, args.baseline_src, args.component_repeats, args.frames, work)
            brief = {
                k: {kk: vv for kk, vv in v.items() if kk != "all"} if isinstance(v, dict) else v
                for k, v in result["components"].items()
            }
            print("components", json.dumps(brief), flush=True)
        if not args.no_ops:
            result["tracker_ops_per_step"] = tracker_ops(videos["plain"], work)
            result["eager_op_us"] = eager_op_us()
            result["tracker_host_floor_ms"] = result["tracker_ops_per_step"]["median"] * result["eager_op_us"] / 1000
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for case, s in result["cases"].items():
        print(
            f"{case}: CLI {s['cli_ms_per_frame']['median']:.1f} ms/frame, host {s['host_ms_per_frame']:.2f} ms, "
            f"tracker step {s['tracker_step_ms']:.1f} ms (flow {s['optical_flow_ms']:.2f}, "
            f"CPU {s['tracker_step_cpu_ms'] or 0:.1f}), "
            f"masks {s['mask_propagation_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
