"""Pure converters between annotations and layer data: no viewer, no Qt."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.napari.convert import (
    FEATURE_COLUMNS,
    annotations_to_points,
    annotations_to_tracks,
    keypoint_order,
    labels_to_masks,
    masks_to_labels,
    parse_names,
    points_to_annotation,
    points_to_tracks,
    replace_frames,
)
from napari_dinotrack.napari.keypoint_edits import missing_names, name_added_points
from napari_dinotrack.napari.layer_styles import KeypointsStyle, TracksStyle, keypoints_layer_data
from napari_dinotrack.napari.live_labels import LiveLabels
from napari_dinotrack.synthetic import make_clip


@pytest.fixture(scope="module")
def clip():
    return make_clip(n_frames=6, height=96, width=128, n_instances=2)


@pytest.fixture
def annotations(clip):
    anns = {t: clip.annotation(t) for t in range(clip.n_frames)}
    for t in (1, 2):
        anns[t].source = "prediction"
    anns[2].instances[0].keypoints[0].visible = False
    return anns


def test_points_rows_are_t_y_x_with_features(annotations):
    data, feats = annotations_to_points(annotations)
    assert data.shape == (6 * 2 * 4, 3)
    assert list(feats.columns) == list(FEATURE_COLUMNS)
    first = annotations[0].instances[0].keypoints[0]
    np.testing.assert_allclose(data[0], [0, first.y, first.x])
    assert feats.loc[0, "keypoint"] == "nose" and feats.loc[0, "instance"] == "animal1"
    assert set(feats["source"]) == {"manual", "prediction"}
    assert not feats["visible"].to_numpy()[(data[:, 0] == 2) & (feats["keypoint"] == "nose").to_numpy()][0]


def test_round_trip_one_frame(annotations):
    data, feats = annotations_to_points(annotations)
    for t in (0, 2, 5):
        back = points_to_annotation(data, feats, t, 96, 128, template=annotations[t])
        assert back.source == "manual"
        assert back.frame == t and (back.image_height, back.image_width) == (96, 128)
        assert back.digest() == annotations[t].digest()  # names, positions, visibility, order


def test_round_trip_keeps_outlines_and_extras(clip):
    ann = clip.annotation(3, with_polygons=True)
    ann.extra["custom"] = 1
    data, feats = annotations_to_points({3: ann})
    data[0, 1:] += 5.0  # the user moved the nose
    back = points_to_annotation(data, feats, 3, 96, 128, template=ann)
    assert back.extra["custom"] == 1
    np.testing.assert_allclose(back.instances[0].polygon, ann.instances[0].polygon)
    nose = back.instances[0].keypoint("nose")
    assert (nose.x, nose.y) == pytest.approx((ann.instances[0].keypoints[0].x + 5, ann.instances[0].keypoints[0].y + 5))


def test_points_without_features_get_default_names():
    data = np.array([[4, 10.0, 20.0], [4, 30.0, 40.0], [5, 1.0, 1.0]])
    ann = points_to_annotation(data, None, 4, 50, 60, default_instance="mouse")
    assert [i.name for i in ann.instances] == ["mouse"]
    assert [(k.name, k.x, k.y) for k in ann.instances[0].keypoints] == [("point1", 20.0, 10.0), ("point2", 40.0, 30.0)]


def test_duplicate_names_are_made_unique():
    data = np.array([[0, 1.0, 1.0], [0, 2.0, 2.0]])
    feats = pd.DataFrame({"instance": ["a", "a"], "keypoint": ["nose", "nose"], "visible": [True, True]})
    names = [k.name for k in points_to_annotation(data, feats, 0, 10, 10).instances[0].keypoints]
    assert names == ["nose", "nose_2"]


def test_empty_inputs():
    data, feats = annotations_to_points({})
    assert data.shape == (0, 3) and list(feats.columns) == list(FEATURE_COLUMNS)
    ann = points_to_annotation(np.zeros((0, 3)), feats, 0, 10, 10)
    assert ann.instances == []
    tracks, tfeats = annotations_to_tracks({})
    assert tracks.shape == (0, 4) and len(tfeats["keypoint"]) == 0


def test_tracks_one_per_keypoint_hidden_left_out(annotations):
    tracks, feats = annotations_to_tracks(annotations)
    assert tracks.shape == (6 * 8 - 1, 4)
    assert len(np.unique(tracks[:, 0])) == 8
    for tid in np.unique(tracks[:, 0]):  # sorted by time within each track
        assert np.all(np.diff(tracks[tracks[:, 0] == tid, 1]) > 0)
    nose = tracks[(feats["instance"] == "animal1") & (feats["keypoint"] == "nose")]
    assert 2 not in nose[:, 1]
    all_tracks, _ = annotations_to_tracks(annotations, visible_only=False)
    assert len(all_tracks) == 6 * 8
    # the same from layer data
    data, pfeats = annotations_to_points(annotations)
    from_points, _ = points_to_tracks(data, pfeats)
    np.testing.assert_allclose(from_points, tracks)


def test_style_colours_by_name_and_hollow_when_hidden(annotations):
    style = KeypointsStyle(keypoint_names=["nose", "leftear", "rightear", "tail_base"])
    annotations[3].instances[1].keypoints[2].score = 0.1  # a doubtful prediction... on a manual frame
    annotations[1].instances[1].keypoints[2].score = 0.1  # ...and on a predicted one
    _, feats = annotations_to_points(annotations)
    face, border = style.colors(feats)
    assert face.shape == border.shape == (len(feats), 4)
    names = feats["keypoint"].to_numpy()
    predicted = (feats["source"] == "prediction").to_numpy()
    nose = (names == "nose") & predicted
    assert np.allclose(border[nose], border[nose][0]) and np.allclose(face[nose & feats["visible"]], border[nose][0])
    assert not np.allclose(border[nose][0], border[(names == "leftear") & predicted][0])
    assert np.allclose(border[~predicted], 1.0)  # manual points: white border around their colour
    hidden = ~feats["visible"].to_numpy()
    assert hidden.sum() == 1 and face[hidden, 3] == 0 and border[hidden, 3] == 1
    low = (feats["score"] < 0.5).to_numpy() & predicted
    assert low.sum() == 1 and 0 < face[low, 3] < 1
    symbols = style.symbols(feats)
    assert set(symbols[~predicted]) == {"diamond"} and list(symbols[low]) == ["x"]
    assert set(symbols[predicted & ~low]) == {"disc"}
    kwargs = style.as_kwargs(feats)
    assert kwargs["text"]["string"] == "{instance}:{keypoint}" and kwargs["face_color"].shape == (len(feats), 4)
    assert TracksStyle(tail_length=7).as_kwargs()["tail_length"] == 7


def test_colour_by_animal_keeps_each_name_its_colour(annotations):
    style = KeypointsStyle(keypoint_names=["nose", "leftear", "rightear", "tail_base"], colour_by="instance")
    _, feats = annotations_to_points(annotations)
    _, border = style.colors(feats[feats["source"] == "prediction"].reset_index(drop=True))
    inst = feats.loc[feats["source"] == "prediction", "instance"].to_numpy()
    assert np.allclose(border[inst == "animal1"], border[inst == "animal1"][0])
    assert not np.allclose(border[inst == "animal1"][0], border[inst == "animal2"][0])
    first = style.colour_index(["animal2", "animal1"], ["nose", "nose"])
    assert list(style.colour_index(["animal1", "animal2"], ["x", "y"])) == list(first[::-1])  # stable colours
    values, colormap = style.track_colours(["animal1", "animal2"], ["nose", "nose"])
    np.testing.assert_allclose(colormap.map(values), [border[inst == "animal1"][0], border[inst == "animal2"][0]])


def test_layer_data_tuple_and_keypoint_order(annotations):
    data, kwargs, kind = keypoints_layer_data(annotations, "mouse keypoints", {"dinotrack": {"x": 1}})
    assert kind == "points" and kwargs["name"] == "mouse keypoints" and kwargs["ndim"] == 3
    assert len(kwargs["features"]) == len(data)
    assert keypoint_order(annotations) == ["nose", "leftear", "rightear", "tail_base"]


def test_parse_names():
    assert parse_names(" nose, leftear ;rightear  tail_base,nose,, ") == ["nose", "leftear", "rightear", "tail_base"]


def test_masks_to_labels_first_instance_wins():
    masks = np.zeros((2, 4, 5), bool)
    masks[0, :2] = True
    masks[1, 1:] = True
    labels = masks_to_labels(masks, 4, 5, [3, 7])
    assert labels[0, 0] == 3 and labels[1, 0] == 3 and labels[3, 0] == 7
    assert masks_to_labels(None, 4, 5).sum() == 0


def test_labels_to_masks_inverts_masks_to_labels():
    masks = np.zeros((2, 4, 5), bool)
    masks[0, :2] = True
    masks[1, 2:] = True
    stack, names = labels_to_masks(masks_to_labels(masks, 4, 5, [3, 7]), {3: "a"})
    assert names == ["a", "instance7"]
    np.testing.assert_array_equal(stack, masks)
    empty, none = labels_to_masks(np.zeros((4, 5), np.uint16), {})
    assert empty.shape == (0, 4, 5) and none == []


def test_replace_frames_keeps_other_frames(annotations):
    data, feats = annotations_to_points(annotations)
    fresh = annotations[2]
    fresh.instances[0].keypoints[0].x += 10.0
    new_data, new_feats = replace_frames(data, feats, [fresh])
    assert new_data.shape == data.shape and list(new_feats.columns) == list(FEATURE_COLUMNS)
    assert list(new_data[:, 0]).count(2) == list(data[:, 0]).count(2)
    assert new_data[-8:, 0].tolist() == [2] * 8  # the replaced frame comes last
    np.testing.assert_allclose(new_data[:-8], data[data[:, 0] != 2])
    assert new_data[-8, 2] == pytest.approx(fresh.instances[0].keypoints[0].x)


def test_added_points_take_the_next_missing_name():
    data = np.array([[0, 1.0, 1.0], [0, 2.0, 2.0], [1, 3.0, 3.0]])
    feats = pd.DataFrame({"instance": ["a", "a", "a"], "keypoint": ["nose", "nose", "nose"]})
    names = ["nose", "ear", "tail"]
    assert missing_names(data, feats, 0, "a", names) == ["ear", "tail"]
    assert name_added_points(data, feats, [1], names)
    assert list(feats["keypoint"]) == ["nose", "ear", "nose"]  # frame 1 has its own names
    assert missing_names(data, feats, 0, "a", names) == ["tail"]
    assert not name_added_points(data, feats, [], names)


def test_live_labels_serves_memory_then_base():
    base = np.arange(5)[:, None, None] * np.ones((1, 3, 4), np.uint16)
    live = LiveLabels(5, 3, 4, base=base, max_frames=2)
    live.update(1, np.full((3, 4), 9))
    assert live[1].max() == 9 and live[2].max() == 2 and live[-1].max() == 4
    assert live[0:3, 1, :2].shape == (3, 2)
    live.update(2, np.full((3, 4), 8))
    live.update(3, np.full((3, 4), 7))
    assert live.frames_in_memory() == [2, 3] and live[1].max() == 1  # evicted -> from base
    assert LiveLabels(2, 3, 4)[0].sum() == 0


def test_manual_annotation_model_is_what_engine_expects():
    ann = FrameAnnotation(0, 10, 10, [Instance("a", [Keypoint("nose", 1, 2)])])
    data, feats = annotations_to_points({0: ann})
    assert points_to_annotation(data, feats, 0, 10, 10).instances[0].keypoints[0].name == "nose"


def test_live_labels_can_be_painted_pointwise_like_napari():
    live = LiveLabels(4, 5, 6, base=np.zeros((4, 5, 6), np.uint16))
    t, y, x = np.array([1, 1, 2]), np.array([0, 4, 2]), np.array([0, 5, 3])
    live[t, y, x] = 3
    assert live[t, y, x].tolist() == [3, 3, 3]
    assert live.edited_frames() == [1, 2] and live[1].sum() == 6
    live.update(1, np.full((5, 6), 9))  # tracking never overwrites the user's paint
    assert live[1].max() == 3
    live[3] = np.ones((5, 6))
    live[0:2, 0, 0] = 7
    assert live[3].sum() == 30 and live[0, 0, 0] == 7 and live[1, 0, 0] == 7
    live.clear_edited([1])  # saved: no longer an edit, still shown
    assert live.edited_frames() == [0, 2, 3] and live[1].max() == 7 and live.base[1].max() == 7


def test_rows_update_appends_new_frames_and_changes_known_ones_in_place(annotations):
    from napari_dinotrack.napari.convert import plan_rows_update

    data, feats = annotations_to_points({t: annotations[t] for t in (0, 1, 2)})
    moved = annotations[1]
    moved.instances[0].keypoints[0].x += 5.0
    update = plan_rows_update(data, feats, [moved, annotations[3], annotations[4]])
    assert not update.full and len(update.changed) == 8 and len(update.added_data) == 16
    assert set(np.round(data[update.changed, 0])) == {1}  # the rows of frame 1, found in place
    assert update.changed_data[0, 2] == pytest.approx(data[update.changed[0], 2] + 5.0)
    assert list(update.added_features.columns) == list(FEATURE_COLUMNS)
    # a frame whose keypoints changed (one animal fewer) needs the whole layer replaced
    fewer = annotations[2]
    fewer.instances = fewer.instances[:1]
    full = plan_rows_update(data, feats, [fewer])
    assert full.full and len(full.full_data) == len(data) - 4
    assert plan_rows_update(data, feats, []).is_empty


def test_score_plot_columns_keep_dips_and_spikes():
    from napari_dinotrack.napari.score_plot import frame_at, per_column

    assert frame_at(0, 101, 0, 200) == 0 and frame_at(100, 101, 0, 200) == 200 and frame_at(50, 101, 0, 200) == 100
    frames = np.arange(1000)
    score = np.full(1000, 0.9)
    score[501] = 0.1
    xs, ys = per_column(frames, score, 0, 999, 100)
    assert len(xs) == 100 and ys.min() == pytest.approx(0.1)  # the dip survives the reduction
    speed = np.full(1000, np.nan)
    speed[10] = 3.0
    xs, ys = per_column(frames, speed, 0, 999, 100, np.fmax)
    assert list(ys) == [3.0] and list(xs) == [1.0]
