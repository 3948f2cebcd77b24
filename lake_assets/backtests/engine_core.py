"""Numba kernels of the backtest engine: the full event simulator and the fast signal path.

Kept free of polars/pandas so the kernels compile once (cache=True) and are called with plain numpy arrays.
Record tables are 2-D float64 arrays with named column indices (grown by doubling), which keeps the kernels simple
and the Python wrapper (`engine.py`) responsible for names, timestamps and strings.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --- integer codes shared with engine.py (Side/Action/OrderType/SizeType follow schema.py's `code`) -------------
BUY, SELL = 0, 1
ENTRY, EXIT, MODIFY, CANCEL = 0, 1, 2, 3
MARKET, LIMIT, STOP, STOP_LIMIT = 0, 1, 2, 3
SHARES, CONTRACTS, NOTIONAL, RISK_PERCENT, EQUITY_PERCENT = 0, 1, 2, 3, 4
ST_NEW, ST_FILLED, ST_PARTIAL, ST_REJECTED, ST_CANCELLED, ST_EXPIRED = 0, 1, 2, 3, 4, 5

# reason codes (text in engine.REASONS)
R_NONE = 0
R_NONPOSITIVE_SIZE = 1
R_BAD_PRICE = 2
R_STRATEGY_CAP = 3
R_INSTRUMENT_CAP = 4
R_PORTFOLIO_CAP = 5
R_NEW_EXPOSURE_CAP = 6
R_KILL_SWITCH = 7
R_DAILY_LOSS = 8
R_SHORT_DISABLED = 9
R_NO_EQUITY = 10
R_PARTICIPATION = 11
R_EXPIRED = 12
R_CANCELLED = 13
R_REPLACED = 14
R_NO_POSITION = 15
R_BAD_STOP_DISTANCE = 16
R_MODIFIED = 17
R_KILL_DRAWDOWN = 18
R_KILL_STALE = 19
R_KILL_SLIPPAGE = 20
R_DAILY_CAP_HIT = 21
R_UNKNOWN_REF = 22
R_END_OF_DATA = 23
R_EXIT_SIDE = 24

# event kinds
EV_REJECTED, EV_RESIZED, EV_KILL, EV_DAILY, EV_PARTIAL, EV_CANCELLED = 0, 1, 2, 3, 4, 5

# order record columns
O_BAR, O_SLOT, O_SIDE, O_ACTION, O_TYPE, O_SIZE_TYPE, O_SIZE = 0, 1, 2, 3, 4, 5, 6
O_LIMIT, O_STOP, O_STOP_DIST, O_TIF, O_REF, O_REVERSE = 7, 8, 9, 10, 11, 12
O_STATUS, O_REASON, O_REQ, O_FILLED, O_AVG_PX, O_LAST_BAR, O_ACTIVE, O_TRIGGERED, O_RESOLVED, O_INPUT_ID = (
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
)
O_ARMED = 23  # slot's opened-position count at admission (minus 1 if holding one): EXIT orders arm after it
N_O = 24

# fill record columns
F_BAR, F_ORDER, F_SLOT, F_SIDE, F_PRICE, F_UNITS, F_FEE, F_SLIP, F_EXP_SLIP, F_MAKER = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
N_F = 10
N_STATE = 6  # rows of the per-bar state: cash, positions value, gross exposure, fees, funding, kill flag

# trade record columns
T_SLOT, T_DIR, T_ENTRY_BAR, T_EXIT_BAR, T_ENTRY_PX, T_EXIT_PX, T_SIZE, T_FEES, T_FUNDING, T_OPEN = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
)
N_T = 10

# risk event columns
E_BAR, E_ORDER, E_SLOT, E_INST, E_KIND, E_REASON, E_REQ, E_ALLOWED = 0, 1, 2, 3, 4, 5, 6, 7
N_E = 8

# params vector indices
P_INIT_CASH = 0
P_FILL_CLOSE = 1
P_LATENCY = 2
P_MAKER_FEE = 3
P_TAKER_FEE = 4
P_FIXED_FEE = 5
P_SLIPPAGE = 6
P_VOL_K = 7
P_LIQ_K = 8
P_IMPACT_K = 9
P_PARTICIPATION = 10
P_MAX_LEVERAGE = 11
P_MAX_STRATEGY = 12
P_MAX_INSTRUMENT = 13
P_MAX_NEW = 14
P_DAILY_LOSS = 15
P_COOLDOWN = 16
P_MAX_STALE = 17
P_MAX_DD = 18
P_MAX_SLIP_RATIO = 19
P_MIN_SLIP_FILLS = 20
P_FLATTEN_ON_KILL = 21
P_ALLOW_SHORT = 22
P_SIG_SIZE_TYPE = 23
P_SIG_WAIT = 24  # 1: a signal order whose fill bar has no price waits for the next priced bar; 0: it expires
P_CAP_REJECT = 25  # 1: an exposure cap rejects the opening part of an order it would cut (backtesting.py); 0: resize
N_P = 26

# signal bit flags
SIG_LONG_ENTRY, SIG_LONG_EXIT, SIG_SHORT_ENTRY, SIG_SHORT_EXIT = 1, 2, 4, 8


@njit(cache=True)
def resolve_signal(flags: int, pos: float, allow_short: bool) -> tuple[int, int, int]:
    """vectorbt's from_signals rules (accumulate=False, conflicts ignored).

    Returns (side, action, reverse); side -1 means no order."""
    le = (flags & SIG_LONG_ENTRY) != 0
    lx = (flags & SIG_LONG_EXIT) != 0
    se = (flags & SIG_SHORT_ENTRY) != 0 and allow_short
    sx = (flags & SIG_SHORT_EXIT) != 0
    if le and lx:
        le = False
        lx = False
    if se and sx:
        se = False
        sx = False
    if le and se:
        le = False
        se = False
    if pos > 0:
        if se:
            return SELL, ENTRY, 1
        if lx:
            return SELL, EXIT, 0
    elif pos < 0:
        if le:
            return BUY, ENTRY, 1
        if sx:
            return BUY, EXIT, 0
    else:
        if le:
            return BUY, ENTRY, 0
        if se:
            return SELL, ENTRY, 0
    return -1, -1, 0


@njit(cache=True)
def _book_fill_into(
    trades: np.ndarray,
    nt: int,
    s: int,
    bar: int,
    sgn: float,
    units: float,
    price: float,
    fee: float,
    pos: np.ndarray,
    t_bar: np.ndarray,
    t_px: np.ndarray,
    t_fees: np.ndarray,
    t_fund: np.ndarray,
) -> int:
    """Trade bookkeeping per slot, vectorbt's exit-trade convention: each reduction closes a trade record with
    pro-rated entry fees/funding; a flip opens a new trade with the rest of the order and its share of the fee.
    Writes at most one trade record, only if `trades` has room, and returns the new count either way (the caller
    reruns with more room on overflow; never reassigning the buffers keeps the hot loops free of refcounting)."""
    p = pos[s]
    if p == 0.0 or (p > 0) == (sgn > 0):
        if p == 0.0:
            t_bar[s] = bar
            t_px[s] = price
            t_fees[s] = fee
            t_fund[s] = 0.0
        else:
            t_px[s] = (t_px[s] * abs(p) + price * units) / (abs(p) + units)
            t_fees[s] += fee
        pos[s] = p + sgn * units
        return nt
    close_units = min(units, abs(p))
    frac = close_units / abs(p)
    close_fee = fee * close_units / units
    if nt < trades.shape[0]:
        trades[nt, T_SLOT] = s
        trades[nt, T_DIR] = 0.0 if p > 0 else 1.0
        trades[nt, T_ENTRY_BAR] = t_bar[s]
        trades[nt, T_EXIT_BAR] = bar
        trades[nt, T_ENTRY_PX] = t_px[s]
        trades[nt, T_EXIT_PX] = price
        trades[nt, T_SIZE] = close_units
        trades[nt, T_FEES] = t_fees[s] * frac + close_fee
        trades[nt, T_FUNDING] = t_fund[s] * frac
        trades[nt, T_OPEN] = 0.0
    nt += 1
    t_fees[s] -= t_fees[s] * frac
    t_fund[s] -= t_fund[s] * frac
    rest = units - close_units
    if close_units >= abs(p):
        pos[s] = 0.0
        if rest > 0.0:
            t_bar[s] = bar
            t_px[s] = price
            t_fees[s] = fee - close_fee
            t_fund[s] = 0.0
            pos[s] = sgn * rest
    else:
        pos[s] = p + sgn * units
    return nt


@njit(cache=True)
def _close_open_trades_into(
    trades: np.ndarray,
    nt: int,
    pos: np.ndarray,
    last_px: np.ndarray,
    slot_inst: np.ndarray,
    last_bar: int,
    t_bar: np.ndarray,
    t_px: np.ndarray,
    t_fees: np.ndarray,
    t_fund: np.ndarray,
) -> int:
    """Open trades at the end of the data (marked at `last_px`); write-if-room like `_book_fill_into`."""
    for s in range(pos.shape[0]):
        if pos[s] != 0.0:
            if nt < trades.shape[0]:
                trades[nt, T_SLOT] = s
                trades[nt, T_DIR] = 0.0 if pos[s] > 0 else 1.0
                trades[nt, T_ENTRY_BAR] = t_bar[s]
                trades[nt, T_EXIT_BAR] = last_bar
                trades[nt, T_ENTRY_PX] = t_px[s]
                trades[nt, T_EXIT_PX] = last_px[slot_inst[s]]
                trades[nt, T_SIZE] = abs(pos[s])
                trades[nt, T_FEES] = t_fees[s]
                trades[nt, T_FUNDING] = t_fund[s]
                trades[nt, T_OPEN] = 1.0
            nt += 1
    return nt


@njit(cache=True)
def _short_debt2(pos: np.ndarray, t_px: np.ndarray) -> float:
    """Twice the entry value of the open shorts: vectorbt's free cash is cash minus this (a short's proceeds and
    an equal collateral are locked until it is covered)."""
    d = 0.0
    for s in range(pos.shape[0]):
        if pos[s] < 0.0:
            d += 2.0 * -pos[s] * t_px[s]
    return d


@njit(cache=True)
def _all_cash_short_units(p: float, free_cash: float, adj: float, fee_rate: float, fixed_fee: float) -> float:
    """Units of an all-cash (infinite notional) sell, as vectorbt 1.2's `sell_nb` sizes it: the long `p` (if any)
    is closed and a short is opened with the free cash plus the long's net proceeds, fees included. 0 = nothing to
    sell (flat or short with no free cash); only the long when there is no free cash to short with."""
    long_size = max(p, 0.0)
    total_free = free_cash + long_size * adj * (1.0 - fee_rate)
    if not total_free > 0.0:
        return long_size
    return max(long_size + (total_free - fixed_fee) / (adj * (1.0 + fee_rate)), 0.0)


# ------------------------------------------------------------------------------------------------------------------
# fast path: independent columns, market orders, no partial fills, no risk layer
# ------------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _ensure_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    """`arr` with at least `rows` rows (a NaN-padded copy when it has fewer)."""
    if arr.shape[0] >= rows:
        return arr
    out = np.full((max(rows, arr.shape[0] * 2), arr.shape[1]), np.nan)
    out[: arr.shape[0]] = arr
    return out


@njit(cache=True)
def fast_signals_nb(
    fill_price: np.ndarray,
    flags: np.ndarray,
    size: np.ndarray,
    notional: bool,
    fees: float,
    fixed_fees: float,
    slippage: float,
    init_cash: float,
    next_bar: bool,
    allow_short: bool,
    wait: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: signals at bar i fill at `fill_price[i]` (close mode) or `fill_price[i+1]` (next-open mode).

    `size` is per column (units, or quote notional when `notional`; +inf = all cash). A signal whose fill price is
    NaN is dropped (vectorbt), unless `wait`: then it fills at the next valid price. Returns fills, trades,
    final cash and final position per column. Mirrors `simulate_nb` on the same case exactly (tested).
    Each signal makes at most one order and so at most one fill, and each fill closes at most one trade: the record
    buffers are sized per column before its bar loop runs, so the loop itself never reallocates.
    """
    n, m = fill_price.shape
    fills = np.full((64, N_F), np.nan)
    trades = np.full((64, N_T), np.nan)
    nf = 0
    nt = 0
    cash_out = np.empty(m)
    pos_out = np.empty(m)
    one = np.zeros(1)
    t_bar = np.zeros(1)
    t_px = np.zeros(1)
    t_fees = np.zeros(1)
    t_fund = np.zeros(1)
    for c in range(m):
        n_sig = 0
        for i in range(n):
            if flags[i, c] != 0:
                n_sig += 1
        fills = _ensure_rows(fills, nf + n_sig)
        trades = _ensure_rows(trades, nt + n_sig + 1)
        cash, nf, nt = _fast_column(
            c, fill_price, flags, size[c], notional, fees, fixed_fees, slippage, init_cash, next_bar, allow_short,
            wait, one, fills, nf, trades, nt, t_bar, t_px, t_fees, t_fund,
        )  # fmt: skip
        if nf > fills.shape[0] or nt > trades.shape[0]:
            raise RuntimeError("fast_signals_nb: record buffer bound violated")
        cash_out[c] = cash
        pos_out[c] = one[0]
    return fills[:nf], trades[:nt], cash_out, pos_out


