from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_dinotrack.io import labelme
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.io.atomic import atomic_write_bytes, atomic_write_text
from napari_dinotrack.io.labelme import (
    AnnotationError,
    frame_source,
    load_annotations,
    manual_frames,
    read_frame,
    write_frame,
    write_manual,
    write_prediction,
)
from napari_dinotrack.io.paths import ResultLayout

SQUARE = np.array([[0.0, 0.0], [50.0, 0.0], [50.0, 50.0], [0.0, 50.0]])


def as_tuple(ann: FrameAnnotation) -> Any:
    """Comparable form (dataclass == cannot compare numpy polygons)."""
    insts = []
    for inst in ann.instances:
        poly = None if inst.polygon is None else np.asarray(inst.polygon).tolist()
        kps = [(k.name, k.x, k.y, k.visible, k.score, k.extra) for k in inst.keypoints]
        insts.append((inst.name, kps, poly, inst.group_id, inst.extra))
    return (
        ann.frame,
        ann.image_height,
        ann.image_width,
        insts,
        ann.source,
        ann.seed_frame,
        ann.seed_digest,
        ann.other_shapes,
        ann.extra,
    )


def sample(source: str = "manual") -> FrameAnnotation:
    return FrameAnnotation(
        frame=7,
        image_height=480,
        image_width=640,
        source=source,  # type: ignore[arg-type]
        instances=[
            Instance(
                "mouse1",
                [
                    Keypoint("nose", 10.125, 20.5, True, 0.9876),
                    Keypoint("leftear", 12.0, 22.25, False, 0.5, extra={"misses": 3}),
                ],
                polygon=SQUARE.copy(),
                group_id=1,
                extra={"note": "outline"},
            ),
            Instance("mouse2", [Keypoint("nose", 100.0, 200.0)], group_id=2),
        ],
        other_shapes=[
            {"label": "arena", "points": [[0, 0], [9, 9]], "group_id": None, "shape_type": "rectangle", "flags": {}}
        ],
        extra={"caption": "hello", "otherData": {"k": [1, 2]}, "version": "5.4.1"},
    )


def point(label: str, x: float, y: float, **kw: Any) -> dict[str, Any]:
    shape = {"label": label, "points": [[x, y]], "group_id": None, "shape_type": "point", "flags": {}}
    shape.update(kw)
    return shape


def polygon(label: str, pts: np.ndarray, **kw: Any) -> dict[str, Any]:
    shape = {"label": label, "points": np.asarray(pts).tolist(), "group_id": None, "shape_type": "polygon", "flags": {}}
    shape.update(kw)
    return shape


def labelme_file(path: Path, shapes: list[dict[str, Any]], **top: Any) -> Path:
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": "x.png",
        "imageData": None,
        "imageHeight": 100,
        "imageWidth": 120,
    }
    data.update(top)
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("source", ["manual", "prediction"])
def test_round_trip(tmp_path: Path, source: str) -> None:
    ann = sample(source)
    if source == "prediction":
        ann.seed_frame, ann.seed_digest = 3, "abc123"
    path = tmp_path / "v_000000007.json"
    write_frame(path, ann)
    back = read_frame(path)
    assert as_tuple(back) == as_tuple(ann)
    assert back.instances[0].polygon.dtype == float


def test_round_trip_defaults_and_group_id_from_index(tmp_path: Path) -> None:
    ann = FrameAnnotation(0, 10, 10, [Instance("a", [Keypoint("p", 1, 2)]), Instance("b", [Keypoint("p", 3, 4)])])
    path = tmp_path / "f.json"
    write_frame(path, ann)
    data = json.loads(path.read_text())
    assert list(data)[:7] == ["version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"]
    assert data["version"] == "5.5.0" and data["flags"] == {} and data["imagePath"] == ""
    assert "dinotrack" not in data
    assert [s["group_id"] for s in data["shapes"]] == [0, 1]
    assert data["shapes"][0] == {
        "label": "p",
        "points": [[1.0, 2.0]],
        "group_id": 0,
        "shape_type": "point",
        "flags": {},
        "description": "",
        "instance_label": "a",
        "visible": True,
        "score": 1.0,
    }
    back = read_frame(path, frame=0)
    assert back.extra == {}
    assert [i.group_id for i in back.instances] == [0, 1]
    assert [i.name for i in back.instances] == ["a", "b"]


