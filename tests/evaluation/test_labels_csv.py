"""Reading a labels CSV: what is accepted, and a named file and line for everything that is not."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dinotrack.errors import InputError
from napari_dinotrack.evaluation import read_labels_csv


def _write(tmp_path, text: str | bytes, name: str = "labels.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_reads_labels_hidden_points_and_ignores_extra_columns(tmp_path):
    path = _write(
        tmp_path,
        "\ufeffframe,instance,keypoint,x,y,visible,score\n"
        "3,mouse,snout,10.5,20,1,0.9\n"
        "3,mouse,tail,,,0,\n"
        "\n"
        "1,mouse,tail,30,40,1,1\n"
        "1,rat,snout,1,2,1,1\n",
    )
    tracks = read_labels_csv(path)
    assert tracks.frames.tolist() == [1, 3]
    assert tracks.keys == [("mouse", "snout"), ("mouse", "tail"), ("rat", "snout")]  # order of first appearance
    assert tracks.xy[1, 0].tolist() == [10.5, 20.0] and tracks.visible[1, 0]
    assert tracks.labelled[1, 1] and not tracks.visible[1, 1] and np.isnan(tracks.xy[1, 1]).all()  # labelled hidden
    assert not tracks.labelled[0, 0]  # frame 1 has no snout row
    assert tracks.visible[0, 1] and tracks.visible[0, 2]


def test_column_order_and_spaces_after_commas_do_not_matter(tmp_path):
    path = _write(tmp_path, "x, y, frame, keypoint, instance\n1, 2, 0, nose, m\n")
    tracks = read_labels_csv(path)
    assert tracks.keys == [("m", "nose")] and tracks.xy[0, 0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frame,instance,keypoint,x\n0,m,nose,1\n", r"line 1: missing column\(s\) y"),
        ("frame,instance,keypoint,x,y\n0,m,nose,1,2\n1,m,nose,abc,2\n", r"line 3: x 'abc' is not a number"),
        ("frame,instance,keypoint,x,y\n0,m,nose,nan,2\n", r"line 2: x 'nan' is not a finite number"),
        ("frame,instance,keypoint,x,y\n-1,m,nose,1,2\n", r"line 2: frame '-1' is negative"),
        ("frame,instance,keypoint,x,y\n1.5,m,nose,1,2\n", r"line 2: frame '1.5' is not a whole number"),
        ("frame,instance,keypoint,x,y\nfirst,m,nose,1,2\n", r"line 2: frame 'first' is not a number"),
        (
            "frame,instance,keypoint,x,y\n0,m,nose,1,2\n0,m,tail,1,2\n0,m,nose,3,4\n",
            r"line 4: frame 0, m/nose is labelled twice \(also on line 2\)",
        ),
        ("frame,instance,keypoint,x,y\n0,m,nose,1,\n", r"line 2: x is given but y is empty"),
        ("frame,instance,keypoint,x,y\n0,m,,1,2\n", r"line 2: the keypoint name is empty"),
        ("frame,instance,keypoint,x,y\n0,m,nose,1\n", r"line 2: 4 fields, but the header has 5"),
        ("frame,instance,keypoint,x,y,x\n0,m,nose,1,2,3\n", r"line 1: column 'x' appears 2 times"),
        ("", r"the file is empty"),
        ("frame,instance,keypoint,x,y\n", r"header but no label rows"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=expected) as info:
        read_labels_csv(path)
    assert str(path) in str(info.value)


def test_not_utf8_folder_and_missing_file(tmp_path):
    path = _write(tmp_path, "frame,instance,keypoint,x,y\n0,m,nose,1,2\n0,m,\xe9ar,1,2\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"labels.csv, line 3: not UTF-8"):
        read_labels_csv(path)
    with pytest.raises(InputError, match="is a folder"):
        read_labels_csv(tmp_path)
    with pytest.raises(InputError, match="no such labels file"):
        read_labels_csv(tmp_path / "missing.csv")


def test_labels_become_a_seed_annotation(tmp_path):
    path = _write(tmp_path, "frame,instance,keypoint,x,y\n0,m,nose,1,2\n0,m,tail,,\n0,r,nose,5,6\n")
    ann = read_labels_csv(path).annotation(0, height=100, width=120)
    assert [(i.name, [(k.name, k.x, k.y) for k in i.keypoints]) for i in ann.instances] == [
        ("m", [("nose", 1.0, 2.0)]),
        ("r", [("nose", 5.0, 6.0)]),
    ]
    assert ann.is_manual and (ann.image_height, ann.image_width) == (100, 120)
    with pytest.raises(InputError, match="frame 3 has no labels"):
        read_labels_csv(path).annotation(3, 100, 120)
