"""Blueprint -> entry signals: which bars a discovery blueprint trades, in which direction, with what brackets.

A blueprint is data (event type, instrument, optional state condition, direction template, entry lag, ATR exits and
sizing). The rules mirror discovery's forward returns, so the backtest trades what discovery measured:
- an event's `ts` is the open of its detection bar and it is known at that bar's close; the position opens at the
  open of bar `detection + lag_bars`, i.e. the order is submitted at the close of bar `detection + lag_bars - 1`;
- the event's side is its `direction` (long/short), or for undirected events the sign of the detection bar's body;
  `against_event` blueprints take the opposite side;
- stop-loss and take-profit are `stop_loss_atr` / `take_profit_atr` ATRs (ATR known at the signal bar's close) from
  the entry price, the time stop is `time_stop_bars` bars;
- sizing is vol-targeted (equity fraction = target annual vol / realised annual vol, capped by max leverage) or a
  fixed fraction of equity at risk to the stop (RISK_PERCENT).
Events on gap bars, without a known ATR / realised vol, or whose entry bar is beyond the data are not traded.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl

from lake_assets.backtests.schema import SizeType
from lake_assets.discovery.blueprints import Blueprint
from lake_assets.vocabulary import CLOSE, HIGH, INSTRUMENT, IS_GAP, LOW, OPEN, RETURN, TIMEFRAMES, TS, TS_DTYPE

LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = "long_entry", "long_exit", "short_entry", "short_exit"
STOP_DISTANCE = "stop_distance"  # absolute price distance of the protective stop, known at the signal bar
TAKE_PROFIT_DISTANCE = "take_profit_distance"
SIZE = "size"
PERIODS_PER_YEAR = {"1m": 1440 * 365.0, "5m": 288 * 365.0, "15m": 96 * 365.0, "1h": 24 * 365.0, "4h": 6 * 365.0,
                    "1d": 252.0}  # fmt: skip


class BlueprintError(ValueError):
    """A blueprint that cannot be evaluated on the lake's data (message names the blueprint and the problem)."""


def average_true_range(bars: pl.DataFrame, period: int) -> pl.Series:
    """Simple moving average of the true range over `period` real bars (one instrument, sorted by ts).

    Gap bars have null OHLC, so their true range is null and the window needs `period` real bars."""
    prev_close = pl.col(CLOSE).shift(1)
    tr = pl.max_horizontal(
        pl.col(HIGH) - pl.col(LOW), (pl.col(HIGH) - prev_close).abs(), (pl.col(LOW) - prev_close).abs()
    )
    tr = pl.when(pl.col(HIGH).is_null() | pl.col(LOW).is_null()).then(None).otherwise(tr)
    return bars.select(tr.rolling_mean(period, min_samples=period).alias("atr")).to_series()


