"""Stages 3 and 4: where each part is, and which parts are seen.

A part stays where the flow of the fur around it took it: its appearance peak nearby is no better
evidence, for a rim part's patch holds floor that stays behind when the animal moves on. Parts of
an animal placed by appearance go to their sub-pixel peak near where the pose puts them. A part
is seen when the fur around it was followed and it does not look unlike itself, or, without that
support, when it matches nearly as well as usual; one placed by its look alone must also lead back
to its own last place in the previous frame.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...backbone.base import WorkGeometry
from ..config import TrackerConfig
from .animals import Poses
from .matching import NEG
from .pose import place_parts
from .sampling import sample_features
from .state import TrackState

CYCLE_MARGIN = 0.1  # a spot traced back may prefer another spot of the last frame by at most this much

Match = Callable[[torch.Tensor], torch.Tensor]  # (K, S, C) samples -> (K, S) appearance scores


def place(
    st: TrackState,
    cfg: TrackerConfig,
    geo: WorkGeometry,
    feats: torch.Tensor,
    poses: Poses,
    local_offsets: torch.Tensor,
    match: Match,
    padded: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, 2) positions and (K,) their appearance similarity."""
    lattice = poses.anchors[:, None] + local_offsets[None]  # (K, L, 2); the anchor itself first
    local = match(sample_features(feats, lattice, padded))  # (K, L)
    best_at = local.argmax(dim=1)
    at_anchor = local[:, 0]
    rows = torch.arange(len(best_at), device=feats.device)
    # a soft-argmax restricted to the neighbourhood of the best point, so the lattice's edge cannot bias it
    near = (lattice - lattice[rows, best_at][:, None]).norm(dim=-1) <= 0.5 * geo.patch_size
    weights = torch.softmax((local / cfg.subpixel_temperature).masked_fill(~near, NEG), dim=1)
    peak = (weights[..., None] * lattice).sum(dim=1)
    at_peak = match(sample_features(feats, peak, padded)[:, None])[:, 0]
    move = ~poses.from_flow & ~poses.lost[st.instance_of]
    return torch.where(move[:, None], peak, poses.anchors), torch.where(move, at_peak, at_anchor)


def seen(
    st: TrackState,
    cfg: TrackerConfig,
    geo: WorkGeometry,
    feats: torch.Tensor,
    xy: torch.Tensor,
    similarity: torch.Tensor,
    poses: Poses,
    padded: tuple[int, int],
) -> torch.Tensor:
    """(K,) which parts are seen at ``xy``."""
    typical = torch.where(torch.isnan(st.typical), torch.ones_like(st.typical), st.typical)
    # a hidden part must match clearly better than the loss threshold to come back, and so must a
    # part whose surroundings could not be followed
    regain = torch.where(
        torch.isnan(st.typical),
        torch.full_like(typical, cfg.min_similarity),
        0.5 * (1.0 + cfg.occlusion_ratio) * typical,
    )
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= geo.work_width - 1) & (xy[:, 1] <= geo.work_height - 1)
    followed = poses.flow_healthy & st.visible & (similarity >= 0.0)
    found = st.trackable & inside & ~poses.lost[st.instance_of] & ((similarity >= regain) | followed)
    # traced back one frame, a look-alike (another part, another animal) matches some other spot better
    return found & (poses.from_flow | ~st.visible | traces_back(st, feats, xy, padded))


def traces_back(st: TrackState, feats: torch.Tensor, xy: torch.Tensor, padded: tuple[int, int]) -> torch.Tensor:
    """(K,) whether each spot, looked up in the previous frame, matches the part's last place best."""
    prev = st.prev_features
    desc = sample_features(feats, xy, padded)
    best_anywhere = (desc @ prev.reshape(prev.shape[0], -1)).max(dim=1).values
    at_last_place = (desc * sample_features(prev, st.pos, padded)).sum(dim=1)
    return at_last_place >= best_anywhere - CYCLE_MARGIN


def keep_sides(st: TrackState, xy: torch.Tensor, found: torch.Tensor, poses: Poses) -> torch.Tensor:
    """Swap left/right parts that landed on each other's side of their animal."""
    if not st.sym_pairs.numel():
        return xy
    left, right = st.sym_pairs[:, 0], st.sym_pairs[:, 1]
    expected = place_parts(poses.centre, poses.angle, st.scale, st.offsets, st.instance_of)
    crossed = ((xy[left] - xy[right]) * (expected[left] - expected[right])).sum(-1) < 0
    flipped = crossed & found[left] & found[right]
    out = xy.clone()
    out[left[flipped]] = xy[right[flipped]]
    out[right[flipped]] = xy[left[flipped]]
    return out
