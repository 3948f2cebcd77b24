"""Numba kernels for the rolling statistics behind the feature layer.

Polars' own rolling functions take 15-25 ns per row once a column holds nulls and its rolling rank is O(window); the
feature budget (3M bar-rows/s/core for ~100 columns) leaves ~3 ns per column-row, so the hot loops live here. All
kernels take float64 arrays where NaN means "missing" (gap bars), skip missing values inside windows (a window is
valid once it holds `min_count` observations) and return NaN where the result is undefined. They are strictly causal:
the value at row t reads rows <= t only, which is what makes the features point-in-time. Summation orders depend on
the window alone (never on the row's absolute position), so appending rows never changes an earlier value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

NAN = np.nan


@njit(cache=True, nogil=True, inline="always")
def _window_step(v: float, u: float, s: float, c: int) -> tuple[float, int]:
    """Slide a window sum (s over c present values) by entering v and leaving u (either may be NaN = missing).

    When both are present the count stays and the sum moves by their difference: the sum's dependency chain is one
    addition per row, not two (the latency of that chain bound the single-window loops). Once the window is empty
    the sum restarts at 0, dropping accumulated rounding."""
    if v == v and u == u:
        return s + (v - u), c
    if v == v:
        return s + v, c + 1
    if u == u:
        return (s - u, c - 1) if c > 1 else (0.0, 0)
    return s, c


@njit(cache=True, nogil=True, inline="always")
def _sum_scale(c: int, min_count: int, mean: bool) -> float:
    """What a window sum over c present values is multiplied by: 1/c for a mean, 1 for a sum, NaN below min_count.

    It changes only when the count does, so a mean costs a multiply per row instead of a division (the divider's
    throughput bound the fused loops); s * (1/c) is within an ulp of s / c."""
    if c < min_count or c <= 0:
        return NAN
    return 1.0 / c if mean else 1.0


@njit(cache=True, nogil=True)
def _rolling_sum_into(x: np.ndarray, n: int, min_count: int, mean: bool, out: np.ndarray) -> np.ndarray:
    s = 0.0
    c = 0
    scale = NAN
    for i in range(x.shape[0]):
        c_was = c
        s, c = _window_step(x[i], x[i - n] if i >= n else NAN, s, c)
        if c != c_was:
            scale = _sum_scale(c, min_count, mean)
        out[i] = s * scale
    return out


@njit(cache=True, nogil=True)
def rolling_sum(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return _rolling_sum_into(x, n, min_count, False, np.empty(x.shape[0]))


@njit(cache=True, nogil=True)
def rolling_mean(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return _rolling_sum_into(x, n, min_count, True, np.empty(x.shape[0]))


@njit(cache=True, nogil=True)
def rolling_cov(x: np.ndarray, y: np.ndarray, n: int, min_count: int, ddof: int) -> np.ndarray:
    """Rolling covariance over pairs where both sides are present (Welford add/remove updates; a pair that replaces
    another is one sliding update, as in `_welford_step`)."""
    out = np.empty(x.shape[0])
    mx = 0.0
    my = 0.0
    cxy = 0.0
    c = 0
    for i in range(x.shape[0]):
        a = x[i]
        b = y[i]
        if i >= n and a == a and b == b:
            a0 = x[i - n]
            b0 = y[i - n]
            if a0 == a0 and b0 == b0:  # c unchanged (>= 1: the leaving pair is in the window)
                mx_new = mx + (a - a0) / c
                cxy += (a - mx_new) * (b - my) - (a0 - mx_new) * (b0 - my)
                mx = mx_new
                my += (b - b0) / c
                out[i] = cxy / (c - ddof) if c >= min_count and c - ddof > 0 else NAN
                continue
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
    """Welford moments (`_welford_step`, as the fused std lanes use), clamped at 0."""
    out = np.empty(x.shape[0])
    c = 0
    m = 0.0
    s = 0.0
    r = 0.0
    scale = NAN
    for i in range(x.shape[0]):
        c_was = c
        c, m, s, r = _welford_step(x[i], x[i - n] if i >= n else NAN, i >= n, c, m, s, r)
        if c != c_was:
            scale = _var_scale(c, min_count, ddof)
        v = s * scale
        out[i] = 0.0 if v < 0.0 else v
    return out


@njit(cache=True, nogil=True)
def rolling_pair_var(x: np.ndarray, n: int, min_count: int, ddof: int) -> np.ndarray:
    """rolling_cov(x, x) clamped at 0: the variance to divide a `rolling_cov` by (correlation, beta). It shares the
    covariance's arithmetic, so a series against itself gives a correlation and a beta of exactly 1, not 1 +- 1e-15
    noise that a z-score detector downstream would amplify into events."""
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
def rolling_corr_beta(x: np.ndarray, y: np.ndarray, n: int, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling correlation of x with y (clipped to [-1, 1]) and beta of x on y (cov / var(y)), over pairs where both
    are present: one covariance and two variance passes serve both."""
    cxy = rolling_cov(x, y, n, min_count, 1)
    vx = rolling_pair_var(np.where(np.isnan(y), NAN, x), n, min_count, 1)
    vy = rolling_pair_var(np.where(np.isnan(x), NAN, y), n, min_count, 1)
    corr = np.empty(x.shape[0])
    beta = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        d = math.sqrt(vx[i] * vy[i]) if vx[i] > 0.0 and vy[i] > 0.0 else 0.0
        r = cxy[i] / d if d > 0.0 else NAN
        corr[i] = min(1.0, max(-1.0, r)) if r == r else NAN
        beta[i] = cxy[i] / vy[i] if vy[i] > 0.0 else NAN
    return corr, beta


