"""``napari-dinotrack import``: other tools' labels become manual seed frames that track; bad files exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_dinotrack.cli import main
from napari_dinotrack.io.labelme import load_annotations, manual_frames
from napari_dinotrack.io.paths import ResultLayout
from napari_dinotrack.synthetic import make_clip

SEED_FRAMES = (0, 6)


@pytest.fixture
def clip_video(tmp_path):
    """An unlabelled generated clip: ``(clip, video path)``."""
    clip = make_clip(n_frames=12)
    return clip, clip.write(tmp_path / "clip.mp4")


def movement_dataset(clip, frames=SEED_FRAMES, name="mouse", offset=(0.0, 0.0), space=("x", "y")):
    """The clip's ground truth on ``frames`` (NaN elsewhere) as a movement dataset."""
    from movement.io import load_poses

    position = np.full((clip.n_frames, len(space), len(clip.part_names), 1), np.nan)
    for f in frames:
        for k, part in enumerate(clip.part_names):
            position[f, :2, k, 0] = clip.positions["animal1", part][f] + offset
            if len(space) == 3:
                position[f, 2, k, 0] = 0.0
    confidence = np.where(np.isnan(position[:, 0]), np.nan, 0.95)
    return load_poses.from_numpy(position, confidence, [name], clip.part_names)


def write_dlc(ds, path: Path) -> Path:
    """A DeepLabCut file written by movement (multi-animal layout, so the file keeps its name)."""
    from movement.io import save_poses

    save_poses.to_dlc_file(ds, path, split_individuals=False)
    return path


def tracking_error(clip, layout: ResultLayout) -> float:
    """Mean distance of the tracked keypoints to the ground truth over the frames that are not seeds."""
    anns = load_annotations(layout)
    errors = [
        np.hypot(kp.x - clip.positions["animal1", kp.name][f][0], kp.y - clip.positions["animal1", kp.name][f][1])
        for f, ann in anns.items()
        if f not in SEED_FRAMES
        for kp in ann.instances[0].keypoints
    ]
    assert len(errors) == (clip.n_frames - len(SEED_FRAMES)) * len(clip.part_names)
    return float(np.mean(errors))


