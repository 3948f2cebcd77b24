"""Numba kernels for the rolling statistics behind the feature layer.

Polars' own rolling functions take 15-25 ns per row once a column holds nulls and its rolling rank is O(window); the
feature budget (3M bar-rows/s/core for ~100 columns) leaves ~3 ns per column-row, so the hot loops live here. All
kernels take float64 arrays where NaN means "missing" (gap bars), skip missing values inside windows (a window is
valid once it holds `min_count` observations) and return NaN where the result is undefined. They are strictly causal:
the value at row t reads rows <= t only, which is what makes the features point-in-time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NAN = np.nan


@njit(cache=True, nogil=True)
def rolling_sum(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    s = 0.0
    c = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v == v:
            s += v
            c += 1
        if i >= n:
            u = x[i - n]
            if u == u:
                s -= u
                c -= 1
        if c == 0:
            s = 0.0  # drop accumulated rounding once the window is empty
        out[i] = s if c >= min_count and c > 0 else NAN
    return out


@njit(cache=True, nogil=True)
def rolling_mean(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    s = 0.0
    c = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v == v:
            s += v
            c += 1
        if i >= n:
            u = x[i - n]
            if u == u:
                s -= u
                c -= 1
        if c == 0:
            s = 0.0
        out[i] = s / c if c >= min_count and c > 0 else NAN
    return out


@njit(cache=True, nogil=True)
def rolling_cov(x: np.ndarray, y: np.ndarray, n: int, min_count: int, ddof: int) -> np.ndarray:
    """Rolling covariance over pairs where both sides are present (Welford add/remove updates)."""
    out = np.empty(x.shape[0])
    mx = 0.0
    my = 0.0
    cxy = 0.0
    c = 0
    for i in range(x.shape[0]):
        a = x[i]
        b = y[i]
        if a == a and b == b:
            c += 1
            dx = a - mx
            mx += dx / c
            my += (b - my) / c
            cxy += dx * (b - my)
        if i >= n:
            a = x[i - n]
            b = y[i - n]
            if a == a and b == b:
                c -= 1
                if c == 0:
                    mx = 0.0
                    my = 0.0
                    cxy = 0.0
                else:
                    dx = a - mx
                    mx -= dx / c
                    my -= (b - my) / c
                    cxy -= dx * (b - my)
        out[i] = cxy / (c - ddof) if c >= min_count and c - ddof > 0 else NAN
    return out


@njit(cache=True, nogil=True)
def rolling_var(x: np.ndarray, n: int, min_count: int, ddof: int) -> np.ndarray:
    out = rolling_cov(x, x, n, min_count, ddof)
    for i in range(out.shape[0]):
        if out[i] < 0.0:
            out[i] = 0.0
    return out


@njit(cache=True, nogil=True)
def rolling_std(x: np.ndarray, n: int, min_count: int, ddof: int) -> np.ndarray:
    out = rolling_var(x, n, min_count, ddof)
    return np.sqrt(out)


@njit(cache=True, nogil=True)
def rolling_zscore(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """(x - rolling mean) / rolling std (ddof=1) over the trailing n rows including x itself."""
    m = rolling_mean(x, n, min_count)
    s = rolling_std(x, n, min_count, 1)
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = (x[i] - m[i]) / s[i] if s[i] > 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def rolling_corr(x: np.ndarray, y: np.ndarray, n: int, min_count: int) -> np.ndarray:
    cxy = rolling_cov(x, y, n, min_count, 1)
    vx = rolling_var(np.where(np.isnan(y), NAN, x), n, min_count, 1)
    vy = rolling_var(np.where(np.isnan(x), NAN, y), n, min_count, 1)
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        d = math.sqrt(vx[i] * vy[i]) if vx[i] > 0.0 and vy[i] > 0.0 else 0.0
        r = cxy[i] / d if d > 0.0 else NAN
        out[i] = min(1.0, max(-1.0, r)) if r == r else NAN
    return out


@njit(cache=True, nogil=True)
def _rolling_extreme(x: np.ndarray, n: int, min_count: int, sign: float) -> np.ndarray:
    """Rolling max (sign=1) or min (sign=-1) with a monotonic deque: O(1) amortised per row."""
    out = np.empty(x.shape[0])
    dq = np.empty(x.shape[0], dtype=np.int64)
    head = 0
    tail = 0
    c = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v == v:
            c += 1
            while tail > head and sign * x[dq[tail - 1]] <= sign * v:
                tail -= 1
            dq[tail] = i
            tail += 1
        if i >= n:
            if x[i - n] == x[i - n]:
                c -= 1
            while tail > head and dq[head] <= i - n:
                head += 1
        out[i] = x[dq[head]] if c >= min_count and c > 0 and tail > head else NAN
    return out


@njit(cache=True, nogil=True)
def rolling_max(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return _rolling_extreme(x, n, min_count, 1.0)


@njit(cache=True, nogil=True)
def rolling_min(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return _rolling_extreme(x, n, min_count, -1.0)


@njit(cache=True, nogil=True)
def rolling_mean_abs_dev(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Mean absolute deviation from the window's own mean (CCI's denominator); O(n * window)."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        lo = max(0, i - n + 1)
        s = 0.0
        c = 0
        for j in range(lo, i + 1):
            if x[j] == x[j]:
                s += x[j]
                c += 1
        if c < min_count or c == 0:
            out[i] = NAN
            continue
        m = s / c
        d = 0.0
        for j in range(lo, i + 1):
            if x[j] == x[j]:
                d += abs(x[j] - m)
        out[i] = d / c
    return out


@njit(cache=True, nogil=True)
def ewm(x: np.ndarray, alpha: float, min_count: int) -> np.ndarray:
    """Recursive EMA y = (1-alpha) y + alpha x seeded with the first observation; missing rows are skipped (NaN out)."""
    out = np.empty(x.shape[0])
    y = 0.0
    c = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:
            out[i] = NAN
            continue
        y = v if c == 0 else (1.0 - alpha) * y + alpha * v
        c += 1
        out[i] = y if c >= min_count else NAN
    return out


@njit(cache=True, nogil=True)
def lag_valid(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted by k rows (NaN for the first k rows); a missing lagged value stays missing."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = x[i - k] if i >= k else NAN
    return out


@njit(cache=True, nogil=True)
def true_range(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    """max(h-l, |h-prev c|, |l-prev c|); falls back to h-l when the previous close is missing (after a gap)."""
    out = np.empty(h.shape[0])
    for i in range(h.shape[0]):
        r = h[i] - lo[i]
        if i > 0 and c[i - 1] == c[i - 1] and r == r:
            r = max(r, abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))
        out[i] = r
    return out


@njit(cache=True, nogil=True)
def adx(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    """Wilder's ADX: smoothed +DM/-DM/TR -> DI -> DX -> Wilder-smoothed DX."""
    size = h.shape[0]
    tr = true_range(h, lo, c)
    pdm = np.empty(size)
    mdm = np.empty(size)
    for i in range(size):
        if i == 0 or h[i - 1] != h[i - 1] or h[i] != h[i]:
            pdm[i] = NAN
            mdm[i] = NAN
            continue
        up = h[i] - h[i - 1]
        down = lo[i - 1] - lo[i]
        pdm[i] = up if up > down and up > 0.0 else 0.0
        mdm[i] = down if down > up and down > 0.0 else 0.0
    alpha = 1.0 / n
    atr_ = ewm(np.where(np.isnan(pdm), NAN, tr), alpha, n)
    sp = ewm(pdm, alpha, n)
    sm = ewm(mdm, alpha, n)
    dx = np.empty(size)
    for i in range(size):
        if atr_[i] > 0.0 and sp[i] == sp[i] and sm[i] == sm[i]:
            pdi = sp[i] / atr_[i]
            mdi = sm[i] / atr_[i]
            tot = pdi + mdi
            dx[i] = 100.0 * abs(pdi - mdi) / tot if tot > 0.0 else 0.0
        else:
            dx[i] = NAN
    return ewm(dx, alpha, n)


