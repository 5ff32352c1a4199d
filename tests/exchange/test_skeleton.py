"""Skeleton edges: typed text, files, storage in the result folder."""

from __future__ import annotations

import pytest

from napari_dinotrack.errors import InputError
from napari_dinotrack.exchange.skeleton import (
    check_edges,
    format_edges,
    parse_edges,
    read_skeleton,
    read_skeleton_file,
    write_skeleton,
)
from napari_dinotrack.io.paths import ResultLayout


def test_typed_edges_in_order_without_repeats():
    edges = parse_edges("nose-leftear, nose-rightear; leftear-nose\nnose->tail_base")
    assert edges == [("nose", "leftear"), ("nose", "rightear"), ("nose", "tail_base")]
    assert parse_edges(format_edges(edges)) == edges


def test_names_with_dashes_are_resolved_by_the_known_keypoints():
    assert parse_edges("left-ear-nose", known=["left-ear", "nose"]) == [("left-ear", "nose")]
    with pytest.raises(InputError, match="cannot read 'left-ear-nose' as one edge"):
        parse_edges("left-ear-nose")


@pytest.mark.parametrize("text", ["nose", "nose-nose"])
def test_bad_edges_are_refused(text):
    with pytest.raises(InputError):
        parse_edges(text)


def test_stored_in_the_result_folder(tmp_path):
    layout = ResultLayout(tmp_path / "mouse.mp4")
    assert read_skeleton(layout) == []
    path = write_skeleton(layout, [("nose", "tail_base")])
    assert path == tmp_path / "mouse" / "mouse_skeleton.json"
    assert read_skeleton(layout) == [("nose", "tail_base")]


def test_skeleton_files_json_or_text(tmp_path):
    (tmp_path / "a.json").write_text('[["nose", "leftear"]]')
    (tmp_path / "b.txt").write_text("nose-leftear\n")
    (tmp_path / "c.json").write_text('{"edges": 3}')
    assert read_skeleton_file(tmp_path / "a.json") == read_skeleton_file(tmp_path / "b.txt") == [("nose", "leftear")]
    with pytest.raises(InputError, match=r"c\.json"):
        read_skeleton_file(tmp_path / "c.json")


def test_unknown_names_are_named():
    with pytest.raises(InputError, match="tail") as info:
        check_edges([("nose", "tail")], ["nose", "tail_base"], "my.json")
    assert "my.json" in str(info.value)
