"""Mask propagation: IoU on generated clips and per-frame cost next to the backbone's, in one run.

python benchmarks/bench_masks.py --out benchmarks/results/masks_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.synthetic import make_clip
from napari_dinotrack.synthetic.models import save_random_dinov3
from napari_dinotrack.tracking.masks import DinoMaskPropagator


def iou_run(clip, backbone, short_side: int) -> dict:
    geo = compute_geometry(*clip.frames.shape[1:3], short_side, backbone.patch_size)
    feats = backbone.extract(clip.frames, geo)
    prop = DinoMaskPropagator()
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo, clip.frames[0])
    ious, swaps = [], 0
    for t in range(1, clip.n_frames):
        masks = prop.step(feats[t], clip.frames[t]).cpu().numpy()
        for i in range(masks.shape[0]):
            gt = clip.masks[t, i]
            ious.append(float((masks[i] & gt).sum() / max((masks[i] | gt).sum(), 1)))
            if masks.shape[0] > 1:
                other = clip.masks[t, 1 - i]
                swaps += int((masks[i] & other).sum() > (masks[i] & gt).sum())
    return {"mean_iou": float(np.mean(ious)), "min_iou": float(np.min(ious)), "identity_swaps": swaps}


def cost_run(backbone, height: int, width: int, short_side: int, repeats: int) -> dict:
    """Per-frame cost of propagation (2 animals) and of the backbone at the same working size."""
    clip = make_clip(n_frames=repeats + 2, height=height, width=width, n_instances=2, crossing=True, speed=6.0)
    geo = compute_geometry(height, width, short_side, backbone.patch_size)
    start = time.perf_counter()
    feats = [backbone.extract(clip.frames[t][None], geo)[0] for t in range(repeats + 2)]
    backbone_s = (time.perf_counter() - start) / (repeats + 2)
    prop = DinoMaskPropagator()
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo, clip.frames[0])
    prop.step(feats[1], clip.frames[1])  # warm-up
    start = time.perf_counter()
    for t in range(2, repeats + 2):
        prop.step(feats[t], clip.frames[t])
    step_s = (time.perf_counter() - start) / repeats
    return {
        "frame": [width, height],
        "grid": [geo.grid_height, geo.grid_width],
        "feature_dim": backbone.feature_dim,
        "propagation_ms": 1000 * step_s,
        "backbone_ms": 1000 * backbone_s,
        "propagation_over_backbone": step_s / backbone_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    report: dict = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    pixel = load_backbone("pixel:", device=args.device)
    report["iou_pixel_backbone"] = {
        "crossing_two_animals": iou_run(make_clip(n_frames=30, n_instances=2, crossing=True, speed=4.0), pixel, 320),
        "one_animal": iou_run(make_clip(n_frames=30, n_instances=1, speed=3.0), pixel, 320),
    }
    with tempfile.TemporaryDirectory() as tmp:
        save_random_dinov3(tmp, seed=0)
        vits = load_backbone(tmp, device=args.device)
        report["cost_random_vits16_768"] = cost_run(vits, 480, 640, 768, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
