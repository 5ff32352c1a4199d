"""Accuracy and speed of the keypoint tracker, with the protocol's baselines, in one run.

Datasets: the human-labelled videos (a folder of ``<name>/video.mp4`` + ``labels.csv``) and
generated clips with exact ground truth. For each, the tracker starts from the first labelled
frame and runs to the end; it is scored at every later labelled frame against
(a) the static baseline (prediction = start position) and
(b) plain nearest-neighbour matching of the start descriptor over the whole frame (no motion prior).
Speed: backbone-only frames/s and end-to-end frames/s, measured side by side in the same process.

    python benchmarks/bench_tracking.py --data ../shared/data --model pixel: --out benchmarks/results/pixel.json
    python benchmarks/bench_tracking.py --model random-vits16 --speed-only --frames 16 --out ...
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_dinotrack import DinoKeypointVideoProcessor, TrackerConfig
from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.io.labelme import load_annotations, write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.video import VideoReader, probe_video
from napari_dinotrack.synthetic import make_clip
from napari_dinotrack.synthetic.models import save_random_dinov3
from napari_dinotrack.tracking.keypoints.sampling import sample_features

Labels = dict[int, dict[tuple[str, str], tuple[float, float] | None]]


def read_labels(path: Path) -> Labels:
    labels: Labels = defaultdict(dict)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            xy = None if row["x"] == "" else (float(row["x"]), float(row["y"]))
            labels[int(row["frame"])][(row["instance"], row["keypoint"])] = xy
    return dict(labels)


def seed_from_labels(labels: Labels, frame: int, height: int, width: int) -> FrameAnnotation:
    by_instance: dict[str, list[Keypoint]] = defaultdict(list)
    for (inst, kp), xy in labels[frame].items():
        if xy is not None:  # the protocol queries only points visible at the start
            by_instance[inst].append(Keypoint(kp, xy[0], xy[1]))
    return FrameAnnotation(frame, height, width, [Instance(i, k) for i, k in by_instance.items()])


def score(
    pred: dict[int, dict[tuple[str, str], tuple[float, float]]],
    labels: Labels,
    t0: int,
    shown: dict[int, dict[tuple[str, str], bool]] | None = None,
) -> dict:
    """Protocol metrics; with ``shown`` (the tracker's visibility) also how well it reports occlusion."""
    errors, pck5, pck10, pckd = [], [], [], []
    hidden_shown, visible_hidden = [], []
    per_kp: dict[str, list[float]] = defaultdict(list)
    first_fail: dict[tuple[str, str], int | None] = {}
    scored = sorted(f for f in labels if f > t0 and f in pred)
    for f in scored:
        gt = {k: v for k, v in labels[f].items() if v is not None}
        if shown is not None:
            for key, xy in labels[f].items():
                if key in shown.get(f, {}):
                    (visible_hidden if xy is not None else hidden_shown).append(
                        (not shown[f][key]) if xy is not None else shown[f][key]
                    )
        for inst in {k[0] for k in gt}:
            pts = np.array([v for k, v in gt.items() if k[0] == inst])
            diag = float(np.linalg.norm(pts.max(0) - pts.min(0))) if len(pts) > 1 else 100.0
            for key, xy in gt.items():
                if key[0] != inst or key not in pred[f]:
                    continue
                err = float(np.hypot(pred[f][key][0] - xy[0], pred[f][key][1] - xy[1]))
                errors.append(err)
                per_kp[key[1]].append(err)
                pck5.append(err <= 5)
                pck10.append(err <= 10)
                pckd.append(err <= 0.05 * diag)
                if key not in first_fail:
                    first_fail[key] = None
                if first_fail[key] is None and err > max(0.1 * diag, 20.0):
                    first_fail[key] = f
    span = (scored[-1] - t0) if scored else 0
    fails = [v for v in first_fail.values() if v is not None]
    return {
        "points": len(errors),
        "pck5": float(np.mean(pck5)) if errors else None,
        "pck10": float(np.mean(pck10)) if errors else None,
        "pck_0.05diag": float(np.mean(pckd)) if errors else None,
        "mean_px": float(np.mean(errors)) if errors else None,
        "median_px": float(np.median(errors)) if errors else None,
        "never_fail": float(np.mean([v is None for v in first_fail.values()])) if first_fail else None,
        "median_ttff_frames": float(np.median([v - t0 for v in fails])) if fails else None,
        "scored_span_frames": span,
        "per_keypoint_median_px": {k: float(np.median(v)) for k, v in sorted(per_kp.items())},
        "hidden_reported_visible": float(np.mean(hidden_shown)) if hidden_shown else None,
        "visible_reported_hidden": float(np.mean(visible_hidden)) if visible_hidden else None,
    }


def nearest_neighbour(video: Path, seed: FrameAnnotation, backbone, short_side: int, frames: list[int]) -> dict:
    """Baseline (b): the start descriptor's cosine argmax over every patch, bilinear-upsampled."""
    info = probe_video(video)
    geo = compute_geometry(info.height, info.width, short_side, backbone.patch_size)
    keys = seed.keypoint_names()
    xy = torch.tensor([[kp.x, kp.y] for inst in seed.instances for kp in inst.keypoints]) * geo.scale
    out = {}
    with VideoReader(video) as reader:
        feats0 = backbone.extract(reader.get_frame(seed.frame)[None], geo)[0].float()
        templates = sample_features(feats0, xy.to(feats0.device), (geo.padded_height, geo.padded_width))
        for f in frames:
            feats = backbone.extract(reader.get_frame(f)[None], geo)[0].float()
            sims = torch.einsum("kc,chw->khw", templates, feats)[None]
            up = F.interpolate(sims, size=(geo.padded_height, geo.padded_width), mode="bilinear", align_corners=False)[
                0, :, : geo.work_height, : geo.work_width
            ]
            idx = up.flatten(1).argmax(1)
            ys, xs = (idx // geo.work_width).float() + 0.5, (idx % geo.work_width).float() + 0.5
            out[f] = {k: (float(x) / geo.scale, float(y) / geo.scale) for k, x, y in zip(keys, xs, ys, strict=True)}
    return out


def backbone_fps(video: Path, backbone, short_side: int, n_frames: int, batch: int) -> float:
    info = probe_video(video)
    geo = compute_geometry(info.height, info.width, short_side, backbone.patch_size)
    with VideoReader(video) as reader:
        frames = np.stack([reader.get_frame(i % info.n_frames) for i in range(n_frames)])
    backbone.extract(frames[:batch], geo)  # warm-up
    start = time.perf_counter()
    for i in range(0, n_frames, batch):
        feats = backbone.extract(frames[i : i + batch], geo)
    if feats.is_cuda:
        torch.cuda.synchronize()
    return n_frames / (time.perf_counter() - start)


def evaluate(name: str, video: Path, labels: Labels, backbone, args, work: Path) -> dict:
    info = probe_video(video)
    t0 = min(labels)
    last = min(info.n_frames - 1, t0 + args.frames) if args.frames else info.n_frames - 1
    labels = {f: v for f, v in labels.items() if f <= last}
    folder = work / name
    layout = ResultLayout(video, folder)
    layout.ensure_folder()
    seed = seed_from_labels(labels, t0, info.height, info.width)
    write_manual(layout, seed)
    config = tracker_config(args)
    processor = DinoKeypointVideoProcessor(
        video, result_folder=folder, model_name=backbone, short_side=args.short_side, runtime_config=config
    )
    summary = processor.process_video(end_frame=last)
    anns = load_annotations(layout)
    pred = {f: {(i.name, k.name): (k.x, k.y) for i in a.instances for k in i.keypoints} for f, a in anns.items()}
    shown = {f: {(i.name, k.name): k.visible for i in a.instances for k in i.keypoints} for f, a in anns.items()}
    static = {
        f: {
            k: (kp.x, kp.y)
            for k, kp in zip(seed.keypoint_names(), [kp for i in seed.instances for kp in i.keypoints], strict=True)
        }
        for f in labels
    }
    result = {
        "video": str(video),
        "frames": [t0, last],
        "size": [info.width, info.height],
        "tracker": score(pred, labels, t0, shown),
        "static_baseline": score(static, labels, t0),
        "end_to_end_fps": summary.fps,
    }
    if not args.no_nn:
        nn_pred = nearest_neighbour(video, seed, backbone, args.short_side, sorted(f for f in labels if f > t0))
        result["nearest_neighbour_baseline"] = score(nn_pred, labels, t0)
    return result


def tracker_config(args) -> TrackerConfig:
    """The preset (or defaults) with ``--set key=value`` overrides, for ablations."""
    config = TrackerConfig.preset(args.preset) if args.preset else TrackerConfig()
    values = config.to_dict()
    for item in args.set:
        key, _, text = item.partition("=")
        values[key] = json.loads(text)
    return TrackerConfig.from_dict(values)


def synthetic_cases(work: Path, occluder_seeds: int) -> list[tuple[str, Path, Labels, bool]]:
    cases = []
    specs = [
        ("synthetic_one_animal", {"n_frames": 60, "n_instances": 1, "speed": 3.0}, False),
        ("synthetic_two_animals_occluder", {"n_frames": 60, "n_instances": 2, "occluder": (20, 26)}, False),
        ("synthetic_crossing_with_masks", {"n_frames": 40, "n_instances": 2, "crossing": True, "speed": 4.0}, True),
    ]
    # short clips whose occluder hides both heads, repeated with other textures: re-acquisition
    specs += [
        (f"synthetic_occluded_heads_seed{k}", {"n_frames": 20, "n_instances": 2, "occluder": (8, 11), "seed": k}, False)
        for k in range(occluder_seeds)
    ]
    for name, kwargs, polygons in specs:
        clip = make_clip(**kwargs)
        video = clip.write(work / f"{name}.mp4")
        labels: Labels = {}
        for f in range(clip.n_frames):
            labels[f] = {
                k: (tuple(map(float, clip.positions[k][f])) if clip.visible[k][f] else None) for k in clip.positions
            }
        cases.append((name, video, labels, polygons))
        if polygons:
            layout = ResultLayout(video, work / name)
            layout.ensure_folder()
            write_manual(layout, clip.annotation(0, with_polygons=True))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--model", default="pixel:", help="model name/folder, or random-vits16")
    parser.add_argument("--short-side", type=int, default=768)
    parser.add_argument("--device", default=None)
    parser.add_argument("--frames", type=int, default=0, help="track at most this many frames per video (0 = all)")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--speed-frames", type=int, default=16)
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--no-nn", action="store_true", help="skip the nearest-neighbour baseline")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--occluder-seeds", type=int, default=6, help="generated occluded-heads clips")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a TrackerConfig setting, e.g. --set use_optical_flow=false",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dinotrack-bench-"))
    try:
        model = save_random_dinov3(work / "random-vits16", seed=0) if args.model == "random-vits16" else args.model
        backbone = load_backbone(model, device=args.device)
        report = {
            "model": args.model,
            "short_side": args.short_side,
            "device": str(backbone.device),
            "overrides": args.set,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "datasets": {},
        }
        datasets = []
        if args.data.is_dir():
            datasets = [
                (d.name, d / "video.mp4", read_labels(d / "labels.csv"), False)
                for d in sorted(args.data.iterdir())
                if (d / "labels.csv").is_file()
            ]
        if not args.no_synthetic and not args.speed_only:
            datasets += synthetic_cases(work, args.occluder_seeds)
        for name, video, labels, _ in datasets:
            entry: dict = {}
            if not args.speed_only:
                entry = evaluate(name, video, labels, backbone, args, work)
            if (datasets and name == datasets[0][0]) or args.speed_only:
                fps = backbone_fps(video, backbone, args.short_side, args.speed_frames, TrackerConfig().batch_size)
                entry["backbone_only_fps"] = fps
                if args.speed_only:
                    summary = _speed_run(video, labels, backbone, args, work / name)
                    entry["end_to_end_fps"] = summary
                entry["end_to_end_over_backbone"] = entry["end_to_end_fps"] / fps
            report["datasets"][name] = entry
            print(
                name,
                json.dumps({k: v for k, v in entry.items() if not isinstance(v, dict)}),
                json.dumps(
                    {
                        k: {m: v[m] for m in ("pck5", "pck10", "median_px")}
                        for k, v in entry.items()
                        if isinstance(v, dict)
                    }
                ),
                flush=True,
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _speed_run(video: Path, labels: Labels, backbone, args, folder: Path) -> float:
    info = probe_video(video)
    t0 = min(labels)
    layout = ResultLayout(video, folder)
    layout.ensure_folder()
    write_manual(layout, seed_from_labels(labels, t0, info.height, info.width))
    processor = DinoKeypointVideoProcessor(video, result_folder=folder, model_name=backbone, short_side=args.short_side)
    return processor.process_video(end_frame=min(info.n_frames - 1, t0 + args.speed_frames)).fps


if __name__ == "__main__":
    main()