def test_instance_order_kept_with_and_without_polygon(tmp_path: Path) -> None:
    ann = FrameAnnotation(
        0,
        100,
        100,
        [
            Instance("plain", [Keypoint("p", 80, 80)]),
            Instance("outlined", [Keypoint("p", 10, 10)], polygon=SQUARE.copy()),
        ],
    )
    write_frame(tmp_path / "f.json", ann)
    back = read_frame(tmp_path / "f.json", 0)
    assert [i.name for i in back.instances] == ["plain", "outlined"]


def test_deterministic_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_frame(a, sample("prediction"))
    write_frame(b, sample("prediction"))
    assert a.read_bytes() == b.read_bytes()
    # re-writing what was read gives the same bytes again
    write_frame(b, read_frame(a, 7))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().startswith('{\n  "version"')


def test_writer_rejects_bad_models(tmp_path: Path) -> None:
    dup = FrameAnnotation(0, 10, 10, [Instance("a", [Keypoint("p", 1, 2), Keypoint("p", 2, 2)])])
    nan = FrameAnnotation(0, 10, 10, [Instance("a", [Keypoint("p", float("nan"), 2)])])
    for ann in (dup, nan):
        with pytest.raises(ValueError):
            write_frame(tmp_path / "f.json", ann)
    assert not (tmp_path / "f.json").exists()


# --------------------------------------------------------------------- Annolid-style input
def test_link_by_instance_label_in_flags_and_display_label(tmp_path: Path) -> None:
    path = labelme_file(
        tmp_path / "v_000000012.json",
        [
            point("m1_nose", 5, 5, display_label="nose", flags={"instance_label": "mouse1"}),
            point("tail", 6, 6, instance_label="mouse2", velocity=[0.1, 0.2], quality=0.75, description="Cutie+DINO"),
            point("mouse1:ear", 7, 7, flags={"instance_label": "mouse1", "occluded": True}),
        ],
    )
    ann = read_frame(path)
    assert ann.frame == 12
    assert ann.source == "manual"
    assert [i.name for i in ann.instances] == ["mouse1", "mouse2"]
    m1, m2 = ann.instances
    assert [k.name for k in m1.keypoints] == ["nose", "mouse1:ear"]
    assert m1.keypoints[1].extra == {"flags": {"occluded": True}}
    assert m2.keypoints[0].score == 0.75
    assert m2.keypoints[0].extra == {"velocity": [0.1, 0.2], "description": "Cutie+DINO"}
    assert ann.extra == {"version": "5.4.1", "imagePath": "x.png"}


def test_link_by_group_id_and_by_containing_polygon(tmp_path: Path) -> None:
    far = SQUARE + 100
    path = labelme_file(
        tmp_path / "f_000000000.json",
        [
            polygon("mouseA", SQUARE, group_id=1),
            polygon("outline", far, flags={"instance_label": "mouseB"}),
            point("nose", 200, 200, group_id=1),  # group_id shared with mouseA's polygon
            point("ear", 120, 120),  # inside mouseB's polygon
            point("tail", 300, 300, group_id=7),  # group_id without polygon
            point("paw", 301, 301, group_id=7),
            point("lost", 400, 400),  # no information at all
            point("other", 401, 401),
        ],
    )
    ann = read_frame(path)
    names = {i.name: [k.name for k in i.keypoints] for i in ann.instances}
    assert names == {"mouseA": ["nose"], "mouseB": ["ear"], "instance7": ["tail", "paw"], "animal": ["lost", "other"]}
    assert [i.name for i in ann.instances] == ["mouseA", "mouseB", "instance7", "animal"]
    assert ann.instance("mouseA").group_id == 1
    assert ann.instance("instance7").group_id == 7
    assert ann.instance("mouseB").polygon.shape == (4, 2)
    assert ann.instance("animal").group_id is None


