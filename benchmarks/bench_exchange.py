"""Export round trips and speed: every format read back by movement (and sleap-io) against the tracks CSV.

    python benchmarks/bench_exchange.py --out benchmarks/results/exchange_cpu.json

1. Round trip: the generated sample clip (two animals) tracked with the ``pixel:`` backbone, one
   keypoint marked hidden, exported to every format and loaded back with movement's loaders;
   reported: the largest coordinate difference to the CSV over visible points, and whether every
   hidden point came back as NaN.
2. Speed: export of a result folder of ``--frames`` predicted frames (two animals, four
   keypoints), reading the per-frame JSON files included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_dinotrack.cli import main as cli
from napari_dinotrack.exchange.export import export_results
from napari_dinotrack.io.labelme import load_annotations, read_frame, write_manual, write_prediction
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.io.tables import read_tracks_csv, write_tracks_csv
from napari_dinotrack.synthetic import make_clip, write_sample

FORMATS = [
    ("dlc", "out.h5"),
    ("dlc", "out.csv"),
    ("sleap", "out.analysis.h5"),
    ("sleap", "out.slp"),
    ("nwb", "out.nwb"),
    ("netcdf", "out.nc"),
]


def load_back(path: Path, fps: float):
    import xarray as xr
    from movement.io import load_poses

    if path.name.endswith((".analysis.h5", ".slp")):
        return load_poses.from_sleap_file(path, fps=fps)
    if path.suffix in (".h5", ".csv"):
        return load_poses.from_dlc_file(path, fps=fps)
    if path.suffix == ".nwb":
        return load_poses.from_nwb_file(path)
    return xr.open_dataset(path)


def compare(ds, rows) -> tuple[float, int, int]:
    """(largest |difference| over visible points, hidden points, hidden points that came back NaN)."""
    worst, hidden, nan = 0.0, 0, 0
    animals = {str(a) for a in ds["individuals"].values}  # an NWB file holds one animal
    for row in (r for r in rows if r["instance"] in animals):
        xy = ds["position"].isel(time=row["frame"]).sel(keypoints=row["keypoint"], individuals=row["instance"]).values
        if row["visible"]:
            worst = max(worst, float(np.abs(xy - [row["x"], row["y"]]).max()))
        else:
            hidden += 1
            nan += int(np.isnan(xy).all())
    return worst, hidden, nan


def round_trips(tmp: Path) -> list[dict]:
    video = write_sample(tmp / "sample", n_frames=40, n_instances=2)
    assert cli(["track", str(video), "--model", "pixel:", "--quiet"]) == 0
    layout = ResultLayout(video)
    ann = read_frame(layout.frame_json(20), 20)
    ann.instances[0].keypoints[0].visible = False
    write_manual(layout, dataclasses.replace(ann, source="manual"))
    write_tracks_csv(layout.tracks_csv, load_annotations(layout).values())
    rows = read_tracks_csv(layout.tracks_csv)
    out = []
    for to, name in FORMATS:
        folder = tmp / f"{to}{Path(name).suffix}"
        folder.mkdir()
        for part in export_results(layout.folder, to, folder / name):  # NWB: one file per animal
            worst, hidden, nan = compare(load_back(part, 10.0), rows)
            out.append(
                {
                    "format": to,
                    "file": part.name,
                    "max_abs_error_px": worst,
                    "hidden_points": hidden,
                    "hidden_as_nan": nan,
                    "bytes": part.stat().st_size,
                }
            )
            print(f"{to:7s} {part.name:20s} max |error| {worst:.2e} px, hidden -> NaN {nan}/{hidden}")
    return out


def speed(tmp: Path, frames: int) -> list[dict]:
    clip = make_clip(n_frames=2, n_instances=2)
    layout = ResultLayout(tmp / "long.mp4")
    layout.ensure_folder()
    seed = clip.annotation(0)
    for t in range(frames):
        ann = dataclasses.replace(seed, frame=t, source="prediction")
        write_prediction(layout, ann)
    out = []
    for to, name in FORMATS:
        start = time.perf_counter()
        export_results(layout.folder, to, tmp / f"long_{name}")
        seconds = time.perf_counter() - start
        out.append({"format": to, "file": name, "frames": frames, "seconds": seconds})
        print(f"{to:7s} {name:20s} {frames} frames in {seconds:.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    report: dict = {"machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        report["round_trip"] = round_trips(Path(tmp) / "rt")
        report["export_speed"] = speed(Path(tmp) / "speed", args.frames)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
