"""Numba kernel of the bracket-order planner (`brackets.bracket_orders`).

The planner walks every bar, so in Python it dominated bracketed backtests and walk-forward trials. The kernel
replays the same state machine on numpy arrays and writes one record per order into caller-owned arrays; the
wrapper turns them into the ORDER_INPUT_SCHEMA frame. Order ids are record indices (the wrapper adds the first id),
so a CANCEL's `ref` is the index of the leg it cancels. Codes are engine_kernels's (schema.py's `code`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lake_assets.backtests.engine_kernels import BUY, CANCEL, ENTRY, EXIT, LIMIT, MARKET, SELL, STOP

NO_ORDER = -1  # no leg / no order type / no ref


@njit(cache=True, nogil=True)
def _record(
    k: int,
    bar: int,
    side: int,
    action: int,
    otype: int,
    ref: int,
    out_bar: np.ndarray,
    out_side: np.ndarray,
    out_action: np.ndarray,
    out_type: np.ndarray,
    out_ref: np.ndarray,
) -> int:
    """Write the integer fields of record `k` if there is room (floats stay NaN = null); returns the next index."""
    if k < out_bar.shape[0]:
        out_bar[k] = bar
        out_side[k] = side
        out_action[k] = action
        out_type[k] = otype
        out_ref[k] = ref
    return k + 1


@njit(cache=True, nogil=True)
def _resolve_nb(le: bool, lx: bool, se: bool, sx: bool, pos: int, allow_reverse: bool) -> tuple[int, bool]:
    """The engine's signal rules (conflicts ignored, opposite entry reverses): (new side or 0 for exit, act)."""
    if le and lx:
        le = lx = False
    if se and sx:
        se = sx = False
    if le and se:
        le = se = False
    if pos > 0:
        if se and allow_reverse:
            return -1, True
        if lx:
            return 0, True
    elif pos < 0:
        if le and allow_reverse:
            return 1, True
        if sx:
            return 0, True
    else:
        if le:
            return 1, True
        if se:
            return -1, True
    return 0, False