def realised_annual_vol(bars: pl.DataFrame, timeframe: str) -> pl.Series:
    """Rolling std of the log return over about one day of bars (at least 20), annualised; known at the bar close."""
    step = TIMEFRAMES[timeframe]
    window = max(20, int(timedelta(days=1) / step))
    ret = pl.col(RETURN) if RETURN in bars.columns else (pl.col(CLOSE) / pl.col(CLOSE).shift(1)).log()
    scale = math.sqrt(PERIODS_PER_YEAR.get(timeframe, 252.0))
    return bars.select((ret.rolling_std(window, min_samples=window // 2) * scale).alias("ann_vol")).to_series()


def _side_of_event(direction: str, body: float) -> float:
    if direction == "long":
        return 1.0
    if direction == "short":
        return -1.0
    return float(np.sign(body)) if math.isfinite(body) else 0.0


def blueprint_entries(blueprint: Blueprint, events: pl.DataFrame, bars: pl.DataFrame) -> pl.DataFrame:
    """One row per event of the blueprint: event_id, event_ts, signal_ts, side (+1/-1), atr, ann_vol, traded, reason.

    `bars` is the blueprint instrument's cleaned bars (any order); `events` the event registry (any types)."""
    bp = blueprint
    b = bars.filter(pl.col(INSTRUMENT) == bp.instrument).sort(TS) if INSTRUMENT in bars.columns else bars.sort(TS)
    if b.is_empty():
        raise BlueprintError(f"blueprint {bp.blueprint_id}: instrument {bp.instrument}: no cleaned bars in the lake")
    b = b.with_columns(pl.col(TS).cast(TS_DTYPE)).with_row_index("_row")
    b = b.with_columns(
        average_true_range(b, bp.exits.atr_period).alias("atr"), realised_annual_vol(b, bp.timeframe).alias("ann_vol")
    )
    ev = events.filter((pl.col("event_type") == bp.event_type) & (pl.col(INSTRUMENT) == bp.instrument))
    if bp.state is not None:
        if bp.state.column not in events.columns:
            raise BlueprintError(
                f"blueprint {bp.blueprint_id}: state column {bp.state.column!r} is not in the event registry"
            )
        ev = ev.filter(pl.col(bp.state.column).cast(pl.String) == bp.state.value)
    schema = {"event_id": pl.String(), "event_ts": TS_DTYPE, "signal_ts": TS_DTYPE, "side": pl.Float64(),
              "atr": pl.Float64(), "ann_vol": pl.Float64(), "traded": pl.Boolean(), "reason": pl.String()}  # fmt: skip
    if ev.is_empty():
        return pl.DataFrame(schema=schema)
    ev = ev.select("event_id", pl.col(TS).cast(TS_DTYPE), "direction").join(b, on=TS, how="inner").sort(TS, "event_id")
    n = b.height
    lag = bp.entry.lag_bars
    sign = 1.0 if bp.direction == "with_event" else -1.0
    rows = []
    ts_all = b[TS]
    atr_all = b["atr"].to_numpy()
    vol_all = b["ann_vol"].to_numpy()
    gap = b[IS_GAP].fill_null(False).to_numpy() if IS_GAP in b.columns else np.zeros(n, dtype=bool)
    for r in ev.iter_rows(named=True):
        row = int(r["_row"])
        sig = row + lag - 1
        body = (r[CLOSE] - r[OPEN]) if r[CLOSE] is not None and r[OPEN] is not None else math.nan
        side = sign * _side_of_event(r["direction"], body)
        reason = None
        if gap[row]:
            reason = "detection bar is a gap"
        elif side == 0.0:
            reason = "undirected event with a flat detection bar"
        elif sig + 1 >= n:
            reason = "entry bar is beyond the data"
        elif not np.isfinite(atr_all[sig]):
            reason = f"ATR({bp.exits.atr_period}) not known at the signal bar"
        elif bp.sizing.method == "vol_target" and not (np.isfinite(vol_all[sig]) and vol_all[sig] > 0):
            reason = "realised volatility not known at the signal bar"
        rows.append({
            "event_id": r["event_id"], "event_ts": r[TS], "signal_ts": ts_all[min(sig, n - 1)], "side": side,
            "atr": float(atr_all[min(sig, n - 1)]), "ann_vol": float(vol_all[min(sig, n - 1)]),
            "traded": reason is None, "reason": reason,
        })  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def blueprint_size_type(blueprint: Blueprint) -> SizeType:
    return SizeType.EQUITY_PERCENT if blueprint.sizing.method == "vol_target" else SizeType.RISK_PERCENT


def blueprint_signals(blueprint: Blueprint, events: pl.DataFrame, bars: pl.DataFrame) -> pl.DataFrame:
    """The blueprint instrument's bars with the engine's signal columns plus per-entry `size`, `stop_distance`
    and `take_profit_distance` (null where there is no entry). Exits come from the brackets and the time stop."""
    bp = blueprint
    entries = blueprint_entries(bp, events, bars).filter(pl.col("traded"))
    if bp.sizing.method == "vol_target":
        size = (pl.lit(bp.sizing.target_annual_vol) / pl.col("ann_vol")).clip(upper_bound=bp.sizing.max_leverage)
    else:
        size = pl.lit(bp.sizing.risk_per_trade)
    # several events may map to one signal bar: the first one decides (same side by construction of the rule)
    per_bar = (
        entries.group_by("signal_ts", maintain_order=True)
        .agg(pl.col("side").first(), pl.col("atr").first(), pl.col("ann_vol").first())
        .select(
            pl.col("signal_ts").alias(TS),
            (pl.col("side") > 0).alias(LONG_ENTRY),
            (pl.col("side") < 0).alias(SHORT_ENTRY),
            size.cast(pl.Float64).alias(SIZE),
            (pl.col("atr") * bp.exits.stop_loss_atr).alias(STOP_DISTANCE),
            (pl.col("atr") * bp.exits.take_profit_atr).alias(TAKE_PROFIT_DISTANCE),
        )
    )
    b = bars.filter(pl.col(INSTRUMENT) == bp.instrument) if INSTRUMENT in bars.columns else bars
    out = b.with_columns(pl.col(TS).cast(TS_DTYPE)).sort(TS).join(per_bar, on=TS, how="left")
    return out.with_columns(
        pl.col(LONG_ENTRY).fill_null(False),
        pl.col(SHORT_ENTRY).fill_null(False),
        pl.lit(False).alias(LONG_EXIT),
        pl.lit(False).alias(SHORT_EXIT),
    )
