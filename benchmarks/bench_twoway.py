"""Two-way against forward-only tracking between two labelled frames, end to end.

For every scenario family and seed (:mod:`napari_dinotrack.synthetic.scenes`) the clip is
written as H.264, its ground truth on the first and the last frame is saved as the two manual
frames, and the video is tracked twice through ``DinoKeypointVideoProcessor``: with
``direction="forward"`` (forward from frame 0; the last frame's labels are only a template) and
with ``direction="both"`` (forward from frame 0 and backward from the last frame, merged). Both
are scored against the ground truth with :func:`napari_dinotrack.evaluation.evaluate` on the
whole stretch and on its last third, where a forward pass has drifted most.

    python benchmarks/bench_twoway.py --seeds heldout --out benchmarks/results/twoway_heldout.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_dinotrack import DinoKeypointVideoProcessor
from napari_dinotrack.evaluation import evaluate, read_result_folder, tracks_from_arrays
from napari_dinotrack.io.labelme import write_manual
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic.scenes import FAMILIES, SEED_SETS, Scene, make_scene

METRICS = ("pck10", "median_px", "mean_px", "identity_swaps", "lr_swaps", "visible_recall")


def truth_of(scene: Scene, frames: np.ndarray):
    xy = scene.xy.reshape(scene.n_frames, -1, 2).astype(np.float64)[frames]
    return tracks_from_arrays(frames, scene.keys, xy, scene.visible.reshape(scene.n_frames, -1)[frames])


def track(scene: Scene, video: Path, folder: Path, direction: str, model: str, short_side: int) -> float:
    layout = ResultLayout(video, folder)
    layout.ensure_folder()
    write_manual(layout, scene.annotation(0))
    write_manual(layout, scene.annotation(scene.n_frames - 1))
    t0 = time.perf_counter()
    DinoKeypointVideoProcessor(
        video, folder, model_name=model, short_side=short_side, direction=direction
    ).process_video()  # type: ignore[arg-type]
    return time.perf_counter() - t0


def score(scene: Scene, folder: Path) -> dict[str, dict]:
    pred, _manual = read_result_folder(folder)
    inner = np.arange(1, scene.n_frames - 1)
    last_third = inner[inner >= (2 * (scene.n_frames - 1)) // 3]
    out = {}
    for name, frames in (("stretch", inner), ("last_third", last_third)):
        skip = [f for f in range(scene.n_frames) if f not in set(frames.tolist())]
        pooled = evaluate(pred, truth_of(scene, np.arange(scene.n_frames)), skip_frames=skip).pooled
        out[name] = {k: pooled.get(k) for k in METRICS}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="heldout", help="tuning, heldout, or a comma list of integers")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--model", default="pixel:")
    parser.add_argument("--short-side", type=int, default=384)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    seeds = SEED_SETS[args.seeds] if args.seeds in SEED_SETS else [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="dinotrack-twoway-"))
    rows = []
    try:
        for family in args.families.split(","):
            for seed in seeds:
                scene = make_scene(family, seed)
                video = scene.write(work / f"{family}_{seed}.mp4")
                for direction in ("forward", "both"):
                    folder = work / f"{family}_{seed}_{direction}"
                    seconds = track(scene, video, folder, direction, args.model, args.short_side)
                    row = {
                        "family": family,
                        "seed": seed,
                        "direction": direction,
                        "frames": scene.n_frames,
                        "seconds": seconds,
                        **score(scene, folder),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    shutil.rmtree(folder)
                video.unlink()
                if args.out:
                    write_report(args.out, args, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = write_report(args.out, args, rows)
    print(format_summary(report["summary"]))


def summarise(rows: list[dict]) -> dict:
    """Per family and direction: median over seeds of the last third's and the stretch's figures."""
    out: dict[str, dict] = {}
    for family in dict.fromkeys(r["family"] for r in rows):
        for direction in ("forward", "both"):
            sel = [r for r in rows if r["family"] == family and r["direction"] == direction]
            if not sel:
                continue
            entry = {}
            for part in ("stretch", "last_third"):
                for metric in ("pck10", "median_px", "mean_px"):
                    vals = [r[part][metric] for r in sel if r[part][metric] is not None]
                    entry[f"{part}_{metric}"] = float(np.median(vals)) if vals else None
                entry[f"{part}_identity_swaps"] = int(sum(r[part]["identity_swaps"] or 0 for r in sel))
            entry["seconds"] = float(np.sum([r["seconds"] for r in sel]))
            out.setdefault(family, {})[direction] = entry
    return out


def format_summary(summary: dict) -> str:
    lines = ["family     | last third PCK@10 fwd / both | median px fwd / both | stretch PCK@10 fwd / both"]
    for family, d in summary.items():
        f, b = d.get("forward", {}), d.get("both", {})

        def cell(key, entry_f=f, entry_b=b, fmt="{:.2f}"):
            return " / ".join("–" if e.get(key) is None else fmt.format(e[key]) for e in (entry_f, entry_b))

        lines.append(
            f"{family:10s} | {cell('last_third_pck10'):28s} | {cell('last_third_median_px', fmt='{:.1f}'):20s}"
            f" | {cell('stretch_pck10')}"
        )
    return "\n".join(lines)


def write_report(out: Path | None, args: argparse.Namespace, rows: list[dict]) -> dict:
    report = {
        "seeds": args.seeds,
        "model": args.model,
        "short_side": args.short_side,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "rows": rows,
        "summary": summarise(rows),
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
