"""Aggregate individual trades into OHLCV candles on the bar grid, with aggressor-side volume.

Used by the `trade_files` vendor (candles from exchange dumps) and by the cleaned layer wherever a vendor delivers
trades, so the order-flow columns of `bars` (trade_count, buy_volume, sell_volume) have one definition.
"""

from __future__ import annotations

import itertools
from datetime import datetime

import polars as pl

from lake_assets.vocabulary import (
    BUY_VOLUME,
    CLOSE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    LOW,
    OPEN,
    PRICE,
    RAW_OHLCV_SCHEMA,
    RAW_TRADES_SCHEMA,
    SELL_VOLUME,
    SIDE,
    SIZE,
    TIMEFRAMES,
    TOP_OF_BOOK,
    TRADE_COUNT,
    TRADE_ID,
    TS,
    VENDOR,
    VOLUME,
    empty_frame,
)

# Candles from trades: the raw OHLCV columns with the order-flow columns right after `volume`, in BARS_SCHEMA order.
_PRICE_COLUMNS = (TS, INSTRUMENT, OPEN, HIGH, LOW, CLOSE, VOLUME)
_FLOW_COLUMNS: list[tuple[str, pl.DataType]] = [
    (TRADE_COUNT, pl.Int64()),
    (BUY_VOLUME, pl.Float64()),
    (SELL_VOLUME, pl.Float64()),
]
TRADE_BARS_SCHEMA = pl.Schema(
    [(k, v) for k, v in RAW_OHLCV_SCHEMA.items() if k in _PRICE_COLUMNS]
    + _FLOW_COLUMNS
    + [(k, v) for k, v in RAW_OHLCV_SCHEMA.items() if k not in _PRICE_COLUMNS and k not in TOP_OF_BOOK]
)  # (trades carry no quotes: top of book comes from book-ticker dumps, vendors/book_ticker_files.py)

BUY = "buy"
SELL = "sell"


def sort_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """Sort trades into a canonical order that depends only on their content, never on input order.

    Key: instrument, ts, trade id (numerically when it is an integer, exchange ids grow with time), trade id as text,
    then price, size, side. Trades sharing a timestamp without ids therefore have a fixed order, so the open and
    close of a candle do not depend on how the lines of a dump happened to be arranged.
    """
    id_num = "__trade_id_num"
    return (
        trades.with_columns(pl.col(TRADE_ID).cast(pl.Int64, strict=False).alias(id_num))
        .sort(
            [INSTRUMENT, TS, id_num, TRADE_ID, PRICE, SIZE, SIDE],
            nulls_last=True,
            maintain_order=True,
        )
        .drop(id_num)
    )


# Trades aggregated in memory at once when bars are built from a LazyFrame (e.g. a month of a raw_trades partition).
BARS_SLICE_ROWS = 500_000