def test_other_shapes_and_unknown_keys_survive_rewrite(tmp_path: Path) -> None:
    rect = {
        "label": "box",
        "points": [[1, 1], [5, 5]],
        "group_id": None,
        "shape_type": "rectangle",
        "flags": {},
        "mask": None,
    }
    path = labelme_file(
        tmp_path / "f_000000001.json",
        [
            rect,
            point("nose", 1, 2, mask=None, custom={"a": 1}),
        ],
        caption="c",
        otherData={"z": 1},
    )
    ann = read_frame(path)
    assert ann.other_shapes == [rect]
    out = tmp_path / "g_000000001.json"
    write_frame(out, ann)
    data = json.loads(out.read_text())
    assert data["caption"] == "c" and data["otherData"] == {"z": 1}
    assert data["version"] == "5.4.1" and data["imagePath"] == "x.png"
    assert data["shapes"][-1] == rect
    assert data["shapes"][0]["custom"] == {"a": 1} and data["shapes"][0]["mask"] is None
    ann.instances[0].group_id = 0  # group_id None is written as the instance index
    assert as_tuple(read_frame(out)) == as_tuple(ann)


def test_png_next_to_json_makes_it_manual(tmp_path: Path) -> None:
    path = tmp_path / "v_000000003.json"
    write_frame(path, sample("prediction"))
    assert frame_source(path) == "prediction"
    assert read_frame(path).source == "prediction"
    path.with_suffix(".png").write_bytes(b"png")
    assert frame_source(path) == "manual"
    ann = read_frame(path)
    assert ann.source == "manual" and ann.seed_frame is None


def test_prediction_marker_and_edited_prediction(tmp_path: Path) -> None:
    path = tmp_path / "v_000000003.json"
    ann = sample("prediction")
    ann.seed_frame, ann.seed_digest = 1, "d1"
    write_frame(path, ann)
    data = json.loads(path.read_text())
    assert data["dinotrack"]["source"] == "prediction"
    assert data["dinotrack"]["seed_frame"] == 1
    assert {s["description"] for s in data["shapes"][:-1]} == {"napari-dinotrack"}
    back = read_frame(path)
    assert (back.source, back.seed_frame, back.seed_digest) == ("prediction", 1, "d1")
    data["shapes"][1]["points"] = [[11.0, 20.5]]  # the user moved the nose in LabelMe
    path.write_text(json.dumps(data, indent=2))
    edited = read_frame(path)
    assert edited.source == "manual"
    assert edited.seed_frame is None and "dinotrack" not in edited.extra
    assert edited.instances[0].keypoints[0].x == 11.0


def test_key_reordering_keeps_prediction(tmp_path: Path) -> None:
    path = tmp_path / "v_000000003.json"
    write_frame(path, sample("prediction"))
    data = json.loads(path.read_text())
    data["shapes"] = [dict(sorted(s.items())) for s in data["shapes"]]
    path.write_text(json.dumps(data))
    assert frame_source(path) == "prediction"


# ----------------------------------------------------------------- never overwrite manual
def test_write_prediction_rules(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "vid.mp4")
    ann = sample("manual")
    assert write_prediction(layout, ann) is True  # forced to prediction
    path = layout.frame_json(7)
    assert frame_source(path) == "prediction"
    ann.instances[0].keypoints[0].x = 11.0
    assert write_prediction(layout, ann) is True  # our own prediction: replaced
    assert read_frame(path).instances[0].keypoints[0].x == 11.0

    write_manual(layout, sample())
    before = path.read_bytes()
    assert write_prediction(layout, sample("prediction")) is False
    assert path.read_bytes() == before
    assert manual_frames(layout) == [7]


def test_write_prediction_refuses_corrupt_file_and_png(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "vid.mp4")
    layout.ensure_folder()
    corrupt = layout.frame_json(7)
    corrupt.write_bytes(b'{"shapes": [')
    assert write_prediction(layout, sample("prediction")) is False
    assert corrupt.read_bytes() == b'{"shapes": ['

    ann = sample("prediction")
    ann.frame = 8
    layout.frame_png(8).write_bytes(b"png")
    assert write_prediction(layout, ann) is False
    assert not layout.frame_json(8).exists()


def test_write_manual_keeps_unknown_keys_and_other_shapes(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "vid.mp4")
    layout.ensure_folder()
    rect = {"label": "box", "points": [[1, 1], [5, 5]], "shape_type": "rectangle"}
    labelme_file(layout.frame_json(4), [rect, point("nose", 1, 1)], caption="keep me")
    new = FrameAnnotation(
        4, 100, 120, [Instance("animal", [Keypoint("nose", 3, 3)])], source="prediction", extra={"caption": "mine"}
    )
    path = write_manual(layout, new)
    back = read_frame(path)
    assert back.source == "manual"
    assert back.other_shapes == [rect]
    assert back.extra["caption"] == "mine"
    assert back.extra["imagePath"] == "x.png"
    assert back.instances[0].keypoints[0].x == 3.0


