"""Numba kernels of the backtest engine: the full event simulator and the fast signal path.

Kept free of polars/pandas so the kernels compile once (cache=True) and are called with plain numpy arrays.
Inputs and settings travel as NamedTuples (`Market`, `Slots`, `SignalInputs`, `Params`, `FastParams`, `Book`),
records come out as numpy structured arrays (`ORDER_DT`, `FILL_DT`, `TRADE_DT`, `EVENT_DT`, `FUNDING_DT`) and the
per-bar account as `State` (one array per field, the equity frame's columns without a copy), vectorbt-style: a field
is named where it is read or written. The Python wrapper (`engine.py`) turns codes, bar indices and slots into names
and timestamps.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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

# signal bit flags
SIG_LONG_ENTRY, SIG_LONG_EXIT, SIG_SHORT_ENTRY, SIG_SHORT_EXIT = 1, 2, 4, 8

# signal modes (vectorbt's enums: AccumulationMode, OppositeEntryMode, ConflictMode, DirectionConflictMode)
ACC_DISABLED, ACC_BOTH, ACC_ADD_ONLY, ACC_REMOVE_ONLY = 0, 1, 2, 3
OPP_IGNORE, OPP_CLOSE, OPP_CLOSE_REDUCE, OPP_REVERSE, OPP_REVERSE_REDUCE = 0, 1, 2, 3, 4
CONFLICT_IGNORE, CONFLICT_ENTRY, CONFLICT_EXIT, CONFLICT_ADJACENT, CONFLICT_OPPOSITE = 0, 1, 2, 3, 4
DIR_IGNORE, DIR_LONG, DIR_SHORT, DIR_ADJACENT, DIR_OPPOSITE = 0, 1, 2, 3, 4


class SignalRules(NamedTuple):
    """How signals become orders (vectorbt `from_signals` modes, codes above)."""

    accumulate: int = ACC_DISABLED
    opposite_entry: int = OPP_REVERSE_REDUCE
    long_conflict: int = CONFLICT_IGNORE
    short_conflict: int = CONFLICT_IGNORE
    dir_conflict: int = DIR_IGNORE


# --- record dtypes: every kernel output is a structured array, so a column is named where it is used ---------------
_I, _F, _B = np.int64, np.float64, np.bool_

ORDER_DT = np.dtype(
    [
        ("bar", _I),  # bar whose close the order was submitted at
        ("slot", _I),
        ("side", _I),  # BUY / SELL
        ("action", _I),  # ENTRY / EXIT / MODIFY / CANCEL
        ("order_type", _I),  # MARKET / LIMIT / STOP / STOP_LIMIT
        ("size_type", _I),
        ("size", _F),
        ("limit_price", _F),
        ("stop_price", _F),
        ("stop_distance", _F),
        ("tif", _I),  # time in force in bars, -1 = good till cancelled
        ("ref", _I),  # MODIFY / CANCEL target (row), -1 = none
        ("reverse", _B),  # a signal's entry against a position: closes it and opens `size` the other way
        ("reduce", _B),  # an EXIT of `size` (capped at the position) instead of the whole position
        ("portion", _F),  # an EXIT of this fraction of the position (backtesting.py's close(portion)); NaN = all
        ("status", _I),
        ("reason", _I),
        ("requested", _F),  # units, resolved at the first fill attempt
        ("filled", _F),
        ("avg_price", _F),
        ("last_bar", _I),
        ("active_bar", _I),  # first bar it may fill at
        ("triggered_bar", _I),  # STOP_LIMIT: bar its stop triggered, -1 = not yet
        ("resolved", _B),  # `requested` is set
        ("input_id", _I),  # >= 0 user order; -1 signal order; -2 kill-switch flatten order
        ("armed", _I),  # slot's opened-position count at admission (minus 1 if holding one): EXIT orders arm after it
    ],
    align=True,
)
FILL_DT = np.dtype(
    [
        ("bar", _I),
        ("order", _I),  # row of the order (fast path: -1)
        ("slot", _I),
        ("side", _I),
        ("price", _F),
        ("size", _F),
        ("fee", _F),
        ("slippage_cost", _F),
        ("expected_slippage_cost", _F),
        ("maker", _B),
    ],
    align=True,
)
TRADE_DT = np.dtype(
    [
        ("slot", _I),
        ("short", _B),
        ("entry_bar", _I),
        ("exit_bar", _I),
        ("entry_price", _F),
        ("exit_price", _F),
        ("size", _F),
        ("fees", _F),
        ("funding", _F),
        ("is_open", _B),
    ],
    align=True,
)
EVENT_DT = np.dtype(
    [
        ("bar", _I),
        ("order", _I),  # -1 = not about an order
        ("slot", _I),
        ("instrument", _I),
        ("kind", _I),
        ("reason", _I),
        ("requested", _F),
        ("allowed", _F),
    ],
    align=True,
)
FUNDING_DT = np.dtype(
    [("bar", _I), ("slot", _I), ("rate", _F), ("mark_price", _F), ("payment", _F)],
    align=True,
)


class State(NamedTuple):
    """Per-bar account state, one array per field (n_bars each): the equity frame's columns, without a copy."""

    cash: np.ndarray
    positions_value: np.ndarray
    gross_exposure: np.ndarray
    fees_cum: np.ndarray
    funding_cum: np.ndarray
    killed: np.ndarray  # bool


@njit(cache=True)
def new_state(n: int) -> State:
    return State(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.bool_))


class Market(NamedTuple):
    """Bar grid inputs, (n_bars, n_instruments) each, plus the calendar."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    half_spread: np.ndarray
    sigma: np.ndarray
    adv: np.ndarray
    funding: np.ndarray  # funding rate applied at the bar's open (NaN = none)
    new_day: np.ndarray  # (n_bars,) bool: the bar opens a new UTC day
    next_day: np.ndarray  # (n_bars,) int: first bar of the next day


class Slots(NamedTuple):
    """One (strategy, instrument) slot per entry: its instrument column and strategy index."""

    instrument: np.ndarray
    strategy: np.ndarray


class SignalInputs(NamedTuple):
    """Per (bar, slot) signal inputs of `run_signals`: bit flags, size and stop distance (NaN = none)."""

    flags: np.ndarray
    size: np.ndarray
    stop_distance: np.ndarray
    exit_portion: np.ndarray  # fraction of the position an exit signal closes (NaN = all)


class Params(NamedTuple):
    """Engine settings (`EngineConfig.params`); inf = no limit."""

    init_cash: float
    fill_close: bool  # fill market orders at the signal bar's close (vectorbt), else at the next open
    latency: int
    maker_fee: float
    taker_fee: float
    fixed_fee: float
    slippage: float
    vol_k: float
    liq_k: float
    impact_k: float
    participation: float
    max_leverage: float
    max_strategy: float
    max_instrument: float
    max_new: float
    daily_loss: float
    cooldown: int
    max_stale: float
    max_dd: float
    max_slip_ratio: float
    min_slip_fills: int
    flatten_on_kill: bool
    allow_short: bool
    sig_size_type: int
    sig_wait: bool  # a signal order whose fill bar has no price waits for the next priced bar (else it expires)
    cap_reject: bool  # an exposure cap rejects the opening part of an order it would cut (backtesting.py); else resize
    rules: SignalRules  # how signals become orders
    sl_stop: float  # signal stop-loss as a fraction of the entry price (NaN = none)
    tp_stop: float  # signal take-profit as a fraction of the entry price (NaN = none)
    sl_trail: bool  # the stop-loss trails the best high (long) / low (short) since the entry
    entry_spread: float  # backtesting.py's `spread`: opening fills pay price * (1 +- spread), closing fills do not
    sig_whole_units: bool  # signal entries are whole units, sized as backtesting.py sizes a fraction of equity
    stop_ignores_signals: bool  # fill_at="close": a bar whose signal stop fired ignores its signals (vectorbt)


class FastParams(NamedTuple):
    """Settings of the fast signal path (`fast_signals_nb`)."""

    notional: bool  # size is quote notional (inf = all cash) rather than units
    fees: float
    fixed_fees: float
    slippage: float
    init_cash: float
    next_bar: bool  # fill at the next bar's price rather than the signal bar's
    allow_short: bool
    wait: bool  # a signal whose fill price is NaN waits for the next priced bar (else it is dropped)
    rules: SignalRules


class StopInputs(NamedTuple):
    """Signal stops of the fast path: OHLC (n_bars, n_columns) and the stop settings of `Params`. Without stops
    (both NaN) the arrays are never read."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    sl_stop: float
    tp_stop: float
    sl_trail: bool
    ignores_signals: bool  # as `Params.stop_ignores_signals`