def import_and_track(labels: Path, video: Path, capsys) -> ResultLayout:
    assert main(["import", str(labels), str(video)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Imported 2" in out and "(0, 6)" in out
    layout = ResultLayout(video)
    assert manual_frames(layout) == list(SEED_FRAMES)
    assert main(["track", str(video), "--model", "pixel:", "--quiet"]) == 0, capsys.readouterr().err
    return layout


def test_a_dlc_file_written_by_movement_seeds_tracking(clip_video, tmp_path, capsys):
    clip, video = clip_video
    labels = write_dlc(movement_dataset(clip), tmp_path / "clipDLC_resnet50.h5")
    layout = import_and_track(labels, video, capsys)
    seed = load_annotations(layout, [6])[6]
    assert seed.is_manual and seed.instances[0].name == "mouse"  # the file's animal name is kept
    nose = seed.instances[0].keypoint("nose")
    assert (nose.x, nose.y) == pytest.approx(tuple(clip.positions["animal1", "nose"][6]), abs=1e-3)
    assert tracking_error(clip, layout) < 3.0


def test_a_sleap_file_written_by_movement_seeds_tracking(clip_video, tmp_path, capsys):
    from movement.io import save_poses

    clip, video = clip_video
    labels = tmp_path / "clip.analysis.h5"
    save_poses.to_sleap_analysis_file(movement_dataset(clip), labels)
    layout = import_and_track(labels, video, capsys)
    assert tracking_error(clip, layout) < 3.0


def test_dlc_training_labels_map_image_names_to_frames(clip_video, tmp_path, capsys):
    """A CollectedData file, as DeepLabCut's labelling GUI writes it (rows labeled-data/<video>/imgNNNN.png)."""
    import pandas as pd

    clip, video = clip_video
    columns = pd.MultiIndex.from_product([["me"], clip.part_names, ["x", "y"]], names=["scorer", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([("labeled-data", "clip", f"img{f:04d}.png") for f in (3, 9)])
    values = [np.ravel([clip.positions["animal1", p][f] for p in clip.part_names]) for f in (3, 9)]
    table = pd.DataFrame(values, index=index, columns=columns)
    table.to_hdf(tmp_path / "CollectedData_me.h5", key="keypoints")
    table.to_csv(tmp_path / "CollectedData_me.csv")
    assert main(["import", str(tmp_path / "CollectedData_me.csv"), str(video)]) == 0, capsys.readouterr().err
    layout = ResultLayout(video)
    assert manual_frames(layout) == [3, 9]
    assert load_annotations(layout, [3])[3].instances[0].name == "animal1"  # unnamed animal: the default name
    # the .h5 twin holds the same frames: importing it again needs --overwrite
    assert main(["import", str(tmp_path / "CollectedData_me.h5"), str(video)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "CollectedData_me.h5"), str(video), "--overwrite"]) == 0


def test_our_slp_and_coco_exports_come_back_as_seeds(clip_video, tmp_path, capsys):
    import sleap_io as sio

    from napari_dinotrack.exchange.export import sleap_labels

    clip, video = clip_video
    ds = movement_dataset(clip)
    ds.attrs.update(video_path=str(video), frame_height=160, frame_width=224)
    labels = sleap_labels(ds, [("nose", "tail_base")])
    sio.save_slp(labels, str(tmp_path / "labels.slp"))
    sio.save_coco(labels, str(tmp_path / "labels.json"))
    assert main(["import", str(tmp_path / "labels.slp"), str(video)]) == 0, capsys.readouterr().err
    layout = ResultLayout(video)
    assert manual_frames(layout) == list(SEED_FRAMES)
    assert json.loads((layout.folder / "clip_skeleton.json").read_text()) == {"edges": [["nose", "tail_base"]]}
    coco_video = video.with_name("copy.mp4")
    coco_video.write_bytes(video.read_bytes())
    assert main(["import", str(tmp_path / "labels.json"), str(coco_video)]) == 0, capsys.readouterr().err
    coco_anns = load_annotations(ResultLayout(coco_video))
    slp_anns = load_annotations(layout)
    assert sorted(coco_anns) == list(SEED_FRAMES)
    for f in SEED_FRAMES:
        a, b = coco_anns[f].instances[0], slp_anns[f].instances[0]
        assert [(k.name, round(k.x, 2), round(k.y, 2)) for k in a.keypoints] == [
            (k.name, round(k.x, 2), round(k.y, 2)) for k in b.keypoints
        ]


def test_only_some_frames_and_renamed_keypoints(clip_video, tmp_path, capsys):
    clip, video = clip_video
    labels = write_dlc(
        movement_dataset(clip).assign_coords(keypoints=["snout", "leftear", "rightear", "tail_base"]),
        tmp_path / "seeds.h5",
    )
    layout = ResultLayout(video)
    assert main(["import", str(labels), str(video), "--frames", "6"]) == 0, capsys.readouterr().err
    assert manual_frames(layout) == [6]
    # the folder now names its keypoints: another file's must match (or be renamed)
    assert main(["import", str(labels), str(video), "--frames", "0"]) == 0
    other = write_dlc(movement_dataset(clip, frames=(9,)), tmp_path / "other.h5")
    assert main(["import", str(other), str(video)]) == 2
    err = capsys.readouterr().err
    assert "other.h5" in err and "unknown keypoints nose" in err and "--rename" in err
    assert main(["import", str(other), str(video), "--rename", "nose=snout"]) == 0
    assert manual_frames(layout) == [0, 6, 9]
    assert load_annotations(layout, [9])[9].instances[0].keypoint("snout") is not None


def _coco(path: Path, width: int, height: int, keypoints: list[float], names=("nose", "tail_base")) -> Path:
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "frame_000002.png", "width": width, "height": height}],
                "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "keypoints": keypoints}],
                "categories": [{"id": 1, "name": "mouse", "keypoints": list(names), "skeleton": [[1, 2]]}],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "case",
    [
        "3-D coordinates",
        "keypoint count",
        "other video size",
        "outside the frame",
        "beyond the last frame",
        "not a label file",
        "unknown keypoints",
    ],
)
def test_bad_files_exit_2_naming_the_file_and_write_nothing(clip_video, tmp_path, case, capsys):
    clip, video = clip_video
    layout = ResultLayout(video)
    if case == "unknown keypoints":  # the folder already names its keypoints
        write_dlc(movement_dataset(clip, frames=(0,)), tmp_path / "first.h5")
        assert main(["import", str(tmp_path / "first.h5"), str(video)]) == 0
    before = sorted(p.name for p in layout.folder.iterdir()) if layout.folder.exists() else []
    bad = tmp_path / f"bad_{case.replace(' ', '_')}.h5"
    if case == "3-D coordinates":
        write_dlc(movement_dataset(clip, space=("x", "y", "z")), bad)
        message = "wrong shape"
    elif case == "keypoint count":
        bad = _coco(bad.with_suffix(".json"), 224, 160, [10, 20, 2, 30, 40, 2, 50, 60, 2])
        message = "wrong shape in annotation 7"
    elif case == "other video size":
        bad = _coco(bad.with_suffix(".json"), 640, 480, [10, 20, 2, 30, 40, 2])
        message = "made on 640x480 frames, but clip.mp4 is 224x160"
    elif case == "outside the frame":
        write_dlc(movement_dataset(clip, offset=(300.0, 0.0)), bad)
        message = "outside the 224x160 frames"
    elif case == "beyond the last frame":
        bigger = make_clip(n_frames=20)
        write_dlc(movement_dataset(bigger, frames=(15,)), bad)
        message = "labels frame(s) 15, but clip.mp4 has 12 frames"
    elif case == "not a label file":
        bad = bad.with_suffix(".json")
        bad.write_text('{"shapes": []}')
        message = "not a label file"
    else:
        renamed = movement_dataset(clip, frames=(6,)).assign_coords(keypoints=["snout", "leftear", "rightear", "tail"])
        write_dlc(renamed, bad)
        message = "unknown keypoints snout, tail"
    assert main(["import", str(bad), str(video)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err, err
    assert "Traceback" not in err
    after = sorted(p.name for p in layout.folder.iterdir()) if layout.folder.exists() else []
    assert after == before


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "dlc_openfield_m4s1" / "video.mp4").is_file(), reason="shared videos absent")
def test_deeplabcut_labels_of_a_real_video(tmp_path, capsys):
    """The open-field mouse's human labels, laid out as DeepLabCut's CollectedData_Pranav.csv, onto its video."""
    import pandas as pd

    labels = pd.read_csv(SHARED / "dlc_openfield_m4s1" / "labels.csv")
    parts = list(dict.fromkeys(labels["keypoint"]))
    wide = labels.pivot(index="frame", columns="keypoint", values=["x", "y"]).swaplevel(axis=1)
    table = wide[[(p, c) for p in parts for c in ("x", "y")]]
    table.columns = pd.MultiIndex.from_tuples(
        [("Pranav", p, c) for p, c in table.columns], names=["scorer", "bodyparts", "coords"]
    )
    table.index = pd.MultiIndex.from_tuples([("labeled-data", "m4s1", f"img{f:04d}.png") for f in table.index])
    csv = tmp_path / "CollectedData_Pranav.csv"
    table.to_csv(csv)
    video = SHARED / "dlc_openfield_m4s1" / "video.mp4"
    out = tmp_path / "results"
    assert main(["import", str(csv), str(video), "--out", str(out), "--frames", "0,50,115"]) == 0, (
        capsys.readouterr().err
    )
    layout = ResultLayout(video, out)
    assert manual_frames(layout) == [0, 50, 115]
    snout = load_annotations(layout, [50])[50].instances[0].keypoint("snout")
    row = labels[(labels.frame == 50) & (labels.keypoint == "snout")].iloc[0]
    assert (snout.x, snout.y) == pytest.approx((row.x, row.y), abs=1e-3)
    # the same labels on another video (50 frames of a horse) are refused
    horse = SHARED / "badja_horsejump_high" / "video.mp4"
    assert main(["import", str(csv), str(horse), "--out", str(tmp_path / "horse")]) == 2
    err = capsys.readouterr().err
    assert "CollectedData_Pranav.csv" in err and "has 50 frames" in err
    assert not (tmp_path / "horse").exists()
