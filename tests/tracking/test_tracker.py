"""KeypointTracker on constructed feature maps whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.io.annotations import FrameAnnotation, Instance, Keypoint
from napari_dinotrack.io.names import left_right_pairs
from napari_dinotrack.tracking.config import TrackerConfig
from napari_dinotrack.tracking.keypoints.animals import Poses
from napari_dinotrack.tracking.keypoints.parts import keep_sides
from napari_dinotrack.tracking.keypoints.tracker import KeypointTracker

SIZE = 256  # native = working pixels (scale 1), 16 x 16 patches of 16 px
CHANNELS = 32
GEOMETRY = compute_geometry(SIZE, SIZE, SIZE, 16)


def feature_map(
    blobs: dict[int, tuple[float, float]] | list[tuple[int, tuple[float, float]]],
    sigma_px: float = 10.0,
    seed: int = 0,
    noise: float = 0.1,
) -> torch.Tensor:
    """(C, 16, 16) map: weak random background plus a Gaussian blob of channel ``c`` per entry.

    Feature cells are sampled at patch centres, so a blob between centres shows up as a mix of
    neighbouring cells — exactly what a real backbone gives for a part that is not centred.
    """
    gen = torch.Generator().manual_seed(seed)
    feats = noise * torch.randn(CHANNELS, 16, 16, generator=gen)
    feats[:8] = 0  # channels 0..7 are reserved for parts
    centres = (torch.arange(16, dtype=torch.float32) + 0.5) * 16
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    for channel, (x, y) in blobs.items() if isinstance(blobs, dict) else blobs:
        feats[channel] += 1.2 * torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2))
    return F.normalize(feats, dim=0)


def textured_map(shift: tuple[float, float], seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """(C, 16, 16) map of a smooth random texture translated by ``shift`` px (random Fourier features).

    Every spot looks different and similarity falls off smoothly with distance, like real
    backbone features of a textured animal; the texture is the same in every frame, only moved.
    """
    gen = torch.Generator().manual_seed(1234)
    freqs = torch.randn(CHANNELS, 6, 2, generator=gen) / 20.0  # wavelengths of about 2-8 patches
    phases = torch.rand(CHANNELS, 6, generator=gen) * 2 * torch.pi
    centres = (torch.arange(16, dtype=torch.float32) + 0.5) * 16
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    pts = torch.stack([xx - shift[0], yy - shift[1]], dim=-1)  # (16, 16, 2)
    feats = torch.cos(torch.einsum("hwd,cjd->cjhw", pts, freqs) + phases[:, :, None, None]).sum(1)
    feats += noise * torch.randn(CHANNELS, 16, 16, generator=torch.Generator().manual_seed(seed))
    return F.normalize(feats, dim=0)


def seed(
    points: dict[str, tuple[float, float]], visible: dict[str, bool] | None = None, instance: str = "mouse"
) -> FrameAnnotation:
    visible = visible or {}
    kps = [Keypoint(name, x, y, visible.get(name, True)) for name, (x, y) in points.items()]
    return FrameAnnotation(0, SIZE, SIZE, [Instance(instance, kps)], source="manual")


def make_tracker(**overrides) -> KeypointTracker:
    cfg = TrackerConfig(use_optical_flow=False, **overrides)
    return KeypointTracker(cfg, GEOMETRY)


def test_subpixel_positions_beat_patch_centres():
    rng = np.random.default_rng(1)
    errors, centre_errors = [], []
    for trial in range(6):
        start = rng.uniform(80, 176, size=2)
        move = rng.uniform(-9, 9, size=2)
        tracker = make_tracker()
        tracker.start(seed({"nose": tuple(start)}), textured_map((0.0, 0.0), seed=trial), None)
        out = tracker.step(textured_map(tuple(move), seed=trial + 10), None)
        end = start + move
        errors.append(np.linalg.norm(out.xy[0] - end))
        centre_errors.append(np.linalg.norm((np.floor(end / 16) + 0.5) * 16 - end))
        assert out.visible[0]
    assert np.mean(errors) < 2.0, errors
    assert np.mean(errors) < 0.5 * np.mean(centre_errors)


def test_seed_offset_inside_a_patch_is_kept():
    # the seed sits off its patch centre; a static scene must return exactly there, not to the centre
    start = (100.0 + 5.0, 120.0 - 4.0)
    tracker = make_tracker()
    tracker.start(seed({"nose": start}), textured_map((0.0, 0.0)), None)
    out = tracker.step(textured_map((0.0, 0.0), seed=3), None)
    assert np.linalg.norm(out.xy[0] - start) < 1.5


def test_motion_prior_prefers_the_candidate_near_the_prediction():
    tracker = make_tracker(motion_prior_weight=0.6, max_speed_px=190.0)
    tracker.start(seed({"nose": (60.0, 60.0)}), feature_map({0: (60.0, 60.0)}), None)
    # the same-looking blob now appears twice: just next to the old position and far away
    both = feature_map([(0, (68.0, 64.0)), (0, (190.0, 180.0))], seed=1)
    out = tracker.step(both, None)
    assert np.linalg.norm(out.xy[0] - (68.0, 64.0)) < 6  # the near copy, not the one 160 px away


def test_search_window_gates_implausible_jumps():
    tracker = make_tracker(max_speed_px=48.0, redetect_after=0)
    tracker.start(seed({"nose": (40.0, 40.0)}), feature_map({0: (40.0, 40.0)}), None)
    # the only good match is 250 px away, far beyond the fastest expected step: not accepted as the nose
    out = tracker.step(feature_map({0: (220.0, 220.0)}, seed=1), None)
    assert not out.visible[0]
    assert np.linalg.norm(out.xy[0] - (40.0, 40.0)) < 1.0


def test_left_right_pair_never_swaps_even_when_they_look_the_same():
    pair = {"leftear": (100.0, 100.0), "rightear": (140.0, 100.0)}

    def both_ears(xl: float, xr: float, noise: int) -> torch.Tensor:
        # one shared appearance channel for both ears: only geometry can tell them apart
        return feature_map([(1, (xl, 100.0)), (1, (xr, 100.0))], sigma_px=7.0, seed=noise)

    tracker = make_tracker(symmetry=True, motion_prior_weight=0.8)
    tracker.start(seed(pair), both_ears(100.0, 140.0, 0), None)
    # a fast step to the right: the left ear lands nearer to where the right ear was
    for t, shift in enumerate((25.0, 50.0, 75.0), start=1):
        out = tracker.step(both_ears(100.0 + shift, 140.0 + shift, t), None)
        left, right = out.xy[0], out.xy[1]
        assert out.visible.all()
        # each ear on its own blob (they are 40 px apart; the noisy map limits precision)
        assert np.linalg.norm(left - (100 + shift, 100)) < 8, out.xy
        assert np.linalg.norm(right - (140 + shift, 100)) < 8, out.xy


def test_keep_sides_swaps_a_flipped_pair_back():
    ears = {"leftear": (100.0, 100.0), "rightear": (140.0, 100.0), "nose": (120.0, 60.0)}
    tracker = make_tracker(symmetry=True)
    tracker.start(seed(ears), feature_map({1: (100.0, 100.0), 2: (140.0, 100.0), 0: (120.0, 60.0)}), None)
    st = tracker.state
    one = torch.ones(1)
    poses = Poses(
        st.centre,
        st.angle,
        one,
        torch.zeros(1, dtype=torch.bool),
        st.pos,
        torch.ones(3, dtype=torch.bool),
        torch.ones(3, dtype=torch.bool),
    )
    flipped = torch.tensor([[142.0, 101.0], [103.0, 99.0], [121.0, 60.0]])
    fixed = keep_sides(st, flipped, torch.ones(3, dtype=torch.bool), poses)
    assert fixed.tolist() == [[103.0, 99.0], [142.0, 101.0], [121.0, 60.0]]
    # a partner that is not seen gives nothing to compare with: no guess
    untouched = keep_sides(st, flipped, torch.tensor([True, False, True]), poses)
    assert torch.equal(untouched, flipped)


def test_left_right_pairs_are_found_from_names():
    names = [
        ("m", "leftear"),
        ("m", "rightear"),
        ("m", "left_paw"),
        ("m", "right_paw"),
        ("m", "nose"),
        ("n", "leftear"),
        ("m", "left"),
    ]
    assert left_right_pairs(names) == [(0, 1), (2, 3)]


def test_two_instances_never_share_a_spot():
    a = Instance("a", [Keypoint("nose", 100.0, 100.0)])
    b = Instance("b", [Keypoint("nose", 150.0, 100.0)])
    ann = FrameAnnotation(0, SIZE, SIZE, [a, b], source="manual")
    look = feature_map([(0, (100.0, 100.0)), (0, (150.0, 100.0))])
    tracker = make_tracker(motion_prior_weight=0.1)
    tracker.start(ann, look, None)
    # one nose is hidden; its tracker must not jump onto the other animal's nose
    out = tracker.step(feature_map({0: (118.0, 100.0)}), None)
    assert np.linalg.norm(out.xy[0] - out.xy[1]) > 16


def test_mask_clamp_moves_points_into_their_mask_and_rejects_far_ones():
    start = (128.0, 128.0)
    tracker = make_tracker(clamp_to_mask=True, mask_snap_radius_px=12.0, reject_outside_mask=True)
    tracker.start(seed({"nose": start}), feature_map({0: start}), None)
    mask = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    mask[0, 100:160, 60:122] = True  # the animal's mask ends 6 px left of the match
    out = tracker.step(feature_map({0: start}), None, mask)
    assert out.visible[0]
    assert 115 <= out.xy[0, 0] <= 122 and mask[0, round(float(out.xy[0, 1])), round(float(out.xy[0, 0]))]

    tracker.start(seed({"nose": start}), feature_map({0: start}), None)
    far = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    far[0, 10:40, 10:40] = True
    out = tracker.step(feature_map({0: start}), None, far)
    assert not out.visible[0]


def test_empty_mask_does_not_constrain():
    start = (128.0, 128.0)
    tracker = make_tracker(clamp_to_mask=True)
    tracker.start(seed({"nose": start}), feature_map({0: start}), None)
    out = tracker.step(feature_map({0: (134.0, 128.0)}, seed=2), None, torch.zeros(1, SIZE, SIZE, dtype=torch.bool))
    assert out.visible[0] and np.linalg.norm(out.xy[0] - (134.0, 128.0)) < 3


def test_occlusion_lowers_score_then_reacquires():
    tracker = make_tracker(redetect_after=2)
    pos = np.array([60.0, 80.0])
    tracker.start(seed({"nose": tuple(pos)}), feature_map({0: tuple(pos)}), None)
    scores, visible = [], []
    for t in range(1, 4):
        out = tracker.step(feature_map({0: tuple(pos + 4 * t)}, seed=t), None)
        scores.append(out.score[0])
        visible.append(out.visible[0])
    for t in range(4, 8):  # hidden
        out = tracker.step(feature_map({}, seed=t), None)
        scores.append(out.score[0])
        visible.append(out.visible[0])
    reappear = np.array([190.0, 170.0])  # far from where it vanished
    for t in range(8, 11):
        out = tracker.step(feature_map({0: tuple(reappear)}, seed=t), None)
        visible.append(out.visible[0])
    assert visible[:3] == [True] * 3 and not any(visible[3:7])
    assert max(scores[3:7]) < 0.5 < min(scores[:3])
    assert visible[-1] and np.linalg.norm(out.xy[0] - reappear) < 4


def test_invisible_seed_point_without_any_template_stays_invisible():
    tracker = make_tracker()
    ann = seed({"nose": (60.0, 60.0), "tail_base": (150.0, 150.0)}, visible={"tail_base": False})
    tracker.start(ann, feature_map({0: (60.0, 60.0)}), None)
    out = tracker.step(feature_map({0: (64.0, 60.0)}), None)
    assert out.visible.tolist() == [True, False]
    assert out.score[1] == 0.0


def test_templates_from_another_manual_frame_let_a_hidden_seed_point_be_found():
    tracker = make_tracker()
    other = seed({"nose": (60.0, 60.0), "tail_base": (150.0, 150.0)})
    other.frame = 7
    tracker.add_templates(feature_map({0: (60.0, 60.0), 1: (150.0, 150.0)}), other)
    ann = seed({"nose": (60.0, 60.0), "tail_base": (150.0, 150.0)}, visible={"tail_base": False})
    tracker.start(ann, feature_map({0: (60.0, 60.0)}), None)
    out = tracker.step(feature_map({0: (62.0, 60.0), 1: (200.0, 90.0)}, seed=4), None)
    assert out.visible[1] and np.linalg.norm(out.xy[1] - (200.0, 90.0)) < 4


@pytest.mark.parametrize("flow", [False, True])
def test_same_input_gives_identical_output(flow):
    rng = np.random.default_rng(0)
    frames = [(rng.random((SIZE, SIZE)) * 255).astype(np.uint8) for _ in range(4)]
    runs = []
    for _ in range(2):
        tracker = KeypointTracker(TrackerConfig(use_optical_flow=flow), GEOMETRY)
        tracker.start(
            seed({"nose": (60.0, 60.0), "leftear": (80.0, 50.0), "rightear": (80.0, 70.0)}),
            feature_map({0: (60.0, 60.0), 1: (80.0, 50.0), 2: (80.0, 70.0)}),
            frames[0],
        )
        outs = []
        for t in range(1, 4):
            blobs = {0: (60.0 + 3 * t, 60.0), 1: (80.0 + 3 * t, 50.0), 2: (80.0 + 3 * t, 70.0)}
            out = tracker.step(feature_map(blobs, seed=t), frames[t])
            outs.append(np.concatenate([out.xy.ravel(), out.score, out.visible]))
        runs.append(np.stack(outs))
    assert np.array_equal(runs[0], runs[1])


def test_a_hidden_part_turns_with_its_animal():
    centre = np.array([128.0, 128.0])
    offsets = {"nose": (40.0, 0.0), "leftear": (15.0, -25.0), "rightear": (15.0, 25.0), "tail_base": (-45.0, 0.0)}

    def posed(angle: float) -> dict[str, np.ndarray]:
        c, s = np.cos(angle), np.sin(angle)
        return {k: centre + np.array([c * x - s * y, s * x + c * y]) for k, (x, y) in offsets.items()}

    names = list(offsets)
    tracker = make_tracker(motion_prior_weight=0.3, redetect_after=0)
    start = posed(0.0)
    tracker.start(
        seed({k: tuple(v) for k, v in start.items()}),
        feature_map({i: tuple(start[k]) for i, k in enumerate(names)}, sigma_px=8.0),
        None,
    )
    for t in range(1, 5):  # the animal turns 12 degrees a frame; its tail is hidden from frame 2 on
        pose = posed(np.radians(12.0 * t))
        shown = names if t < 2 else names[:3]
        out = tracker.step(feature_map({names.index(k): tuple(pose[k]) for k in shown}, sigma_px=8.0, seed=t), None)
    assert out.visible.tolist() == [True, True, True, False]
    truth = posed(np.radians(48.0))["tail_base"]
    assert np.linalg.norm(out.xy[3] - truth) < 6, (out.xy[3], truth)
    assert np.linalg.norm(start["tail_base"] - truth) > 25  # a point left where it vanished would be far off


def test_a_vanished_part_is_not_matched_to_a_look_alike():
    nose, look_alike = (80.0, 80.0), (120.0, 96.0)

    def scene(with_nose: bool, noise_seed: int) -> torch.Tensor:
        blobs = [(0, look_alike), (5, look_alike)]  # shares the nose's colour, but is a different part
        return feature_map(blobs + ([(0, nose)] if with_nose else []), seed=noise_seed)

    tracker = make_tracker(redetect_after=0, occlusion_ratio=0.5)
    tracker.start(seed({"nose": nose}), scene(True, 0), None)
    assert tracker.step(scene(True, 1), None).visible[0]
    out = tracker.step(scene(False, 2), None)  # the nose is hidden; only the look-alike is left
    assert not out.visible[0]
