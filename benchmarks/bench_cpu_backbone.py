"""ViT-S/16 on the CPU: bf16 against fp32 (speed and feature agreement), threads, torch.compile, batch size.

A random-weight ViT-S/16 (the published architecture, so the same cost as the real checkpoint)
runs ``HFDinoBackbone.extract`` on frames of a real 640x480 video (the shared mouse video when it is
there, else a generated clip) at short side 768 (1024x768 working size). Configurations are timed
side by side, in rounds that alternate them, so they share the machine's load; the median of the
rounds is reported. Feature agreement: cosine similarity of each patch's bf16 feature with its
fp32 feature, as extracted (unit length) and after the tracker's centring (the frame's mean
feature removed), which is what matching compares.

    python benchmarks/bench_cpu_backbone.py --out benchmarks/results/cpu_backbone.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.device import cpu_has_bf16
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.synthetic.models import save_random_dinov3

SHARED_VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dlc_openfield_m4s1" / "video.mp4"


def test_frames(n: int) -> tuple[np.ndarray, str]:
    if SHARED_VIDEO.is_file():
        from napari_dinotrack.io.video import VideoReader

        with VideoReader(SHARED_VIDEO) as reader:
            step = max(1, reader.n_frames // n)
            return np.stack([reader.get_frame(i * step) for i in range(n)]), "dlc_openfield_m4s1"
    from napari_dinotrack.synthetic import make_clip

    return make_clip(n_frames=n, height=480, width=640, n_instances=2).frames, "generated"


def timed_call(fn, threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def centred(feats: torch.Tensor) -> torch.Tensor:
    return F.normalize(feats - feats.mean(dim=(2, 3), keepdim=True), dim=1)


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict:
    def stats(cos: torch.Tensor) -> dict:
        c = cos.flatten().double().numpy()
        return {"mean": float(c.mean()), "p01": float(np.percentile(c, 1)), "min": float(c.min())}

    return {"as_extracted": stats((a * b).sum(1)), "centred": stats((centred(a) * centred(b)).sum(1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--short-side", type=int, default=768)
    ap.add_argument("--agreement-frames", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    default_threads = torch.get_num_threads()
    frames, source = test_frames(max(8, args.agreement_frames))
    geo = compute_geometry(frames.shape[1], frames.shape[2], args.short_side, 16)
    result: dict = {
        "machine": os.uname().machine,
        "cpu_count": cores,
        "torch": torch.__version__,
        "default_threads": default_threads,
        "cpu_has_bf16": cpu_has_bf16(),
        "capabilities": {
            k: v
            for k, v in torch.cpu.get_capabilities().items()
            if "bf16" in k or "amx" in k or k in ("avx512_f", "avx2")
        },
        "frames": source,
        "working_size": [geo.work_width, geo.work_height],
        "load_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_random_dinov3(Path(tmp) / "vits16", seed=0)
        fp32 = load_backbone(str(folder), device="cpu", precision="fp32")
        bf16 = load_backbone(str(folder), device="cpu", precision="bf16")

        # agreement on several frames of real video
        torch.set_num_threads(default_threads)
        sample = frames[: args.agreement_frames]
        result["agreement_bf16_vs_fp32"] = agreement(bf16.extract(sample, geo), fp32.extract(sample, geo))
        print("agreement", result["agreement_bf16_vs_fp32"], flush=True)

        one = frames[:1]
        eight = frames[:8]
        configs = {
            f"fp32_b1_t{default_threads}": (lambda: fp32.extract(one, geo, batch_size=1), default_threads, 1),
            f"bf16_b1_t{default_threads}": (lambda: bf16.extract(one, geo, batch_size=1), default_threads, 1),
            "fp32_b1_t1": (lambda: fp32.extract(one, geo, batch_size=1), 1, 1),
            "bf16_b1_t1": (lambda: bf16.extract(one, geo, batch_size=1), 1, 1),
            f"bf16_b8_t{default_threads}": (lambda: bf16.extract(eight, geo, batch_size=8), default_threads, 8),
            f"bf16_b4_t{default_threads}": (lambda: bf16.extract(eight, geo, batch_size=4), default_threads, 8),
        }
        if not args.no_compile:
            compiled = load_backbone(str(folder), device="cpu", precision="bf16")
            compiled.model = torch.compile(compiled.model)
            torch.set_num_threads(default_threads)
            start = time.perf_counter()
            with torch.inference_mode():
                compiled.extract(one, geo, batch_size=1)
            result["compile_seconds"] = time.perf_counter() - start
            out = compiled.extract(one, geo, batch_size=1)
            result["compiled_agreement_with_eager_bf16"] = agreement(out, bf16.extract(one, geo))
            configs[f"bf16_b1_t{default_threads}_compiled"] = (
                lambda: compiled.extract(one, geo, batch_size=1),
                default_threads,
                1,
            )
        for fn, threads, _ in configs.values():  # warm-up
            timed_call(fn, threads)
        times: dict[str, list[float]] = {name: [] for name in configs}
        for r in range(args.rounds):
            for name, (fn, threads, n) in configs.items():
                times[name].append(timed_call(fn, threads) / n)
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()), flush=True)
        torch.set_num_threads(default_threads)
        per_frame = {name: float(np.median(v)) for name, v in times.items()}
        result["seconds_per_frame"] = per_frame
        result["rounds"] = times
        t = default_threads
        result["ratios"] = {
            "fp32_over_bf16": per_frame[f"fp32_b1_t{t}"] / per_frame[f"bf16_b1_t{t}"],
            f"bf16_t1_over_t{t}": per_frame["bf16_b1_t1"] / per_frame[f"bf16_b1_t{t}"],
            "bf16_b1_over_b8": per_frame[f"bf16_b1_t{t}"] / per_frame[f"bf16_b8_t{t}"],
        }
        if not args.no_compile:
            result["ratios"]["eager_over_compiled"] = per_frame[f"bf16_b1_t{t}"] / per_frame[f"bf16_b1_t{t}_compiled"]
    result["load_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["ratios"], indent=1))


if __name__ == "__main__":
    main()