@njit(cache=True, nogil=True)
def plan_brackets_nb(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    valid: np.ndarray,
    le: np.ndarray,
    lx: np.ndarray,
    se: np.ndarray,
    sx: np.ndarray,
    size_col: np.ndarray,
    stop_col: np.ndarray,
    tp_col: np.ndarray,
    size: float,
    stop_frac: float,
    target_frac: float,
    max_hold: float,
    allow_reverse: bool,
    allow_short: bool,
    risk_percent: bool,
    out_bar: np.ndarray,
    out_side: np.ndarray,
    out_action: np.ndarray,
    out_type: np.ndarray,
    out_size: np.ndarray,
    out_stop_dist: np.ndarray,
    out_stop_px: np.ndarray,
    out_limit_px: np.ndarray,
    out_ref: np.ndarray,
) -> tuple[int, int]:
    """Plan the orders of one instrument; returns (number of orders, bar of a RISK_PERCENT entry without a stop or -1).

    Records past the arrays' capacity are counted, not written, so the caller can rerun with the returned count.
    NaN stands for "not given": in `size_col`/`stop_col`/`tp_col` (use `size`, no extra distance), `size` (no order)
    and `max_hold` (no time stop). The out_* float arrays must be NaN-filled (null where an order has no value).
    """
    n = o.shape[0]
    cap = out_bar.shape[0]
    k = 0
    pos = 0  # planned position side: -1, 0, +1
    entry_side = 0  # side of an entry submitted at the previous close (fills at this bar's open or expires)
    e_stop = e_tgt = NO_ORDER  # the pending entry's bracket legs (record indices)
    e_stop_live = e_tgt_live = False
    e_stop_px = e_tgt_px = np.nan
    stop = tgt = NO_ORDER  # the open position's legs
    stop_live = tgt_live = False
    stop_px = tgt_px = np.nan
    exit_pending = False
    bars_held = 0
    for i in range(n):
        # ---- open phase: fills in the engine's order (older orders first) ----
        if valid[i]:
            if exit_pending:
                pos = 0
                exit_pending = False
            if entry_side != 0:
                pos = entry_side
                bars_held = 0
                stop, tgt, stop_live, tgt_live = e_stop, e_tgt, e_stop_live, e_tgt_live
                stop_px, tgt_px = e_stop_px, e_tgt_px
                entry_side = 0
            if pos != 0:
                if pos > 0:
                    stop_hit = stop_live and (o[i] <= stop_px or lo[i] <= stop_px)
                    tgt_hit = tgt_live and (o[i] >= tgt_px or h[i] >= tgt_px)
                else:
                    stop_hit = stop_live and (o[i] >= stop_px or h[i] >= stop_px)
                    tgt_hit = tgt_live and (o[i] <= tgt_px or lo[i] <= tgt_px)
                if stop_hit or tgt_hit:
                    # a touched leg is consumed (filled, or cancelled by the engine once flat); an untouched one
                    # stays live until cancelled below
                    stop_live = stop_live and not stop_hit
                    tgt_live = tgt_live and not tgt_hit
                    pos = 0
        elif entry_side != 0:  # good-for-one-bar entry on a gap bar: expired, its legs are cancelled
            if e_stop_live:
                k = _record(k, i, BUY, CANCEL, NO_ORDER, e_stop, out_bar, out_side, out_action, out_type, out_ref)
                e_stop_live = False
            if e_tgt_live:
                k = _record(k, i, BUY, CANCEL, NO_ORDER, e_tgt, out_bar, out_side, out_action, out_type, out_ref)
                e_tgt_live = False
            entry_side = 0
        if pos == 0:
            if stop_live:
                k = _record(k, i, BUY, CANCEL, NO_ORDER, stop, out_bar, out_side, out_action, out_type, out_ref)
            if tgt_live:
                k = _record(k, i, BUY, CANCEL, NO_ORDER, tgt, out_bar, out_side, out_action, out_type, out_ref)
            stop = tgt = NO_ORDER
            stop_live = tgt_live = False
        elif valid[i]:
            bars_held += 1
        # ---- close phase: signals known at this bar's close ----
        if exit_pending or i + 1 >= n:
            continue
        new_side, act = _resolve_nb(le[i], lx[i], se[i] and allow_short, sx[i], pos, allow_reverse)
        if pos != 0 and not act and bars_held >= max_hold:
            new_side, act = 0, True
        if not act:
            continue
        if pos != 0:
            if stop_live:
                k = _record(k, i, BUY, CANCEL, NO_ORDER, stop, out_bar, out_side, out_action, out_type, out_ref)
                stop_live = False
            if tgt_live:
                k = _record(k, i, BUY, CANCEL, NO_ORDER, tgt, out_bar, out_side, out_action, out_type, out_ref)
                tgt_live = False
            k = _record(k, i, SELL if pos > 0 else BUY, EXIT, MARKET, NO_ORDER, out_bar, out_side, out_action,
                        out_type, out_ref)  # fmt: skip
            exit_pending = True
        if new_side == 0 or not valid[i + 1]:
            continue  # an entry whose next bar is a gap would expire unfilled: not submitted
        ref = o[i + 1]  # the entry's reference price; the bracket becomes active at that open
        stop_d = stop_frac * ref + (stop_col[i] if np.isfinite(stop_col[i]) else 0.0)
        tp_d = target_frac * ref + (tp_col[i] if np.isfinite(tp_col[i]) else 0.0)
        sz = size_col[i] if np.isfinite(size_col[i]) else size
        if not sz > 0:
            continue
        if risk_percent and not stop_d > 0:
            return k, i
        side = BUY if new_side > 0 else SELL
        exit_side = SELL if new_side > 0 else BUY
        if k < cap:
            out_size[k] = sz
            if stop_d > 0:
                out_stop_dist[k] = stop_d
        k = _record(k, i, side, ENTRY, MARKET, NO_ORDER, out_bar, out_side, out_action, out_type, out_ref)
        e_stop = e_tgt = NO_ORDER
        e_stop_live = e_tgt_live = False
        e_stop_px = e_tgt_px = np.nan
        if stop_d > 0:
            e_stop_px = ref - new_side * stop_d
            if e_stop_px > 0:
                if k < cap:
                    out_stop_px[k] = e_stop_px
                e_stop, e_stop_live = k, True
                k = _record(k, i, exit_side, EXIT, STOP, NO_ORDER, out_bar, out_side, out_action, out_type, out_ref)
        if tp_d > 0:
            e_tgt_px = ref + new_side * tp_d
            if e_tgt_px > 0:
                if k < cap:
                    out_limit_px[k] = e_tgt_px
                e_tgt, e_tgt_live = k, True
                k = _record(k, i, exit_side, EXIT, LIMIT, NO_ORDER, out_bar, out_side, out_action, out_type, out_ref)
        entry_side = new_side
    return k, -1
