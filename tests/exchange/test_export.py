"""``napari-dinotrack export``: every format read back by movement's own loaders (and sleap-io) matches the CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.cli import main
from napari_dinotrack.io.tables import read_tracks_csv

FPS = 10.0  # the sample clip's frame rate
TOLERANCE_PX = 1e-3


def load_back(path: Path):
    """The exported file as a movement dataset, through movement's own loader for its format."""
    import xarray as xr
    from movement.io import load_poses

    if path.name.endswith((".analysis.h5", ".slp")):
        return load_poses.from_sleap_file(path, fps=FPS)
    if path.suffix in (".h5", ".csv"):
        return load_poses.from_dlc_file(path, fps=FPS)
    if path.suffix == ".nwb":
        return load_poses.from_nwb_file(path)
    return xr.open_dataset(path)


def max_error(ds, csv_rows) -> float:
    """Largest distance between the dataset and the CSV over visible points; hidden ones must be NaN."""
    worst = 0.0
    for row in csv_rows:
        xy = ds["position"].isel(time=row["frame"]).sel(keypoints=row["keypoint"], individuals=row["instance"]).values
        if row["visible"]:
            worst = max(worst, float(np.abs(xy - [row["x"], row["y"]]).max()))
        else:
            assert np.isnan(xy).all(), f"hidden {row['keypoint']} on frame {row['frame']} exported as {xy}"
    return worst


@pytest.mark.parametrize(
    ("to", "name"),
    [
        ("dlc", "out.h5"),
        ("dlc", "out.csv"),
        ("sleap", "out.analysis.h5"),
        ("sleap", "out.slp"),
        ("nwb", "out.nwb"),
        ("netcdf", "out.nc"),
    ],
)
def test_every_format_round_trips_to_the_csv(tracked, tmp_path, to, name, capsys):
    out = tmp_path / name
    assert main(["export", str(tracked.folder), "--to", to, "--out", str(out)]) == 0, capsys.readouterr().err
    assert f"Wrote {out}" in capsys.readouterr().out
    ds = load_back(out)
    assert ds.sizes["time"] == tracked.n_frames  # every frame of the video, in order
    assert float(ds.time[1] - ds.time[0]) == pytest.approx(1 / FPS)  # frame numbers and fps are kept
    rows = read_tracks_csv(tracked.layout.tracks_csv)
    assert any(not r["visible"] for r in rows)
    assert max_error(ds, rows) <= TOLERANCE_PX
    _, instance, keypoint = tracked.hidden
    score = next(r["score"] for r in rows if (r["frame"], r["instance"], r["keypoint"]) == (2, instance, keypoint))
    conf = float(ds["confidence"].isel(time=2).sel(keypoints=keypoint, individuals=instance))
    assert conf == pytest.approx(score, abs=1e-4)  # the tracker's score is the confidence


def test_slp_carries_the_skeleton_and_the_video(tracked, tmp_path):
    import sleap_io as sio

    skeleton = tmp_path / "edges.txt"
    skeleton.write_text("nose-leftear\nnose-rightear\nnose-tail_base\n")
    out = tmp_path / "out.slp"
    assert main(["export", str(tracked.video), "--to", "sleap", "--out", str(out), "--skeleton", str(skeleton)]) == 0
    labels = sio.load_slp(str(out), open_videos=False)
    assert labels.skeleton.edge_names == [("nose", "leftear"), ("nose", "rightear"), ("nose", "tail_base")]
    assert Path(labels.video.filename).name == tracked.video.name
    assert sorted(lf.frame_idx for lf in labels.labeled_frames) == list(range(tracked.n_frames))
    rows = read_tracks_csv(tracked.layout.tracks_csv)
    by_frame = {lf.frame_idx: lf.instances[0].numpy() for lf in labels.labeled_frames}
    nodes = labels.skeleton.node_names
    for row in rows:
        xy = by_frame[row["frame"]][nodes.index(row["keypoint"])]
        if row["visible"]:
            assert np.abs(xy - [row["x"], row["y"]]).max() <= TOLERANCE_PX
        else:
            assert np.isnan(xy).all()
    # the skeleton is kept in the result folder for the next export, render or napari session
    assert (tracked.folder / "sample_mouse_skeleton.json").is_file()


