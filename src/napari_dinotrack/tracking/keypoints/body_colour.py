"""Each animal's whole-body motion from its colours, where its fur is too flat for the flow.

On the seed frame each animal's colours (inside the hull of its parts) are told from the floor's
(a band around it) in a joint RGB histogram; every frame is then mapped to the chance that a
pixel is that animal's fur. On this map the floor's texture is gone and the body's outline is a
clean edge, so aligning the map of the animal's region from one frame to the next (OpenCV's ECC,
a turn and a shift) follows a flat-furred body along its own length, where the flow of its
spots sees only edges parallel to the motion and stays behind.
"""

from __future__ import annotations

import numpy as np

__all__ = ["align_bodies", "colour_models"]

COLOUR_SHIFT = 4  # 16 levels per channel
LEVELS = 256 >> COLOUR_SHIFT
FLOOR_BAND_PX = (6, 20)  # the floor's colours: this far outside the hull of the parts
OUTLINE_MARGIN_PX = 4  # the aligned region reaches this far past the hull: the outline's edge
MIN_CONTRAST = 0.05  # a region whose map is this uniform has no outline to align
ECC_ITERATIONS = 40
ECC_EPS = 1e-3
ECC_SMOOTHING = 5


def _bins(image: np.ndarray) -> np.ndarray:
    q = (image >> COLOUR_SHIFT).astype(np.int32)
    return (q[..., 0] << (2 * (8 - COLOUR_SHIFT))) | (q[..., 1] << (8 - COLOUR_SHIFT)) | q[..., 2]


def _hull(own: np.ndarray, origin: np.ndarray, shape: tuple[int, int], grow: int) -> np.ndarray:
    import cv2

    region = np.zeros(shape, np.uint8)
    hull = cv2.convexHull((own - origin).astype(np.float32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(region, np.round(hull).astype(np.int32), 1)
    if grow <= 0:
        return region
    return np.asarray(cv2.dilate(region, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)))


def _parts_of(positions: np.ndarray, instance_of: np.ndarray, animal: int) -> np.ndarray:
    own = positions[instance_of == animal]
    return own[np.isfinite(own).all(axis=1)]


def colour_models(
    image: np.ndarray, positions: np.ndarray, instance_of: np.ndarray, n_instances: int
) -> list[np.ndarray | None]:
    """Per animal a table (colour bin -> chance of its fur) from ``image`` (H, W, 3) uint8 RGB.

    ``positions`` (K, 2) video px of the parts, ``instance_of`` (K,) their animals. An animal
    with fewer than three parts has no hull and gets None.
    """
    import cv2

    h, w = image.shape[:2]
    bins = _bins(image)
    tables: list[np.ndarray | None] = []
    origin = np.zeros(2)
    for animal in range(n_instances):
        own = _parts_of(positions, instance_of, animal)
        if len(own) < 3:
            tables.append(None)
            continue
        body = _hull(own, origin, (h, w), 0)
        near = _hull(own, origin, (h, w), FLOOR_BAND_PX[0]).astype(bool)
        band = _hull(own, origin, (h, w), FLOOR_BAND_PX[1]).astype(bool) & ~near
        counts = []
        for where in (body.astype(bool), band):
            hist = np.bincount(bins[where], minlength=LEVELS**3).astype(np.float32)
            hist = cv2.GaussianBlur(hist.reshape(LEVELS, LEVELS * LEVELS), (3, 3), 0).reshape(-1) + 0.5
            counts.append(hist / hist.sum())
        tables.append((counts[0] / (counts[0] + counts[1])).astype(np.float32))
    return tables


def align_bodies(
    prev_image: np.ndarray,
    image: np.ndarray,
    tables: list[np.ndarray | None],
    positions: np.ndarray,
    instance_of: np.ndarray,
    guess: np.ndarray,
    reach: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each animal's rigid motion from ``prev_image`` to ``image``.

    Returns (I, 2, 3) affine maps of video px, (I, 2) the step they give the mean of each animal's
    parts, and (I,) found. ``positions`` (K, 2) are the parts on the previous frame, ``guess``
    (I, 2) where each animal's step is looked for first; a motion that moves the animal's centre
    more than ``reach`` px from the guess, or a region without an outline, leaves the animal not
    found (identity map, no step).
    """
    import cv2

    h, w = image.shape[:2]
    n = len(tables)
    maps = np.tile(np.eye(2, 3, dtype=np.float32), (n, 1, 1))
    centres = np.zeros((n, 2), positions.dtype)
    found = np.zeros(n, bool)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ECC_ITERATIONS, ECC_EPS)
    for animal, table in enumerate(tables):
        own = _parts_of(positions, instance_of, animal)
        if len(own):
            centres[animal] = own.mean(axis=0)
        if table is None or len(own) < 3:
            continue
        pad = OUTLINE_MARGIN_PX + reach
        lo = np.floor(own.min(axis=0) - pad).clip(0, [w - 1, h - 1]).astype(int)
        hi = np.ceil(own.max(axis=0) + pad).clip(0, [w - 1, h - 1]).astype(int)
        if (hi - lo).min() < 8:
            continue
        region = _hull(own, lo, (hi[1] - lo[1] + 1, hi[0] - lo[0] + 1), OUTLINE_MARGIN_PX)
        before = table[_bins(prev_image[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1])]
        after = table[_bins(image[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1])]
        if before[region.astype(bool)].std() < MIN_CONTRAST:
            continue
        # OpenCV maps the current crop onto the previous one, and its mask belongs to the previous
        start = np.array([[1, 0, -guess[animal, 0]], [0, 1, -guess[animal, 1]]], np.float32)
        try:
            _, found_warp = cv2.findTransformECC(
                after, before, start, cv2.MOTION_EUCLIDEAN, criteria, region, ECC_SMOOTHING
            )
        except cv2.error:  # did not converge
            continue
        warp = np.asarray(found_warp, np.float32)
        turn = warp[:, :2].T
        shift = -turn @ warp[:, 2] + lo - turn @ lo
        affine = np.concatenate([turn, shift[:, None]], axis=1)
        centre = centres[animal]
        step = affine[:, :2] @ centre + affine[:, 2] - centre
        if np.all(np.isfinite(affine)) and np.linalg.norm(step - guess[animal]) <= reach:
            maps[animal] = affine
            found[animal] = True
    steps = np.einsum("nij,nj->ni", maps[:, :, :2], centres) + maps[:, :, 2] - centres
    return maps, steps.astype(np.float32), found
