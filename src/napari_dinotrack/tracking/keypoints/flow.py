"""Sparse Lucas-Kanade optical flow for all keypoints in one call, with a forward-backward check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LK_WINDOW = 15  # default window, px
LK_LEVELS = 3  # a pyramid of 4 levels follows steps of about 50 px with a 15 px window
FB_TOLERANCE_PX = 1.0  # forward-backward disagreement above this means the flow lost the point
# below this texture (smallest eigenvalue of the window's gradient matrix, OpenCV's per-pixel
# normalisation) a window cannot be followed: flat fur "tracks" with zero motion however it moves
MIN_TEXTURE = 1e-3


@dataclass
class FlowResult:
    points: np.ndarray  # (K, 2) float32 x/y in the current frame
    ok: np.ndarray  # (K,) bool


def to_gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luminance."""
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def track_points(
    prev_gray: np.ndarray,
    gray: np.ndarray,
    points: np.ndarray,
    max_jump_px: float,
    guess: np.ndarray | None = None,
    window: int = LK_WINDOW,
) -> FlowResult:
    """Follow ``points`` (K, 2) from ``prev_gray`` to ``gray``, starting the search at ``guess`` if given.

    ``window`` (odd, px) is the patch each point is followed by: small enough to stay on a small
    animal, large enough to hold texture.

    A point counts as tracked when its window has texture, both directions converge, they
    agree within FB_TOLERANCE_PX, and the step is at most ``max_jump_px``.
    """
    import cv2

    pts = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 1, 2)
    if len(pts) == 0:
        return FlowResult(np.zeros((0, 2), np.float32), np.zeros(0, bool))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
    params: dict[str, Any] = {
        "winSize": (window, window),
        "maxLevel": LK_LEVELS,
        "criteria": criteria,
        "minEigThreshold": MIN_TEXTURE,
    }
    if guess is not None:
        start = np.ascontiguousarray(guess, dtype=np.float32).reshape(-1, 1, 2).copy()
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(
            prev_gray, gray, pts, start, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **params
        )
    else:
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, None, **params)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, fwd, None, **params)
    fwd = fwd.reshape(-1, 2)
    fb_error = np.linalg.norm(back.reshape(-1, 2) - pts.reshape(-1, 2), axis=1)
    step = np.linalg.norm(fwd - pts.reshape(-1, 2), axis=1)
    h, w = gray.shape[:2]
    inside = (fwd[:, 0] >= 0) & (fwd[:, 0] <= w - 1) & (fwd[:, 1] >= 0) & (fwd[:, 1] <= h - 1)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb_error <= FB_TOLERANCE_PX) & (step <= max_jump_px) & inside
    return FlowResult(fwd.astype(np.float32), ok)
