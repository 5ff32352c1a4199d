from __future__ import annotations

from pathlib import Path

import pytest

from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.io.tables import (
    COLUMNS,
    TracksCsvAppender,
    read_tracks_csv,
    rows_for,
    write_tracks_csv,
)


def _frame(frame: int, dx: float = 0.0) -> FrameAnnotation:
    return FrameAnnotation(
        frame=frame,
        image_height=100,
        image_width=200,
        instances=[
            Instance(
                "mouse",
                [Keypoint("nose", 10.12345 + dx, 20.5, True, 0.98765), Keypoint("tail", 30.0, 40.0, False, 0.1)],
            ),
            Instance("rat", [Keypoint("nose", 1.0, 2.0)]),
        ],
    )


def test_rows_for_formats_cells() -> None:
    rows = rows_for(_frame(3))
    assert rows == [
        (3, "mouse", "nose", "10.123", "20.500", 1, "0.9877"),
        (3, "mouse", "tail", "", "", 0, "0.1000"),
        (3, "rat", "nose", "1.000", "2.000", 1, "1.0000"),
    ]


def test_write_and_read_sorted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_tracks_csv(path, [_frame(5), _frame(1, dx=1.0)])
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[1] == "1,mouse,nose,11.123,20.500,1,0.9877"
    assert lines[2] == "1,mouse,tail,,,0,0.1000"
    assert lines[4].startswith("5,mouse,nose,")
    assert list(tmp_path.iterdir()) == [path]
    rows = read_tracks_csv(path)
    assert len(rows) == 6
    assert rows[1] == {
        "frame": 1,
        "instance": "mouse",
        "keypoint": "tail",
        "x": None,
        "y": None,
        "visible": False,
        "score": 0.1,
    }
    assert rows[0]["x"] == pytest.approx(11.123)


def test_truncated_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_tracks_csv(path, [_frame(0)])
    with open(path, "a") as fh:
        fh.write("1,mouse,no")
    rows = read_tracks_csv(path)
    assert [r["frame"] for r in rows] == [0, 0, 0]
    path.write_text("fra")
    assert read_tracks_csv(path) == []


def test_bad_header_and_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"t\.csv"):
        read_tracks_csv(path)
    path.write_text(",".join(COLUMNS) + "\n1,a,b,1,2\n")
    with pytest.raises(ValueError, match="line 2"):
        read_tracks_csv(path)


def test_appender_header_once_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.csv"
    with TracksCsvAppender(path) as app:
        app.append(_frame(0))
        # flushed: visible to a reader while still open
        assert len(read_tracks_csv(path)) == 3
    with TracksCsvAppender(path) as app:
        app.append(_frame(1))
    assert app.closed
    text = path.read_text()
    assert text.count("frame,instance") == 1
    assert [r["frame"] for r in read_tracks_csv(path)] == [0, 0, 0, 1, 1, 1]


def test_appender_empty_file_gets_header_and_repairs_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("")
    with TracksCsvAppender(path) as app:
        app.append(_frame(0))
    with open(path, "a") as fh:
        fh.write("1,mouse,nose,1")  # crash mid-write
    with TracksCsvAppender(path) as app:
        app.append(_frame(1))
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 7
    assert [r["frame"] for r in read_tracks_csv(path)] == [0, 0, 0, 1, 1, 1]


def test_appender_refuses_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("something,else\n")
    with pytest.raises(ValueError, match=r"t\.csv"):
        TracksCsvAppender(path)
    assert path.read_text() == "something,else\n"


def test_names_from_code_cannot_become_formulas_or_broken_rows(tmp_path: Path) -> None:
    ann = FrameAnnotation(
        frame=2,
        image_height=10,
        image_width=10,
        instances=[
            Instance(
                "=cmd|' /C calc'!A0",
                [
                    Keypoint("@SUM(1)", 1.0, 2.0),
                    Keypoint("tail\nbase", 3.0, 4.0),
                    Keypoint("left\u2028ear", 5.0, 6.0),
                    Keypoint("-1", 7.0, 8.0),
                ],
            )
        ],
    )
    path = tmp_path / "t.csv"
    write_tracks_csv(path, [ann])
    lines = path.read_text().split("\n")
    assert len(lines) == 1 + 4 + 1 and lines[-1] == ""  # one line per row, nothing split
    rows = read_tracks_csv(path)
    assert [r["instance"] for r in rows] == ["'=cmd|' /C calc'!A0"] * 4
    assert [r["keypoint"] for r in rows] == ["'@SUM(1)", "tail base", "left ear", "'-1"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in lines[1:-1] for cell in line.split(",")[1:3])


@pytest.mark.parametrize(
    "text",
    [
        "frame,instance\n1,a\n",
        ",".join(COLUMNS) + "\nx,a,b,1,2,1,0.5\n",
        ",".join(COLUMNS) + "\n-1,a,b,1,2,1,0.5\n",
        ",".join(COLUMNS) + "\n1,a,b,nan,2,1,0.5\n",
        ",".join(COLUMNS) + "\n1,a,b,1,2,yes,0.5\n",
        ",".join(COLUMNS) + "\n1,a,b,1,2,1\n",
        ",".join(COLUMNS) + '\n1,"a,b,1,2,1,0.5\n',
        "\xff\xfe".encode("latin-1").decode("latin-1"),
    ],
)
def test_malformed_tables_are_input_errors_naming_the_file(tmp_path: Path, text: str) -> None:
    from napari_dinotrack.errors import InputError

    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    with pytest.raises(InputError, match=r"t\.csv"):
        read_tracks_csv(path)
