"""The scenario generator: an exit scene leaves the frame and comes back, whatever the animal is doing then."""

import numpy as np
import pytest

from napari_dinotrack.synthetic.scenes import make_scene


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


@pytest.mark.parametrize("seed", [614, 3])
def test_exit_scene_leaves_the_frame_and_comes_back(seed):
    # seed 614 starts its exit window in the middle of a U-turn, which once stopped the generator
    scene = make_scene("exit", seed)
    in_view = scene.visible[:, 0].any(axis=-1)
    assert in_view[0] and in_view[-1], "the animal starts and ends in view"
    assert _longest_run(~in_view) >= 5, "the animal is out of view for a stretch of frames"


def test_exit_scene_generates_when_every_frame_starts_a_u_turn():
    n_frames = 60
    scene = make_scene("exit", 1, n_frames=n_frames, u_turns=n_frames - 20, size=(192, 256), length_px=40.0)
    assert scene.frames.shape == (n_frames, 192, 256, 3)
    assert np.isfinite(scene.xy).all()
