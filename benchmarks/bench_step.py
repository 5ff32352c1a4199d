"""The tracker step's own time per frame at 16 keypoints, this checkout against an earlier one.

One generated clip (640x480, four same-looking animals with four keypoints each) goes through a
random-weight DINOv3 ViT with ViT-S/16's width (384 channels) at short side 768 (a 48 x 64
patch grid) once; the features, grey frames and seed are saved, and each tracker version then
tracks them in a fresh process on one torch thread (as the run loop does), its optical flow
included. Only ``KeypointTracker.start``/``step`` are timed: decoding and the backbone are not.

    python benchmarks/bench_step.py --baseline-src <older checkout>/src --out benchmarks/results/step_16kp_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import inspect, json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
torch.set_num_threads(1)
torch.set_grad_enabled(False)
from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.io.labelme import read_frame
from napari_dinotrack.tracking.config import TrackerConfig
from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker
work = sys.argv[2]
data = torch.load(work + "/features.pt")
feats, h, w, side = data["features"], int(data["height"]), int(data["width"]), int(data["short_side"])
grays = [g.numpy() for g in data["grays"]]
images = [f.numpy() for f in data["frames"]]
# trackers that follow flat fur by its colours are given the colour frames, as the pipeline does
colours = "image" in inspect.signature(KeypointTracker.step).parameters
seed = read_frame(work + "/seed.json", 0)
geo = compute_geometry(h, w, side, 16)
times = []
for repeat in range(int(sys.argv[3])):
    tracker = KeypointTracker(TrackerConfig(), geo, "cpu")
    tracker.start(seed, feats[0], grays[0], *([images[0]] if colours else []))
    for t in range(1, len(feats)):
        t0 = time.perf_counter()
        tracker.step(feats[t], grays[t], **({"image": images[t]} if colours else {}))
        times.append(time.perf_counter() - t0)
print(json.dumps({"ms": [1000 * s for s in times]}))
"""


def prepare(work: Path, n_frames: int, short_side: int) -> int:
    """Features, grey frames and the seed of the clip, saved in ``work``; returns the keypoint count."""
    from napari_dinotrack.backbone.base import compute_geometry
    from napari_dinotrack.backbone.loader import load_backbone
    from napari_dinotrack.io.labelme import write_frame
    from napari_dinotrack.synthetic import make_clip
    from napari_dinotrack.synthetic.models import save_random_dinov3
    from napari_dinotrack.tracking.keypoints.flow import to_gray

    clip = make_clip(n_frames=n_frames, height=480, width=640, n_instances=4, body_length=70.0, speed=4.0, seed=3)
    save_random_dinov3(work / "model", seed=0, intermediate_size=768, num_hidden_layers=1)  # ViT-S/16's width
    backbone = load_backbone(str(work / "model"), device="cpu", precision="fp32")
    geo = compute_geometry(480, 640, short_side, backbone.patch_size)
    with torch.no_grad():
        feats = torch.cat([backbone.extract(clip.frames[i : i + 8], geo).float() for i in range(0, n_frames, 8)])
    grays = [to_gray(f) for f in clip.frames]
    torch.save(
        {
            "features": feats,
            "grays": torch.from_numpy(np.stack(grays)),
            "frames": torch.from_numpy(np.ascontiguousarray(clip.frames)),
            "height": torch.tensor(480),
            "width": torch.tensor(640),
            "short_side": torch.tensor(short_side),
        },
        work / "features.pt",
    )
    seed = clip.annotation(0)
    write_frame(work / "seed.json", seed)
    return sum(len(inst.keypoints) for inst in seed.instances)


def checkout_commit(src: Path) -> str:
    """The commit of the checkout that holds ``src`` (with ``+changes`` when it has uncommitted edits)."""
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "."], capture_output=True, text=True)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def time_version(src: Path, work: Path, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(work), str(repeats)], check=False, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"the tracker in {src} failed:\n{out.stderr[-3000:]}")
    ms = np.array(json.loads(out.stdout.strip().splitlines()[-1])["ms"])
    return {
        "commit": checkout_commit(src),
        "median_ms": float(np.median(ms)),
        "mean_ms": float(ms.mean()),
        "p90_ms": float(np.percentile(ms, 90)),
        "steps": int(ms.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", type=Path, required=True, help="the src/ folder of the earlier checkout")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--short-side", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3, help="runs over the clip per version, alternating")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dinotrack-step-") as tmp:
        work = Path(tmp)
        keypoints = prepare(work, args.frames, args.short_side)
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.repeats):  # alternating, so both see the same machine load
            runs["before"].append(time_version(args.baseline_src.resolve(), work, 1))
            runs["after"].append(time_version(HERE, work, 1))
    report = {
        "keypoints": keypoints,
        "frames": args.frames,
        "short_side": args.short_side,
        "grid": [48, 64],
        "channels": 384,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "torch_threads": 1,
        **{
            k: {
                "median_ms": float(np.median([r["median_ms"] for r in v])),
                "mean_ms": float(np.median([r["mean_ms"] for r in v])),
                "runs": v,
            }
            for k, v in runs.items()
        },
    }
    print(
        f"tracker step, {keypoints} keypoints, 48x64 patches x 384 channels, one thread: "
        f"before {report['before']['median_ms']:.1f} ms, after {report['after']['median_ms']:.1f} ms (median)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
