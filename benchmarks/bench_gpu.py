"""One GPU, side by side: the backbone alone against the whole tracker, batch sizes 4/8/16/32.

Runs offline: the ViT-S/16 is made in place with random weights (the published DINOv3
architecture, so the same cost as the real checkpoint) and the video is generated (640x480, two
animals walking to and fro, 2,000 frames by default). Measured in one process:

* **backbone alone**: ``DINOv3ViTModel`` forward in bf16 on inputs already on the GPU at the
  working size (768x1024 for short side 768), batches of 4/8/16/32, and batch 8 under
  ``torch.compile``; median of 10 calls after 3 warm-ups;
* **end to end**: ``DinoKeypointVideoProcessor`` tracking the whole video from its seed (decode,
  upload, backbone, tracker, writing), with the stage profile, for each batch size and with the
  compiled model at batch 8; peak GPU memory of each run;
* the ratio end to end / backbone alone (target: 0.8 or more).

    python benchmarks/bench_gpu.py --out benchmarks/results/gpu_h100.json
    python benchmarks/bench_gpu.py --device cpu --frames 32 --out /tmp/gpu_smoke.json   # smoke test on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from long_clip import write_walk_video
from napari_dinotrack import DinoKeypointVideoProcessor, TrackerConfig
from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.profiling import RunProfile
from napari_dinotrack.synthetic.models import save_random_dinov3

HEIGHT, WIDTH = 480, 640


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def backbone_alone(model, batch: int, geo, device: torch.device, dtype: torch.dtype, calls: int) -> dict:
    """Frames/s of the bare forward pass on a batch already on the device."""
    x = torch.randn(batch, 3, geo.padded_height, geo.padded_width, device=device, dtype=dtype)
    times = []
    with torch.inference_mode():
        for i in range(calls + 3):
            sync(device)
            start = time.perf_counter()
            model(pixel_values=x)
            sync(device)
            if i >= 3:
                times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"fps": batch / seconds, "ms_per_batch": 1000 * seconds}


def end_to_end(video: Path, backbone, batch: int, short_side: int, device: torch.device, work: Path) -> dict:
    """Track the whole video from its seed, profiled; frames/s and peak GPU memory."""
    run_dir = work / f"run-b{batch}-{time.monotonic_ns()}"
    run_dir.mkdir()
    copy = run_dir / video.name
    shutil.copy(video, copy)
    shutil.copytree(video.with_suffix(""), copy.with_suffix(""))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    profile = RunProfile()
    processor = DinoKeypointVideoProcessor(
        copy,
        model_name=backbone,
        short_side=short_side,
        device=str(device),
        runtime_config=TrackerConfig(batch_size=batch),
    )
    summary = processor.process_video(profile=profile)
    out = {
        "frames": summary.frames_tracked,
        "seconds": summary.seconds,
        "fps": summary.fps,
        "profile": profile.summary(),
    }
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    shutil.rmtree(run_dir)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--short-side", type=int, default=None, help="default 768 (96 with --device cpu)")
    ap.add_argument("--batch-sizes", default="4,8,16,32")
    ap.add_argument("--calls", type=int, default=10, help="timed calls of the bare forward pass")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--masks", action="store_true", help="also track at batch 8 with masks from seed polygons")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; run with --device cpu --frames 32 for a smoke test")
    short_side = args.short_side or (768 if device.type == "cuda" else 96)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "frames": args.frames,
        "video": [WIDTH, HEIGHT],
        "short_side": short_side,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        plain = write_walk_video(work / "plain.mp4", args.frames, HEIGHT, WIDTH, loop=150, speed=2.0)
        result["video_generation_s"] = time.perf_counter() - start
        folder = save_random_dinov3(work / "vits16", seed=0)
        backbone = load_backbone(str(folder), device=str(device), precision="bf16")
        geo = compute_geometry(HEIGHT, WIDTH, short_side, backbone.patch_size)
        result["working_size"] = [geo.work_width, geo.work_height]
        result["dtype"] = str(backbone.dtype)

        alone = {f"b{b}": backbone_alone(backbone.model, b, geo, device, backbone.dtype, args.calls) for b in batches}
        ends = {f"b{b}": end_to_end(plain, backbone, b, short_side, device, work) for b in batches}
        print(json.dumps({k: round(v["fps"], 1) for k, v in alone.items()}), "backbone alone", flush=True)
        print(json.dumps({k: round(v["fps"], 1) for k, v in ends.items()}), "end to end", flush=True)
        if not args.no_compile:
            compiled = load_backbone(str(folder), device=str(device), precision="bf16")
            compiled.model = torch.compile(compiled.model)
            start = time.perf_counter()
            backbone_alone(compiled.model, 8, geo, device, compiled.dtype, 1)
            result["compile_s"] = time.perf_counter() - start
            alone["b8_compiled"] = backbone_alone(compiled.model, 8, geo, device, compiled.dtype, args.calls)
            ends["b8_compiled"] = end_to_end(plain, compiled, 8, short_side, device, work)
        if args.masks:
            masked = write_walk_video(
                work / "masks.mp4", args.frames, HEIGHT, WIDTH, loop=150, speed=2.0, polygons=True
            )
            ends["b8_masks"] = end_to_end(masked, backbone, 8, short_side, device, work)
    result["backbone_alone"] = alone
    result["end_to_end"] = ends
    result["end_to_end_over_backbone"] = {k: ends[k]["fps"] / alone[k]["fps"] for k in ends if k in alone}
    result["host_ms_per_frame"] = {k: v["profile"]["host_ms_per_frame"] for k, v in ends.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps(
            {
                "end_to_end_over_backbone": result["end_to_end_over_backbone"],
                "host_ms_per_frame": result["host_ms_per_frame"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
