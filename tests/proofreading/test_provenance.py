"""Predictions record the model that made them; another model's results are found."""

from __future__ import annotations

from napari_dinotrack.io.labelme import read_frame
from napari_dinotrack.proofreading.provenance import made_by_other_model


def test_predictions_of_another_model_or_size_are_found(layout, walking, write_folder):
    for t, ann in walking.items():
        if not ann.is_manual:
            ann.model, ann.short_side = ("pixel:16", 512) if t < 10 else ("dinov2-small", 512)
    write_folder(layout, walking)
    back = read_frame(layout.frame_json(3))
    assert (back.model, back.short_side, back.source) == ("pixel:16", 512, "prediction")
    assert read_frame(layout.frame_json(0)).model is None  # manual frames record nothing
    assert made_by_other_model(layout, "pixel:16", 512).frames == tuple(range(10, 20))
    other = made_by_other_model(layout, "pixel:16", 768)
    assert other.frames == tuple(range(1, 20))
    assert other.made_with == (("pixel:16", 512), ("dinov2-small", 512))
    assert "19 tracked frames (1–19) were made with pixel:16 at short side 512" in other.describe()


def test_older_predictions_without_a_record_are_not_flagged(layout, walking, write_folder):
    write_folder(layout, walking)
    assert "model" not in layout.frame_json(4).read_text()  # the marker is as before
    assert made_by_other_model(layout, "dinov3-vits16", 768) is None
