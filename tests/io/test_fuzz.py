"""Fuzzing the readers of files users hand us: a valid result or the project's own error, nothing else.

Budgets are fixed (300 examples per reader, derandomized) so the run is the same everywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from napari_dinotrack.errors import UserError
from napari_dinotrack.io.labelme import frame_to_json, read_frame
from napari_dinotrack.io.tables import COLUMNS, read_tracks_csv
from napari_dinotrack.schema import SettingInfo, describe, load_settings_file
from napari_dinotrack.tracking.config import TrackerConfig

BUDGET = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

names = st.one_of(
    st.sampled_from(
        [
            "nose",
            "leftear",
            "mouse1",
            "animal",
            "",
            "=1+1",
            "-x",
            "@a",
            "a\nb",
            "a\u2028b",
            "instance1",
            "nose\r",
            "\x85",
            "left-ear",
        ]
    ),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e308, -1e308, 10**30]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, names)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)),
    max_leaves=12,
)
coords = st.one_of(st.lists(numbers, min_size=2, max_size=2), st.lists(numbers, max_size=3), json_values)
shape = st.fixed_dictionaries(
    {
        "label": st.one_of(names, json_values),
        "shape_type": st.one_of(
            st.sampled_from(["point", "polygon", "rectangle", "circle", "line", "Point", "mask"]), scalars
        ),
    },
    optional={
        "points": st.one_of(st.lists(coords, max_size=5), json_values),
        "group_id": st.one_of(st.integers(-3, 3), st.sampled_from(["1", " 2", "x", ""]), scalars),
        "instance_label": st.one_of(names, scalars),
        "display_label": st.one_of(names, scalars),
        "flags": st.one_of(st.dictionaries(st.sampled_from(["instance_label", "k"]), scalars), json_values),
        "visible": scalars,
        "score": scalars,
        "quality": scalars,
        "description": scalars,
    },
)
labelme_data = st.fixed_dictionaries(
    {"shapes": st.one_of(st.lists(shape, max_size=6), json_values)},
    optional={
        "imageHeight": st.one_of(st.integers(-2, 5000), numbers, scalars),
        "imageWidth": st.one_of(st.integers(-2, 5000), numbers, scalars),
        "version": scalars,
        "flags": json_values,
        "imagePath": scalars,
        "imageData": scalars,
        "dinotrack": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"source": st.sampled_from(["prediction", "manual"]), "content_digest": st.text(max_size=4)},
                optional={"seed_frame": scalars, "seed_digest": scalars},
            ),
        ),
        "extra_key": json_values,
    },
)
# mostly well-formed files with a few fields gone wrong: they reach the deeper rules
good_names = st.one_of(
    st.sampled_from(["nose", "leftear", "rightear", "tail_base", "mouse1", "m=1", "left-ear"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
)
finite = st.floats(-1e4, 1e4, allow_nan=False)
point_ok = st.fixed_dictionaries(
    {
        "label": good_names,
        "points": st.tuples(finite, finite).map(lambda xy: [list(xy)]),
        "shape_type": st.just("point"),
    },
    optional={
        "group_id": st.one_of(st.none(), st.integers(0, 3)),
        "instance_label": good_names,
        "visible": st.booleans(),
        "score": st.floats(0, 1),
        "flags": st.just({}),
    },
)
polygon_ok = st.fixed_dictionaries(
    {
        "label": good_names,
        "points": st.lists(st.tuples(finite, finite).map(list), min_size=3, max_size=6),
        "shape_type": st.just("polygon"),
    },
    optional={"group_id": st.one_of(st.none(), st.integers(0, 3)), "instance_label": good_names},
)
mostly_good = st.fixed_dictionaries(
    {
        "imageHeight": st.integers(1, 4000),
        "imageWidth": st.integers(1, 4000),
        "shapes": st.lists(st.one_of(point_ok, point_ok, point_ok, polygon_ok, shape), max_size=8),
    },
    optional={"version": st.just("5.5.0"), "extra_key": json_values},
)
file_bytes = st.one_of(
    *[mostly_good.map(lambda d: json.dumps(d).encode())] * 3,
    labelme_data.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
)


@BUDGET
@given(data=file_bytes)
def test_labelme_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "video_000000003.json"
    path.write_bytes(data)
    try:
        ann = read_frame(path)
    except UserError:
        event("refused with a UserError")
        return
    event(f"read, {len(ann.keypoint_names())} keypoints" if ann.keypoint_names() else "read, no keypoints")
    # a valid result: it can be written back and reads back the same
    assert ann.frame == 3 and ann.image_height > 0 and ann.image_width > 0
    again = tmp_path / "again_000000003.json"
    again.write_text(frame_to_json(ann), encoding="utf-8")
    back = read_frame(again)
    assert back.keypoint_names() == ann.keypoint_names()
    for a, b in zip(ann.instances, back.instances, strict=True):
        for ka, kb in zip(a.keypoints, b.keypoints, strict=True):
            assert math.isfinite(ka.x) and abs(ka.x - kb.x) <= 5e-4 and abs(ka.y - kb.y) <= 5e-4
            assert ka.visible == kb.visible


cells = st.one_of(
    st.sampled_from(["", "0", "1", "12", "-1", "nan", "inf", "1e400", "3.5", "x", '"', '"a,b"', "\r"]),
    st.text(max_size=6),
)
good_row = st.tuples(
    st.integers(0, 10**6),
    good_names,
    good_names,
    st.one_of(st.just(""), finite.map(str)),
    st.one_of(st.just(""), finite.map(str)),
    st.sampled_from(["0", "1"]),
    st.one_of(st.just(""), st.floats(0, 1).map(str)),
).map(
    lambda r: ",".join(
        '"' + c.replace('"', '""') + '"' if isinstance(c, str) and ("," in c or '"' in c) else str(c) for c in r
    )
)
rows = st.lists(st.one_of(good_row, good_row, good_row, st.lists(cells, max_size=9).map(",".join)), max_size=8)
tables = st.one_of(
    rows.map(lambda lines: "\n".join([",".join(COLUMNS), *lines]) + "\n"),
    rows.map(lambda lines: "\n".join([",".join(COLUMNS), *lines])),
    rows.map("\r\n".join),
    st.text(max_size=300),
)


@BUDGET
@given(text=tables, raw=st.one_of(st.none(), st.binary(max_size=100)))
def test_tracks_table_reader(tmp_path: Path, text: str, raw: bytes | None) -> None:
    path = tmp_path / "video_tracks.csv"
    path.write_bytes(raw if raw is not None else text.encode("utf-8", "surrogatepass"))
    try:
        got = read_tracks_csv(path)
    except UserError:
        event("refused with a UserError")
        return
    event(f"read, {'no' if not got else 'some'} rows")
    for row in got:
        assert list(row) == list(COLUMNS)
        assert isinstance(row["frame"], int) and row["frame"] >= 0
        assert isinstance(row["visible"], bool)
        for key in ("x", "y", "score"):
            assert row[key] is None or (isinstance(row[key], float) and math.isfinite(row[key]))


def in_range(info: SettingInfo) -> st.SearchStrategy:
    if info.choices:
        value = st.sampled_from(info.choices)
    elif info.kind is bool:
        value = st.booleans()
    elif info.kind is int:
        value = st.integers(int(info.lo), int(info.hi))
    else:
        value = st.floats(info.lo, info.hi)
    return st.one_of(value, st.none()) if info.optional else value


known = st.sampled_from(list(TrackerConfig.model_fields))
plausible = st.one_of(st.booleans(), st.integers(-5, 300), st.floats(-2, 200), st.sampled_from(["dino", "none"]))
valid_values = st.fixed_dictionaries({}, optional={f.name: in_range(f) for f in describe(TrackerConfig)})
settings_data = st.one_of(
    *[valid_values] * 3,
    st.dictionaries(known, plausible, max_size=4),
    st.dictionaries(st.one_of(known, names), st.one_of(scalars, json_values), max_size=5),
    json_values,
)
settings_bytes = st.one_of(
    settings_data.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=100),
    st.sampled_from(
        [b"[" * 50_000, b'{"batch_size": ' + b"9" * 5000 + b"}", b'{"min_similarity": NaN}', b"\xef\xbb\xbf{}"]
    ),
)


@BUDGET
@given(data=settings_bytes)
def test_settings_file_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(data)
    try:
        config = load_settings_file(TrackerConfig, path)
    except UserError as exc:
        assert "settings.json" in str(exc)
        event("refused with a UserError")
        return
    event("read")
    assert isinstance(config, TrackerConfig)
    assert TrackerConfig.from_dict(config.to_dict()) == config
