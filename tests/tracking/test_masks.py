"""Mask propagation with the weight-free pixel backbone on generated clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dinotrack.backbone.base import compute_geometry
from napari_dinotrack.backbone.pixel import PixelBackbone
from napari_dinotrack.synthetic import make_clip
from napari_dinotrack.tracking.masks import DinoMaskPropagator, MaskPropagator, make_propagator


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _features(frames: np.ndarray, short_side: int):
    h, w = frames.shape[1:3]
    geo = compute_geometry(h, w, short_side, 16)
    return PixelBackbone(16).extract(frames, geo), geo


@pytest.fixture(scope="module")
def crossing():
    clip = make_clip(n_frames=20, n_instances=2, crossing=True)
    feats, geo = _features(clip.frames, 160)
    return clip, feats, geo


def test_two_crossing_animals_keep_masks_and_identities(crossing):
    clip, feats, geo = crossing
    prop = DinoMaskPropagator()
    assert isinstance(prop, MaskPropagator)
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo, frame=clip.frames[0])
    ious = np.ones((clip.n_frames, 2))
    for t in range(1, clip.n_frames):
        masks = prop.step(feats[t], clip.frames[t])
        assert masks.dtype == torch.bool and masks.device == feats.device
        assert tuple(masks.shape) == (2, *clip.frames.shape[1:3])
        m = masks.numpy()
        for i in range(2):
            ious[t, i] = _iou(m[i], clip.masks[t, i])
            own = (m[i] & clip.masks[t, i]).sum()
            other = (m[i] & clip.masks[t, 1 - i]).sum()
            assert own > other, f"identity swap at frame {t}, instance {i}"
    assert ious.mean(axis=0).min() >= 0.8, ious.mean(axis=0)
    # the animals touch in the last frames; both must survive it
    assert ious[-3:].min() >= 0.7, ious[-3:]


def test_single_animal_is_followed_to_the_end():
    clip = make_clip(n_frames=20, n_instances=1, seed=3)
    feats, geo = _features(clip.frames, 240)
    prop = make_propagator("dino", max_fallback_frames=2)
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo, clip.frames[0])
    for t in range(1, clip.n_frames):
        m = prop.step(feats[t], clip.frames[t]).numpy()
    assert _iou(m[0], clip.masks[-1, 0]) >= 0.8


def _disc_clip(n_frames: int = 16, h: int = 120, w: int = 160):
    """A red disc gliding over grey noise: distinctive patch features, unlike the fur texture."""
    rng = np.random.default_rng(0)
    background = (40 + 25 * rng.random((h, w, 1))).repeat(3, axis=2)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.zeros((n_frames, h, w, 3), np.uint8)
    masks = np.zeros((n_frames, 1, h, w), bool)
    for t in range(n_frames):
        m = (xx - 30 - 3.0 * t) ** 2 + ((yy - 60 - 8 * np.sin(t / 4)) * 1.3) ** 2 <= 18**2
        img = background.copy()
        img[m] = (200, 70, 60)
        frames[t], masks[t, 0] = img, m
    return frames, masks


def test_without_frames_masks_follow_at_patch_precision():
    frames, masks = _disc_clip()
    feats, geo = _features(frames, 240)
    prop = DinoMaskPropagator()
    prop.reset(feats[0], masks[0], geo)  # numpy masks are accepted too
    ious = [_iou(prop.step(feats[t]).numpy()[0], masks[t, 0]) for t in range(1, len(frames))]
    # no colour refinement: boundaries are only patch-precise, but the mask neither shrinks nor lags
    assert np.mean(ious) >= 0.75 and ious[-1] >= 0.7, np.round(ious, 2)


def test_lost_animal_reuses_its_mask_without_growing_then_drops_it():
    clip = make_clip(n_frames=4, n_instances=1)
    empty = make_clip(n_frames=1, n_instances=0).frames[0]  # same floor, no animal
    feats, geo = _features(np.concatenate([clip.frames, empty[None]]), 160)
    prop = DinoMaskPropagator(max_fallback_frames=3)
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo, clip.frames[0])
    for t in range(1, 4):
        last = prop.step(feats[t], clip.frames[t]).numpy()[0]
    assert last.sum() > 0.8 * clip.masks[3, 0].sum()
    for _ in range(3):
        reused = prop.step(feats[4], empty).numpy()[0]
        assert reused.sum() == last.sum()  # the reference dilated it every frame; this must not
        assert (reused == last).all()
    for _ in range(2):
        assert not prop.step(feats[4], empty).any()


def test_reset_replaces_all_state(crossing):
    clip, feats, geo = crossing
    prop = DinoMaskPropagator()
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo, clip.frames[0])
    for t in range(1, 6):
        prop.step(feats[t], clip.frames[t])
    # a correction at frame 6 that lists the animals the other way round
    swapped = torch.from_numpy(clip.masks[6][::-1].copy())
    assert prop.n_references == 1 + prop.memory
    prop.reset(feats[6], swapped, geo, clip.frames[6])
    assert prop.n_references == 1  # the seed alone: nothing remembered from before the correction
    m = prop.step(feats[7], clip.frames[7]).numpy()
    assert _iou(m[0], clip.masks[7, 1]) >= 0.8 and _iou(m[1], clip.masks[7, 0]) >= 0.8
    # and one with a single instance
    prop.reset(feats[7], torch.from_numpy(clip.masks[7, :1]), geo, clip.frames[7])
    m = prop.step(feats[8], clip.frames[8])
    assert tuple(m.shape) == (1, *clip.frames.shape[1:3])
    assert _iou(m[0].numpy(), clip.masks[8, 0]) >= 0.8


def test_step_checks_its_inputs(crossing):
    clip, feats, geo = crossing
    prop = DinoMaskPropagator()
    with pytest.raises(RuntimeError):
        prop.step(feats[1])
    with pytest.raises(ValueError):
        prop.reset(feats[0], torch.from_numpy(clip.masks[0, :, :10]), geo)
    prop.reset(feats[0], torch.from_numpy(clip.masks[0]), geo)
    with pytest.raises(ValueError):
        prop.step(feats[1][:, :3])
    with pytest.raises(ValueError):
        prop.step(feats[1], clip.frames[1][:50])
    prop.reset(feats[0], torch.zeros((0, *clip.frames.shape[1:3]), dtype=torch.bool), geo)
    assert tuple(prop.step(feats[1]).shape) == (0, *clip.frames.shape[1:3])


def test_factory_names_the_choices():
    assert make_propagator("none") is None
    assert isinstance(make_propagator("dino", radius=4), DinoMaskPropagator)
    with pytest.raises(ValueError, match="'dino' or 'none'"):
        make_propagator("sam2")


def test_soft_labels_are_those_of_matching_every_patch_against_every_reference():
    """The bank works out only the patches near an animal; every patch gets what brute force gives it."""
    import torch.nn.functional as F

    from napari_dinotrack.tracking.masks.tiles import ReferenceBank

    gen = torch.Generator().manual_seed(0)
    gh, gw, c, radius, k, temperature = 11, 14, 8, 3, 5, 0.1
    feats = F.normalize(torch.randn(3, c, gh, gw, generator=gen), dim=1)
    cover = torch.zeros(2, 2, gh, gw)  # two references, two animals
    cover[0, 0, 2:5, 3:6], cover[0, 1, 6:8, 2:4], cover[0, 1, 7, 4] = 1.0, 1.0, 0.5
    cover[1, 0, 3:6, 4:7], cover[1, 1, 6:9, 3:5] = 1.0, 0.75
    labels = torch.cat([(1 - cover.sum(1, keepdim=True)).clamp(min=0), cover], dim=1)  # background first
    bank = ReferenceBank((gh, gw), tile=4, radius=radius, slots=3, device=torch.device("cpu"))
    bank.reset(c, 3)
    for slot in range(2):  # the third slot stays empty
        bank.store(slot, feats[slot], labels[slot])
    got = bank.propagate(feats[2], k, temperature)

    expected = torch.zeros(3, gh, gw)
    for y in range(gh):
        for x in range(gw):
            near = [
                (s, v, u)
                for s in range(2)
                for v in range(gh)
                for u in range(gw)
                if (v - y) ** 2 + (u - x) ** 2 <= radius**2
            ]
            sims = torch.stack([feats[2, :, y, x] @ feats[s, :, v, u] for s, v, u in near])
            top, idx = sims.topk(k)
            weights = torch.softmax(top / temperature, dim=0)
            picked = torch.stack([labels[near[i][0], :, near[i][1], near[i][2]] for i in idx])
            expected[:, y, x] = weights @ picked
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert got[:, 0, gw - 1].tolist() == [1.0, 0.0, 0.0]  # no animal within reach: background, exactly