def trades_to_bars(trades: pl.DataFrame | pl.LazyFrame, timeframe: str) -> pl.DataFrame:
    """Candles (TRADE_BARS_SCHEMA) from trades (RAW_TRADES_SCHEMA columns) at `timeframe` (a key of TIMEFRAMES).

    A LazyFrame is aggregated in slices of whole bars of about BARS_SLICE_ROWS trades (bounded memory, same result):
    one streaming pass counts trades per bar, then each slice is read (parquet statistics skip the rest) and built.

    - `ts` is the bar OPEN time: the trade time truncated to the timeframe in UTC (epoch-aligned grid).
    - Only bars that contain trades are emitted; an interval without trades is a gap for the cleaned layer to mask,
      never a fabricated flat bar.
    - open/close are the first/last trade in canonical order (`sort_trades`), high/low the extremes,
      trade_count the number of trades, volume the sum of sizes.
    - A sum with an unknown term is unknown: volume is null when any trade in the bar has no size, and
      buy_volume/sell_volume are null when any trade in the bar has no (or an unrecognised) aggressor side.
    - vendor and ingested_at are the largest value among the bar's trades (deterministic for mixed input).
    Raises ValueError for an unknown timeframe, missing ts/price columns, or rows with null ts or price.
    """
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"trades_to_bars: unknown timeframe {timeframe!r}; expected one of {sorted(TIMEFRAMES)}")
    if isinstance(trades, pl.LazyFrame):
        names = trades.collect_schema().names()
        missing = [c for c in (TS, PRICE) if c not in names]
        if missing:
            raise ValueError(f"trades_to_bars: trades frame lacks required column(s) {missing}; got {names}")
        nulls = trades.filter(pl.col(TS).is_null()).select(pl.len()).collect(engine="streaming").item()
        if nulls:
            raise ValueError(f"trades_to_bars: {nulls} trade(s) with null ts; clean them first")
        every = _polars_duration(timeframe)
        parts = [
            trades_to_bars(trades.filter(in_slice(lo, hi)).collect(), timeframe)
            for lo, hi in time_slices(trades, every, BARS_SLICE_ROWS)
        ]
        return pl.concat(parts).sort([INSTRUMENT, TS]) if parts else empty_frame(TRADE_BARS_SCHEMA)
    missing = [c for c in (TS, PRICE) if c not in trades.columns]
    if missing:
        raise ValueError(f"trades_to_bars: trades frame lacks required column(s) {missing}; got {trades.columns}")
    if trades.is_empty():
        return empty_frame(TRADE_BARS_SCHEMA)
    frame = trades.select(
        [
            (pl.col(name).cast(dtype) if name in trades.columns else pl.lit(None, dtype=dtype)).alias(name)
            for name, dtype in RAW_TRADES_SCHEMA.items()
        ]
    )
    bad = frame.filter(pl.col(TS).is_null() | pl.col(PRICE).is_null() | ~pl.col(PRICE).is_finite()).height
    if bad:
        raise ValueError(f"trades_to_bars: {bad} trade(s) with null ts or null/non-finite price; clean them first")

    side = pl.col(SIDE).str.to_lowercase()
    side_unknown = (side.is_null() | ~side.is_in([BUY, SELL]) | pl.col(SIZE).is_null()).any()
    every = _polars_duration(timeframe)
    bars = (
        sort_trades(frame)
        .with_columns(pl.col(TS).dt.truncate(every).alias("__bar"))
        .group_by([INSTRUMENT, "__bar"], maintain_order=True)
        .agg(
            pl.col(PRICE).first().alias(OPEN),
            pl.col(PRICE).max().alias(HIGH),
            pl.col(PRICE).min().alias(LOW),
            pl.col(PRICE).last().alias(CLOSE),
            _sum_if_known(pl.col(SIZE), pl.col(SIZE).is_null().any()).alias(VOLUME),
            pl.len().cast(pl.Int64).alias(TRADE_COUNT),
            _sum_if_known(pl.col(SIZE).filter(side == BUY), side_unknown).alias(BUY_VOLUME),
            _sum_if_known(pl.col(SIZE).filter(side == SELL), side_unknown).alias(SELL_VOLUME),
            pl.col(VENDOR).max(),
            pl.col(INGESTED_AT).max(),
        )
        .rename({"__bar": TS})
        .sort([INSTRUMENT, TS])
    )
    return bars.select([pl.col(name).cast(dtype) for name, dtype in TRADE_BARS_SCHEMA.items()])


def _sum_if_known(values: pl.Expr, unknown: pl.Expr) -> pl.Expr:
    """Sum of `values` (0.0 for none), or null when `unknown` says a term is missing."""
    return pl.when(unknown).then(pl.lit(None, dtype=pl.Float64)).otherwise(values.sum().cast(pl.Float64))


def _polars_duration(timeframe: str) -> str:
    """TIMEFRAMES keys as polars durations ("1m" is a minute in both; spelled from the timedelta to be explicit)."""
    seconds = int(TIMEFRAMES[timeframe].total_seconds())
    return f"{seconds}s"


def time_slices(
    frame: pl.LazyFrame, every: str, max_rows: int, column: str = TS
) -> list[tuple[datetime | None, datetime | None]]:
    """[lo, hi) bounds (None = open) cutting `frame` on multiples of `every` into slices of about `max_rows` rows
    (a single `every` bucket is never split). One streaming pass over the time column."""
    counts = (
        frame.select(pl.col(column).dt.truncate(every).alias("_b"))
        .group_by("_b")
        .len()
        .sort("_b")
        .collect(engine="streaming")
    )
    if counts.is_empty():
        return []
    bounds: list[datetime | None] = [None]
    total = 0
    for bucket, n in counts.iter_rows():
        if total and total + n > max_rows:
            bounds.append(bucket)
            total = 0
        total += n
    bounds.append(None)
    return list(itertools.pairwise(bounds))


def in_slice(lo: datetime | None, hi: datetime | None, column: str = TS) -> pl.Expr:
    cond = pl.lit(True)
    if lo is not None:
        cond &= pl.col(column) >= lo
    if hi is not None:
        cond &= pl.col(column) < hi
    return cond