def test_nwb_keeps_the_skeleton_per_animal(track, tmp_path):
    import pynwb

    tracked = track(tmp_path / "two", n_frames=6, animals=2)
    (tracked.folder / "sample_mouse_skeleton.json").write_text('{"edges": [["nose", "tail_base"]]}')
    assert main(["export", str(tracked.folder), "--to", "nwb", "--out", str(tmp_path / "mice.nwb")]) == 0
    files = sorted(p.name for p in tmp_path.glob("mice*.nwb"))
    assert files == ["mice_animal1.nwb", "mice_animal2.nwb"]  # NWB holds one subject per file
    with pynwb.NWBHDF5IO(str(tmp_path / "mice_animal2.nwb"), "r") as io:
        pose = io.read().processing["behavior"]["PoseEstimation"]
        assert list(pose.skeleton.nodes[:]) == ["nose", "leftear", "rightear", "tail_base"]
        assert pose.skeleton.edges[:].tolist() == [[0, 3]]


def test_split_writes_one_dlc_file_per_animal(track, tmp_path):
    from movement.io import load_poses

    tracked = track(tmp_path / "two", n_frames=6, animals=2)
    out = tmp_path / "mice.h5"
    assert main(["export", str(tracked.folder), "--to", "dlc", "--out", str(out), "--individuals", "split"]) == 0
    assert sorted(p.name for p in tmp_path.glob("mice*.h5")) == ["mice_animal1.h5", "mice_animal2.h5"]
    together = tmp_path / "both.h5"
    assert main(["export", str(tracked.folder), "--to", "dlc", "--out", str(together)]) == 0
    both = load_poses.from_dlc_file(together)
    assert list(both["individuals"].values) == ["animal1", "animal2"]
    one = load_poses.from_dlc_file(tmp_path / "mice_animal2.h5")
    np.testing.assert_allclose(one["position"].values[..., 0], both["position"].sel(individuals="animal2").values)


def test_default_output_lands_in_the_result_folder(tracked, capsys):
    assert main(["export", str(tracked.folder), "--to", "netcdf"]) == 0
    assert (tracked.folder / "sample_mouse_poses.nc").is_file()
    assert main(["export", str(tracked.video), "--to", "sleap"]) == 0
    assert (tracked.folder / "sample_mouse.analysis.h5").is_file()


def test_clean_up_changes_the_export_not_the_results(tracked, tmp_path):
    import xarray as xr

    before = {p.name: p.read_bytes() for p in tracked.folder.iterdir()}
    raw, smooth = tmp_path / "raw.nc", tmp_path / "smooth.nc"
    assert main(["export", str(tracked.folder), "--to", "netcdf", "--out", str(raw)]) == 0
    assert (
        main(
            [
                "export",
                str(tracked.folder),
                "--to",
                "netcdf",
                "--out",
                str(smooth),
                "--max-gap",
                "2",
                "--median-window",
                "3",
            ]
        )
        == 0
    )
    raw_ds, smooth_ds = xr.open_dataset(raw), xr.open_dataset(smooth)
    frame, instance, keypoint = tracked.hidden
    assert np.isnan(raw_ds["position"].isel(time=frame).sel(keypoints=keypoint, individuals=instance)).all()
    assert np.isfinite(smooth_ds["position"].isel(time=frame).sel(keypoints=keypoint, individuals=instance)).all()
    assert smooth_ds.attrs["cleanup"] == "gaps <= 2, median 3"
    assert {p.name: p.read_bytes() for p in tracked.folder.iterdir()} == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "dlc", "--out", "x.nwb"], "must end in .h5 or .csv"),
        (["--to", "dlc", "--median-window", "4"], "odd number"),
        (["--to", "sleap", "--skeleton", "MISSING"], "cannot read the skeleton file"),
    ],
)
def test_bad_options_exit_2_with_a_message(tracked, tmp_path, args, message, capsys):
    args = [a.replace("MISSING", str(tmp_path / "none.json")) for a in args]
    if "--out" in args:
        args[args.index("--out") + 1] = str(tmp_path / args[args.index("--out") + 1])
    assert main(["export", str(tracked.folder), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_skeleton_naming_unknown_keypoints_is_refused(tracked, tmp_path, capsys):
    bad = tmp_path / "skeleton.json"
    bad.write_text('{"edges": [["nose", "tail"]]}')
    assert main(["export", str(tracked.folder), "--to", "sleap", "--skeleton", str(bad)]) == 2
    assert "tail" in capsys.readouterr().err
    assert not (tracked.folder / "sample_mouse_skeleton.json").exists()


def test_folder_without_results_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--to", "dlc"]) == 2
    assert "empty: no tracking results" in capsys.readouterr().err


def test_without_movement_the_extra_is_named(tracked, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "movement" or m.startswith("movement.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "movement", None)
    assert main(["export", str(tracked.folder), "--to", "dlc"]) == 2
    err = capsys.readouterr().err
    assert "'movement'" in err and 'pip install "napari-dinotrack[exchange]"' in err