class Book(NamedTuple):
    """Per-slot position and open-trade state: position, entry bar, average entry price, entry fees and funding
    not yet booked to a closed trade."""

    pos: np.ndarray
    bar: np.ndarray
    price: np.ndarray
    fees: np.ndarray
    funding: np.ndarray


@njit(cache=True)
def new_book(ns: int) -> Book:
    return Book(np.zeros(ns), np.zeros(ns, dtype=np.int64), np.zeros(ns), np.zeros(ns), np.zeros(ns))


@njit(cache=True)
def _resolve_conflict(pos: float, entry: bool, exit_: bool, mode: int) -> tuple[bool, bool]:
    """An entry and an exit of one direction on the same bar (vectorbt's `resolve_signal_conflict_nb`)."""
    if not (entry and exit_):
        return entry, exit_
    if mode == CONFLICT_ENTRY:
        return True, False
    if mode == CONFLICT_EXIT:
        return False, True
    if mode == CONFLICT_ADJACENT and pos != 0.0:
        return True, False
    if mode == CONFLICT_OPPOSITE and pos != 0.0:
        return False, True
    return False, False


@njit(cache=True)
def _resolve_dir_conflict(pos: float, le: bool, se: bool, mode: int) -> tuple[bool, bool]:
    """A long and a short entry on the same bar (vectorbt's `resolve_dir_conflict_nb`)."""
    if not (le and se):
        return le, se
    if mode == DIR_LONG:
        return True, False
    if mode == DIR_SHORT:
        return False, True
    if mode == DIR_ADJACENT and pos != 0.0:
        return pos > 0, pos < 0
    if mode == DIR_OPPOSITE and pos != 0.0:
        return pos < 0, pos > 0
    return False, False


@njit(cache=True)
def resolve_signal(flags: int, pos: float, allow_short: bool, rules: SignalRules) -> tuple[int, int, int, bool]:
    """vectorbt's `from_signals` rules against the current position: conflict resolution, opposite entries and
    accumulation (its `resolve_*_nb` and `signals_to_size_nb`).

    Returns (side, action, reverse, reduce); side -1 means no order. An ENTRY with `reverse` closes the position and
    opens the signal's size the other way; one without it against a position trades the signal's size (reducing,
    and flipping if larger). An EXIT with `reduce` sells/buys back the signal's size (capped at the position),
    without it the whole position."""
    le = (flags & SIG_LONG_ENTRY) != 0
    lx = (flags & SIG_LONG_EXIT) != 0
    se = (flags & SIG_SHORT_ENTRY) != 0 and allow_short
    sx = (flags & SIG_SHORT_EXIT) != 0
    acc = rules.accumulate
    if le or se:
        le, lx = _resolve_conflict(pos, le, lx, rules.long_conflict)
        se, sx = _resolve_conflict(pos, se, sx, rules.short_conflict)
        le, se = _resolve_dir_conflict(pos, le, se, rules.dir_conflict)
        mode = rules.opposite_entry
        if (pos > 0 and se) or (pos < 0 and le):
            if mode == OPP_IGNORE:
                se = se and pos < 0
                le = le and pos > 0
            elif mode in (OPP_CLOSE, OPP_CLOSE_REDUCE):
                if pos > 0:
                    se = False
                    lx = True
                else:
                    le = False
                    sx = True
                if mode == OPP_CLOSE:
                    acc = ACC_DISABLED
            elif mode == OPP_REVERSE:
                acc = ACC_DISABLED
    remove = acc in (ACC_BOTH, ACC_REMOVE_ONLY)
    add = acc in (ACC_BOTH, ACC_ADD_ONLY)
    if pos > 0:
        if se:
            return SELL, ENTRY, 0 if remove else 1, False
        if lx:
            return SELL, EXIT, 0, remove
        if le and add:
            return BUY, ENTRY, 0, False
    elif pos < 0:
        if le:
            return BUY, ENTRY, 0 if remove else 1, False
        if sx:
            return BUY, EXIT, 0, remove
        if se and add:
            return SELL, ENTRY, 0, False
    else:
        if le:
            return BUY, ENTRY, 0, False
        if se:
            return SELL, ENTRY, 0, False
    return -1, -1, 0, False


@njit(cache=True)
def _book_fill_into(
    trades: np.ndarray, nt: int, s: int, bar: int, sgn: float, units: float, price: float, fee: float, book: Book
) -> int:
    """Trade bookkeeping per slot, vectorbt's exit-trade convention: each reduction closes a trade record with
    pro-rated entry fees/funding; a flip opens a new trade with the rest of the order and its share of the fee.
    Writes at most one trade record, only if `trades` has room, and returns the new count either way (the caller
    reruns with more room on overflow; never reassigning the buffers keeps the hot loops free of refcounting)."""
    p = book.pos[s]
    if p == 0.0 or (p > 0) == (sgn > 0):
        if p == 0.0:
            book.bar[s] = bar
            book.price[s] = price
            book.fees[s] = fee
            book.funding[s] = 0.0
        else:
            book.price[s] = (book.price[s] * abs(p) + price * units) / (abs(p) + units)
            book.fees[s] += fee
        book.pos[s] = p + sgn * units
        return nt
    close_units = min(units, abs(p))
    frac = close_units / abs(p)
    close_fee = fee * close_units / units
    if nt < trades.shape[0]:
        t = trades[nt]
        t.slot = s
        t.short = p < 0
        t.entry_bar = book.bar[s]
        t.exit_bar = bar
        t.entry_price = book.price[s]
        t.exit_price = price
        t.size = close_units
        t.fees = book.fees[s] * frac + close_fee
        t.funding = book.funding[s] * frac
        t.is_open = False
    nt += 1
    book.fees[s] -= book.fees[s] * frac
    book.funding[s] -= book.funding[s] * frac
    rest = units - close_units
    if close_units >= abs(p):
        book.pos[s] = 0.0
        if rest > 0.0:
            book.bar[s] = bar
            book.price[s] = price
            book.fees[s] = fee - close_fee
            book.funding[s] = 0.0
            book.pos[s] = sgn * rest
    else:
        book.pos[s] = p + sgn * units
    return nt


@njit(cache=True)
def _close_open_trades_into(
    trades: np.ndarray, nt: int, book: Book, last_px: np.ndarray, slot_inst: np.ndarray, last_bar: int
) -> int:
    """Open trades at the end of the data (marked at `last_px`); write-if-room like `_book_fill_into`."""
    for s in range(book.pos.shape[0]):
        p = book.pos[s]
        if p != 0.0:
            if nt < trades.shape[0]:
                t = trades[nt]
                t.slot = s
                t.short = p < 0
                t.entry_bar = book.bar[s]
                t.exit_bar = last_bar
                t.entry_price = book.price[s]
                t.exit_price = last_px[slot_inst[s]]
                t.size = abs(p)
                t.fees = book.fees[s]
                t.funding = book.funding[s]
                t.is_open = True
            nt += 1
    return nt