def test_write_manual_with_image_writes_png_pair(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "vid.mp4")
    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 0] = 255
    ann = FrameAnnotation(2, 10, 12, [Instance("a", [Keypoint("p", 1, 1)])])
    write_manual(layout, ann, image=image)
    assert layout.frame_png(2).read_bytes().startswith(b"\x89PNG")
    assert read_frame(layout.frame_json(2)).extra["imagePath"] == "vid_000000002.png"
    assert manual_frames(layout) == [2]


def test_write_manual_backs_up_corrupt_file(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "vid.mp4")
    layout.ensure_folder()
    layout.frame_json(1).write_text("not json")
    write_manual(layout, FrameAnnotation(1, 5, 5, [Instance("a", [Keypoint("p", 1, 1)])]))
    assert (layout.folder / "vid_000000001.json.bak").read_text() == "not json"
    assert read_frame(layout.frame_json(1)).source == "manual"


def test_load_annotations_and_manual_frames(tmp_path: Path) -> None:
    layout = ResultLayout(tmp_path / "vid.mp4")
    for frame in (0, 5, 9):
        ann = sample("prediction" if frame else "manual")
        ann.frame = frame
        (write_manual if frame == 0 else write_prediction)(layout, ann)
    loaded = load_annotations(layout)
    assert list(loaded) == [0, 5, 9]
    assert [a.source for a in loaded.values()] == ["manual", "prediction", "prediction"]
    assert list(load_annotations(layout, frames=[9, 3])) == [9]
    assert manual_frames(layout) == [0]
    layout.frame_json(5).write_text("{")
    with pytest.raises(AnnotationError, match=r"vid_000000005\.json"):
        load_annotations(layout)
    with pytest.raises(AnnotationError, match=r"vid_000000005\.json"):
        manual_frames(layout)


# ------------------------------------------------------------------------ malformed files
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"shapes": [], "imageWidth": 10}), "imageHeight"),
        (json.dumps({"shapes": [], "imageWidth": 10, "imageHeight": "a"}), "imageHeight"),
        (json.dumps({"shapes": [], "imageWidth": 0, "imageHeight": 10}), "imageWidth"),
        (json.dumps({"shapes": {}, "imageWidth": 10, "imageHeight": 10}), "shapes"),
        (
            json.dumps({"shapes": [point("nose", 1, 1) | {"points": []}], "imageWidth": 10, "imageHeight": 10}),
            "exactly one",
        ),
        (
            json.dumps({"shapes": [{"label": "nose", "shape_type": "point"}], "imageWidth": 10, "imageHeight": 10}),
            "no coordinates",
        ),
        (json.dumps({"shapes": [point("nose", "a", 1)], "imageWidth": 10, "imageHeight": 10}), "must be a number"),
        (
            '{"shapes": [{"label": "nose", "shape_type": "point", "points": [[NaN, 1]]}],'
            ' "imageWidth": 10, "imageHeight": 10}',
            "finite",
        ),
        (json.dumps({"shapes": [point("nose", 1, 1, visible="yes")], "imageWidth": 10, "imageHeight": 10}), "visible"),
        (
            json.dumps({"shapes": [point("nose", 1, 1, score=None, quality="x")], "imageWidth": 10, "imageHeight": 10}),
            "score",
        ),
        (json.dumps({"shapes": [point("nose", 1, 1, group_id=[1])], "imageWidth": 10, "imageHeight": 10}), "group_id"),
        (json.dumps({"shapes": [point("", 1, 1)], "imageWidth": 10, "imageHeight": 10}), "no label"),
        (json.dumps({"shapes": [polygon("m", SQUARE[:2])], "imageWidth": 10, "imageHeight": 10}), "at least 3"),
        (json.dumps({"shapes": [3], "imageWidth": 10, "imageHeight": 10}), "shape #0"),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad_000000001.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=expected) as info:
        read_frame(path)
    assert "bad_000000001.json" in str(info.value)
    assert info.value.path == path


