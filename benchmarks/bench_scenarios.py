"""How tracking generalises: procedural scenario families, tuning vs held-out seeds, two feature kinds.

For every family and seed a scene is generated (:mod:`napari_dinotrack.synthetic.scenes`),
encoded as H.264 (4:2:0, the drawn quality) and decoded again, so the tracker sees compressed
video. It is tracked from its first frame with the default settings and scored against the exact
ground truth with :func:`napari_dinotrack.evaluation.evaluate`, next to two ablations run on the
same frames and features:

* ``flow``: Lucas-Kanade point tracking alone (the tracker's own optical flow, chained, with its
  forward-backward check as the visibility);
* ``nn``: appearance matching alone (each seed descriptor's best match anywhere in the frame);
* ``full``: the tracker.

Feature kinds: ``pixel:`` (colour patches, no weights) and a small random-weight DINOv3 ViT
(``tiny-dinov3``), at working short sides 384 and 768. Seeds are split: ``tuning`` (0-2) may be
looked at while changing the tracker; ``heldout`` (100-104) are run only to report.

    python benchmarks/bench_scenarios.py --seeds heldout --out benchmarks/results/scenarios_heldout.json
    python benchmarks/bench_scenarios.py --markdown benchmarks/results/scenarios_heldout.json      # the table
    python benchmarks/bench_scenarios.py --against-flow benchmarks/results/scenarios_heldout.json  # clip by clip
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.loader import load_backbone
from napari_dinotrack.evaluation import evaluate, tracks_from_arrays
from napari_dinotrack.io.video import VideoReader
from napari_dinotrack.synthetic.models import save_random_dinov3
from napari_dinotrack.synthetic.scenes import FAMILIES, SEED_SETS, Scene, make_scene
from napari_dinotrack.tracking.config import TrackerConfig
from napari_dinotrack.tracking.keypoints.flow import to_gray, track_points
from napari_dinotrack.tracking.keypoints.sampling import sample_features
from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker

FEATURES = ("pixel", "tiny-dinov3")
VARIANTS = ("full", "flow", "nn")


def tiny_dinov3(folder: Path) -> Path:
    """A small DINOv3 ViT/16 (4 blocks, width 128) with random weights, saved like a real checkpoint."""
    return save_random_dinov3(
        folder, seed=0, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4
    )


def decoded(scene: Scene, work: Path) -> np.ndarray:
    """The scene as the tracker sees it: encoded (lossy, 4:2:0) and decoded again."""
    path = scene.write(work / f"{scene.family}_{scene.seed}.mp4")
    with VideoReader(path) as reader:
        frames = np.stack([f for _, f in reader.iter_frames(0, reader.n_frames)])
    path.unlink()
    return frames


def extract(backbone, frames: np.ndarray, short_side: int, batch: int = 8) -> tuple[list[torch.Tensor], object]:
    geo = compute_geometry(frames.shape[1], frames.shape[2], short_side, backbone.patch_size)
    feats = []
    for i in range(0, len(frames), batch):
        feats.extend(backbone.extract(frames[i : i + batch], geo).float())
    return feats, geo


def run_full(scene: Scene, frames, feats, geo, config: TrackerConfig) -> tuple[np.ndarray, np.ndarray, float]:
    seed = scene.annotation(0)
    tracker = KeypointTracker(config, geo, feats[0].device)
    grays = [to_gray(f) for f in frames]
    tracker.start(seed, feats[0], grays[0], image=frames[0])
    keys = seed.keypoint_names()
    xy = np.full((scene.n_frames, len(keys), 2), np.nan)
    vis = np.zeros((scene.n_frames, len(keys)), bool)
    xy[0] = [[kp.x, kp.y] for inst in seed.instances for kp in inst.keypoints]
    vis[0] = True
    t0 = time.perf_counter()
    for t in range(1, scene.n_frames):
        out = tracker.step(feats[t], grays[t], image=frames[t])
        xy[t], vis[t] = out.xy, out.visible
    step_ms = 1000 * (time.perf_counter() - t0) / max(1, scene.n_frames - 1)
    return xy, vis, step_ms


def run_flow(scene: Scene, frames) -> tuple[np.ndarray, np.ndarray]:
    seed = scene.annotation(0)
    keys = seed.keypoint_names()
    xy = np.full((scene.n_frames, len(keys), 2), np.nan)
    vis = np.zeros((scene.n_frames, len(keys)), bool)
    pts = np.array([[kp.x, kp.y] for inst in seed.instances for kp in inst.keypoints], np.float32)
    xy[0], vis[0] = pts, True
    prev = to_gray(frames[0])
    for t in range(1, scene.n_frames):
        gray = to_gray(frames[t])
        flow = track_points(prev, gray, pts, max_jump_px=TrackerConfig().max_speed_px * 4)
        pts = np.where(flow.ok[:, None], flow.points, pts).astype(np.float32)
        xy[t], vis[t] = pts, flow.ok
        prev = gray
    return xy, vis


def run_nn(scene: Scene, feats, geo) -> tuple[np.ndarray, np.ndarray]:
    seed = scene.annotation(0)
    keys = seed.keypoint_names()
    pts = torch.tensor([[kp.x, kp.y] for inst in seed.instances for kp in inst.keypoints]) * geo.scale
    padded = (geo.padded_height, geo.padded_width)
    templates = sample_features(feats[0], pts, padded)
    xy = np.full((scene.n_frames, len(keys), 2), np.nan)
    xy[0] = pts.numpy() / geo.scale
    for t in range(1, scene.n_frames):
        sims = torch.einsum("kc,chw->khw", templates, feats[t])[None]
        up = torch.nn.functional.interpolate(sims, size=padded, mode="bilinear", align_corners=False)[0]
        up = up[:, : geo.work_height, : geo.work_width]
        idx = up.flatten(1).argmax(1)
        ys, xs = (idx // geo.work_width).float() + 0.5, (idx % geo.work_width).float() + 0.5
        xy[t] = torch.stack([xs, ys], 1).numpy() / geo.scale
    return xy, np.ones((scene.n_frames, len(keys)), bool)


def score(scene: Scene, keys, xy, vis) -> dict:
    truth = tracks_from_arrays(
        np.arange(scene.n_frames),
        scene.keys,
        scene.xy.reshape(scene.n_frames, -1, 2).astype(np.float64),
        scene.visible.reshape(scene.n_frames, -1),
    )
    pred = tracks_from_arrays(np.arange(scene.n_frames), keys, xy, vis)
    return evaluate(pred, truth, skip_frames=[0]).pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="tuning", help="tuning, heldout, or a comma list of integers")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--features", default=",".join(FEATURES))
    parser.add_argument("--short-sides", default="384,768")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="tracker setting override")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    seeds = SEED_SETS[args.seeds] if args.seeds in SEED_SETS else [int(s) for s in args.seeds.split(",")]
    families = args.families.split(",")
    kinds = args.features.split(",")
    sides = [int(s) for s in args.short_sides.split(",")]
    variants = args.variants.split(",")
    overrides = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    config = TrackerConfig.from_dict(overrides)
    torch.set_grad_enabled(False)
    work = Path(tempfile.mkdtemp(prefix="dinotrack-scenarios-"))
    rows = []
    try:
        backbones = {"pixel": load_backbone("pixel:")}
        if "tiny-dinov3" in kinds:
            backbones["tiny-dinov3"] = load_backbone(
                str(tiny_dinov3(work / "tiny-dinov3")), device="cpu", precision="fp32"
            )
        for family in families:
            for seed in seeds:
                scene = make_scene(family, seed)
                frames = decoded(scene, work)
                keys = scene.annotation(0).keypoint_names()
                flow_only = run_flow(scene, frames) if "flow" in variants else None  # the same for every backbone
                for kind in kinds:
                    for side in sides:
                        feats, geo = extract(backbones[kind], frames, side)
                        for variant in variants:
                            extra = {}
                            if variant == "full":
                                xy, vis, extra["step_ms"] = run_full(scene, frames, feats, geo, config)
                            elif variant == "flow":
                                xy, vis = flow_only
                            else:
                                xy, vis = run_nn(scene, feats, geo)
                            m = score(scene, keys, xy, vis)
                            row = {
                                "family": family,
                                "seed": seed,
                                "features": kind,
                                "short_side": side,
                                "variant": variant,
                                "keypoints": len(keys),
                                **extra,
                                **{
                                    k: m.get(k)
                                    for k in (
                                        "pck5",
                                        "pck10",
                                        "median_px",
                                        "identity_swaps",
                                        "lr_swaps",
                                        "hidden_recall",
                                        "visible_recall",
                                    )
                                },
                            }
                            rows.append(row)
                            print(json.dumps(row), flush=True)
                        del feats
                if args.out:  # kept up to date scene by scene: a long run that is cut short still reports
                    write_report(args.out, args, overrides, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = write_report(args.out, args, overrides, rows)
    print(format_summary(report["summary"]))


def write_report(out: Path | None, args: argparse.Namespace, overrides: dict, rows: list[dict]) -> dict:
    report = {
        "seeds": args.seeds,
        "overrides": overrides,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "rows": rows,
        "summary": summarise(rows),
        "against_flow": paired_against_flow(rows),
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def summarise(rows: list[dict]) -> dict:
    """Per (family, features, short side, variant): mean PCK@10, median px, swaps, recalls."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["family"], r["features"], r["short_side"], r["variant"])].append(r)
    out = {}
    for (family, kind, side, variant), rs in sorted(groups.items()):

        def mean(key, rs=rs):
            vals = [r[key] for r in rs if r.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        out[f"{family}|{kind}|{side}|{variant}"] = {
            "pck10": mean("pck10"),
            "median_px": mean("median_px"),
            "identity_swaps": sum(r["identity_swaps"] or 0 for r in rs),
            "lr_swaps": sum(r["lr_swaps"] or 0 for r in rs),
            "hidden_recall": mean("hidden_recall"),
            "visible_recall": mean("visible_recall"),
            "clips": len(rs),
        }
    return out


def format_summary(summary: dict) -> str:
    lines = [f"{'family|features|side|variant':40s} pck10  median  id_sw lr_sw  hid_rec vis_rec"]
    for key, s in summary.items():

        def f(v, fmt="{:.2f}"):
            return fmt.format(v) if v is not None else "  -  "

        lines.append(
            f"{key:40s} {f(s['pck10'])}  {f(s['median_px'], '{:6.1f}')}  {s['identity_swaps']:5d} "
            f"{s['lr_swaps']:5d}  {f(s['hidden_recall'])}    {f(s['visible_recall'])}"
        )
    return "\n".join(lines)


def paired_against_flow(rows: list[dict], resamples: int = 10_000) -> dict:
    """Per (family, features, short side): the tracker against its flow ablation on the same clips.

    With five clips a family, a difference of a few hundredths in the mean PCK@10 is within what
    one clip can move. So each clip's difference (full - flow) is kept, and their mean gets a 90 %
    bootstrap interval over the clips (fixed random seed: the same rows give the same interval);
    ``wins`` counts the clips where the tracker is at least as good.
    """
    by_clip: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in rows:
        by_clip[(r["family"], r["features"], r["short_side"], r["seed"])][r["variant"]] = r["pck10"]
    diffs: dict[str, list[float]] = defaultdict(list)
    for (family, kind, side, _), v in sorted(by_clip.items()):
        if "full" in v and "flow" in v:
            diffs[f"{family}|{kind}|{side}"].append(v["full"] - v["flow"])
    rng = np.random.default_rng(0)
    out = {}
    for key, d in diffs.items():
        values = np.asarray(d)
        means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
        low, high = np.quantile(means, [0.05, 0.95])
        out[key] = {
            "clips": len(values),
            "mean_difference": float(values.mean()),
            "interval_90": [float(low), float(high)],
            "wins": int((values >= 0).sum()),
        }
    return out


def _table_order(key: str) -> tuple[int, str, int]:
    """Rows of a table keyed ``family|features|side``: families in their benchmark order, then features, side."""
    family, kind, side = key.split("|")[:3]
    return FAMILIES.index(family), kind, int(side)


def format_paired_markdown(paired: dict) -> str:
    """The tracker's PCK@10 minus its flow ablation's, per family, features and short side."""
    lines = [
        "| family | features | short side | full - flow, mean | 90 % interval | clips full >= flow |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    keys = sorted(paired, key=_table_order)
    for key in keys:
        p = paired[key]
        family, kind, side = key.split("|")
        low, high = p["interval_90"]
        lines.append(
            f"| {family} | {kind} | {side} | {p['mean_difference']:+.3f} | {low:+.3f} to {high:+.3f} "
            f"| {p['wins']} of {p['clips']} |"
        )
    return "\n".join(lines)


def format_markdown(summary: dict) -> str:
    """The docs table: one row per family, features and short side; full / flow / nn side by side."""

    def f(v, fmt="{:.2f}"):
        return fmt.format(v) if v is not None else "–"

    lines = [
        "| family | features | short side | PCK@10 full / flow / nn | median px full / flow / nn "
        "| id swaps full / flow | L/R swaps full / flow | hidden recall full / flow | visible recall full |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = sorted({k.rsplit("|", 1)[0] for k in summary}, key=_table_order)
    for key in keys:
        v = {variant: summary.get(f"{key}|{variant}", {}) for variant in VARIANTS}
        family, kind, side = key.split("|")
        lines.append(
            f"| {family} | {kind} | {side} | {' / '.join(f(v[x].get('pck10')) for x in VARIANTS)} "
            f"| {' / '.join(f(v[x].get('median_px'), '{:.1f}') for x in VARIANTS)} "
            f"| {v['full'].get('identity_swaps', '–')} / {v['flow'].get('identity_swaps', '–')} "
            f"| {v['full'].get('lr_swaps', '–')} / {v['flow'].get('lr_swaps', '–')} "
            f"| {f(v['full'].get('hidden_recall'))} / {f(v['flow'].get('hidden_recall'))} "
            f"| {f(v['full'].get('visible_recall'))} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--markdown":  # print the docs table of a saved run
        print(format_markdown(json.loads(Path(sys.argv[2]).read_text())["summary"]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--against-flow":  # the tracker against flow, clip by clip
        print(format_paired_markdown(paired_against_flow(json.loads(Path(sys.argv[2]).read_text())["rows"])))
    else:
        main()