@njit(cache=True)
def _fast_column(
    c: int,
    fill_price: np.ndarray,
    flags: np.ndarray,
    sz: float,
    notional: bool,
    fees: float,
    fixed_fees: float,
    slippage: float,
    init_cash: float,
    next_bar: bool,
    allow_short: bool,
    wait: bool,
    one: np.ndarray,
    fills: np.ndarray,
    nf: int,
    trades: np.ndarray,
    nt: int,
    t_bar: np.ndarray,
    t_px: np.ndarray,
    t_fees: np.ndarray,
    t_fund: np.ndarray,
) -> tuple[float, int, int]:
    """Bar loop of one column of `fast_signals_nb`; returns final cash and the new fill / trade counts."""
    n = fill_price.shape[0]
    cash = init_cash
    one[0] = 0.0
    pending = 0
    p_side = -1
    p_action = 0
    p_rev = 0
    i = 0
    while i < n:
        # skip idle bars in a tight loop: no signal and nothing that can fill (or expire) here
        if pending == 0:
            while i < n and flags[i, c] == 0:
                i += 1
        elif wait:
            while i < n and flags[i, c] == 0 and np.isnan(fill_price[i, c]):
                i += 1
        if i >= n:
            break
        px = fill_price[i, c]
        priced = not np.isnan(px)
        # next-bar mode: a pending order fills at this bar's price before this bar's signal is read; without a
        # price it is dropped (or, when `wait`, kept for the next priced bar)
        if next_bar and pending == 1:
            if priced:
                cash, nf, nt = _fast_exec(
                    c, i, p_side, p_action, p_rev, px, sz, notional, fees, fixed_fees, slippage, cash, one,
                    fills, nf, trades, nt, t_bar, t_px, t_fees, t_fund,
                )  # fmt: skip
            if priced or not wait:
                pending = 0
        f = flags[i, c]
        if f != 0:
            side, action, rev = resolve_signal(f, one[0], allow_short)
            if side >= 0:
                pending = 1
                p_side = side
                p_action = action
                p_rev = rev
        if not next_bar and pending == 1:
            if priced:
                cash, nf, nt = _fast_exec(
                    c, i, p_side, p_action, p_rev, px, sz, notional, fees, fixed_fees, slippage, cash, one,
                    fills, nf, trades, nt, t_bar, t_px, t_fees, t_fund,
                )  # fmt: skip
            if priced or not wait:
                pending = 0
        i += 1
    last = np.nan  # last valid price of the column marks still-open trades
    for k in range(n - 1, -1, -1):
        if not np.isnan(fill_price[k, c]):
            last = fill_price[k, c]
            break
    lp = np.empty(1)
    lp[0] = last
    si = np.zeros(1, dtype=np.int64)
    nt0 = nt
    nt = _close_open_trades_into(trades, nt, one, lp, si, n - 1, t_bar, t_px, t_fees, t_fund)
    for k in range(nt0, min(nt, trades.shape[0])):
        trades[k, T_SLOT] = c
    return cash, nf, nt