@njit(cache=True, nogil=True)
def _fenwick_add(tree: np.ndarray, i: int, v: int) -> None:
    i += 1
    while i < tree.shape[0]:
        tree[i] += v
        i += i & (-i)


@njit(cache=True, nogil=True)
def _fenwick_prefix(tree: np.ndarray, i: int) -> int:
    """Sum of counts at ranks [0, i]."""
    i += 1
    s = 0
    while i > 0:
        s += tree[i]
        i -= i & (-i)
    return s


@njit(cache=True, nogil=True)
def _rank_window(ranks: np.ndarray, n_ranks: int, n: int, min_count: int) -> np.ndarray:
    tree = np.zeros(n_ranks + 1, dtype=np.int64)
    out = np.empty(ranks.shape[0])
    c = 0
    for i in range(ranks.shape[0]):
        r = ranks[i]
        if r >= 0:
            _fenwick_add(tree, r, 1)
            c += 1
        if i >= n and ranks[i - n] >= 0:
            _fenwick_add(tree, ranks[i - n], -1)
            c -= 1
        out[i] = _fenwick_prefix(tree, r) / c if r >= 0 and c >= min_count else NAN
    return out


def rolling_pct_rank(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Share of the window's present values that are <= x[t] (scipy's percentileofscore kind='weak' / 100).

    O(rows * log(distinct values)) with a Fenwick tree over value ranks. Ranks come from the whole array, but only
    their order is used, so the result at row t depends on the window alone (point-in-time safe).
    """
    x = np.asarray(x, dtype=np.float64)
    valid = ~np.isnan(x)
    ranks = np.full(x.shape[0], -1, dtype=np.int64)
    uniq, inv = np.unique(x[valid], return_inverse=True)
    ranks[valid] = inv
    return _rank_window(ranks, max(len(uniq), 1), n, min_count)


@njit(cache=True, nogil=True)
def signed_run_length(x: np.ndarray, cap: int) -> np.ndarray:
    """Signed count of consecutive rows with the sign of x (capped so a finite warm-up reproduces it exactly)."""
    out = np.empty(x.shape[0])
    run = 0
    prev = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:
            run = 0
            prev = 0.0
            out[i] = NAN
            continue
        s = 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)
        if s == 0.0:
            run = 0
        elif s == prev:
            run = min(run + 1, cap)
        else:
            run = 1
        prev = s
        out[i] = s * run
    return out


@njit(cache=True, nogil=True)
def nan_cumsum(x: np.ndarray) -> np.ndarray:
    """Cumulative sum skipping missing rows (NaN out at missing rows)."""
    out = np.empty(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] == x[i]:
            s += x[i]
            out[i] = s
        else:
            out[i] = NAN
    return out
