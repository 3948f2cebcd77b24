"""The pure-Python bracket-order planner `brackets.bracket_orders` had before it was compiled with numba, kept as the
oracle the compiled planner is compared against (same frame, row for row)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from lake_assets.backtests.blueprint_signals import SIZE, STOP_DISTANCE, TAKE_PROFIT_DISTANCE
from lake_assets.backtests.engine import SIGNAL_COLUMNS
from lake_assets.backtests.schema import ORDER_INPUT_SCHEMA, STRATEGY, SizeType
from lake_assets.vocabulary import CLOSE, HIGH, INSTRUMENT, IS_GAP, LOW, OPEN, TS

LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = SIGNAL_COLUMNS


@dataclass
class _Leg:
    order_id: int
    live: bool = True


@dataclass
class _PlanState:
    pos: int = 0  # planned position side: -1, 0, +1
    entry_side: int = 0  # side of an entry submitted at the previous close (fills at this bar's open or expires)
    entry_legs: tuple[_Leg | None, _Leg | None] = (None, None)
    entry_levels: tuple[float, float] = (math.nan, math.nan)
    stop: _Leg | None = None
    target: _Leg | None = None
    stop_px: float = math.nan
    target_px: float = math.nan
    exit_pending: bool = False
    bars_held: int = 0


def _resolve(le: bool, lx: bool, se: bool, sx: bool, pos: int, allow_reverse: bool) -> tuple[int, bool]:
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


def bracket_orders_reference(
    frame: pl.DataFrame,
    *,
    strategy: str,
    size_type: SizeType,
    size: float | None = None,
    stop_frac: float | None = None,
    target_frac: float | None = None,
    max_hold_bars: int | None = None,
    allow_reverse: bool = True,
    allow_short: bool = True,
    first_order_id: int = 0,
) -> pl.DataFrame:
    """Explicit orders (ORDER_INPUT_SCHEMA) for one instrument's frame holding the four signal columns.

    Bracket distances are `stop_frac`/`target_frac` of the entry price plus the optional per-entry columns
    `stop_distance`/`take_profit_distance` (price units, known at the signal bar); `size` column overrides `size`.
    """
    f = frame.sort(TS)
    n = f.height
    inst = str(f[INSTRUMENT][0])
    ts = f[TS].to_list()
    o, h, lo, c = (f[col].cast(pl.Float64).fill_null(np.nan).to_numpy() for col in (OPEN, HIGH, LOW, CLOSE))
    gap = f[IS_GAP].fill_null(False).to_numpy() if IS_GAP in f.columns else np.zeros(n, dtype=bool)
    valid = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & ~gap
    sig = {col: f[col].fill_null(False).to_numpy() for col in SIGNAL_COLUMNS}
    size_col = f[SIZE].cast(pl.Float64).fill_null(np.nan).to_numpy() if SIZE in f.columns else np.full(n, np.nan)
    stop_col = f[STOP_DISTANCE].cast(pl.Float64).fill_null(np.nan).to_numpy() if STOP_DISTANCE in f.columns else None
    tp_col = (
        f[TAKE_PROFIT_DISTANCE].cast(pl.Float64).fill_null(np.nan).to_numpy()
        if TAKE_PROFIT_DISTANCE in f.columns
        else None
    )
    rows: list[dict[str, Any]] = []
    next_id = first_order_id

    def emit(i: int, **kw: Any) -> int:
        nonlocal next_id
        row = {"order_id": next_id, TS: ts[i], INSTRUMENT: inst, STRATEGY: strategy, **kw}
        rows.append(row)
        next_id += 1
        return int(row["order_id"])

    def cancel(i: int, leg: _Leg | None) -> None:
        if leg is not None and leg.live:
            emit(i, side="BUY", action="CANCEL", ref_order_id=leg.order_id)
            leg.live = False

    st = _PlanState()
    for i in range(n):
        # ---- open phase: fills in the engine's order (older orders first) ----
        if valid[i]:
            if st.exit_pending:
                st.pos, st.exit_pending = 0, False
            if st.entry_side:
                st.pos, st.bars_held = st.entry_side, 0
                st.stop, st.target = st.entry_legs
                st.stop_px, st.target_px = st.entry_levels
                st.entry_side = 0
            if st.pos != 0:
                long = st.pos > 0
                stop_hit = st.stop is not None and st.stop.live and (
                    (o[i] <= st.stop_px or lo[i] <= st.stop_px) if long else (o[i] >= st.stop_px or h[i] >= st.stop_px)
                )  # fmt: skip
                tgt_hit = st.target is not None and st.target.live and (
                    (o[i] >= st.target_px or h[i] >= st.target_px) if long
                    else (o[i] <= st.target_px or lo[i] <= st.target_px)
                )  # fmt: skip
                if stop_hit or tgt_hit:
                    # a touched leg is consumed: filled, or (the later one, when both are touched) cancelled by the
                    # engine because the position is already flat; an untouched leg stays live until cancelled
                    if st.stop is not None:
                        st.stop.live = st.stop.live and not stop_hit
                    if st.target is not None:
                        st.target.live = st.target.live and not tgt_hit
                    st.pos = 0
        elif st.entry_side:  # good-for-one-bar entry on a gap bar: expired, its legs are cancelled
            for leg in st.entry_legs:
                cancel(i, leg)
            st.entry_side = 0
        if st.pos == 0:
            for leg in (st.stop, st.target):
                cancel(i, leg)
            st.stop = st.target = None
        elif valid[i]:
            st.bars_held += 1
        # ---- close phase: signals known at this bar's close ----
        if st.exit_pending or i + 1 >= n:
            continue
        new_side, act = _resolve(
            bool(sig[LONG_ENTRY][i]),
            bool(sig[LONG_EXIT][i]),
            bool(sig[SHORT_ENTRY][i]) and allow_short,
            bool(sig[SHORT_EXIT][i]),
            st.pos,
            allow_reverse,
        )
        if st.pos != 0 and not act and max_hold_bars is not None and st.bars_held >= max_hold_bars:
            new_side, act = 0, True
        if not act:
            continue
        if st.pos != 0:
            cancel(i, st.stop)
            cancel(i, st.target)
            emit(i, side="SELL" if st.pos > 0 else "BUY", action="EXIT", order_type="MARKET")
            st.exit_pending = True
        if new_side == 0 or not valid[i + 1]:
            continue  # an entry whose next bar is a gap would expire unfilled: not submitted
        ref = float(o[i + 1])  # the entry's reference price; the bracket becomes active at that open
        stop_d = (stop_frac or 0.0) * ref + (stop_col[i] if stop_col is not None and np.isfinite(stop_col[i]) else 0)
        tp_d = (target_frac or 0.0) * ref + (tp_col[i] if tp_col is not None and np.isfinite(tp_col[i]) else 0.0)
        sz = float(size_col[i]) if np.isfinite(size_col[i]) else size
        if sz is None or not sz > 0:
            continue
        if size_type == SizeType.RISK_PERCENT and not stop_d > 0:
            raise ValueError(f"strategy {strategy}: RISK_PERCENT sizing needs a stop (stop_loss_pct or ATR stop)")
        side = "BUY" if new_side > 0 else "SELL"
        exit_side = "SELL" if new_side > 0 else "BUY"
        emit(i, side=side, action="ENTRY", order_type="MARKET", size_type=size_type.value, size=sz,
             stop_distance=stop_d if stop_d > 0 else None, time_in_force_bars=1)  # fmt: skip
        stop_leg = target_leg = None
        stop_px = target_px = math.nan
        if stop_d > 0:
            stop_px = ref - new_side * stop_d
            if stop_px > 0:
                stop_leg = _Leg(emit(i, side=exit_side, action="EXIT", order_type="STOP", stop_price=stop_px))
        if tp_d > 0:
            target_px = ref + new_side * tp_d
            if target_px > 0:
                target_leg = _Leg(emit(i, side=exit_side, action="EXIT", order_type="LIMIT", limit_price=target_px))
        st.entry_side = new_side
        st.entry_legs = (stop_leg, target_leg)
        st.entry_levels = (stop_px, target_px)
    return pl.DataFrame([{k: r.get(k) for k in ORDER_INPUT_SCHEMA.names()} for r in rows], schema=ORDER_INPUT_SCHEMA)