def test_duplicate_keypoint_names_name_both(tmp_path: Path) -> None:
    path = labelme_file(
        tmp_path / "dup_000000001.json",
        [
            point("nose", 1, 1, group_id=1),
            point("ear", 2, 2, group_id=1),
            point("nose", 3, 3, group_id=1),
        ],
    )
    with pytest.raises(AnnotationError) as info:
        read_frame(path)
    msg = str(info.value)
    assert "dup_000000001.json" in msg and "'nose'" in msg
    assert "#0" in msg and "#2" in msg and "instance1" in msg
    # the same names in two instances are fine
    labelme_file(path, [point("nose", 1, 1, group_id=1), point("nose", 3, 3, group_id=2)])
    assert len(read_frame(path).instances) == 2


def test_frame_number_needed(tmp_path: Path) -> None:
    path = labelme_file(tmp_path / "noframe.json", [])
    with pytest.raises(AnnotationError, match="frame number"):
        read_frame(path)
    assert read_frame(path, frame=4).frame == 4


# --------------------------------------------------------------------------- atomic write
def test_failed_serialisation_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v_000000007.json"
    write_frame(path, sample())
    before = path.read_bytes()

    def boom(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("serialisation failed")

    monkeypatch.setattr(labelme.json, "dumps", boom)
    with pytest.raises(RuntimeError):
        write_frame(path, sample("prediction"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["v_000000007.json"]


def test_atomic_write_failure_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    os.chmod(path, 0o640)

    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]
    atomic_write_text(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f.txt"]


# ---------------------------------------------------------------------------- unsafe names

SEPARATORS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("sep", SEPARATORS)
@pytest.mark.parametrize("where", ["label", "display_label", "instance_label", "polygon"])
def test_names_with_line_breaks_are_refused(tmp_path: Path, sep: str, where: str) -> None:
    bad = f"nose{sep}tip"
    assert len(bad.splitlines()) == 2  # every separator str.splitlines knows
    if where == "polygon":
        shapes = [polygon(bad, SQUARE), point("nose", 10, 10)]
    elif where == "label":
        shapes = [point(bad, 10, 10)]
    else:
        shapes = [point("nose", 10, 10, **{where: bad})]
    path = labelme_file(tmp_path / "v_000000000.json", shapes)
    with pytest.raises(AnnotationError) as info:
        read_frame(path)
    assert "line break" in str(info.value) and path.name in str(info.value) and "shape #" in str(info.value)


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1", "-nose", "@SUM(A1)", "\tnose"])
@pytest.mark.parametrize("where", ["label", "instance_label"])
def test_names_that_spreadsheets_run_as_formulas_are_refused(tmp_path: Path, name: str, where: str) -> None:
    shapes = [point(name, 10, 10)] if where == "label" else [point("nose", 10, 10, instance_label=name)]
    path = labelme_file(tmp_path / "v_000000000.json", shapes)
    with pytest.raises(AnnotationError, match="formula"):
        read_frame(path)


def test_names_with_those_characters_inside_are_fine(tmp_path: Path) -> None:
    path = labelme_file(
        tmp_path / "v_000000000.json",
        [point("left-ear", 1, 2, instance_label="m=1@home"), point("a+b", 3, 4, instance_label="m=1@home")],
    )
    ann = read_frame(path)
    assert ann.keypoint_names() == [("m=1@home", "left-ear"), ("m=1@home", "a+b")]


@pytest.mark.parametrize("name", ["=cmd", "a\nb", "x\u2028y"])
def test_unsafe_names_are_not_written_either(tmp_path: Path, name: str) -> None:
    ann = FrameAnnotation(0, 10, 10, [Instance("mouse", [Keypoint(name, 1.0, 1.0)])])
    with pytest.raises(ValueError, match="keypoint"):
        write_frame(tmp_path / "v_000000000.json", ann)
    assert not (tmp_path / "v_000000000.json").exists()


def test_deeply_nested_json_is_an_annotation_error(tmp_path: Path) -> None:
    path = tmp_path / "v_000000000.json"
    path.write_text('{"shapes": [' + "[" * 200_000 + "]" * 200_000 + "]}")
    with pytest.raises(AnnotationError, match="nested too deeply"):
        read_frame(path)
    path.write_text('{"imageHeight": ' + "9" * 5000 + "}")
    with pytest.raises(AnnotationError, match=path.name):
        read_frame(path)
