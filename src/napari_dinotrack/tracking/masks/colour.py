"""Per-instance colour histograms that move patch-level mask boundaries onto pixels.

Patch features place an animal to within a patch; its colours say which of the pixels along the
edge are fur and which are floor. The histograms are joint RGB at 16 levels per channel, and the
colour evidence is capped so it can shift a boundary but never create an animal on its own.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["N_COLOUR_BINS", "best_label", "colour_bins", "colour_histograms", "colour_scores"]

_COLOUR_LEVELS = 16  # per channel: coarse enough to fill from one animal, fine enough to split fur from floor
_COLOUR_SHIFT = 4  # 256 // _COLOUR_LEVELS == 1 << _COLOUR_SHIFT
N_COLOUR_BINS = _COLOUR_LEVELS**3


def colour_bins(img: np.ndarray) -> np.ndarray:
    """(h, w) joint RGB histogram bin of every pixel of an (h, w, 3) uint8 image."""
    q = (img >> _COLOUR_SHIFT).astype(np.int32)
    return (q[..., 0] << (2 * _COLOUR_SHIFT)) | (q[..., 1] << _COLOUR_SHIFT) | q[..., 2]


def colour_histograms(img: np.ndarray, masks: np.ndarray, ring: int, ring_kernel: np.ndarray) -> np.ndarray | None:
    """(I + 1, bins) colour histograms of each instance and of a ``ring``-pixel band around them all.

    The band stands for the background: only the floor next to the animals competes with them,
    and counting the whole frame would drown it in unrelated colours. ``ring_kernel`` is the
    (2 * ring + 1)-square structuring element that grows the band.
    """
    union = np.any(masks, axis=0)
    if not union.any():
        return None
    ys = np.flatnonzero(union.any(1))
    xs = np.flatnonzero(union.any(0))
    box = (slice(max(0, ys[0] - ring), ys[-1] + ring + 1), slice(max(0, xs[0] - ring), xs[-1] + ring + 1))
    bins = colour_bins(img[box])
    inside = union[box].astype(np.uint8)
    band = (cv2.dilate(inside, ring_kernel) > 0) & (inside == 0)
    hists = np.empty((len(masks) + 1, N_COLOUR_BINS), np.float32)
    hists[0] = np.bincount(bins[band], minlength=N_COLOUR_BINS)
    for i, m in enumerate(masks):
        hists[i + 1] = np.bincount(bins[m[box]], minlength=N_COLOUR_BINS)
    return hists


def colour_scores(
    hists: list[np.ndarray], img: np.ndarray, probs: np.ndarray, *, smoothing: float, cap: float, floor: float
) -> np.ndarray:
    """Label scores (L, h, w): log prior + capped log colour likelihood, for (L, h, w) ``probs``.

    The prior ``probs`` decides where an instance can be and which instance it is; the summed
    colour histograms ``hists`` move the boundary onto the pixels that look like the animal. The
    ``cap`` keeps colour alone from creating an animal where the prior rules it out, and the prior
    ``floor`` still lets colour claim pixels the patch labels missed. Without histograms the
    prior is returned unchanged.
    """
    if not hists:
        return probs
    h = np.sum(hists, axis=0) + smoothing
    loglik = np.log(h / h.sum(1, keepdims=True)).astype(np.float32)  # (L, bins)
    # relative to the best label and capped per colour bin, once, rather than per pixel
    loglik -= loglik.max(axis=0, keepdims=True)
    np.maximum(loglik, -cap, out=loglik)
    ll = np.take(loglik, colour_bins(img), axis=1)  # (L, h, w)
    ll += np.log(np.maximum(probs, floor))
    return ll


def best_label(scores: np.ndarray) -> np.ndarray:
    """(h, w) index of the largest of (L, h, w) ``scores`` (the first on ties): ``scores.argmax(0)``.

    One comparison per label over whole planes, several times faster than NumPy's argmax over a
    short axis.
    """
    best = scores[0].copy()
    labels = np.zeros(scores.shape[1:], np.min_scalar_type(max(len(scores) - 1, 0)))
    for label in range(1, len(scores)):
        np.putmask(labels, scores[label] > best, label)
        np.maximum(best, scores[label], out=best)
    return labels
