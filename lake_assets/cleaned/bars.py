"""Validated raw vendor rows -> the cleaned bar grid every research layer stands on.

A bar is on a regular grid at the instrument's base timeframe; a missing bar is a gap row (`is_gap`, null prices,
never zero). Suspicious rows are flagged, not altered: `is_outlier` for moves far beyond the recent scale,
`ohlc_violation` when low/high do not bracket open/close. Funding and open interest are joined as-of backward, so a
bar only sees what was known at its open.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import polars as pl

from lake_assets.vocabulary import (
    ASK,
    BARS_SCHEMA,
    BASIS_BPS,
    BID,
    BUY_VOLUME,
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    IS_GAP,
    IS_OUTLIER,
    LOW,
    OHLC_VIOLATION,
    OPEN,
    OPEN_INTEREST,
    RETURN,
    SELL_VOLUME,
    SPOT_CLOSE,
    TIMEFRAMES,
    TOP_OF_BOOK,
    TRADE_COUNT,
    TS,
    VOLUME,
    conform,
)

PRICE_COLS = (OPEN, HIGH, LOW, CLOSE)
OUTLIER_MULTIPLE = 25.0  # a move this many times the recent median |return| is flagged
OUTLIER_WINDOW = {"5m": 288, "1d": 60}


def dedupe(df: pl.DataFrame, key: str = TS) -> tuple[pl.DataFrame, int]:
    """Sort by time and keep the last-ingested row per timestamp; returns the number of duplicates removed."""
    if df.is_empty():
        return df, 0
    order = [key, INGESTED_AT] if INGESTED_AT in df.columns else [key]
    out = df.sort(order).unique(subset=[key], keep="last", maintain_order=True)
    return out, df.height - out.height


def bar_grid(
    start: datetime,
    end: datetime,
    timeframe: str,
    is_trading_day: Callable[[date], bool] | None = None,
) -> pl.Series:
    """The expected bar open times in [start, end); daily bars skip non-trading days."""
    if end <= start:
        return pl.Series(TS, [], dtype=BARS_SCHEMA[TS])
    step = TIMEFRAMES[timeframe]
    grid = pl.datetime_range(start, end - timedelta(microseconds=1), interval=step, eager=True, time_unit="us")
    grid = grid.cast(BARS_SCHEMA[TS]).alias(TS)
    if timeframe == "1d" and is_trading_day is not None:
        grid = grid.filter(grid.dt.date().map_elements(is_trading_day, return_dtype=pl.Boolean))
    return grid


def build_bars(
    ohlcv: pl.DataFrame,
    *,
    instrument: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    funding: pl.DataFrame | None = None,
    open_interest: pl.DataFrame | None = None,
    spot: pl.DataFrame | None = None,
    trade_bars: pl.DataFrame | None = None,
    is_trading_day: Callable[[date], bool] | None = None,
) -> pl.DataFrame:
    """Build the cleaned bars of one instrument for [start, end) from validated, de-duplicated raw rows.

    `funding` and `open_interest` may reach earlier than `start` (the as-of join needs the last known value);
    `spot` holds the linked spot instrument's bars (ts, close) for the basis; `trade_bars` holds trade-derived
    candles (ts, trade_count, buy_volume, sell_volume).
    """
    grid = bar_grid(start, end, timeframe, is_trading_day).to_frame()
    book = [c for c in TOP_OF_BOOK if c in ohlcv.columns]
    raw = ohlcv.filter((pl.col(TS) >= start) & (pl.col(TS) < end)).select(TS, *PRICE_COLS, VOLUME, *book)
    if book:  # a crossed or non-positive quote is no quote: null top of book, the bar itself stays
        bad = (pl.col(BID) <= 0) | (pl.col(ASK) <= 0) | (pl.col(BID) > pl.col(ASK)) if {BID, ASK} <= set(book) else None
        if bad is not None:
            raw = raw.with_columns([pl.when(bad).then(None).otherwise(pl.col(c)).alias(c) for c in book])
    bars = grid.join(raw, on=TS, how="left").with_columns(pl.lit(instrument).alias(INSTRUMENT))
    bars = bars.with_columns(pl.col(CLOSE).is_null().alias(IS_GAP))
    prev_close = pl.col(CLOSE).shift(1)
    window = OUTLIER_WINDOW.get(timeframe, 100)
    scale = pl.col(RETURN).abs().rolling_median(window, min_samples=max(10, window // 10)).shift(1)
    move = pl.max_horizontal(
        (pl.col(HIGH) / prev_close).log().abs(), (pl.col(LOW) / prev_close).log().abs(), pl.col(RETURN).abs()
    )
    bars = bars.with_columns((pl.col(CLOSE) / prev_close).log().alias(RETURN))
    bars = bars.with_columns(
        (move > OUTLIER_MULTIPLE * scale).fill_null(False).alias(IS_OUTLIER),
        ((pl.col(LOW) > pl.min_horizontal(OPEN, CLOSE)) | (pl.col(HIGH) < pl.max_horizontal(OPEN, CLOSE)))
        .fill_null(False)
        .alias(OHLC_VIOLATION),
    )
    bars = _asof(bars, funding, FUNDING_RATE)
    bars = _asof(bars, open_interest, OPEN_INTEREST)
    if spot is not None and not spot.is_empty():
        bars = bars.join(spot.select(TS, pl.col(CLOSE).alias(SPOT_CLOSE)), on=TS, how="left")
        bars = bars.with_columns(((pl.col(CLOSE) / pl.col(SPOT_CLOSE) - 1.0) * 1e4).alias(BASIS_BPS))
    if trade_bars is not None and not trade_bars.is_empty():
        bars = bars.join(trade_bars.select(TS, TRADE_COUNT, BUY_VOLUME, SELL_VOLUME), on=TS, how="left")
    return conform(bars, BARS_SCHEMA)


def _asof(bars: pl.DataFrame, events: pl.DataFrame | None, column: str) -> pl.DataFrame:
    if events is None or events.is_empty():
        return bars
    right = events.select(TS, column).drop_nulls().sort(TS).unique(subset=[TS], keep="last", maintain_order=True)
    return bars.sort(TS).join_asof(right, on=TS, strategy="backward")


def resample_bars(bars: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    """Aggregate cleaned bars to a coarser grid; a coarse bar is a gap only if all its base bars are gaps."""
    if bars.is_empty():
        return pl.DataFrame(schema=BARS_SCHEMA)
    every = {"1h": "1h", "4h": "4h", "1d": "1d"}[timeframe]
    out = (
        bars.sort(TS)
        .group_by_dynamic(TS, every=every, closed="left", label="left")
        .agg(
            pl.col(INSTRUMENT).first(),
            pl.col(OPEN).drop_nulls().first(),
            pl.col(HIGH).max(),
            pl.col(LOW).min(),
            pl.col(CLOSE).drop_nulls().last(),
            pl.col(VOLUME).sum(),
            pl.col(TRADE_COUNT).sum(),
            pl.col(BUY_VOLUME).sum(),
            pl.col(SELL_VOLUME).sum(),
            pl.col(IS_GAP).all(),
            pl.col(IS_OUTLIER).any(),
            pl.col(OHLC_VIOLATION).any(),
            pl.col(FUNDING_RATE).last(),
            pl.col(OPEN_INTEREST).last(),
            pl.col(SPOT_CLOSE).drop_nulls().last(),
            *[pl.col(c).last() for c in TOP_OF_BOOK],  # the book at the coarse bar's close
        )
    )
    out = out.with_columns(
        [
            pl.when(pl.col(IS_GAP)).then(None).otherwise(pl.col(c)).alias(c)
            for c in (OPEN, HIGH, LOW, CLOSE, VOLUME, TRADE_COUNT, BUY_VOLUME, SELL_VOLUME)
        ]
    ).with_columns(
        (pl.col(CLOSE) / pl.col(CLOSE).shift(1)).log().alias(RETURN),
        ((pl.col(CLOSE) / pl.col(SPOT_CLOSE) - 1.0) * 1e4).alias(BASIS_BPS),
    )
    return conform(out, BARS_SCHEMA)
