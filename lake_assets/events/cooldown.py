"""Cooldown: a sequential, forward-only pass over candidate bars (point-in-time safe by construction)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _keep(candidates: np.ndarray, cooldown: int) -> np.ndarray:  # pragma: no cover - compiled
    keep = np.zeros(candidates.shape[0], dtype=np.bool_)
    last = -(1 << 62)
    for k in range(candidates.shape[0]):
        i = candidates[k]
        if i - last > cooldown:
            keep[k] = True
            last = i
    return keep


def apply_cooldown(candidates: np.ndarray, cooldown: int) -> np.ndarray:
    """The candidate bar indices (sorted, increasing) that fire: none within `cooldown` bars after the previous one.

    Each decision depends only on earlier candidates, so appending later bars never changes an earlier event.
    """
    idx = np.ascontiguousarray(candidates, dtype=np.int64)
    if cooldown <= 0 or idx.size == 0:
        return idx
    if np.any(np.diff(idx) <= 0):
        raise ValueError("candidate indices must be strictly increasing")
    return idx[_keep(idx, int(cooldown))]