@njit(cache=True)
def _fast_exec(
    c: int,
    i: int,
    side: int,
    action: int,
    rev: int,
    px: float,
    sz: float,
    notional: bool,
    fees: float,
    fixed_fees: float,
    slippage: float,
    cash: float,
    pos: np.ndarray,
    fills: np.ndarray,
    nf: int,
    trades: np.ndarray,
    nt: int,
    t_bar: np.ndarray,
    t_px: np.ndarray,
    t_fees: np.ndarray,
    t_fund: np.ndarray,
) -> tuple[float, int, int]:
    sgn = 1.0 if side == BUY else -1.0
    p = pos[0]
    if action == EXIT:
        if p == 0.0 or (p > 0) == (sgn > 0):
            return cash, nf, nt
        units = abs(p)
        adj = px * (1.0 + sgn * slippage)
        fee = units * adj * fees + fixed_fees
    else:
        adj = px * (1.0 + sgn * slippage)
        if notional and np.isinf(sz) and sgn < 0:
            # all-cash short (vectorbt 1.2's sell with size=inf): close the long, then short what free cash allows
            units = _all_cash_short_units(p, cash - _short_debt2(pos, t_px), adj, fees, fixed_fees)
            if not units > 0.0:
                return cash, nf, nt
            fee = units * adj * fees + fixed_fees
        elif notional and np.isinf(sz):
            max_req = (cash - fixed_fees) / (1.0 + fees)
            if max_req <= 0.0:
                return cash, nf, nt
            units = max_req / adj
            fee = cash - max_req
        else:
            units = sz / px if notional else sz
            if rev == 1 and p != 0.0 and (p > 0) != (sgn > 0):
                units += abs(p)
            fee = units * adj * fees + fixed_fees
    if not units > 0.0:
        return cash, nf, nt
    cash -= sgn * units * adj + fee
    if nf < fills.shape[0]:
        fills[nf, F_BAR] = i
        fills[nf, F_ORDER] = -1
        fills[nf, F_SLOT] = c
        fills[nf, F_SIDE] = side
        fills[nf, F_PRICE] = adj
        fills[nf, F_UNITS] = units
        fills[nf, F_FEE] = fee
        fills[nf, F_SLIP] = units * px * slippage
        fills[nf, F_EXP_SLIP] = units * px * slippage
        fills[nf, F_MAKER] = 0.0
    nf += 1
    nt0 = nt
    nt = _book_fill_into(trades, nt, 0, i, sgn, units, adj, fee, pos, t_bar, t_px, t_fees, t_fund)
    for k in range(nt0, min(nt, trades.shape[0])):
        trades[k, T_SLOT] = c
    return cash, nf, nt


@njit(cache=True)
def fills_state_nb(n: int, fills: np.ndarray, mark: np.ndarray, init_cash: float) -> np.ndarray:
    """Per-bar state (N_STATE, n) of one slot rebuilt from its fills (sorted by bar) in one pass: cash, position
    value at `mark` (forward-filled close), gross exposure, cumulative fees; funding and kill flag stay 0 on the fast
    path. The fills of a bar are summed in fill order first, then accumulated bar by bar."""
    state = np.zeros((N_STATE, n))
    nf = fills.shape[0]
    k = 0
    c = 0.0
    p = 0.0
    f = 0.0
    last = np.nan
    for i in range(n):
        dc = 0.0
        dp = 0.0
        df = 0.0
        while k < nf and int(fills[k, F_BAR]) == i:
            sgn = 1.0 if fills[k, F_SIDE] < 0.5 else -1.0
            dc += -(sgn * fills[k, F_UNITS] * fills[k, F_PRICE] + fills[k, F_FEE])
            dp += sgn * fills[k, F_UNITS]
            df += fills[k, F_FEE]
            k += 1
        if i == 0:
            c = dc
            p = dp
            f = df
        else:
            c += dc
            p += dp
            f += df
        if np.isfinite(mark[i]):
            last = mark[i]
        pv = p * last if p != 0 else 0.0
        state[0, i] = init_cash + c
        state[1, i] = pv
        state[2, i] = abs(pv)
        state[3, i] = f
    if k != nf:
        raise ValueError("fills_state_nb: fills must be sorted by bar and inside the grid")
    return state


