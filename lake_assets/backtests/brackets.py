"""Stops, targets and holding limits as explicit orders: the bracket-order planner.

JSON `stop_loss_pct`/`take_profit_pct`/`max_holding_bars`, blueprints' ATR brackets and time stop are not part of the
engine's signal path, so `bracket_orders` turns the four signal columns into explicit orders for `engine.run_orders`:
a market entry (good for its fill bar only), a resting STOP exit and a LIMIT take-profit priced from the entry bar's
open (the entry's reference price, known when they become active), market exits for exit signals and time stops, and
CANCELs for the bracket legs a trade no longer needs. The bar-by-bar replay is compiled beside it
(`bracket_kernel.plan_brackets_nb`) and follows the engine's trigger rules (same OHLC tests, same order precedence) to
know, bar by bar, which legs are live.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from lake_assets.backtests.blueprint_signals import (
    SIZE,
    STOP_DISTANCE,
    TAKE_PROFIT_DISTANCE,
)
from lake_assets.backtests.bracket_kernel import plan_brackets_nb
from lake_assets.backtests.engine import SIGNAL_COLUMNS
from lake_assets.backtests.schema import (
    ORDER_ID,
    ORDER_INPUT_SCHEMA,
    STRATEGY,
    Action,
    OrderType,
    Side,
    SizeType,
)
from lake_assets.vocabulary import (
    CLOSE,
    HIGH,
    INSTRUMENT,
    IS_GAP,
    LOW,
    OPEN,
    SIDE,
    TS,
)


def _codes_to_strings(name: str, enum: type[Side] | type[Action] | type[OrderType]) -> pl.Expr:
    """Integer codes (schema.py's `code`; -1 = null) -> the enum's string values."""
    return pl.col(name).replace_strict([m.code for m in enum], [m.value for m in enum], default=None,
                                       return_dtype=pl.String)  # fmt: skip


# built once: constructing them costs about as much as planning a few hundred bars
_DECODE_CODES = {
    SIDE: _codes_to_strings(SIDE, Side),
    "action": _codes_to_strings("action", Action),
    "order_type": _codes_to_strings("order_type", OrderType),
}


def bracket_orders(
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
    The bar-by-bar replay is compiled (`bracket_kernel.plan_brackets_nb`); here columns go in and records come out,
    each way in one polars pass (the planner also runs on short walk-forward windows, where overhead counts).
    """
    f = frame.sort(TS)
    n = f.height
    inst = str(f[INSTRUMENT][0])

    def floats(col: str) -> pl.Expr:  # NaN for null; all NaN ("not given") for an absent optional column
        return pl.col(col).cast(pl.Float64).fill_null(np.nan) if col in f.columns else pl.lit(np.nan, pl.Float64)

    x = f.select(
        *(floats(col).alias(col) for col in (OPEN, HIGH, LOW, CLOSE, SIZE, STOP_DISTANCE, TAKE_PROFIT_DISTANCE)),
        *(pl.col(col).fill_null(False) for col in SIGNAL_COLUMNS),
        (pl.col(IS_GAP).fill_null(False) if IS_GAP in f.columns else pl.lit(False)).alias(IS_GAP),
    )
    o, h, lo, c, size_col, stop_col, tp_col = (
        x[col].to_numpy() for col in (OPEN, HIGH, LOW, CLOSE, SIZE, STOP_DISTANCE, TAKE_PROFIT_DISTANCE)
    )
    le, lx, se, sx = (x[col].to_numpy().astype(np.bool_) for col in SIGNAL_COLUMNS)
    valid = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & ~x[IS_GAP].to_numpy()
    size_ = np.nan if size is None else float(size)
    max_hold = np.nan if max_hold_bars is None else float(max_hold_bars)
    cap = n // 2 + 64  # a first guess: the kernel counts past it, and a rerun with the exact count fills the rest
    while True:
        bar, ref = np.empty(cap, np.int64), np.empty(cap, np.int64)
        side, action, otype = (np.empty(cap, np.int8) for _ in range(3))
        size_out, stop_dist, stop_px, limit_px = (np.full(cap, np.nan) for _ in range(4))
        k, bad_bar = plan_brackets_nb(
            o, h, lo, valid, le, lx, se, sx, size_col, stop_col, tp_col, size_, float(stop_frac or 0.0),
            float(target_frac or 0.0), max_hold, bool(allow_reverse), bool(allow_short),
            size_type == SizeType.RISK_PERCENT, bar, side, action, otype, size_out, stop_dist, stop_px, limit_px, ref,
        )  # fmt: skip
        if bad_bar >= 0:
            raise ValueError(f"strategy {strategy}: RISK_PERCENT sizing needs a stop (stop_loss_pct or ATR stop)")
        if k <= cap:
            break
        cap = k
    rec = pl.DataFrame(
        {
            TS: f[TS].gather(bar[:k]),
            SIDE: side[:k],
            "action": action[:k],
            "order_type": otype[:k],
            SIZE: size_out[:k],
            "limit_price": limit_px[:k],
            "stop_price": stop_px[:k],
            "stop_distance": stop_dist[:k],
            "ref_order_id": ref[:k],
        }
    )
    entry = pl.col("action") == Action.ENTRY.code
    columns = {
        ORDER_ID: pl.int_range(first_order_id, first_order_id + k, dtype=pl.Int64),
        INSTRUMENT: pl.lit(inst, pl.String),
        STRATEGY: pl.lit(strategy, pl.String),
        **_DECODE_CODES,
        "size_type": pl.when(entry).then(pl.lit(size_type.value, pl.String)),
        "time_in_force_bars": pl.when(entry).then(pl.lit(1, pl.Int64)),
        "ref_order_id": pl.when(pl.col("ref_order_id") >= 0).then(pl.col("ref_order_id") + first_order_id),
        **{col: pl.col(col).fill_nan(None) for col in (SIZE, "limit_price", "stop_price", "stop_distance")},
    }
    return rec.select(
        columns.get(name, pl.col(name)).cast(dtype).alias(name) for name, dtype in ORDER_INPUT_SCHEMA.items()
    )