@njit(cache=True)
def _short_debt2(book: Book) -> float:
    """Twice the entry value of the open shorts: vectorbt's free cash is cash minus this (a short's proceeds and
    an equal collateral are locked until it is covered)."""
    d = 0.0
    for s in range(book.pos.shape[0]):
        if book.pos[s] < 0.0:
            d += 2.0 * -book.pos[s] * book.price[s]
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
    """`arr` with at least `rows` records (a copy with room when it has fewer)."""
    if arr.shape[0] >= rows:
        return arr
    out = np.empty(max(rows, arr.shape[0] * 2), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@njit(cache=True)
def fast_signals_nb(
    fill_price: np.ndarray, flags: np.ndarray, size: np.ndarray, fp: FastParams, stops: StopInputs
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: signals at bar i fill at `fill_price[i]` (close mode) or `fill_price[i+1]` (next-open mode).

    `size` is per column (units, or quote notional when `fp.notional`; +inf = all cash). A signal whose fill price
    is NaN is dropped (vectorbt), unless `fp.wait`: then it fills at the next valid price. Returns fills
    (FILL_DT), trades (TRADE_DT), final cash and final position per column. Mirrors `simulate_nb` on the same case
    exactly (tested). Each signal makes at most one order and so at most one fill, and each fill closes at most one
    trade: the record buffers are sized per column before its bar loop runs, so the loop itself never reallocates
    (a signal stop's exit is a second fill per signal at most: it needs a position a signal opened).
    """
    has_stops = np.isfinite(stops.sl_stop) or np.isfinite(stops.tp_stop)
    n, m = fill_price.shape
    fills = np.empty(64, dtype=FILL_DT)
    trades = np.empty(64, dtype=TRADE_DT)
    nf = 0
    nt = 0
    cash_out = np.empty(m)
    pos_out = np.empty(m)
    book = new_book(1)
    for c in range(m):
        n_sig = 0
        for i in range(n):
            if flags[i, c] != 0:
                n_sig += 1
        per_sig = 2 if has_stops else 1
        fills = _ensure_rows(fills, nf + per_sig * n_sig)
        trades = _ensure_rows(trades, nt + per_sig * n_sig + 1)
        cash, nf, nt = _fast_column(c, fill_price, flags, size[c], fp, stops, book, fills, nf, trades, nt)
        if nf > fills.shape[0] or nt > trades.shape[0]:
            raise RuntimeError("fast_signals_nb: record buffer bound violated")
        cash_out[c] = cash
        pos_out[c] = book.pos[0]
    return fills[:nf], trades[:nt], cash_out, pos_out


@njit(cache=True)
def _fast_column(
    c: int,
    fill_price: np.ndarray,
    flags: np.ndarray,
    sz: float,
    fp: FastParams,
    stops: StopInputs,
    book: Book,
    fills: np.ndarray,
    nf: int,
    trades: np.ndarray,
    nt: int,
) -> tuple[float, int, int]:
    """Bar loop of one column of `fast_signals_nb`; returns final cash and the new fill / trade counts."""
    n = fill_price.shape[0]
    cash = fp.init_cash
    book.pos[0] = 0.0
    pending = False
    p_side = -1
    p_action = 0
    p_rev = 0
    has_stops = np.isfinite(stops.sl_stop) or np.isfinite(stops.tp_stop)
    sl_anchor = np.nan
    tp_anchor = np.nan
    for i in range(n):
        f = flags[i, c]
        if f == 0 and not pending and not (has_stops and book.pos[0] != 0.0):
            continue
        px = fill_price[i, c]
        priced = not np.isnan(px)
        # next-bar mode: a pending order fills at this bar's price before this bar's signal is read; without a
        # price it is dropped (or, when `wait`, kept for the next priced bar)
        if fp.next_bar and pending:
            if priced:
                p0 = book.pos[0]
                cash, nf, nt = _fast_exec(
                    c, i, p_side, p_action, p_rev, px, sz, fp, fp.slippage, cash, book, fills, nf, trades, nt
                )
                if has_stops:
                    sl_anchor, tp_anchor = _restart_stops(p0, book.pos[0], px, sl_anchor, tp_anchor)
            if priced or not fp.wait:
                pending = False
        stopped = False
        if has_stops and book.pos[0] != 0.0:
            # signal stops after the fills at the open, before the bar's signals (as `simulate_nb`)
            p = book.pos[0]
            o, h, lw, cl = stops.open[i, c], stops.high[i, c], stops.low[i, c], stops.close[i, c]
            if np.isfinite(o) and np.isfinite(h) and np.isfinite(lw) and np.isfinite(cl):
                spx = np.nan
                if np.isfinite(stops.sl_stop):
                    lvl = sl_anchor * (1.0 - stops.sl_stop) if p > 0 else sl_anchor * (1.0 + stops.sl_stop)
                    spx = _stop_fill_price(p > 0, lvl, o, h, lw)
                if np.isnan(spx) and np.isfinite(stops.tp_stop):
                    lvl = tp_anchor * (1.0 + stops.tp_stop) if p > 0 else tp_anchor * (1.0 - stops.tp_stop)
                    spx = _stop_fill_price(p < 0, lvl, o, h, lw)
                if stops.sl_trail and np.isfinite(stops.sl_stop):
                    if p > 0 and h > sl_anchor:
                        sl_anchor = h
                    elif p < 0 and lw < sl_anchor:
                        sl_anchor = lw
                if np.isfinite(spx):
                    side = SELL if p > 0 else BUY
                    cash, nf, nt = _fast_exec(c, i, side, EXIT, 0, spx, sz, fp, 0.0, cash, book, fills, nf, trades, nt)
                    if nf > 0 and nf <= fills.shape[0]:
                        fills[nf - 1].order = STOP_EXIT_ID  # tells the stop's fill from the signals' ones
                        fills[nf - 1].maker = True  # at the stop price, without slippage (as `simulate_nb`)
                    sl_anchor = np.nan
                    tp_anchor = np.nan
                    stopped = True
        if stopped and not fp.next_bar and stops.ignores_signals:
            continue  # a stop closed the position at this bar: its signals are ignored (vectorbt)
        if f != 0:
            side, action, rev, reduce = resolve_signal(f, book.pos[0], fp.allow_short, fp.rules)
            if side >= 0:
                pending = True
                p_side = side
                p_action = action
                p_rev = 2 if reduce else rev  # 1: reverse, 2: exit of the signal's size
        if not fp.next_bar and pending:
            if priced:
                p0 = book.pos[0]
                cash, nf, nt = _fast_exec(
                    c, i, p_side, p_action, p_rev, px, sz, fp, fp.slippage, cash, book, fills, nf, trades, nt
                )
                if has_stops:
                    sl_anchor, tp_anchor = _restart_stops(p0, book.pos[0], px, sl_anchor, tp_anchor)
            if priced or not fp.wait:
                pending = False
    last = np.nan  # last valid price of the column marks still-open trades
    for k in range(n - 1, -1, -1):
        if not np.isnan(fill_price[k, c]):
            last = fill_price[k, c]
            break
    lp = np.empty(1)
    lp[0] = last
    si = np.zeros(1, dtype=np.int64)
    nt0 = nt
    nt = _close_open_trades_into(trades, nt, book, lp, si, n - 1)
    for k in range(nt0, min(nt, trades.shape[0])):
        trades[k].slot = c
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
    fp: FastParams,
    slippage: float,
    cash: float,
    book: Book,
    fills: np.ndarray,
    nf: int,
    trades: np.ndarray,
    nt: int,
) -> tuple[float, int, int]:
    sgn = 1.0 if side == BUY else -1.0
    p = book.pos[0]
    fees = fp.fees
    all_in = False
    adj = px * (1.0 + sgn * slippage)
    if action == EXIT:
        if p == 0.0 or (p > 0) == (sgn > 0):
            return cash, nf, nt
        units = abs(p)
        if rev == 2:  # reduce by the signal's size
            units = min(sz / px if fp.notional else sz, units)
        fee = units * adj * fees + fp.fixed_fees
    elif fp.notional and np.isinf(sz) and sgn < 0:
        # all-cash short (vectorbt 1.2's sell with size=inf): close the long, then short what free cash allows
        units = _all_cash_short_units(p, cash - _short_debt2(book), adj, fees, fp.fixed_fees)
        if not units > 0.0:
            return cash, nf, nt
        fee = units * adj * fees + fp.fixed_fees
    elif fp.notional and np.isinf(sz):
        max_req = (cash - fp.fixed_fees) / (1.0 + fees)
        if max_req <= 0.0:
            return cash, nf, nt
        units = max_req / adj
        fee = cash - max_req
        all_in = True
    else:
        units = sz / px if fp.notional else sz
        if rev == 1 and p != 0.0 and (p > 0) != (sgn > 0):
            units += abs(p)
        fee = units * adj * fees + fp.fixed_fees
    if not units > 0.0:
        return cash, nf, nt
    cash = 0.0 if all_in else cash - (sgn * units * adj + fee)  # all in: all the cash, exactly
    if nf < fills.shape[0]:
        fl = fills[nf]
        fl.bar = i
        fl.order = -1
        fl.slot = c
        fl.side = side
        fl.price = adj
        fl.size = units
        fl.fee = fee
        fl.slippage_cost = units * px * slippage
        fl.expected_slippage_cost = units * px * slippage
        fl.maker = False
    nf += 1
    nt0 = nt
    nt = _book_fill_into(trades, nt, 0, i, sgn, units, adj, fee, book)
    for k in range(nt0, min(nt, trades.shape[0])):
        trades[k].slot = c
    return cash, nf, nt


@njit(cache=True)
def _restart_stops(p0: float, p1: float, ref: float, sl_anchor: float, tp_anchor: float) -> tuple[float, float]:
    """Stop anchors after a fill took the position from `p0` to `p1` at reference price `ref` (as `simulate_nb`):
    cleared when flat, restarted at `ref` for a new, flipped or increased position, else kept."""
    if p1 == 0.0:
        return np.nan, np.nan
    if p0 == 0.0 or (p0 > 0) != (p1 > 0) or abs(p1) > abs(p0):
        return ref, ref
    return sl_anchor, tp_anchor


@njit(cache=True)
def fills_state_nb(n: int, fills: np.ndarray, mark: np.ndarray, init_cash: float) -> State:
    """Per-bar `State` of one slot rebuilt from its fills (FILL_DT, sorted by bar) in one pass:
    cash, position value at `mark` (forward-filled close), gross exposure, cumulative fees; funding and the kill
    flag stay 0 on the fast path. The fills of a bar are summed in fill order first, then accumulated bar by bar."""
    state = new_state(n)
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
        while k < nf and fills[k].bar == i:
            fl = fills[k]
            sgn = 1.0 if fl.side == BUY else -1.0
            dc += -(sgn * fl.size * fl.price + fl.fee)
            dp += sgn * fl.size
            df += fl.fee
            k += 1
        c += dc
        p += dp
        f += df
        if np.isfinite(mark[i]):
            last = mark[i]
        pv = p * last if p != 0 else 0.0
        state.cash[i] = init_cash + c
        state.positions_value[i] = pv
        state.gross_exposure[i] = abs(pv)
        state.fees_cum[i] = f
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
def equity_drawdown_nb(state: State) -> np.ndarray:
    """Rows (equity, drawdown) from a per-bar `State`: equity = cash + positions value, drawdown =
    equity / running peak - 1 (a NaN equity makes the peak NaN from there on, as numpy's maximum.accumulate does)."""
    n = state.cash.shape[0]
    out = np.empty((2, n))
    peak = np.nan
    for i in range(n):
        eq = state.cash[i] + state.positions_value[i]
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
STOP_EXIT_ID = -3  # input_id of the EXIT a signal stop (sl_stop / tp_stop) makes


@njit(cache=True)
def _stop_fill_price(hit_below: bool, level: float, o: float, h: float, lw: float) -> float:
    """Fill price of a stop at `level` in a bar (vectorbt's `get_stop_price_nb`): the open when the bar opens
    through it, the level when the bar touches it, NaN when it does not."""
    if hit_below:
        if o <= level:
            return o
        if lw <= level <= h:
            return level
    else:
        if level <= o:
            return o
        if lw <= level <= h:
            return level
    return np.nan


R_NO_PRICE = 26
R_CAP_REJECT_OFFSET = 24  # + R_STRATEGY_CAP .. R_NEW_EXPOSURE_CAP (27..30): that cap rejected instead of resizing


@njit(cache=True)
def _event_into(
    events: np.ndarray, ne: int, bar: int, k: int, s: int, j: int, kind: int, reason: int, req: float, allowed: float
) -> int:
    """Record a risk event if `events` has room; returns the new count either way."""
    if ne < events.shape[0]:
        events[ne].bar = bar
        events[ne].order = k
        events[ne].slot = s
        events[ne].instrument = j
        events[ne].kind = kind
        events[ne].reason = reason
        events[ne].requested = req
        events[ne].allowed = allowed
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
    action = orders[k].action
    typ = orders[k].order_type
    if action == ENTRY:
        sz = orders[k].size
        if not (sz > 0.0):
            return R_NONPOSITIVE_SIZE
        if orders[k].size_type == RISK_PERCENT and not (orders[k].stop_distance > 0.0):
            return R_BAD_STOP_DISTANCE
    if action in (ENTRY, EXIT):
        if (typ in (LIMIT, STOP_LIMIT)) and not (orders[k].limit_price > 0.0 and np.isfinite(orders[k].limit_price)):
            return R_BAD_PRICE
        if (typ in (STOP, STOP_LIMIT)) and not (orders[k].stop_price > 0.0 and np.isfinite(orders[k].stop_price)):
            return R_BAD_PRICE
    return R_NONE


class SimResult(NamedTuple):
    """Records of one `simulate_nb` run."""

    orders: np.ndarray  # ORDER_DT: input orders first, then generated (signal / flatten) orders
    fills: np.ndarray  # FILL_DT
    trades: np.ndarray  # TRADE_DT
    events: np.ndarray  # EVENT_DT
    funding: np.ndarray  # FUNDING_DT
    state: State
    position: np.ndarray  # final units per slot


def empty_orders(n: int) -> np.ndarray:
    """`n` order records with no-value defaults (NaN prices and sizes, -1 codes)."""
    o = np.zeros(n, dtype=ORDER_DT)
    for name, (dt, *_) in (ORDER_DT.fields or {}).items():
        if dt == np.float64:
            o[name] = np.nan
        elif dt == np.int64:
            o[name] = -1
    return o


@njit(cache=True)
def _units(o: Any, ref: float, eq: float) -> float:
    """Units of an order's `size` at price `ref` and equity `eq`, by its size type (no cost netting)."""
    sz = o.size
    if o.size_type == NOTIONAL:
        return sz / ref
    if o.size_type == EQUITY_PERCENT:
        return sz * eq / ref
    if o.size_type == RISK_PERCENT:
        return sz * eq / o.stop_distance
    return sz


@njit(cache=True)
def _blank_order(o: Any) -> None:
    """No-value defaults of a generated order's fields (as `empty_orders`)."""
    o.bar = -1
    o.slot = -1
    o.side = -1
    o.action = -1
    o.order_type = -1
    o.size_type = -1
    o.size = np.nan
    o.limit_price = np.nan
    o.stop_price = np.nan
    o.stop_distance = np.nan
    o.tif = -1
    o.ref = -1
    o.reverse = False
    o.reduce = False
    o.portion = np.nan
    o.status = -1
    o.reason = -1
    o.requested = np.nan
    o.filled = np.nan
    o.avg_price = np.nan
    o.last_bar = -1
    o.active_bar = -1
    o.triggered_bar = -1
    o.resolved = False
    o.input_id = -1
    o.armed = -1


@njit(cache=True)
def simulate_nb(
    market: Market, slots: Slots, signals: SignalInputs, orders_in: np.ndarray, params: Params
) -> SimResult:
    """Event loop over bars. Per bar: funding at the open, fills of active orders (open phase: intrabar OHLC logic),
    then at the close: new orders and signals, close-mode market fills, mark-to-market, kill switches, daily loss
    cap, expiry. `orders_in` are ORDER_DT records sorted by bar."""
    n = market.close.shape[0]
    ns = slots.instrument.shape[0]
    n_sig = 0
    n_fund = 0
    for i in range(n):
        for s in range(ns):
            if signals.flags[i, s] != 0:
                n_sig += 1
            if np.isfinite(market.funding[i, slots.instrument[s]]):
                n_fund += 1
    # orders: every input order, one per signal (two with signal stops: a stop exit needs a position a signal
    # opened), one flatten order per slot on a kill switch (exact bound);
    # funding payments: at most one per finite rate per slot (exact bound); fills: one per order unless partial
    # fills spread an order over several bars; trades: at most one closed per fill plus the open ones at the end.
    per_sig = 1 + (1 if np.isfinite(params.sl_stop) or np.isfinite(params.tp_stop) else 0)
    per_sig += 1 if params.entry_spread > 0.0 else 0  # a reversal splits into an exit and an entry
    cap = orders_in.shape[0] + n_sig * per_sig + ns + 1
    cap_f = cap + 16
    cap_t = cap_f + ns
    cap_e = cap + 16
    # int64, never Literal[int](0): a literal-typed count makes numba compile `_simulate_pass` a second time (~25 s)
    cap_fu: int = np.int64(n_fund)  # type: ignore[assignment]
    while True:
        res, nf, nt, ne, nfu = _simulate_pass(
            market, slots, signals, orders_in, params, cap, cap_f, cap_t, cap_e, cap_fu
        )
        if nf <= cap_f and nt <= cap_t and ne <= cap_e and nfu <= cap_fu:
            return SimResult(
                res.orders, res.fills[:nf], res.trades[:nt], res.events[:ne], res.funding[:nfu], res.state, res.position
            )
        # deterministic: the rerun with room for every record reproduces the same run
        cap_f = max(cap_f, nf)
        cap_t = max(cap_t, nt)
        cap_e = max(cap_e, ne)
        cap_fu = max(cap_fu, nfu)


@njit(cache=True)
def _simulate_pass(
    market: Market,
    slots: Slots,
    signals: SignalInputs,
    orders_in: np.ndarray,
    params: Params,
    cap: int,
    cap_f: int,
    cap_t: int,
    cap_e: int,
    cap_fu: int,
) -> tuple[SimResult, int, int, int, int]:
    """One run of the event loop with fixed-size record buffers (`cap` orders, `cap_f` fills, `cap_t` trades,
    `cap_e` risk events, `cap_fu` funding payments). Records beyond a buffer are counted, not written: the caller
    reruns with larger buffers when a count exceeds its buffer (see `simulate_nb`)."""
    op, hi, lo, cl, vol = market.open, market.high, market.low, market.close, market.volume
    half_spread, sigma, adv, fund = market.half_spread, market.sigma, market.adv, market.funding
    new_day, next_day = market.new_day, market.next_day
    slot_inst, slot_strat = slots.instrument, slots.strategy
    sig_flags, sig_size, sig_stop_dist = signals.flags, signals.size, signals.stop_distance
    sig_portion = signals.exit_portion
    n, nj = cl.shape
    ns = slot_inst.shape[0]
    n_in = orders_in.shape[0]
    orders: Any = np.empty(cap, dtype=ORDER_DT)  # Any: records are read by field name
    orders[:n_in] = orders_in
    for k in range(n_in, cap):
        _blank_order(orders[k])
    no = n_in
    pending = np.empty(cap, dtype=np.int64)
    npend = 0
    next_in = 0

    init_cash = params.init_cash
    fill_close = params.fill_close
    lat = params.latency
    maker_fee = params.maker_fee
    taker_fee = params.taker_fee
    fixed_fee = params.fixed_fee
    fixed_slip = params.slippage
    vol_k = params.vol_k
    liq_k = params.liq_k
    imp_k = params.impact_k
    part = params.participation
    max_lev = params.max_leverage
    max_strat = params.max_strategy
    max_inst = params.max_instrument
    max_new = params.max_new
    daily_cap = params.daily_loss
    cooldown = params.cooldown
    max_stale = params.max_stale
    max_dd = params.max_dd
    max_slip_ratio = params.max_slip_ratio
    min_slip_fills = params.min_slip_fills
    flatten = params.flatten_on_kill
    allow_short = params.allow_short
    sig_size_type = params.sig_size_type
    sig_wait = params.sig_wait
    cap_reject = params.cap_reject
    rules = params.rules
    sl_stop = params.sl_stop
    tp_stop = params.tp_stop
    sl_trail = params.sl_trail and np.isfinite(sl_stop)
    entry_spread = params.entry_spread
    whole_units = params.sig_whole_units
    has_stops = np.isfinite(sl_stop) or np.isfinite(tp_stop)

    fills = np.empty(cap_f, dtype=FILL_DT)
    nf = 0
    trades = np.empty(cap_t, dtype=TRADE_DT)
    nt = 0
    events = np.empty(cap_e, dtype=EVENT_DT)
    ne = 0
    funds = np.empty(cap_fu, dtype=FUNDING_DT)
    nfu = 0
    state = new_state(n)

    cash = init_cash
    book = new_book(ns)
    pos = book.pos
    mark = np.full(nj, np.nan)
    valid = np.zeros(nj, dtype=np.bool_)
    stale = np.zeros(nj)
    used_vol = np.zeros(nj)
    n_open = np.zeros(ns, dtype=np.int64)  # positions opened per slot (from flat or by a flip)
    intra_bar = np.full(ns, -1)  # bar in which the slot's position was opened inside the bar (not at the open)
    # signal stops (vectorbt's sl_stop / tp_stop / sl_trail): per slot the stop-loss anchor (the entry's reference
    # price, or the best price since when trailing) and the take-profit anchor; the bar and fill price of a stop exit
    sl_anchor = np.full(ns, np.nan)
    tp_anchor = np.full(ns, np.nan)
    stopped_bar = np.full(ns, -1)
    stop_px = np.full(ns, np.nan)
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
                    book.funding[s] += pay
                    if nfu < funds.shape[0]:
                        fu = funds[nfu]
                        fu.bar = i
                        fu.slot = s
                        fu.rate = r
                        fu.mark_price = mpx
                        fu.payment = pay
                    nfu += 1
        for j in range(nj):
            if valid[j]:
                mark[j] = op[i, j]

        # an idle bar (nothing pending, no order submitted at it, no signal) only moves the marks to the close
        busy = npend > 0 or (next_in < n_in and orders[next_in].bar <= i)
        if not busy:
            for s in range(ns):
                if sig_flags[i, s] != 0 or (has_stops and pos[s] != 0.0):
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
                while next_in < n_in and orders[next_in].bar <= i:
                    k = next_in
                    next_in += 1
                    action = orders[k].action
                    orders[k].status = ST_NEW
                    orders[k].reason = R_NONE
                    orders[k].filled = 0.0
                    orders[k].resolved = False
                    orders[k].triggered_bar = -1
                    orders[k].last_bar = i
                    s = orders[k].slot
                    orders[k].armed = n_open[s] - (1 if pos[s] != 0.0 else 0)
                    if action in (MODIFY, CANCEL):
                        tgt = orders[k].ref
                        ok = tgt >= 0 and tgt < k
                        if ok:
                            st = orders[tgt].status
                            ok = st in (ST_NEW, ST_PARTIAL)
                        if not ok:
                            orders[k].status = ST_REJECTED
                            orders[k].reason = R_UNKNOWN_REF
                            ne = _event_into(events, ne, i, k, s, slot_inst[s], EV_REJECTED, R_UNKNOWN_REF, 0.0, 0.0)
                            continue
                        if action == CANCEL:
                            orders[tgt].status = ST_CANCELLED
                            orders[tgt].reason = R_CANCELLED
                            orders[tgt].last_bar = i
                        else:
                            if orders[k].size > 0.0:
                                orders[tgt].size = orders[k].size
                                orders[tgt].resolved = False
                            if np.isfinite(orders[k].limit_price):
                                orders[tgt].limit_price = orders[k].limit_price
                            if np.isfinite(orders[k].stop_price):
                                orders[tgt].stop_price = orders[k].stop_price
                            orders[tgt].reason = R_MODIFIED
                            bad = _admit_check(orders, tgt)
                            if bad != R_NONE:
                                orders[tgt].status = ST_REJECTED
                                orders[tgt].reason = bad
                        orders[k].status = ST_FILLED
                        orders[k].filled = 0.0
                        continue
                    bad = _admit_check(orders, k)
                    if bad != R_NONE:
                        orders[k].status = ST_REJECTED
                        orders[k].reason = bad
                        ne = _event_into(events, ne, i, k, s, slot_inst[s], EV_REJECTED, bad, orders[k].size, 0.0)
                        continue
                    typ = orders[k].order_type
                    orders[k].active_bar = i + lat + (0 if (fill_close and typ == MARKET) else 1)
                    pending[npend] = k
                    npend += 1
                # signals -> market orders (vectorbt rules against the current position)
                for s in range(ns):
                    f = sig_flags[i, s]
                    if f == 0:
                        continue
                    if fill_close and stopped_bar[s] == i and params.stop_ignores_signals:
                        continue  # a stop closed the position at this bar: its signals are ignored (vectorbt)
                    side, action, rev, reduce = resolve_signal(f, pos[s], allow_short, rules)
                    if side < 0:
                        continue
                    for q in range(npend):
                        kk = pending[q]
                        st = orders[kk].status
                        if orders[kk].slot == s and orders[kk].input_id < 0 and (st in (ST_NEW, ST_PARTIAL)):
                            orders[kk].status = ST_CANCELLED
                            orders[kk].reason = R_REPLACED
                            orders[kk].last_bar = i
                    # with an entry-only spread a reversal is two orders, as backtesting.py's exclusive orders: the
                    # close at the unadjusted price, then the entry at the spread-adjusted one
                    split = rev == 1 and entry_spread > 0.0
                    for leg in range(2 if split else 1):
                        act = EXIT if split and leg == 0 else action
                        k = no
                        no += 1
                        orders[k].bar = i
                        orders[k].slot = s
                        orders[k].side = side
                        orders[k].action = act
                        orders[k].order_type = MARKET
                        orders[k].size_type = sig_size_type
                        orders[k].size = sig_size[i, s] if (act == ENTRY or reduce) else np.nan
                        orders[k].stop_distance = sig_stop_dist[i, s]
                        orders[k].tif = -1
                        orders[k].ref = -1
                        orders[k].reverse = rev == 1 and not split
                        orders[k].reduce = reduce
                        orders[k].portion = sig_portion[i, s] if act == EXIT and not reduce else np.nan
                        orders[k].input_id = -1
                        orders[k].status = ST_NEW
                        orders[k].reason = R_NONE
                        orders[k].filled = 0.0
                        orders[k].resolved = False
                        orders[k].triggered_bar = -1
                        orders[k].last_bar = i
                        orders[k].armed = n_open[s] - (1 if pos[s] != 0.0 else 0)
                        bad = _admit_check(orders, k)
                        if bad != R_NONE:
                            orders[k].status = ST_REJECTED
                            orders[k].reason = bad
                            ne = _event_into(events, ne, i, k, s, slot_inst[s], EV_REJECTED, bad, orders[k].size, 0.0)
                            continue
                        orders[k].active_bar = i + lat + (0 if fill_close else 1)
                        pending[npend] = k
                        npend += 1
                if not fill_close:
                    break

            # ---- fills ----
            # within the open phase, three passes fix the order of fills in the bar: first what fills at the open
            # (market orders, orders gapped through), in submission order; then orders touched only inside the bar,
            # stop-triggered before limit (pessimistic: a bracket's stop-loss before its take-profit)
            for sub in range(3 if phase == 0 else 1):
                if phase == 0 and sub == 1 and has_stops:
                    # signal stops, after the fills at the open (vectorbt checks them before the bar's signals):
                    # the stop-loss first, then the take-profit; a hit makes an EXIT that fills in this pass
                    for s in range(ns):
                        p = pos[s]
                        j = slot_inst[s]
                        if p == 0.0 or not valid[j] or intra_bar[s] == i:
                            continue
                        lvl = np.nan
                        spx = np.nan
                        is_sl = False
                        if np.isfinite(sl_stop):
                            lvl = sl_anchor[s] * (1.0 - sl_stop) if p > 0 else sl_anchor[s] * (1.0 + sl_stop)
                            spx = _stop_fill_price(p > 0, lvl, op[i, j], hi[i, j], lo[i, j])
                            is_sl = np.isfinite(spx)
                        if not is_sl and np.isfinite(tp_stop):
                            lvl = tp_anchor[s] * (1.0 + tp_stop) if p > 0 else tp_anchor[s] * (1.0 - tp_stop)
                            spx = _stop_fill_price(p < 0, lvl, op[i, j], hi[i, j], lo[i, j])
                        if sl_trail:
                            if p > 0 and hi[i, j] > sl_anchor[s]:
                                sl_anchor[s] = hi[i, j]
                            elif p < 0 and lo[i, j] < sl_anchor[s]:
                                sl_anchor[s] = lo[i, j]
                        if not np.isfinite(spx):
                            continue
                        k = no
                        no += 1
                        _blank_order(orders[k])
                        orders[k].bar = i
                        orders[k].slot = s
                        orders[k].side = SELL if p > 0 else BUY
                        orders[k].action = EXIT
                        orders[k].order_type = STOP if is_sl else LIMIT
                        if is_sl:
                            orders[k].stop_price = lvl
                        else:
                            orders[k].limit_price = lvl
                        orders[k].input_id = STOP_EXIT_ID
                        orders[k].status = ST_NEW
                        orders[k].reason = R_NONE
                        orders[k].filled = 0.0
                        orders[k].last_bar = i
                        orders[k].active_bar = i
                        orders[k].armed = n_open[s] - 1
                        pending[npend] = k
                        npend += 1
                        stopped_bar[s] = i
                        stop_px[s] = spx
                for q in range(npend):
                    k = pending[q]
                    st = orders[k].status
                    if st not in (ST_NEW, ST_PARTIAL) or orders[k].active_bar > i:
                        continue
                    typ = orders[k].order_type
                    if fill_close and ((phase == 0) == (typ == MARKET)):
                        continue
                    s = orders[k].slot
                    j = slot_inst[s]
                    if not valid[j]:
                        # a signal's order has one fill bar, as in vectorbt: without a price there it expires (unless
                        # the config keeps it waiting for the next priced bar); explicit orders follow their TIF
                        if not sig_wait and orders[k].input_id == -1 and orders[k].active_bar == i:
                            orders[k].status = ST_EXPIRED
                            orders[k].reason = R_NO_PRICE
                            orders[k].last_bar = i
                        continue
                    sgn = 1.0 if orders[k].side == BUY else -1.0
                    if phase == 0 and intra_bar[s] == i and pos[s] != 0.0 and (pos[s] > 0) != (sgn > 0):
                        # the position opened inside this bar: an order against it can only fill at prices after
                        # the entry, which OHLC cannot order; it waits for the next bar (backtesting.py does the same)
                        continue
                    o = op[i, j]
                    h = hi[i, j]
                    lw = lo[i, j]
                    c = cl[i, j]
                    lim = orders[k].limit_price
                    ref = np.nan
                    cap_px = np.nan
                    maker = False
                    trig = orders[k].triggered_bar
                    klass = 0  # pass of this fill: 0 at the open, 1 stop touched inside the bar, 2 limit inside
                    if orders[k].input_id == STOP_EXIT_ID:
                        # a signal stop: at the stop price (the open if the bar gapped through it), without slippage
                        # as vectorbt's default stop_exit_price="stoplimit"
                        ref = stop_px[s]
                        maker = True
                        klass = sub
                    elif typ == MARKET:
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
                        stp = orders[k].stop_price
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
                                orders[k].triggered_bar = i
                                if (sgn > 0 and t <= lim) or (sgn < 0 and t >= lim):
                                    ref = t
                                    cap_px = lim
                    if klass != sub or not np.isfinite(ref):
                        continue

                    # ---- size ----
                    p = pos[s]
                    opposite = p != 0.0 and (p > 0) != (sgn > 0)
                    action = orders[k].action
                    all_cash = False
                    all_cash_short = False
                    short_free = 0.0
                    max_req = 0.0
                    spend = 0.0  # all_cash: the cash the fill takes, fees included
                    fee_rate = maker_fee if maker else taker_fee
                    base = 0.0 if maker else fixed_slip
                    if not maker:
                        if np.isfinite(half_spread[i, j]):
                            base += half_spread[i, j]
                        if np.isfinite(sigma[i, j]):
                            base += vol_k * sigma[i, j]
                    if action == EXIT:
                        if p == 0.0:
                            if n_open[s] <= orders[k].armed:
                                continue  # submitted while flat: waits for the position it is meant to close
                            # its slot held a position since it was submitted: closed by a sibling (OCO)
                            orders[k].status = ST_CANCELLED if orders[k].filled == 0.0 else ST_FILLED
                            orders[k].reason = R_NO_POSITION if orders[k].filled == 0.0 else orders[k].reason
                            orders[k].last_bar = i
                            continue
                        if not opposite:
                            orders[k].status = ST_REJECTED
                            orders[k].reason = R_EXIT_SIDE
                            ne = _event_into(events, ne, i, k, s, j, EV_REJECTED, R_EXIT_SIDE, abs(p), 0.0)
                            continue
                        want = abs(p)
                        if not orders[k].resolved:
                            if orders[k].reduce:
                                # reduce by the order's size (vectorbt's accumulation exits), capped at the position
                                want = min(_units(orders[k], ref, _equity(cash, pos, mark, slot_inst)), want)
                            elif orders[k].portion < 1.0:
                                # a portion of the position (backtesting.py's close(portion): whole units, at least 1)
                                want = orders[k].portion * abs(p)
                                if whole_units:
                                    want = min(max(1.0, np.round(want)), abs(p))
                            orders[k].requested = want
                            orders[k].resolved = True
                        elif orders[k].reduce or orders[k].portion < 1.0:
                            want = min(orders[k].requested - orders[k].filled, want)
                    else:
                        if not orders[k].resolved:
                            sz = orders[k].size
                            stype = orders[k].size_type
                            eq = _equity(cash, pos, mark, slot_inst)
                            if stype == NOTIONAL:
                                u = sz / ref
                            elif stype == EQUITY_PERCENT:
                                # cost-inclusive (vectorbt's size=inf arithmetic): `sz` of equity pays for the units,
                                # their slippage and the fees, so all-in sizing under a 1.0 leverage cap never borrows
                                spr = 0.0 if opposite else entry_spread
                                budget = sz * eq
                                if orders[k].reverse and opposite:
                                    # what closing the position costs comes out of the equity first
                                    budget = sz * (
                                        eq - abs(p) * ref * abs((1.0 + sgn * base) * (1.0 + sgn * fee_rate) - 1.0)
                                    )
                                u = max(
                                    (budget - fixed_fee) / (ref * (1.0 + sgn * (base + spr)) * (1.0 + fee_rate)), 0.0
                                )
                                if whole_units and orders[k].input_id == -1:
                                    # backtesting.py's units for a fraction of equity: floor(fraction * equity /
                                    # (price adjusted for spread + commission per unit, the fixed part per fraction))
                                    unit_cost = ref * (1.0 + sgn * (base + spr)) + ref * fee_rate + fixed_fee / sz
                                    u = max(np.floor(budget / unit_cost), 0.0)
                                elif sgn > 0 and not opposite and orders[k].filled == 0.0:
                                    all_cash = True  # filled as an all-cash buy of `budget`
                                    spend = budget
                                    max_req = (budget - fixed_fee) / (1.0 + fee_rate)
                            elif stype == RISK_PERCENT:
                                u = sz * eq / orders[k].stop_distance
                            else:
                                u = sz
                            if whole_units and orders[k].input_id == -1 and stype != EQUITY_PERCENT:
                                u = np.floor(u)
                            if orders[k].reverse and opposite:
                                u += abs(p)
                            orders[k].requested = u
                            orders[k].resolved = True
                        want = orders[k].requested - orders[k].filled
                        if np.isinf(want) and sgn < 0:
                            # all-cash short: close the long and short with the free cash (vectorbt 1.2's sizing)
                            short_free = cash - _short_debt2(book)
                            want = _all_cash_short_units(p, short_free, ref * (1.0 - base), fee_rate, fixed_fee)
                            if not (want > 0.0):
                                orders[k].status = ST_REJECTED if orders[k].filled == 0.0 else ST_PARTIAL
                                orders[k].reason = R_ALL_CASH_SHORT
                                ne = _event_into(events, ne, i, k, s, j, EV_REJECTED, R_ALL_CASH_SHORT, np.inf, 0.0)
                                continue
                            all_cash_short = short_free + max(p, 0.0) * ref * (1.0 - base) * (1.0 - fee_rate) > 0.0
                            if not all_cash_short:
                                orders[k].requested = orders[k].filled + want  # only the long is closed
                        elif np.isinf(want):
                            max_req = (cash - fixed_fee) / (1.0 + fee_rate)
                            if not (max_req > 0.0):
                                orders[k].status = ST_REJECTED if orders[k].filled == 0.0 else ST_PARTIAL
                                orders[k].reason = R_NO_EQUITY
                                ne = _event_into(events, ne, i, k, s, j, EV_REJECTED, R_NO_EQUITY, want, 0.0)
                                continue
                            all_cash = True
                            spend = cash
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
                            orders[k].reason = reason
                            all_cash = False
                            all_cash_short = False
                            if np.isfinite(orders[k].requested):
                                orders[k].requested -= open_part - allowed
                            else:
                                orders[k].requested = orders[k].filled + close_part + allowed
                            open_part = allowed
                            want = close_part + open_part
                            if not (want > 0.0):
                                orders[k].status = ST_REJECTED if orders[k].filled == 0.0 else ST_PARTIAL
                                orders[k].last_bar = i
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
                            orders[k].reason = R_PARTICIPATION
                            ne = _event_into(events, ne, i, k, s, j, EV_PARTIAL, R_PARTICIPATION, want, units)
                            if np.isinf(orders[k].requested):
                                orders[k].requested = orders[k].filled + want
                    if not (units > 0.0):
                        continue

                    # ---- price: spread + volatility + liquidity + participation impact ----
                    dyn = 0.0
                    if not maker:
                        if liq_k > 0.0 and adv[i, j] > 0.0:
                            dyn += liq_k * units * ref / adv[i, j]
                        if imp_k > 0.0 and vol[i, j] > 0.0 and np.isfinite(sigma[i, j]):
                            dyn += imp_k * sigma[i, j] * np.sqrt(units / vol[i, j])
                    # backtesting.py's spread: on opening fills only (a closing one is at the unadjusted price)
                    px = ref * (1.0 + sgn * (base + dyn + (0.0 if opposite else entry_spread)))
                    if np.isfinite(cap_px):
                        px = min(px, cap_px) if sgn > 0 else max(px, cap_px)
                    if all_cash:
                        units = max_req / px
                        fee = spend - max_req
                        orders[k].requested = orders[k].filled + units
                    elif all_cash_short:
                        units = _all_cash_short_units(p, short_free, px, fee_rate, fixed_fee)
                        fee = units * px * fee_rate + fixed_fee
                        orders[k].requested = orders[k].filled + units
                    else:
                        fee = units * px * fee_rate + fixed_fee
                    close_done = min(units, abs(p)) if opposite else 0.0
                    if all_cash:
                        cash -= spend  # exactly the budget: never below zero when it is at most the cash
                    else:
                        cash -= sgn * units * px + fee
                    fees_cum += fee
                    nt = _book_fill_into(trades, nt, s, i, sgn, units, px, fee, book)
                    if pos[s] != 0.0 and (p == 0.0 or (p > 0) != (pos[s] > 0)):
                        n_open[s] += 1  # a new position (from flat or flipped)
                        if klass > 0:
                            intra_bar[s] = i
                    if has_stops:
                        if pos[s] == 0.0:
                            sl_anchor[s] = np.nan
                            tp_anchor[s] = np.nan
                        elif p == 0.0 or (p > 0) != (pos[s] > 0) or abs(pos[s]) > abs(p):
                            # a new or increased position: the stops restart from this fill's reference price
                            # (vectorbt's stop_entry_price: its default "close" in fill_at="close"; the open here
                            # in fill_at="next_open") and upon_stop_update="override"
                            sl_anchor[s] = ref
                            tp_anchor[s] = ref
                    slip_cost = sgn * (px - ref) * units
                    exp_cost = 0.0 if maker else base * ref * units
                    if nf < fills.shape[0]:
                        fills[nf].bar = i
                        fills[nf].order = k
                        fills[nf].slot = s
                        fills[nf].side = BUY if sgn > 0 else SELL
                        fills[nf].price = px
                        fills[nf].size = units
                        fills[nf].fee = fee
                        fills[nf].slippage_cost = slip_cost
                        fills[nf].expected_slippage_cost = exp_cost
                        fills[nf].maker = maker
                    nf += 1
                    if not maker:
                        real_slip += slip_cost
                        exp_slip += exp_cost
                        n_slip += 1
                    prev = orders[k].filled
                    avg = orders[k].avg_price if prev > 0.0 else 0.0
                    orders[k].filled = prev + units
                    orders[k].avg_price = (avg * prev + px * units) / (prev + units)
                    orders[k].last_bar = i
                    used_vol[j] += units
                    new_exp += max(units - close_done, 0.0) * ref
                    done = (action == EXIT and pos[s] == 0.0) or orders[k].filled >= orders[k].requested * (1.0 - 1e-12)
                    orders[k].status = ST_FILLED if done else ST_PARTIAL

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
                    st = orders[kk].status
                    if orders[kk].action == ENTRY and (st in (ST_NEW, ST_PARTIAL)):
                        orders[kk].status = ST_CANCELLED
                        orders[kk].reason = R_KILL_SWITCH
                        orders[kk].last_bar = i
                if flatten:
                    for s in range(ns):
                        if pos[s] != 0.0:
                            k = no
                            no += 1
                            orders[k].bar = i
                            orders[k].slot = s
                            orders[k].side = SELL if pos[s] > 0 else BUY
                            orders[k].action = EXIT
                            orders[k].order_type = MARKET
                            orders[k].size_type = SHARES
                            orders[k].size = np.nan
                            orders[k].tif = -1
                            orders[k].ref = -1
                            orders[k].reverse = False
                            orders[k].input_id = -2
                            orders[k].status = ST_NEW
                            orders[k].reason = trip
                            orders[k].filled = 0.0
                            orders[k].resolved = False
                            orders[k].triggered_bar = -1
                            orders[k].last_bar = i
                            orders[k].armed = n_open[s] - 1
                            orders[k].active_bar = i + lat + 1
                            pending[npend] = k
                            npend += 1
        if np.isfinite(daily_cap) and i >= blocked_until and eq < day_start_eq * (1.0 - daily_cap):
            blocked_until = max(int(next_day[i]), i + 1 + cooldown)
            ne = _event_into(events, ne, i, -1, -1, -1, EV_DAILY, R_DAILY_CAP_HIT, 0.0, 0.0)
        # expiry and compaction of the pending list
        w = 0
        for q in range(npend):
            kk = pending[q]
            st = orders[kk].status
            if st in (ST_NEW, ST_PARTIAL):
                tif = orders[kk].tif
                if tif >= 0 and i >= orders[kk].active_bar + tif - 1:
                    orders[kk].status = ST_EXPIRED
                    orders[kk].reason = R_EXPIRED
                    orders[kk].last_bar = i
                    continue
                pending[w] = kk
                w += 1
        npend = w
        last_eq = eq
        state.cash[i] = cash
        state.positions_value[i] = posval
        state.gross_exposure[i] = gross
        state.fees_cum[i] = fees_cum
        state.funding_cum[i] = funding_cum
        state.killed[i] = killed

    for q in range(npend):
        kk = pending[q]
        if orders[kk].reason == R_NONE:
            orders[kk].reason = R_END_OF_DATA
    # admitted-never orders (submitted after the last bar) stay NEW with END_OF_DATA
    while next_in < n_in:
        orders[next_in].status = ST_NEW
        orders[next_in].reason = R_END_OF_DATA
        next_in += 1
    nt = _close_open_trades_into(trades, nt, book, mark, slot_inst, n - 1)
    return SimResult(orders[:no], fills, trades, events, funds, state, pos), nf, nt, ne, nfu