@njit(cache=True)
def day_bounds_nb(ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bar (epoch microseconds, NaT = int64 min): does it open a new UTC day, and the index of the first bar
    of the next day (n if none)."""
    n = ts_us.shape[0]
    nat = np.iinfo(np.int64).min
    new_day = np.empty(n, dtype=np.bool_)
    next_day = np.empty(n, dtype=np.int64)
    prev = 0
    for i in range(n):
        d = nat if ts_us[i] == nat else ts_us[i] // 86_400_000_000  # floor, as datetime64[D] does
        new_day[i] = i == 0 or d != prev
        prev = d
    nxt = n
    for i in range(n - 1, -1, -1):
        next_day[i] = nxt
        if new_day[i]:
            nxt = i
    return new_day, next_day


@njit(cache=True)
def equity_drawdown_nb(state: np.ndarray) -> np.ndarray:
    """Rows (equity, drawdown) from a per-bar state: equity = cash + positions value, drawdown = equity / running
    peak - 1 (a NaN equity makes the peak NaN from there on, as numpy's maximum.accumulate does)."""
    n = state.shape[1]
    out = np.empty((2, n))
    peak = np.nan
    for i in range(n):
        eq = state[0, i] + state[1, i]
        if i == 0:
            peak = eq
        elif not np.isnan(peak):
            peak = eq if (np.isnan(eq) or eq > peak) else peak
        out[0, i] = eq
        out[1, i] = eq / peak - 1.0
    return out


# ------------------------------------------------------------------------------------------------------------------
# full simulator: shared cash, many (strategy, instrument) slots, all order types, costs, risk, funding
# ------------------------------------------------------------------------------------------------------------------

R_ALL_CASH_SHORT = 25
R_NO_PRICE = 26
R_CAP_REJECT_OFFSET = 24  # + R_STRATEGY_CAP .. R_NEW_EXPOSURE_CAP (27..30): that cap rejected instead of resizing


@njit(cache=True)
def _event_into(
    events: np.ndarray, ne: int, bar: int, k: int, s: int, j: int, kind: int, reason: int, req: float, allowed: float
) -> int:
    """Record a risk event if `events` has room; returns the new count either way."""
    if ne < events.shape[0]:
        events[ne, E_BAR] = bar
        events[ne, E_ORDER] = k
        events[ne, E_SLOT] = s
        events[ne, E_INST] = j
        events[ne, E_KIND] = kind
        events[ne, E_REASON] = reason
        events[ne, E_REQ] = req
        events[ne, E_ALLOWED] = allowed
    return ne + 1


@njit(cache=True)
def _equity(cash: float, pos: np.ndarray, mark: np.ndarray, slot_inst: np.ndarray) -> float:
    eq = cash
    for s in range(pos.shape[0]):
        if pos[s] != 0.0:
            eq += pos[s] * mark[slot_inst[s]]
    return eq


@njit(cache=True)
def _admit_check(orders: np.ndarray, k: int) -> int:
    """Reason code for an order that cannot be accepted (0 = fine)."""
    action = int(orders[k, O_ACTION])
    typ = int(orders[k, O_TYPE])
    if action == ENTRY:
        sz = orders[k, O_SIZE]
        if not (sz > 0.0):
            return R_NONPOSITIVE_SIZE
        if int(orders[k, O_SIZE_TYPE]) == RISK_PERCENT and not (orders[k, O_STOP_DIST] > 0.0):
            return R_BAD_STOP_DISTANCE
    if action in (ENTRY, EXIT):
        if (typ in (LIMIT, STOP_LIMIT)) and not (orders[k, O_LIMIT] > 0.0 and np.isfinite(orders[k, O_LIMIT])):
            return R_BAD_PRICE
        if (typ in (STOP, STOP_LIMIT)) and not (orders[k, O_STOP] > 0.0 and np.isfinite(orders[k, O_STOP])):
            return R_BAD_PRICE
    return R_NONE


@njit(cache=True)
def simulate_nb(
    op: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    cl: np.ndarray,
    vol: np.ndarray,
    half_spread: np.ndarray,
    sigma: np.ndarray,
    adv: np.ndarray,
    fund: np.ndarray,
    new_day: np.ndarray,
    next_day: np.ndarray,
    slot_inst: np.ndarray,
    slot_strat: np.ndarray,
    sig_flags: np.ndarray,
    sig_size: np.ndarray,
    sig_stop_dist: np.ndarray,
    orders_in: np.ndarray,
    params: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Event loop over bars. Per bar: funding at the open, fills of active orders (open phase: intrabar OHLC logic),
    then at the close: new orders and signals, close-mode market fills, mark-to-market, kill switches, daily loss
    cap, expiry. Returns orders, fills, trades, risk events, funding payments, per-bar state and final positions."""
    n = cl.shape[0]
    ns = slot_inst.shape[0]
    n_sig = 0
    n_fund = 0
    for i in range(n):
        for s in range(ns):
            if sig_flags[i, s] != 0:
                n_sig += 1
            if np.isfinite(fund[i, slot_inst[s]]):
                n_fund += 1
    # orders: every input order, one per signal, one flatten order per slot on a kill switch (exact bound);
    # funding payments: at most one per finite rate per slot (exact bound); fills: one per order unless partial
    # fills spread an order over several bars; trades: at most one closed per fill plus the open ones at the end.
    cap = orders_in.shape[0] + n_sig + ns + 1
    cap_f = cap + 16
    cap_t = cap_f + ns
    cap_e = cap + 16
    # int64, never Literal[int](0): a literal-typed count makes numba compile `_simulate_pass` a second time (~25 s)
    cap_fu: int = np.int64(n_fund)  # type: ignore[assignment]
    while True:
        orders, fills, trades, events, funds, state, pos, nf, nt, ne, nfu = _simulate_pass(
            op, hi, lo, cl, vol, half_spread, sigma, adv, fund, new_day, next_day, slot_inst, slot_strat,
            sig_flags, sig_size, sig_stop_dist, orders_in, params, cap, cap_f, cap_t, cap_e, cap_fu,
        )  # fmt: skip
        if nf <= cap_f and nt <= cap_t and ne <= cap_e and nfu <= cap_fu:
            return orders, fills[:nf], trades[:nt], events[:ne], funds[:nfu], state, pos
        # deterministic: the rerun with room for every record reproduces the same run
        cap_f = max(cap_f, nf)
        cap_t = max(cap_t, nt)
        cap_e = max(cap_e, ne)
        cap_fu = max(cap_fu, nfu)


@njit(cache=True)
def _simulate_pass(
    op: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    cl: np.ndarray,
    vol: np.ndarray,
    half_spread: np.ndarray,
    sigma: np.ndarray,
    adv: np.ndarray,
    fund: np.ndarray,
    new_day: np.ndarray,
    next_day: np.ndarray,
    slot_inst: np.ndarray,
    slot_strat: np.ndarray,
    sig_flags: np.ndarray,
    sig_size: np.ndarray,
    sig_stop_dist: np.ndarray,
    orders_in: np.ndarray,
    params: np.ndarray,
    cap: int,
    cap_f: int,
    cap_t: int,
    cap_e: int,
    cap_fu: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int, int]:
    """One run of the event loop with fixed-size record buffers (`cap` orders, `cap_f` fills, `cap_t` trades,
    `cap_e` risk events, `cap_fu` funding payments). Records beyond a buffer are counted, not written: the caller
    reruns with larger buffers when a count exceeds its buffer (see `simulate_nb`)."""
    n, nj = cl.shape
    ns = slot_inst.shape[0]
    n_in = orders_in.shape[0]
    orders = np.full((cap, N_O), np.nan)
    orders[:n_in] = orders_in
    no = n_in
    pending = np.empty(cap, dtype=np.int64)
    npend = 0
    next_in = 0

    init_cash = params[P_INIT_CASH]
    fill_close = params[P_FILL_CLOSE] > 0.5
    lat = int(params[P_LATENCY])
    maker_fee = params[P_MAKER_FEE]
    taker_fee = params[P_TAKER_FEE]
    fixed_fee = params[P_FIXED_FEE]
    fixed_slip = params[P_SLIPPAGE]
    vol_k = params[P_VOL_K]
    liq_k = params[P_LIQ_K]
    imp_k = params[P_IMPACT_K]
    part = params[P_PARTICIPATION]
    max_lev = params[P_MAX_LEVERAGE]
    max_strat = params[P_MAX_STRATEGY]
    max_inst = params[P_MAX_INSTRUMENT]
    max_new = params[P_MAX_NEW]
    daily_cap = params[P_DAILY_LOSS]
    cooldown = int(params[P_COOLDOWN])
    max_stale = params[P_MAX_STALE]
    max_dd = params[P_MAX_DD]
    max_slip_ratio = params[P_MAX_SLIP_RATIO]
    min_slip_fills = params[P_MIN_SLIP_FILLS]
    flatten = params[P_FLATTEN_ON_KILL] > 0.5
    allow_short = params[P_ALLOW_SHORT] > 0.5
    sig_size_type = params[P_SIG_SIZE_TYPE]
    sig_wait = params[P_SIG_WAIT] > 0.5
    cap_reject = params[P_CAP_REJECT] > 0.5

    fills = np.full((cap_f, N_F), np.nan)
    nf = 0
    trades = np.full((cap_t, N_T), np.nan)
    nt = 0
    events = np.full((cap_e, N_E), np.nan)
    ne = 0
    funds = np.full((cap_fu, 5), np.nan)
    nfu = 0
    # one row per field (contiguous per-field columns for the result frames): cash, positions value, gross exposure,
    # fees cum, funding cum, kill flag
    state = np.zeros((N_STATE, n))

    cash = init_cash
    pos = np.zeros(ns)
    mark = np.full(nj, np.nan)
    valid = np.zeros(nj, dtype=np.bool_)
    stale = np.zeros(nj)
    used_vol = np.zeros(nj)
    t_bar = np.zeros(ns)
    t_px = np.zeros(ns)
    t_fees = np.zeros(ns)
    t_fund = np.zeros(ns)
    n_open = np.zeros(ns)  # positions opened per slot (from flat or by a flip)
    intra_bar = np.full(ns, -1)  # bar in which the slot's position was opened inside the bar (not at the open)
    fees_cum = 0.0
    funding_cum = 0.0
    killed = False
    blocked_until = -1
    day_start_eq = init_cash
    last_eq = init_cash
    peak = init_cash
    real_slip = 0.0
    exp_slip = 0.0
    n_slip = 0

    for i in range(n):
        for j in range(nj):
            used_vol[j] = 0.0
            v = np.isfinite(op[i, j]) and np.isfinite(hi[i, j]) and np.isfinite(lo[i, j]) and np.isfinite(cl[i, j])
            valid[j] = v
            stale[j] = 0.0 if v else stale[j] + 1.0
        new_exp = 0.0
        if new_day[i]:
            day_start_eq = last_eq

        # funding: positions held over the funding timestamp pay/receive at this bar's open (mark = open)
        for s in range(ns):
            j = slot_inst[s]
            r = fund[i, j]
            if pos[s] != 0.0 and np.isfinite(r):
                mpx = op[i, j] if valid[j] else mark[j]
                if np.isfinite(mpx):
                    pay = pos[s] * mpx * r
                    cash -= pay
                    funding_cum += pay
                    t_fund[s] += pay
                    if nfu < funds.shape[0]:
                        funds[nfu, 0] = i
                        funds[nfu, 1] = s
                        funds[nfu, 2] = r
                        funds[nfu, 3] = mpx
                        funds[nfu, 4] = pay
                    nfu += 1
        for j in range(nj):
            if valid[j]:
                mark[j] = op[i, j]

        # an idle bar (nothing pending, no order submitted at it, no signal) only moves the marks to the close
        busy = npend > 0 or (next_in < n_in and orders[next_in, O_BAR] <= i)
        if not busy:
            for s in range(ns):
                if sig_flags[i, s] != 0:
                    busy = True
                    break
        if not busy:
            for j in range(nj):
                if valid[j]:
                    mark[j] = cl[i, j]
        for phase in range(2 if busy else 0):
            if phase == 1:
                for j in range(nj):
                    if valid[j]:
                        mark[j] = cl[i, j]
                # admit orders submitted at this bar's close
                while next_in < n_in and orders[next_in, O_BAR] <= i:
                    k = next_in
                    next_in += 1
                    action = int(orders[k, O_ACTION])
                    orders[k, O_STATUS] = ST_NEW
                    orders[k, O_REASON] = R_NONE
                    orders[k, O_FILLED] = 0.0
                    orders[k, O_RESOLVED] = 0.0
                    orders[k, O_TRIGGERED] = -1.0
                    orders[k, O_LAST_BAR] = i
                    s = int(orders[k, O_SLOT])
                    orders[k, O_ARMED] = n_open[s] - (1.0 if pos[s] != 0.0 else 0.0)
                    if action in (MODIFY, CANCEL):
                        tgt = int(orders[k, O_REF])
                        ok = tgt >= 0 and tgt < k
                        if ok:
                            st = int(orders[tgt, O_STATUS])
                            ok = st in (ST_NEW, ST_PARTIAL)
                        if not ok:
                            orders[k, O_STATUS] = ST_REJECTED
                            orders[k, O_REASON] = R_UNKNOWN_REF
                            ne = _event_into(events, ne, i, k, s, slot_inst[s], EV_REJECTED, R_UNKNOWN_REF, 0.0, 0.0)
                            continue
                        if action == CANCEL:
                            orders[tgt, O_STATUS] = ST_CANCELLED
                            orders[tgt, O_REASON] = R_CANCELLED
                            orders[tgt, O_LAST_BAR] = i
                        else:
                            if orders[k, O_SIZE] > 0.0:
                                orders[tgt, O_SIZE] = orders[k, O_SIZE]
                                orders[tgt, O_RESOLVED] = 0.0
                            if np.isfinite(orders[k, O_LIMIT]):
                                orders[tgt, O_LIMIT] = orders[k, O_LIMIT]
                            if np.isfinite(orders[k, O_STOP]):
                                orders[tgt, O_STOP] = orders[k, O_STOP]
                            orders[tgt, O_REASON] = R_MODIFIED
                            bad = _admit_check(orders, tgt)
                            if bad != R_NONE:
                                orders[tgt, O_STATUS] = ST_REJECTED
                                orders[tgt, O_REASON] = bad
                        orders[k, O_STATUS] = ST_FILLED
                        orders[k, O_FILLED] = 0.0
                        continue
                    bad = _admit_check(orders, k)
                    if bad != R_NONE:
                        orders[k, O_STATUS] = ST_REJECTED
                        orders[k, O_REASON] = bad
                        ne = _event_into(events, ne, i, k, s, slot_inst[s], EV_REJECTED, bad, orders[k, O_SIZE], 0.0)
                        continue
                    typ = int(orders[k, O_TYPE])
                    orders[k, O_ACTIVE] = i + lat + (0 if (fill_close and typ == MARKET) else 1)
                    pending[npend] = k
                    npend += 1
                # signals -> market orders (vectorbt rules against the current position)
                for s in range(ns):
                    f = sig_flags[i, s]
                    if f == 0:
                        continue
                    side, action, rev = resolve_signal(f, pos[s], allow_short)
                    if side < 0:
                        continue
                    for q in range(npend):
                        kk = pending[q]
                        st = int(orders[kk, O_STATUS])
                        if int(orders[kk, O_SLOT]) == s and orders[kk, O_INPUT_ID] < 0 and (st in (ST_NEW, ST_PARTIAL)):
                            orders[kk, O_STATUS] = ST_CANCELLED
                            orders[kk, O_REASON] = R_REPLACED
                            orders[kk, O_LAST_BAR] = i
                    k = no
                    no += 1
                    orders[k, O_BAR] = i
                    orders[k, O_SLOT] = s
                    orders[k, O_SIDE] = side
                    orders[k, O_ACTION] = action
                    orders[k, O_TYPE] = MARKET
                    orders[k, O_SIZE_TYPE] = sig_size_type
                    orders[k, O_SIZE] = sig_size[i, s] if action == ENTRY else np.nan
                    orders[k, O_STOP_DIST] = sig_stop_dist[i, s]
                    orders[k, O_TIF] = -1.0
                    orders[k, O_REF] = -1.0
                    orders[k, O_REVERSE] = rev
                    orders[k, O_INPUT_ID] = -1.0
                    orders[k, O_STATUS] = ST_NEW
                    orders[k, O_REASON] = R_NONE
                    orders[k, O_FILLED] = 0.0
                    orders[k, O_RESOLVED] = 0.0
                    orders[k, O_TRIGGERED] = -1.0
                    orders[k, O_LAST_BAR] = i
                    orders[k, O_ARMED] = n_open[s] - (1.0 if pos[s] != 0.0 else 0.0)
                    bad = _admit_check(orders, k)
                    if bad != R_NONE:
                        orders[k, O_STATUS] = ST_REJECTED
                        orders[k, O_REASON] = bad
                        ne = _event_into(events, ne, i, k, s, slot_inst[s], EV_REJECTED, bad, orders[k, O_SIZE], 0.0)
                        continue
                    orders[k, O_ACTIVE] = i + lat + (0 if fill_close else 1)
                    pending[npend] = k
                    npend += 1
                if not fill_close:
                    break

            # ---- fills ----
            # within the open phase, three passes fix the order of fills in the bar: first what fills at the open
            # (market orders, orders gapped through), in submission order; then orders touched only inside the bar,
            # stop-triggered before limit (pessimistic: a bracket's stop-loss before its take-profit)
            for sub in range(3 if phase == 0 else 1):
                for q in range(npend):
                    k = pending[q]
                    st = int(orders[k, O_STATUS])
                    if st not in (ST_NEW, ST_PARTIAL) or orders[k, O_ACTIVE] > i:
                        continue
                    typ = int(orders[k, O_TYPE])
                    if fill_close and ((phase == 0) == (typ == MARKET)):
                        continue
                    s = int(orders[k, O_SLOT])
                    j = slot_inst[s]
                    if not valid[j]:
                        # a signal's order has one fill bar, as in vectorbt: without a price there it expires (unless
                        # the config keeps it waiting for the next priced bar); explicit orders follow their TIF
                        if not sig_wait and orders[k, O_INPUT_ID] == -1.0 and orders[k, O_ACTIVE] == i:
                            orders[k, O_STATUS] = ST_EXPIRED
                            orders[k, O_REASON] = R_NO_PRICE
                            orders[k, O_LAST_BAR] = i
                        continue
                    sgn = 1.0 if int(orders[k, O_SIDE]) == BUY else -1.0
                    if phase == 0 and intra_bar[s] == i and pos[s] != 0.0 and (pos[s] > 0) != (sgn > 0):
                        # the position opened inside this bar: an order against it can only fill at prices after
                        # the entry, which OHLC cannot order; it waits for the next bar (backtesting.py does the same)
                        continue
                    o = op[i, j]
                    h = hi[i, j]
                    lw = lo[i, j]
                    c = cl[i, j]
                    lim = orders[k, O_LIMIT]
                    ref = np.nan
                    cap_px = np.nan
                    maker = False
                    trig = orders[k, O_TRIGGERED]
                    klass = 0  # pass of this fill: 0 at the open, 1 stop touched inside the bar, 2 limit inside
                    if typ == MARKET:
                        ref = o if phase == 0 else c
                    elif typ == LIMIT or (typ == STOP_LIMIT and trig >= 0 and trig < i):
                        maker = True
                        if sgn > 0:
                            if o <= lim:
                                ref = o
                            elif lw <= lim:
                                ref = lim
                                klass = 2
                        else:
                            if o >= lim:
                                ref = o
                            elif h >= lim:
                                ref = lim
                                klass = 2
                    elif trig < 0:
                        stp = orders[k, O_STOP]
                        t = np.nan
                        if sgn > 0:
                            if o >= stp:
                                t = o
                            elif h >= stp:
                                t = stp
                                klass = 1
                        else:
                            if o <= stp:
                                t = o
                            elif lw <= stp:
                                t = stp
                                klass = 1
                        if np.isfinite(t) and klass == sub:
                            if typ == STOP:
                                ref = t
                            else:
                                orders[k, O_TRIGGERED] = i
                                if (sgn > 0 and t <= lim) or (sgn < 0 and t >= lim):
                                    ref = t
                                    cap_px = lim
                    if klass != sub or not np.isfinite(ref):
                        continue

                    # ---- size ----
                    p = pos[s]
                    opposite = p != 0.0 and (p > 0) != (sgn > 0)
                    action = int(orders[k, O_ACTION])
                    all_cash = False
                    all_cash_short = False
                    short_free = 0.0
                    max_req = 0.0
                    fee_rate = maker_fee if maker else taker_fee
                    base = 0.0 if maker else fixed_slip
                    if not maker:
                        if np.isfinite(half_spread[i, j]):
                            base += half_spread[i, j]
                        if np.isfinite(sigma[i, j]):
                            base += vol_k * sigma[i, j]
                    if action == EXIT:
                        if p == 0.0:
                            if n_open[s] <= orders[k, O_ARMED]:
                                continue  # submitted while flat: waits for the position it is meant to close
                            # its slot held a position since it was submitted: closed by a sibling (OCO)
                            orders[k, O_STATUS] = ST_CANCELLED if orders[k, O_FILLED] == 0.0 else ST_FILLED
                            orders[k, O_REASON] = R_NO_POSITION if orders[k, O_FILLED] == 0.0 else orders[k, O_REASON]
                            orders[k, O_LAST_BAR] = i
                            continue
                        if not opposite:
                            orders[k, O_STATUS] = ST_REJECTED
                            orders[k, O_REASON] = R_EXIT_SIDE
                            ne = _event_into(events, ne, i, k, s, j, EV_REJECTED, R_EXIT_SIDE, abs(p), 0.0)
                            continue
                        want = abs(p)
                        if orders[k, O_RESOLVED] == 0.0:
                            orders[k, O_REQ] = want
                            orders[k, O_RESOLVED] = 1.0
                    else:
                        if orders[k, O_RESOLVED] == 0.0:
                            sz = orders[k, O_SIZE]
                            stype = int(orders[k, O_SIZE_TYPE])
                            eq = _equity(cash, pos, mark, slot_inst)
                            if stype == NOTIONAL:
                                u = sz / ref
                            elif stype == EQUITY_PERCENT:
                                u = sz * eq / ref
                            elif stype == RISK_PERCENT:
                                u = sz * eq / orders[k, O_STOP_DIST]
                            else:
                                u = sz
                            if orders[k, O_REVERSE] > 0.5 and opposite:
                                u += abs(p)
                            orders[k, O_REQ] = u
                            orders[k, O_RESOLVED] = 1.0
                        want = orders[k, O_REQ] - orders[k, O_FILLED]
                        if np.isinf(want) and sgn < 0:
                            # all-cash short: close the long and short with the free cash (vectorbt 1.2's sizing)
                            short_free = cash - _short_debt2(pos, t_px)
                            want = _all_cash_short_units(p, short_free, ref * (1.0 - base), fee_rate, fixed_fee)
                            if not (want > 0.0):
                                orders[k, O_STATUS] = ST_REJECTED if orders[k, O_FILLED] == 0.0 else ST_PARTIAL
                                orders[k, O_REASON] = R_ALL_CASH_SHORT
                                ne = _event_into(events, ne, i, k, s, j, EV_REJECTED, R_ALL_CASH_SHORT, np.inf, 0.0)
                                continue
                            all_cash_short = short_free + max(p, 0.0) * ref * (1.0 - base) * (1.0 - fee_rate) > 0.0
                            if not all_cash_short:
                                orders[k, O_REQ] = orders[k, O_FILLED] + want  # only the long is closed
                        elif np.isinf(want):
                            max_req = (cash - fixed_fee) / (1.0 + fee_rate)
                            if not (max_req > 0.0):
                                orders[k, O_STATUS] = ST_REJECTED if orders[k, O_FILLED] == 0.0 else ST_PARTIAL
                                orders[k, O_REASON] = R_NO_EQUITY
                                ne = _event_into(events, ne, i, k, s, j, EV_REJECTED, R_NO_EQUITY, want, 0.0)
                                continue
                            all_cash = True
                            want = max_req / (ref * (1.0 + sgn * base))
                    close_part = min(want, abs(p)) if opposite else 0.0
                    open_part = want - close_part

                    # ---- risk allocator: caps apply to the exposure-increasing part only, in a fixed order ----
                    if open_part > 0.0:
                        allowed = open_part
                        reason = R_NONE
                        after = p + sgn * close_part
                        if killed:
                            allowed = 0.0
                            reason = R_KILL_SWITCH
                        elif i < blocked_until:
                            allowed = 0.0
                            reason = R_DAILY_LOSS
                        elif sgn < 0 and not allow_short:
                            allowed = 0.0
                            reason = R_SHORT_DISABLED
                        else:
                            eq = _equity(cash, pos, mark, slot_inst)
                            if not (eq > 0.0):
                                allowed = 0.0
                                reason = R_NO_EQUITY
                            else:
                                if np.isfinite(max_strat):
                                    sg = abs(after) * ref
                                    for s2 in range(ns):
                                        if s2 != s and slot_strat[s2] == slot_strat[s] and pos[s2] != 0.0:
                                            sg += abs(pos[s2]) * mark[slot_inst[s2]]
                                    lim_u = (max_strat * eq - sg) / ref
                                    if lim_u < allowed * (1.0 - 1e-12):
                                        allowed = max(lim_u, 0.0)
                                        reason = R_STRATEGY_CAP
                                net = after
                                for s2 in range(ns):
                                    if s2 != s and slot_inst[s2] == j:
                                        net += pos[s2]
                                if np.isfinite(max_inst):
                                    lim_u = max_inst * eq / ref - sgn * net
                                    if lim_u < allowed * (1.0 - 1e-12):
                                        allowed = max(lim_u, 0.0)
                                        reason = R_INSTRUMENT_CAP
                                if np.isfinite(max_lev):
                                    gross_other = 0.0
                                    for j2 in range(nj):
                                        if j2 != j:
                                            nj2 = 0.0
                                            for s2 in range(ns):
                                                if slot_inst[s2] == j2:
                                                    nj2 += pos[s2]
                                            if nj2 != 0.0:
                                                gross_other += abs(nj2) * mark[j2]
                                    lim_u = (max_lev * eq - gross_other) / ref - sgn * net
                                    if lim_u < allowed * (1.0 - 1e-12):
                                        allowed = max(lim_u, 0.0)
                                        reason = R_PORTFOLIO_CAP
                                if np.isfinite(max_new):
                                    lim_u = (max_new * eq - new_exp) / ref
                                    if lim_u < allowed * (1.0 - 1e-12):
                                        allowed = max(lim_u, 0.0)
                                        reason = R_NEW_EXPOSURE_CAP
                        rejected = False
                        if cap_reject and R_STRATEGY_CAP <= reason <= R_NEW_EXPOSURE_CAP:
                            # reject mode: the opening part goes whole or not at all; the closing part still fills
                            allowed = 0.0
                            reason += R_CAP_REJECT_OFFSET
                            rejected = True
                        if reason != R_NONE:
                            kind = EV_RESIZED if (allowed > 0.0 or close_part > 0.0) and not rejected else EV_REJECTED
                            ne = _event_into(events, ne, i, k, s, j, kind, reason, open_part, allowed)
                            orders[k, O_REASON] = reason
                            all_cash = False
                            all_cash_short = False
                            if np.isfinite(orders[k, O_REQ]):
                                orders[k, O_REQ] -= open_part - allowed
                            else:
                                orders[k, O_REQ] = orders[k, O_FILLED] + close_part + allowed
                            open_part = allowed
                            want = close_part + open_part
                            if not (want > 0.0):
                                orders[k, O_STATUS] = ST_REJECTED if orders[k, O_FILLED] == 0.0 else ST_PARTIAL
                                orders[k, O_LAST_BAR] = i
                                continue

                    # ---- participation cap ----
                    units = want
                    if np.isfinite(part):
                        v = vol[i, j]
                        capu = part * v - used_vol[j] if np.isfinite(v) else 0.0
                        if capu < units:
                            units = max(capu, 0.0)
                            all_cash = False
                            all_cash_short = False
                            orders[k, O_REASON] = R_PARTICIPATION
                            ne = _event_into(events, ne, i, k, s, j, EV_PARTIAL, R_PARTICIPATION, want, units)
                            if np.isinf(orders[k, O_REQ]):
                                orders[k, O_REQ] = orders[k, O_FILLED] + want
                    if not (units > 0.0):
                        continue

                    # ---- price: spread + volatility + liquidity + participation impact ----
                    dyn = 0.0
                    if not maker:
                        if liq_k > 0.0 and adv[i, j] > 0.0:
                            dyn += liq_k * units * ref / adv[i, j]
                        if imp_k > 0.0 and vol[i, j] > 0.0 and np.isfinite(sigma[i, j]):
                            dyn += imp_k * sigma[i, j] * np.sqrt(units / vol[i, j])
                    px = ref * (1.0 + sgn * (base + dyn))
                    if np.isfinite(cap_px):
                        px = min(px, cap_px) if sgn > 0 else max(px, cap_px)
                    if all_cash:
                        units = max_req / px
                        fee = cash - max_req
                        orders[k, O_REQ] = orders[k, O_FILLED] + units
                    elif all_cash_short:
                        units = _all_cash_short_units(p, short_free, px, fee_rate, fixed_fee)
                        fee = units * px * fee_rate + fixed_fee
                        orders[k, O_REQ] = orders[k, O_FILLED] + units
                    else:
                        fee = units * px * fee_rate + fixed_fee
                    close_done = min(units, abs(p)) if opposite else 0.0
                    cash -= sgn * units * px + fee
                    fees_cum += fee
                    nt = _book_fill_into(trades, nt, s, i, sgn, units, px, fee, pos, t_bar, t_px, t_fees, t_fund)
                    if pos[s] != 0.0 and (p == 0.0 or (p > 0) != (pos[s] > 0)):
                        n_open[s] += 1.0  # a new position (from flat or flipped)
                        if klass > 0:
                            intra_bar[s] = i
                    slip_cost = sgn * (px - ref) * units
                    exp_cost = 0.0 if maker else base * ref * units
                    if nf < fills.shape[0]:
                        fills[nf, F_BAR] = i
                        fills[nf, F_ORDER] = k
                        fills[nf, F_SLOT] = s
                        fills[nf, F_SIDE] = 0.0 if sgn > 0 else 1.0
                        fills[nf, F_PRICE] = px
                        fills[nf, F_UNITS] = units
                        fills[nf, F_FEE] = fee
                        fills[nf, F_SLIP] = slip_cost
                        fills[nf, F_EXP_SLIP] = exp_cost
                        fills[nf, F_MAKER] = 1.0 if maker else 0.0
                    nf += 1
                    if not maker:
                        real_slip += slip_cost
                        exp_slip += exp_cost
                        n_slip += 1
                    prev = orders[k, O_FILLED]
                    avg = orders[k, O_AVG_PX] if prev > 0.0 else 0.0
                    orders[k, O_FILLED] = prev + units
                    orders[k, O_AVG_PX] = (avg * prev + px * units) / (prev + units)
                    orders[k, O_LAST_BAR] = i
                    used_vol[j] += units
                    new_exp += max(units - close_done, 0.0) * ref
                    done = pos[s] == 0.0 if action == EXIT else orders[k, O_FILLED] >= orders[k, O_REQ] * (1.0 - 1e-12)
                    orders[k, O_STATUS] = ST_FILLED if done else ST_PARTIAL

        # ---- close: mark to market, kill switches, daily loss cap, expiry ----
        eq = _equity(cash, pos, mark, slot_inst)
        posval = eq - cash
        gross = 0.0
        for j in range(nj):
            netj = 0.0
            for s in range(ns):
                if slot_inst[s] == j:
                    netj += pos[s]
            if netj != 0.0:
                gross += abs(netj) * mark[j]
        peak = max(peak, eq)
        if not killed:
            trip = R_NONE
            tj = -1
            if np.isfinite(max_dd) and eq < peak * (1.0 - max_dd):
                trip = R_KILL_DRAWDOWN
            if trip == R_NONE and np.isfinite(max_stale):
                for s in range(ns):
                    if pos[s] != 0.0 and stale[slot_inst[s]] > max_stale:
                        trip = R_KILL_STALE
                        tj = slot_inst[s]
                        break
            if (
                trip == R_NONE
                and np.isfinite(max_slip_ratio)
                and n_slip >= min_slip_fills
                and exp_slip > 0.0
                and real_slip / exp_slip > max_slip_ratio
            ):
                trip = R_KILL_SLIPPAGE
            if trip != R_NONE:
                killed = True
                ne = _event_into(events, ne, i, -1, -1, tj, EV_KILL, trip, 0.0, 0.0)
                for q in range(npend):
                    kk = pending[q]
                    st = int(orders[kk, O_STATUS])
                    if int(orders[kk, O_ACTION]) == ENTRY and (st in (ST_NEW, ST_PARTIAL)):
                        orders[kk, O_STATUS] = ST_CANCELLED
                        orders[kk, O_REASON] = R_KILL_SWITCH
                        orders[kk, O_LAST_BAR] = i
                if flatten:
                    for s in range(ns):
                        if pos[s] != 0.0:
                            k = no
                            no += 1
                            orders[k, O_BAR] = i
                            orders[k, O_SLOT] = s
                            orders[k, O_SIDE] = SELL if pos[s] > 0 else BUY
                            orders[k, O_ACTION] = EXIT
                            orders[k, O_TYPE] = MARKET
                            orders[k, O_SIZE_TYPE] = SHARES
                            orders[k, O_SIZE] = np.nan
                            orders[k, O_TIF] = -1.0
                            orders[k, O_REF] = -1.0
                            orders[k, O_REVERSE] = 0.0
                            orders[k, O_INPUT_ID] = -2.0
                            orders[k, O_STATUS] = ST_NEW
                            orders[k, O_REASON] = trip
                            orders[k, O_FILLED] = 0.0
                            orders[k, O_RESOLVED] = 0.0
                            orders[k, O_TRIGGERED] = -1.0
                            orders[k, O_LAST_BAR] = i
                            orders[k, O_ARMED] = n_open[s] - 1.0
                            orders[k, O_ACTIVE] = i + lat + 1
                            pending[npend] = k
                            npend += 1
        if np.isfinite(daily_cap) and i >= blocked_until and eq < day_start_eq * (1.0 - daily_cap):
            blocked_until = max(int(next_day[i]), i + 1 + cooldown)
            ne = _event_into(events, ne, i, -1, -1, -1, EV_DAILY, R_DAILY_CAP_HIT, 0.0, 0.0)
        # expiry and compaction of the pending list
        w = 0
        for q in range(npend):
            kk = pending[q]
            st = int(orders[kk, O_STATUS])
            if st in (ST_NEW, ST_PARTIAL):
                tif = orders[kk, O_TIF]
                if tif >= 0 and i >= orders[kk, O_ACTIVE] + tif - 1:
                    orders[kk, O_STATUS] = ST_EXPIRED
                    orders[kk, O_REASON] = R_EXPIRED
                    orders[kk, O_LAST_BAR] = i
                    continue
                pending[w] = kk
                w += 1
        npend = w
        last_eq = eq
        state[0, i] = cash
        state[1, i] = posval
        state[2, i] = gross
        state[3, i] = fees_cum
        state[4, i] = funding_cum
        state[5, i] = 1.0 if killed else 0.0

    for q in range(npend):
        kk = pending[q]
        if orders[kk, O_REASON] == R_NONE:
            orders[kk, O_REASON] = R_END_OF_DATA
    # admitted-never orders (submitted after the last bar) stay NEW with END_OF_DATA
    while next_in < n_in:
        orders[next_in, O_STATUS] = ST_NEW
        orders[next_in, O_REASON] = R_END_OF_DATA
        next_in += 1
    nt = _close_open_trades_into(trades, nt, pos, mark, slot_inst, n - 1, t_bar, t_px, t_fees, t_fund)
    return orders[:no], fills, trades, events, funds, state, pos, nf, nt, ne, nfu