@njit(cache=True, nogil=True)
def rolling_corr(x: np.ndarray, y: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return rolling_corr_beta(x, y, n, min_count)[0]


@njit(cache=True, nogil=True)
def rolling_max(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return rolling_extreme_multi(x, np.array([n]), np.array([min_count]), 1.0)[0]


@njit(cache=True, nogil=True)
def rolling_min(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    return rolling_extreme_multi(x, np.array([n]), np.array([min_count]), -1.0)[0]


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _abs_dev_full(x: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Row i >= n - 1: mean of |x[j] - mean[i]| over the n rows ending at i, missing values included (NaN).

    `reassoc` and an output allocated here (so nothing aliases it) let LLVM compute several rows per SIMD pass;
    every row runs the same loop over its n values, so its value depends on the window alone, never on the row's
    position (tested by truncation and shifted starts).
    """
    size = x.shape[0]
    out = np.empty(size)
    for i in range(n - 1, size):
        m = mean[i]
        s = 0.0
        base = i - n + 1
        for j in range(n):
            s += abs(x[base + j] - m)
        out[i] = s / n
    return out


@njit(cache=True, nogil=True)
def mean_abs_dev_about(x: np.ndarray, mean: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Mean absolute deviation of the trailing n-row window from `mean` (its rolling mean); NaN where mean is.

    O(rows * n). Full windows (no missing values: ~all rows) come from `_abs_dev_full`, ~3x faster than scalar
    accumulators; the other rows skip their missing values here.
    """
    size = x.shape[0]
    out = _abs_dev_full(x, mean, n) if n > 0 else np.empty(size)
    cnt = valid_count(x, n)
    full_ok = n >= min_count and n > 0
    for i in range(size):
        c = cnt[i]
        m = mean[i]
        if full_ok and c == n and m == m:
            continue
        if c < min_count or c == 0 or m != m:
            out[i] = NAN
        else:
            d = 0.0
            for k in range(max(0, i - n + 1), i + 1):
                v = x[k]
                if v == v:
                    d += abs(v - m)
            out[i] = d / c
    return out


@njit(cache=True, nogil=True)
def rolling_mean_abs_dev(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Mean absolute deviation from the window's own (rolling) mean: CCI's denominator."""
    return mean_abs_dev_about(x, rolling_mean(x, n, min_count), n, min_count)


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
def directional_movement(h: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilder's +DM and -DM (NaN on the first row and next to a missing high)."""
    size = h.shape[0]
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
    return pdm, mdm


@njit(cache=True, nogil=True)
def directional_index(atr_: np.ndarray, sp: np.ndarray, sm: np.ndarray) -> np.ndarray:
    """DX = 100 |+DI - -DI| / (+DI + -DI) from smoothed TR, +DM and -DM."""
    size = atr_.shape[0]
    dx = np.empty(size)
    for i in range(size):
        if atr_[i] > 0.0 and sp[i] == sp[i] and sm[i] == sm[i]:
            pdi = sp[i] / atr_[i]
            mdi = sm[i] / atr_[i]
            tot = pdi + mdi
            dx[i] = 100.0 * abs(pdi - mdi) / tot if tot > 0.0 else 0.0
        else:
            dx[i] = NAN
    return dx


@njit(cache=True, nogil=True)
def adx(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    """Wilder's ADX: smoothed +DM/-DM/TR -> DI -> DX -> Wilder-smoothed DX."""
    tr = true_range(h, lo, c)
    pdm, mdm = directional_movement(h, lo)
    alpha = 1.0 / n
    atr_ = ewm(np.where(np.isnan(pdm), NAN, tr), alpha, n)
    dx = directional_index(atr_, ewm(pdm, alpha, n), ewm(mdm, alpha, n))
    return ewm(dx, alpha, n)


@intrinsic
def _popcount(typingctx: Any, x: Any) -> Any:
    """Set bits of a uint64 (LLVM's ctpop: one instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, nogil=True)
def _rank_window(ordinal: np.ndarray, last: np.ndarray, present: int, n: int, min_count: int) -> np.ndarray:
    """Share of the window's present values <= x[t], from sort positions (see `_sort_ranks`).

    The window is a bitset over sort positions (one bit per present row: 12 KB for 95k rows) with a Fenwick tree of
    per-word counts: "values <= x[t]" is the count of set positions <= last[t], i.e. the tree's prefix over the
    words before it plus one popcount. Its 1.5k-word tree stays in L1, where a tree over every rank did not.
    """
    rows = ordinal.shape[0]
    words = (max(present, 1) + 63) // 64
    bits = np.zeros(words, dtype=np.uint64)
    tree = np.zeros(words + 1, dtype=np.int32)
    out = np.empty(rows)
    one = np.uint64(1)
    c = 0
    for i in range(rows):
        r = ordinal[i]
        if r >= 0:
            bits[r >> 6] |= one << np.uint64(r & 63)
            w = (r >> 6) + 1
            while w <= words:
                tree[w] += 1
                w += w & (-w)
            c += 1
        if i >= n:
            q = ordinal[i - n]
            if q >= 0:
                bits[q >> 6] &= ~(one << np.uint64(q & 63))
                w = (q >> 6) + 1
                while w <= words:
                    tree[w] -= 1
                    w += w & (-w)
                c -= 1
        if r >= 0 and c >= min_count:
            h = last[i]
            k = h >> 6
            word = bits[k]
            b = np.uint64(h & 63)
            below = np.int64(_popcount(word if b == 63 else word & ((one << (b + one)) - one)))  # type: ignore[call-arg]
            while k > 0:  # words before h's word
                below += tree[k]
                k -= k & (-k)
            out[i] = below / c
        else:
            out[i] = NAN
    return out


@njit(cache=True, nogil=True)
def _order_keys(x: np.ndarray) -> np.ndarray:
    """Unsigned keys whose integer order is x's float order (missing values last; -0.0 and 0.0 share a key)."""
    keys = np.empty(x.shape[0], dtype=np.uint64)
    bits = x.view(np.uint64)
    sign = np.uint64(1) << np.uint64(63)
    for i in range(x.shape[0]):
        b = bits[i]
        if x[i] != x[i]:
            keys[i] = ~np.uint64(0)
        elif b == sign:  # -0.0 == 0.0: one key
            keys[i] = sign
        elif b & sign:
            keys[i] = ~b
        else:
            keys[i] = b | sign
    return keys


@njit(cache=True, nogil=True)
def _ranks_from_packed(
    packed: np.ndarray, keys: np.ndarray, order: np.ndarray, shift: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(position in sorted order, last position of its ties, present rows) from rows sorted by key, `order`, and
    `packed`: the sorted keys with their low `shift` bits holding the row (`_packed_order`; shift 0: the sorted keys
    themselves). Two rows hold equal values only if their high key bits, read in sorted order, are equal, so a key
    is gathered only then. Missing values (all-ones keys) sort last."""
    rows = order.shape[0]
    ordinal = np.full(rows, -1, dtype=np.int64)
    last = np.full(rows, -1, dtype=np.int64)
    missing = ~np.uint64(0)
    present = rows
    while present > 0 and keys[order[present - 1]] == missing:
        present -= 1
    s = np.uint64(shift)
    end = present - 1
    for j in range(present - 1, -1, -1):
        idx = order[j]
        if j < present - 1 and ((packed[j] >> s) != (packed[j + 1] >> s) or keys[idx] != keys[order[j + 1]]):
            end = j
        ordinal[idx] = j
        last[idx] = end
    return ordinal, last, present


@njit(cache=True, nogil=True)
def _pack_keys(keys: np.ndarray, shift: int) -> np.ndarray:
    """keys with their low `shift` bits replaced by the row index: one uint64 sort then orders rows by the keys'
    high bits (ties of those broken by row)."""
    out = np.empty(keys.shape[0], dtype=np.uint64)
    s = np.uint64(shift)
    for i in range(keys.shape[0]):
        out[i] = ((keys[i] >> s) << s) | np.uint64(i)
    return out


_RUN_MAX = 64  # a longer run of keys sharing their high bits but not all equal: argsort the full keys instead


@njit(cache=True, nogil=True)
def _sort_run(order: np.ndarray, keys: np.ndarray, i: int, j: int) -> bool:
    """Put order[i:j] (rows sharing their keys' high bits) in full-key order by insertion sort; False, leaving it
    as is, when the run holds different keys and is longer than _RUN_MAX (long insertion sorts are quadratic)."""
    k0 = keys[order[i]]
    t = i + 1
    while t < j and keys[order[t]] == k0:
        t += 1
    if t == j:
        return True  # one key throughout (ties): already in order, whatever the length
    if j - i > _RUN_MAX:
        return False
    for t in range(i + 1, j):
        o = order[t]
        k = keys[o]
        u = t - 1
        while u >= i and keys[order[u]] > k:
            order[u + 1] = order[u]
            u -= 1
        order[u + 1] = o
    return True


@njit(cache=True, nogil=True)
def _unpack_order(packed: np.ndarray, keys: np.ndarray, shift: int) -> tuple[np.ndarray, bool]:
    """Row order from sorted packed keys, each run of rows sharing the high bits re-sorted by full key (runs are of
    rows within ~2^-35 relative of each other, so rare and short); False when a run is too long to re-sort."""
    rows = packed.shape[0]
    s = np.uint64(shift)
    mask = (np.uint64(1) << s) - np.uint64(1)
    order = np.empty(rows, dtype=np.int64)
    for i in range(rows):
        order[i] = np.int64(packed[i] & mask)
    i = 0
    while i < rows:
        j = i + 1
        while j < rows and (packed[j] >> s) == (packed[i] >> s):
            j += 1
        if j - i > 1 and not _sort_run(order, keys, i, j):
            return order, False
        i = j
    return order, True


def _packed_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """(sorted packed keys, row order by key, whether that order is complete, row-index bits packed).

    numpy's AVX-512 sort of (high key bits | row) values is ~2x faster than its argsort of the keys and ~15x faster
    than argsorting floats, which falls back to a scalar sort once NaN is present; rows whose keys differ only in
    the low bits are put in key order afterwards, unless a run of them is too long (then the order is incomplete).
    """
    shift = max(1, (keys.shape[0] - 1).bit_length())
    packed = _pack_keys(keys, shift)
    packed.sort()
    order, ok = _unpack_order(packed, keys, shift)
    return packed, order, ok, shift


def _sort_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(position of each present row in x's sorted order, the last position holding an equal value, number of
    present rows); -1 for missing rows. -0.0 and 0.0 are equal. Only the order is used, so any correct sort gives
    the same window shares."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    keys = _order_keys(x)
    packed, order, ok, shift = _packed_order(keys)
    if ok:
        return _ranks_from_packed(packed, keys, order, shift)  # type: ignore[no-any-return]
    order = np.argsort(keys)  # a run of keys equal in their high bits was too long to order: the keys' argsort
    return _ranks_from_packed(keys[order], keys, order, 0)  # type: ignore[no-any-return]


def rolling_pct_rank(x: np.ndarray, n: int, min_count: int) -> np.ndarray:
    """Share of the window's present values that are <= x[t] (scipy's percentileofscore kind='weak' / 100).

    O(rows * log(rows / 64)): a bitset over sort positions with a Fenwick tree of word counts. Positions come from
    the whole array, but only their order is used, so the result at row t depends on the window alone (point-in-time
    safe).
    """
    ordinal, last, present = _sort_ranks(x)
    return _rank_window(ordinal, last, present, n, min_count)


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


# --- fused kernels: one call computes several windows of the same input ------------------------------------------
# Each window keeps exactly the state (and the arithmetic order) of its single-window kernel above, so a fused result
# is bitwise identical to the separate call; the gain is what the windows share (the input in cache, the extremes'
# sparse-table levels). EWMs and standard deviations of several inputs run as lanes (`ewm_lanes`, `rolling_std_lanes2`).


@njit(cache=True, nogil=True)
def rolling_sum_multi(x: np.ndarray, ns: np.ndarray, min_counts: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Row k = rolling_mean(x, ns[k], min_counts[k]) if means[k] else rolling_sum(x, ns[k], min_counts[k]).

    One pass per window, x re-read from cache: with the sum's chain at one addition per row and no division, a lone
    window's loop (state in registers) outruns interleaved windows whose state goes through memory every row.
    """
    k_n = ns.shape[0]
    rows = x.shape[0]
    out = np.empty((k_n, rows))
    for k in range(k_n):
        _rolling_sum_into(x, ns[k], min_counts[k], means[k], out[k])
    return out


@njit(cache=True, nogil=True, inline="always")
def _welford_step(
    a: float, b: float, drop: bool, c: int, m: float, s: float, r: float
) -> tuple[int, float, float, float]:
    """Add `a` and (if `drop`) remove `b` from a Welford state (count, mean, sum of squared deviations, 1/count).

    When one value replaces another (the common case) the count is unchanged and one sliding update does both,
    moving the mean by the difference times the held reciprocal of the count: no division per row (the divider's
    throughput bound the lanes), and the mean's dependency chain is one addition. The reciprocal is recomputed
    only when the count changes; m + d * (1/c) is within an ulp of m + d / c.
    """
    if drop and a == a and b == b:
        d = a - b
        m_new = m + d * r  # c >= 1: b is in the window
        s += d * ((a - m_new) + (b - m))
        return c, m_new, s, r
    if a == a:
        c += 1
        dx = a - m
        m += dx / c
        s += dx * (a - m)
    if drop and b == b:
        c -= 1
        if c == 0:
            m = 0.0
            s = 0.0
        else:
            dx = b - m
            m -= dx / c
            s -= dx * (b - m)
    return c, m, s, 1.0 / c if c > 0 else 0.0


@njit(cache=True, nogil=True)
def valid_count(x: np.ndarray, n: int) -> np.ndarray:
    """Number of present values in the trailing n-row window."""
    out = np.empty(x.shape[0], dtype=np.int64)
    c = 0
    for i in range(x.shape[0]):
        if x[i] == x[i]:
            c += 1
        if i >= n and x[i - n] == x[i - n]:
            c -= 1
        out[i] = c
    return out


@njit(cache=True, nogil=True)
def _pick(a: float, b: float, sign: float) -> float:
    """max (sign=1) or min (sign=-1) of a and b ignoring NaN (NaN only when both are)."""
    if a != a:
        return b
    if b != b:
        return a
    return b if sign * b > sign * a else a


@njit(cache=True, nogil=True)
def rolling_extreme_multi(x: np.ndarray, ns: np.ndarray, min_counts: np.ndarray, sign: float) -> np.ndarray:
    """Row k = rolling max (sign=1) / min (sign=-1) of x over ns[k] rows, skipping NaN; NaN below min_counts[k].

    Sparse-table doubling: level p holds the extreme of the 2^p rows ending at each row (built level by level in
    two alternating buffers); a window of n rows is the extreme of two overlapping level-p windows (2^p <= n).
    Levels are shared by all windows and every step is a branch-free elementwise max (missing values enter as
    -inf; a prefix count of present values decides validity), far faster than a monotonic deque on noisy data.
    The table is built tile by tile (each tile re-reads the longest window's rows before it), so levels and counts
    stay in L1/L2 and only x and the outputs go to memory. Max/min are exact, so the result equals the deque's.
    """
    rows = x.shape[0]
    k_n = ns.shape[0]
    out = np.empty((k_n, rows))
    level_of = np.empty(k_n, dtype=np.int64)
    top = 0
    halo = 0
    for k in range(k_n):
        p = 0
        while (2 << p) <= ns[k]:
            p += 1
        level_of[k] = p
        top = max(top, p)
        halo = max(halo, ns[k] - 1)
    tile = max(2048, 4 * halo)
    size = tile + halo
    lev = np.empty(size)
    nxt = np.empty(size)
    present = np.empty(size + 1, dtype=np.int64)  # present[r] = present values among loaded rows < r
    for t0 in range(0, rows, tile):
        t1 = min(rows, t0 + tile)
        h0 = max(0, t0 - halo)
        m = t1 - h0
        a, b = lev, nxt
        present[0] = 0
        for r in range(m):
            v = sign * x[h0 + r]
            ok = v == v
            a[r] = v if ok else -np.inf
            present[r + 1] = present[r] + ok
        for p in range(top + 1):
            if p > 0:
                h = min(1 << (p - 1), m)
                b[:h] = a[:h]
                _max_shifted(a[h:m], a[: m - h], b[h:m])
                a, b = b, a
            w = 1 << p
            for k in range(k_n):
                if level_of[k] != p:
                    continue
                n = ns[k]
                mc = max(min_counts[k], 1)
                o = out[k]
                first = t0
                if t0 < n - 1:  # rows whose window starts before row 0 (first tile: h0 = 0)
                    head = min(t1, n - 1)
                    for i in range(t0, head):
                        j = i - n + w
                        u = a[i]
                        v = a[j] if j >= 0 else u
                        mm = u if u >= v else v
                        o[i] = sign * mm if present[i + 1] >= mc else NAN
                    first = head
                if t1 > first:
                    l0, l1 = first - h0, t1 - h0  # loaded rows of the outputs; their windows start n - 1 earlier
                    _window_extreme(
                        a[l0:l1],
                        a[l0 - n + w : l1 - n + w],
                        present[l0 + 1 : l1 + 1],
                        present[l0 - n + 1 : l1 - n + 1],
                        mc,
                        sign,
                        o[first:t1],
                    )
    return out


@njit(cache=True, nogil=True)
def _max_shifted(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = elementwise max of a and b (no NaN inside: missing values are -inf)."""
    for i in range(a.shape[0]):
        u = a[i]
        v = b[i]
        out[i] = u if u >= v else v


@njit(cache=True, nogil=True)
def _window_extreme(
    a: np.ndarray, b: np.ndarray, cnt_end: np.ndarray, cnt_start: np.ndarray, mc: int, sign: float, o: np.ndarray
) -> None:
    """o[i] = sign * max(a[i], b[i]) where the window's present count cnt_end[i] - cnt_start[i] reaches mc."""
    for i in range(o.shape[0]):
        u = a[i]
        v = b[i]
        m = u if u >= v else v
        o[i] = sign * m if cnt_end[i] - cnt_start[i] >= mc else NAN


# --- single-pass elementwise helpers: one read of each input instead of several numpy temporaries ---------------


@njit(cache=True, nogil=True)
def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b == 0 (NaN b gives NaN)."""
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = a[i] / b[i] if b[i] != 0.0 else NAN
    return out


# --- one-pass elementwise combinations: a numpy expression makes a temporary array (a trip to memory) per operation


@njit(cache=True, nogil=True)
def diff_ratio(a: np.ndarray, b: np.ndarray, d: np.ndarray, absolute: bool) -> np.ndarray:
    """(a - b) / d (|a - b| / d when `absolute`), NaN where d == 0: `safe_div` of the difference, in one pass."""
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        v = a[i] - b[i]
        if absolute:
            v = abs(v)
        out[i] = v / d[i] if d[i] != 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def spread_bps(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """(ask - bid) / mid * 1e4 with mid = (ask + bid) / 2, NaN where mid == 0."""
    out = np.empty(bid.shape[0])
    for i in range(bid.shape[0]):
        mid = (ask[i] + bid[i]) / 2.0
        out[i] = (ask[i] - bid[i]) / mid * 1e4 if mid != 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def typical_price(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(h + lo + c) / 3."""
    out = np.empty(h.shape[0])
    for i in range(h.shape[0]):
        out[i] = (h[i] + lo[i] + c[i]) / 3.0
    return out


@njit(cache=True, nogil=True)
def signed_by_change(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sign(c[t] - c[t-1]) * v[t] (0 on no change), NaN on the first row and where either side is missing."""
    out = np.empty(c.shape[0])
    if c.shape[0]:
        out[0] = NAN
    for i in range(1, c.shape[0]):
        d = c[i] - c[i - 1]
        out[i] = (1.0 if d > 0.0 else -1.0 if d < 0.0 else 0.0 if d == 0.0 else NAN) * v[i]
    return out


@njit(cache=True, nogil=True)
def missing_where(mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x with NaN wherever `mask` is NaN."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = NAN if mask[i] != mask[i] else x[i]
    return out


@njit(cache=True, nogil=True)
def midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b) / 2."""
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = (a[i] + b[i]) / 2.0
    return out


@njit(cache=True, nogil=True)
def ratio_index(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """100 * up / (up + down); 50 when both are zero (no movement), NaN when undefined."""
    out = np.empty(up.shape[0])
    for i in range(up.shape[0]):
        tot = up[i] + down[i]
        if tot > 0.0:
            out[i] = 100.0 * up[i] / tot
        else:
            out[i] = 50.0 if tot == 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def imbalance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b); 0 when both are zero, NaN when undefined."""
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        tot = a[i] + b[i]
        if tot > 0.0:
            out[i] = (a[i] - b[i]) / tot
        else:
            out[i] = 0.0 if tot == 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def standardize(x: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(x - m) / s where s > 0, else NaN."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = (x[i] - m[i]) / s[i] if s[i] > 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def bands(
    x: np.ndarray, mid: np.ndarray, sd: np.ndarray, k: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """upper/lower = mid +- k sd, %B = (x - lower) / (upper - lower), width = (upper - lower) / mid."""
    size = x.shape[0]
    upper = np.empty(size)
    lower = np.empty(size)
    pctb = np.empty(size)
    width = np.empty(size)
    for i in range(size):
        u = mid[i] + k * sd[i]
        lo = mid[i] - k * sd[i]
        w = u - lo
        upper[i] = u
        lower[i] = lo
        pctb[i] = (x[i] - lo) / w if w != 0.0 else NAN
        width[i] = w / mid[i] if mid[i] != 0.0 else NAN
    return upper, lower, pctb, width


@njit(cache=True, nogil=True)
def channel_position(c: np.ndarray, hh: np.ndarray, ll: np.ndarray, scale: float, from_high: bool) -> np.ndarray:
    """scale * (c - ll) / (hh - ll) (stochastic %K) or scale * (hh - c) / (hh - ll) (Williams %R, scale -100)."""
    out = np.empty(c.shape[0])
    for i in range(c.shape[0]):
        num = scale * (hh[i] - c[i]) if from_high else scale * (c[i] - ll[i])
        rng = hh[i] - ll[i]
        out[i] = num / rng if rng != 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def gain_loss(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """max(dx, 0) and max(-dx, 0) of the one-row change (NaN where the change is missing)."""
    size = x.shape[0]
    gain = np.empty(size)
    loss = np.empty(size)
    for i in range(size):
        d = x[i] - x[i - 1] if i > 0 else NAN
        if d != d:
            gain[i] = NAN
            loss[i] = NAN
        else:
            gain[i] = d if d > 0.0 else 0.0
            loss[i] = -d if -d > 0.0 else 0.0
    return gain, loss


@njit(cache=True, nogil=True)
def money_flows(tp: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Money flow tp*v on up-ticks / down-ticks of the typical price (0 otherwise, NaN when undefined)."""
    size = tp.shape[0]
    pos = np.empty(size)
    neg = np.empty(size)
    for i in range(size):
        flow = tp[i] * v[i]
        d = tp[i] - tp[i - 1] if i > 0 else NAN
        if d != d or flow != flow:
            pos[i] = NAN
            neg[i] = NAN
        else:
            pos[i] = flow if d > 0.0 else 0.0
            neg[i] = flow if d < 0.0 else 0.0
    return pos, neg


@njit(cache=True, nogil=True)
def wick_ratio(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, upper: bool) -> np.ndarray:
    """Upper (h - max(o, c)) or lower (min(o, c) - l) wick over the range; 0 for a zero range (NaN-skipping max)."""
    out = np.empty(o.shape[0])
    for i in range(o.shape[0]):
        rng = h[i] - lo[i]
        body = _pick(o[i], c[i], 1.0 if upper else -1.0)
        wick = h[i] - body if upper else body - lo[i]
        if rng > 0.0:
            out[i] = wick / rng
        else:
            out[i] = 0.0 if rng == 0.0 else NAN
    return out


def lagged_log_ratio(x: np.ndarray, n: int) -> np.ndarray:
    """log(x[t] / x[t-n]) (NaN for the first n rows), without temporaries (each pass over a column costs a trip
    to memory)."""
    out = np.empty(x.shape[0])
    out[: min(n, x.shape[0])] = NAN
    if n < x.shape[0]:
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(x[n:], x[: x.shape[0] - n], out=out[n:])
            np.log(out[n:], out=out[n:])
    return out


@njit(cache=True, nogil=True)
def _positive_ratio(x: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = x[i] / x[i - n] if i >= n and x[i] > 0.0 and x[i - n] > 0.0 else NAN
    return out


def positive_log_change(x: np.ndarray, n: int) -> np.ndarray:
    """log(x[t] / x[t-n]) where both are positive, else NaN."""
    out = _positive_ratio(x, n)
    np.log(out, out=out)
    return out


@njit(cache=True, nogil=True)
def utc_calendar(us: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ISO weekday, hour, "last day of its month" (1.0 / 0.0) as float64, the evaluation's numeric type, and day
    number (int64, since 1970-01-01) of UTC epoch microseconds."""
    size = us.shape[0]
    weekday = np.empty(size)
    hour = np.empty(size)
    month_end = np.empty(size)
    days = np.empty(size, dtype=np.int64)
    day_us = 86_400_000_000
    last_day = -(2**62)
    last_end = False
    for i in range(size):
        d = us[i] // day_us
        days[i] = d
        weekday[i] = (d + 3) % 7 + 1
        hour[i] = (us[i] - d * day_us) // 3_600_000_000
        if d != last_day:  # civil date of the next day (inverse of Hinnant's days_from_civil): is it the 1st?
            z = d + 1 + 719468
            era = (z if z >= 0 else z - 146096) // 146097
            doe = z - era * 146097
            yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
            doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
            mp = (5 * doy + 2) // 153
            last_end = doy - (153 * mp + 2) // 5 + 1 == 1
            last_day = d
        month_end[i] = 1.0 if last_end else 0.0
    return weekday, hour, month_end, days


@njit(cache=True, nogil=True, inline="always")
def _var_scale(c: int, min_count: int, ddof: int) -> float:
    """What a sum of squared deviations over c values is multiplied by to give the variance: 1 / (c - ddof), NaN
    below min_count or without degrees of freedom. Held while the count stays, so no division per row."""
    return 1.0 / (c - ddof) if c >= min_count and c - ddof > 0 else NAN


@njit(cache=True, nogil=True)
def scaled_sqrt(x: np.ndarray, factor: float) -> np.ndarray:
    """sqrt(x * factor) (realized / Parkinson volatility from a mean of squares)."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = math.sqrt(x[i] * factor) if x[i] * factor >= 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def offset_band(mid: np.ndarray, width: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """mid + k * width and mid - k * width."""
    upper = np.empty(mid.shape[0])
    lower = np.empty(mid.shape[0])
    for i in range(mid.shape[0]):
        upper[i] = mid[i] + k * width[i]
        lower[i] = mid[i] - k * width[i]
    return upper, lower


@njit(cache=True, nogil=True)
def rate_of_change(x: np.ndarray, n: int) -> np.ndarray:
    """100 * (x[t] / x[t-n] - 1); NaN for the first n rows and where x[t-n] is 0."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        if i < n:
            out[i] = NAN
        else:
            prev = x[i - n]
            out[i] = 100.0 * (x[i] / prev - 1.0) if prev != 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def liquidation_proxy(oi_chg: np.ndarray, r: np.ndarray, vz: np.ndarray) -> np.ndarray:
    """-sign(r) * max(-oi_chg, 0) * 1e4 * (1 + max(vz, 0)), NaN-propagating."""
    out = np.empty(r.shape[0])
    for i in range(r.shape[0]):
        o = -oi_chg[i]
        flushed = (o if o > 0.0 or o != o else 0.0) * 1e4
        v = vz[i]
        boost = 1.0 + (v if v > 0.0 or v != v else 0.0)
        ri = r[i]
        sign = NAN if ri != ri else (1.0 if ri > 0.0 else (-1.0 if ri < 0.0 else 0.0))
        out[i] = -sign * flushed * boost
    return out


@njit(cache=True, nogil=True)
def illiquidity(r: np.ndarray, c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """|r| / (c * v) * 1e6 where the traded value is positive (Amihud's per-bar term), else NaN."""
    out = np.empty(r.shape[0])
    for i in range(r.shape[0]):
        dollar = c[i] * v[i]
        out[i] = abs(r[i]) / dollar * 1e6 if dollar > 0.0 else NAN
    return out


@njit(cache=True, nogil=True)
def extreme_flag(z: np.ndarray, level: np.ndarray, z_min: float, abs_min: float) -> np.ndarray:
    """1.0 if |z| >= z_min or |level| >= abs_min (each only when present), 0.0 otherwise, NaN if both missing."""
    out = np.empty(z.shape[0])
    for i in range(z.shape[0]):
        zi = z[i]
        li = level[i]
        if zi != zi and li != li:
            out[i] = NAN
        else:
            out[i] = 1.0 if (zi == zi and abs(zi) >= z_min) or (li == li and abs(li) >= abs_min) else 0.0
    return out


_STD_BLOCK = 512  # rows of Welford moments held (in L1) before the vectorised std pass turns them into outputs


@njit(cache=True, nogil=True)
def _std_lane(
    x: np.ndarray, n: int, ddof: int, ddof_b: int, min_count: int, out: np.ndarray, out_b: np.ndarray,
    ss: np.ndarray, sa: np.ndarray, sb: np.ndarray,
) -> None:
    """One rolling_std lane: Welford moments per block of rows, then `std_from_moments` while the block is in L1;
    out_b = the same window with ddof `ddof_b` when that is >= 0 (both from one set of moments)."""
    rows = x.shape[0]
    c, m, s, r = 0, 0.0, 0.0, 0.0
    a = b = NAN
    for start in range(0, rows, _STD_BLOCK):
        stop = min(rows, start + _STD_BLOCK)
        for i in range(start, stop):
            was = c
            c, m, s, r = _welford_step(x[i], x[i - n] if i >= n else NAN, i >= n, c, m, s, r)
            if c != was:
                a, b = _var_scale(c, min_count, ddof), _var_scale(c, min_count, ddof_b)
            ss[i - start], sa[i - start], sb[i - start] = s, a, b
        size = stop - start
        std_from_moments(ss[:size], sa[:size], out[start:stop])
        if ddof_b >= 0:
            std_from_moments(ss[:size], sb[:size], out_b[start:stop])


@njit(cache=True, nogil=True)
def rolling_std_lanes2(
    x0: np.ndarray,
    x1: np.ndarray,
    x2: np.ndarray,
    x3: np.ndarray,
    ns: np.ndarray,
    ddofs: np.ndarray,
    ddofs_b: np.ndarray,
    min_counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to four rolling_std lanes (lane k reads xk, window ns[k], ddof ddofs[k]; out_b[k] the same window with ddof
    ddofs_b[k] where that is >= 0; rows of out_b for other lanes are left untouched), one lane after the other."""
    lanes = ns.shape[0]
    rows = x0.shape[0]
    out = np.empty((lanes, rows))
    out_b = np.empty((lanes, rows))  # pages of unused rows are never touched
    ss, sa, sb = np.empty(_STD_BLOCK), np.empty(_STD_BLOCK), np.empty(_STD_BLOCK)
    xs = (x0, x1, x2, x3)
    for k in range(lanes):
        _std_lane(xs[k], ns[k], ddofs[k], ddofs_b[k], min_counts[k], out[k], out_b[k], ss, sa, sb)
    return out, out_b


@njit(cache=True, nogil=True)
def std_from_moments(ss: np.ndarray, scales: np.ndarray, out: np.ndarray) -> None:
    """out = sqrt(ss * scales) elementwise, 0 where rounding made the product negative, NaN where the scale is (the
    window lacks observations). Branch-free so it vectorises."""
    for i in range(ss.shape[0]):
        v = ss[i] * scales[i]
        out[i] = 0.0 if v < 0.0 else math.sqrt(v)


@njit(cache=True, nogil=True)
def validity_bitmap(x: np.ndarray, gap_rows: np.ndarray, lead: int = 0) -> tuple[np.ndarray, int]:
    """Arrow validity bitmap (LSB-first bytes, whole 64-bit words) of x != NaN with `gap_rows` and the first `lead`
    rows (a feature's warm-up) cleared, + null count.

    Built right after a column is computed (still in cache), it lets the output column wrap the float buffer without
    the copy and second cold pass of polars' NaN-to-null conversion; gap rows need no write into the values.
    """
    size = x.shape[0]
    words = np.zeros((size + 63) // 64, dtype=np.uint64)
    valid = 0
    for j in range(size // 64):
        w = np.uint64(0)
        base = j * 64
        for t in range(64):
            v = x[base + t]
            ok = v == v
            valid += ok
            w |= np.uint64(ok) << np.uint64(t)
        words[j] = w
    for i in range((size // 64) * 64, size):
        v = x[i]
        if v == v:
            valid += 1
            words[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    for r in gap_rows:
        bit = np.uint64(1) << np.uint64(r & 63)
        if words[r >> 6] & bit:
            words[r >> 6] &= ~bit
            valid -= 1
    for r in range(min(lead, size)):
        bit = np.uint64(1) << np.uint64(r & 63)
        if words[r >> 6] & bit:
            words[r >> 6] &= ~bit
            valid -= 1
    return words.view(np.uint8), size - valid


@njit(cache=True, nogil=True)
def label_views(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Arrow string-view structs (16 bytes: length + inlined bytes) of `table[code]` per row, all zeros where the
    code is NaN: a label column's values built by copying two words per row instead of gathering strings."""
    rows = codes.shape[0]
    out = np.empty((rows, 2), dtype=np.uint64)
    labels = table.shape[0]
    padded = np.zeros((labels + 1, 2), dtype=np.uint64)  # row `labels`: the all-zero view of a missing code
    padded[:labels] = table
    for i in range(rows):
        c = codes[i]
        k = labels
        if c == c:
            k = int(c)
            if k < 0 or k >= labels:
                raise IndexError("label code out of range")
        out[i, 0] = padded[k, 0]
        out[i, 1] = padded[k, 1]
    return out


@njit(cache=True, nogil=True)
def truth_bitmap(x: np.ndarray) -> np.ndarray:
    """Arrow boolean value bits (LSB-first bytes) of x != 0 (what a float-to-boolean cast gives); pair with a
    validity bitmap for the NaN rows."""
    size = x.shape[0]
    words = np.zeros((size + 63) // 64, dtype=np.uint64)
    for i in range(size):
        if x[i] != 0.0:
            words[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    return words.view(np.uint8)


@njit(cache=True, nogil=True)
def exact_ints(x: np.ndarray, out: np.ndarray, lo: float, hi: float) -> bool:
    """out[i] = x[i] (0 where x is NaN); False if a present value is not an integer in [lo, hi] (then `out` is
    unusable and the caller casts instead). Branch-free, so the loop vectorises."""
    bad = 0
    for i in range(x.shape[0]):
        v = x[i]
        t = v if v == v else 0.0
        c = min(max(t, lo), hi)
        bad |= (c != t) | (c != math.floor(c))
        out[i] = int(c)
    return bad == 0


# --- lane kernels: four EWMs (any inputs) per pass --------------------------------------------------------------
# An EWM row is a short chain of dependent floating-point operations; per lane the NaN check, seeding and min_count
# tests cost more than the arithmetic, and lanes whose state lives in an array round-trip through memory every row.
# Here four lanes keep their state in registers, and once all are warm a row with every input present only does
# the arithmetic. Each lane performs exactly the operations of `ewm`, so results are bitwise equal.


@njit(cache=True, nogil=True, inline="always")
def _ewm_slow(v: float, y: float, c: int, a: float, b: float, min_count: int) -> tuple[float, int, float]:
    if v != v:
        return y, c, NAN
    y = v if c == 0 else b * y + a * v
    c += 1
    return y, c, y if c >= min_count else NAN


@njit(cache=True, nogil=True)
def ewm_lanes(
    x0: np.ndarray,
    x1: np.ndarray,
    x2: np.ndarray,
    x3: np.ndarray,
    alphas: np.ndarray,
    min_counts: np.ndarray,
    o0: np.ndarray,
    o1: np.ndarray,
    o2: np.ndarray,
    o3: np.ndarray,
) -> None:
    """ok[:] = ewm(xk, alphas[k], min_counts[k]) for the four lanes (b = 1 - alpha, exactly as `ewm` computes it).

    Once every lane is seeded and past its min_count, a row with all inputs present only updates y = b y + a v."""
    rows = x0.shape[0]
    a0, a1, a2, a3 = alphas[0], alphas[1], alphas[2], alphas[3]
    b0, b1, b2, b3 = 1.0 - a0, 1.0 - a1, 1.0 - a2, 1.0 - a3
    m0, m1, m2, m3 = min_counts[0], min_counts[1], min_counts[2], min_counts[3]
    y0 = y1 = y2 = y3 = 0.0
    c0 = c1 = c2 = c3 = 0
    warm = False
    i = 0
    while i < rows:
        if warm:
            while i < rows:
                v0 = x0[i]
                v1 = x1[i]
                v2 = x2[i]
                v3 = x3[i]
                t = (v0 + v1) + (v2 + v3)
                if t != t:
                    break
                y0 = b0 * y0 + a0 * v0
                o0[i] = y0
                y1 = b1 * y1 + a1 * v1
                o1[i] = y1
                y2 = b2 * y2 + a2 * v2
                o2[i] = y2
                y3 = b3 * y3 + a3 * v3
                o3[i] = y3
                i += 1
            if i == rows:
                break
        y0, c0, o0[i] = _ewm_slow(x0[i], y0, c0, a0, b0, m0)
        y1, c1, o1[i] = _ewm_slow(x1[i], y1, c1, a1, b1, m1)
        y2, c2, o2[i] = _ewm_slow(x2[i], y2, c2, a2, b2, m2)
        y3, c3, o3[i] = _ewm_slow(x3[i], y3, c3, a3, b3, m3)
        warm = c0 >= max(m0, 1) and c1 >= max(m1, 1) and c2 >= max(m2, 1) and c3 >= max(m3, 1)
        i += 1


@njit(cache=True, nogil=True)
def nan_where_null(data: np.ndarray, bits: np.ndarray, offset: int) -> np.ndarray:
    """A copy of an Arrow float column's values with NaN where its validity bit (LSB-first, from `offset`) is 0.

    Nulls are few (gap bars): a memcpy plus a scan that skips all-valid bytes, ~3x cheaper than polars' fill_null.
    """
    out = data.copy()
    size = data.shape[0]
    i = 0
    while i < size:
        j = i + offset
        if (j & 7) == 0 and i + 8 <= size:
            byte = bits[j >> 3]
            if byte != 255:
                for t in range(8):
                    if not (byte >> t) & 1:
                        out[i + t] = NAN
            i += 8
        else:
            if not (bits[j >> 3] >> (j & 7)) & 1:
                out[i] = NAN
            i += 1
    return out


# --- label codes: first matching condition per row (a when/then chain), NaN where none matches ----------------


@njit(cache=True, nogil=True)
def regime3_codes(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 where x <= low, 2 where x >= high, 1 otherwise; NaN where x is missing."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = NAN if v != v else (0.0 if v <= low else (2.0 if v >= high else 1.0))
    return out


@njit(cache=True, nogil=True)
def carry_codes(level: np.ndarray, extreme: np.ndarray, band: float) -> np.ndarray:
    """0/1: extreme (flag == 1) and level > 0 / < 0; 2/3: level > band / < -band; 4: otherwise; NaN: no level."""
    out = np.empty(level.shape[0])
    for i in range(level.shape[0]):
        v = level[i]
        hit = extreme[i] == 1.0
        if v != v:
            out[i] = NAN
        elif hit and v > 0:
            out[i] = 0.0
        elif hit and v < 0:
            out[i] = 1.0
        elif v > band:
            out[i] = 2.0
        elif v < -band:
            out[i] = 3.0
        else:
            out[i] = 4.0
    return out


@njit(cache=True, nogil=True)
def trend_codes(fast: np.ndarray, slow: np.ndarray, strength: np.ndarray, strength_min: float) -> np.ndarray:
    """0: strong (strength >= strength_min) and fast > slow; 1: strong and fast < slow; 2: otherwise; NaN if any
    input is missing."""
    out = np.empty(fast.shape[0])
    for i in range(fast.shape[0]):
        f = fast[i]
        s = slow[i]
        a = strength[i]
        if f != f or s != s or a != a:
            out[i] = NAN
        elif a >= strength_min and f > s:
            out[i] = 0.0
        elif a >= strength_min and f < s:
            out[i] = 1.0
        else:
            out[i] = 2.0
    return out


@njit(cache=True, nogil=True)
def in_sorted(days: np.ndarray, table: np.ndarray) -> np.ndarray:
    """1.0 where days[i] is in the sorted `table`, else 0.0; one binary search per run of equal days (bars of a day
    are consecutive)."""
    out = np.empty(days.shape[0])
    prev = 0
    hit = 0.0
    for i in range(days.shape[0]):
        d = days[i]
        if i == 0 or d != prev:
            j = np.searchsorted(table, d)
            hit = 1.0 if j < table.shape[0] and table[j] == d else 0.0
            prev = d
        out[i] = hit
    return out


@njit(cache=True, nogil=True)
def spread_from_autocov(cov: np.ndarray) -> np.ndarray:
    """Roll's spread in bps, 2 sqrt(max(-cov, 0)) * 1e4 (NaN where cov is)."""
    out = np.empty(cov.shape[0])
    for i in range(cov.shape[0]):
        c = cov[i]
        m = -c if -c > 0.0 else 0.0  # +0.0 for a zero covariance of either sign, as np.maximum(-cov, 0.0) gives
        out[i] = NAN if c != c else 2.0 * math.sqrt(m) * 1e4
    return out


@njit(cache=True, nogil=True)
def macd_lines(
    fast: np.ndarray, slow: np.ndarray, alpha: float, min_count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line fast - slow, its signal ewm(line, alpha, min_count) and the histogram line - signal, in one pass
    (same arithmetic as the separate subtraction, `ewm` and subtraction)."""
    size = fast.shape[0]
    line = np.empty(size)
    sig = np.empty(size)
    hist = np.empty(size)
    y = 0.0
    c = 0
    for i in range(size):
        v = fast[i] - slow[i]
        line[i] = v
        if v != v:
            sig[i] = NAN
        else:
            y = v if c == 0 else (1.0 - alpha) * y + alpha * v
            c += 1
            sig[i] = y if c >= min_count else NAN
        hist[i] = v - sig[i]
    return line, sig, hist


@njit(cache=True, nogil=True)
def cci_value(tp: np.ndarray, mean: np.ndarray, mad: np.ndarray) -> np.ndarray:
    """(tp - mean) / (0.015 * mad), NaN where the denominator is 0 (= safe_div of the two temporaries)."""
    out = np.empty(tp.shape[0])
    for i in range(tp.shape[0]):
        d = 0.015 * mad[i]
        out[i] = (tp[i] - mean[i]) / d if d != 0.0 else NAN
    return out
