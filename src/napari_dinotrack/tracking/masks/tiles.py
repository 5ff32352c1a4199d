"""Patch labels by local feature affinity: reference frames cut into tile windows, side by side.

Each patch of a new frame looks up its most similar patches within ``radius`` patches in the
reference frames and takes their labels, softmax-weighted by similarity. The grid is split into
square query tiles; every tile reads one window of each reference, ``radius`` patches larger on
each side, so that one matrix product gives a tile's patches all their affinities.

:class:`ReferenceBank` keeps the references (the seed in slot 0, the most recent frames in a
ring after it) side by side in one buffer, so a tile costs one matrix product over all of them,
and a frame one top-k and one lookup of labels. Only the patches with an instance among their
candidates are worked out: any other patch takes background labels whatever it matches. The
result is the same as matching every patch against every reference's window separately.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ReferenceBank"]

_FAR = -1e4  # "masked" similarity: exp(_FAR / temperature) underflows to exactly 0


class ReferenceBank:
    """Up to ``slots`` reference frames of a ``grid`` (h, w) patch grid, as query tiles' key windows.

    :meth:`reset` sizes the bank for the run's feature channels and labels; :meth:`store` cuts a
    frame into a slot; :meth:`propagate` gives a new frame's soft labels from every stored slot.
    """

    def __init__(self, grid: tuple[int, int], tile: int, radius: int, slots: int, device: torch.device):
        self.grid_height, self.grid_width = grid
        self.tile, self.radius, self.slots = tile, radius, slots
        self.device = device
        self.n_ty, self.n_tx = math.ceil(self.grid_height / tile), math.ceil(self.grid_width / tile)
        self.win = tile + 2 * radius
        t, r, win = tile, radius, self.win
        # query (a, b) of a tile vs key (u, v) of its window: displacement (u - r - a, v - r - b)
        d = torch.arange(win, device=device)[None, :] - r - torch.arange(t, device=device)[:, None]  # (t, win)
        dist2 = d[:, None, :, None] ** 2 + d[None, :, None, :] ** 2  # (t, t, win, win)
        # Each query's candidates are the keys of its window within the radius, as many for every
        # query: gathering just those keeps the top-k from sorting the ~70 % that are out of reach.
        local = torch.nonzero((dist2 <= r * r).reshape(t * t, win * win))[:, 1].view(t * t, -1)  # (t*t, M)
        self.n_local = local.shape[1]
        offsets = torch.arange(slots, device=device) * (win * win)
        self._candidates = (offsets[:, None, None] + local[None]).permute(1, 0, 2).reshape(t * t, -1)  # (t*t, S*M)
        inside = self._window_view(F.pad(torch.ones((1, *grid), device=device), self._padding()), torch.float32)
        beyond = ~(inside.reshape(-1, win * win)[:, local] > 0.5)  # (N, t*t, M): keys off the grid
        o = np.arange(-r, r + 1) ** 2
        self._disc = (o[:, None] + o[None, :] <= r * r).astype(np.uint8)  # (2r+1, 2r+1)
        self._beyond_all = beyond.repeat(1, 1, slots).view(-1, slots * self.n_local)  # (N*t*t, S*M)
        self.keys = torch.zeros(0)
        self.labels = torch.zeros(0)
        self.near = torch.zeros(0, dtype=torch.bool)
        self.filled = [False] * slots

    @property
    def n_tiles(self) -> int:
        return self.n_ty * self.n_tx

    def reset(self, channels: int, n_labels: int) -> None:
        """Empty every slot, for features of ``channels`` and ``n_labels`` labels (background first)."""
        n, s, w2, tt = self.n_tiles, self.slots, self.win * self.win, self.tile * self.tile
        if self.keys.shape != (n, channels, s, w2):
            self.keys = torch.zeros((n, channels, s, w2), device=self.device)
        if self.labels.shape != (n, s * w2, n_labels):
            self.labels = torch.zeros((n, s * w2, n_labels), device=self.device)
        self.near = torch.zeros((s, n, tt), dtype=torch.bool, device=self.device)
        self.filled = [False] * s

    def store(self, slot: int, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Cut (C, h, w) unit ``feats`` and (L, h, w) ``labels`` of one frame into ``slot``."""
        n_ty, n_tx, win, pad = self.n_ty, self.n_tx, self.win, self._padding()
        c, n_lab = feats.shape[0], labels.shape[0]
        # straight into the slot: one copy per reference, which is then read `slots` times
        keys = self.keys[:, :, slot].view(n_ty, n_tx, c, win, win)
        keys.copy_(self._window_view(F.pad(feats, pad), feats.dtype))
        w2 = win * win
        lab = self.labels[:, slot * w2 : (slot + 1) * w2].view(n_ty, n_tx, win, win, n_lab)
        lab.copy_(self._window_view(F.pad(labels, pad), labels.dtype).permute(0, 1, 3, 4, 2))
        # the queries within the radius of an instance patch: a disc-shaped dilation of where they are
        hp, wp = self.n_ty * self.tile, self.n_tx * self.tile
        instance = np.zeros((hp, wp), np.uint8)
        instance[: self.grid_height, : self.grid_width] = (labels[1:] > 0).any(0).cpu().numpy()
        near = torch.from_numpy(cv2.dilate(instance, self._disc) > 0).to(self.device)  # (hp, wp)
        self.near[slot] = near.view(n_ty, self.tile, n_tx, self.tile).permute(0, 2, 1, 3).reshape(n_ty * n_tx, -1)
        self.filled[slot] = True

    def propagate(self, feats: torch.Tensor, topk: int, temperature: float) -> torch.Tensor:
        """(L, h, w) soft labels of the frame of (C, h, w) unit ``feats`` from every filled slot."""
        t, tt, m = self.tile, self.tile * self.tile, self.n_local
        n_lab = self.labels.shape[2]
        soft = torch.zeros((self.n_tiles * tt, n_lab), device=feats.device)
        soft[:, 0] = 1.0
        # A patch with no instance among its candidates is background whatever it matches.
        wanted = self.near.any(0)  # (N, t*t); empty slots are near nothing
        queries = torch.nonzero(wanted.flatten()).flatten()  # into the N tiles' t*t queries, tile by tile
        if len(queries):
            c = feats.shape[0]
            hp, wp = self.n_ty * t, self.n_tx * t
            q = F.pad(feats, (0, wp - self.grid_width, 0, hp - self.grid_height))
            q = q.view(c, self.n_ty, t, self.n_tx, t).permute(1, 3, 2, 4, 0).reshape(-1, c)[queries]  # (Q, C)
            tile_of, pos = queries // tt, queries % tt
            candidates = self._candidates[pos]  # (Q, S*M) into the tile's windows, slot after slot
            keys = self.keys.view(self.n_tiles, c, -1)
            # per tile, just its wanted queries against its windows: no copy of the keys, no unneeded rows
            tiles, counts = torch.unique_consecutive(tile_of, return_counts=True)
            aff = torch.cat(
                [
                    torch.mm(qi, keys[tile]).gather(1, ci)
                    for tile, qi, ci in zip(
                        tiles.tolist(), q.split(counts.tolist()), candidates.split(counts.tolist()), strict=True
                    )
                ]
            )  # (Q, S*M)
            masked = self._beyond_all[queries]
            if not all(self.filled):
                empty = torch.tensor([not f for f in self.filled], device=feats.device).repeat_interleave(m)
                masked = masked | empty
            aff.masked_fill_(masked, _FAR)
            v, idx = _top_k(aff, min(topk, aff.shape[1]))
            key = candidates.gather(1, idx)  # (Q, k)
            rows = tile_of[:, None] * self.labels.shape[1] + key
            picked = self.labels.view(-1, n_lab)[rows]  # (Q, k, L)
            weights = torch.softmax(v / temperature, dim=1)  # masked entries get weight 0
            soft[queries] = (weights[..., None] * picked).sum(1)
        soft = soft.view(self.n_ty, self.n_tx, t, t, n_lab).permute(4, 0, 2, 1, 3)
        soft = soft.reshape(n_lab, self.n_ty * t, self.n_tx * t)
        return soft[:, : self.grid_height, : self.grid_width].contiguous()

    def _padding(self) -> tuple[int, int, int, int]:
        r = self.radius
        return (r, r + self.n_tx * self.tile - self.grid_width, r, r + self.n_ty * self.tile - self.grid_height)

    def _window_view(self, padded: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(K, H, W) padded maps -> (n_ty, n_tx, K, win, win) windows, a view (no copy)."""
        views = padded.to(dtype).unfold(1, self.win, self.tile).unfold(2, self.win, self.tile)
        return views.permute(1, 2, 0, 3, 4)


def _top_k(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``values.topk(k, dim=1)``: the ``k`` largest of each row, largest first, and where they are.

    On the CPU NumPy's partial partition is several times faster than torch's top-k at these sizes.
    """
    if values.device.type != "cpu":
        return values.topk(k, dim=1)
    a = values.numpy()
    part = np.argpartition(a, a.shape[1] - k, axis=1)[:, -k:]
    picked = np.take_along_axis(a, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    return (
        torch.from_numpy(np.take_along_axis(picked, order, axis=1)),
        torch.from_numpy(np.take_along_axis(part, order, axis=1)),
    )
