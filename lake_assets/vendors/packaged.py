"""Real daily index data shipped inside the `arch` package: the offline, real-data default for equities.

`arch.data.sp500` (S&P 500) and `arch.data.nasdaq` (NASDAQ Composite) hold daily Open/High/Low/Close/Adj Close/Volume
from 1999-01-04 to 2018-12-31 (5031 sessions each), originally from Yahoo Finance. For these price indices
Adj Close equals Close, so the canonical OHLC are the delivered index levels. ts = the session date at 00:00 UTC,
the same convention as the yfinance vendor. Nothing is downloaded: the CSVs are inside the installed package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache

import polars as pl

from lake_assets.specs import Instrument
from lake_assets.vendors.base import VendorError
from lake_assets.vocabulary import (
    CLOSE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    LOW,
    OPEN,
    RAW_SCHEMAS,
    TS,
    VENDOR,
    VOLUME,
    DataKind,
    conform,
)

# vendor symbol -> module with a `load()` returning the daily frame
DATASETS: dict[str, str] = {"sp500": "arch.data.sp500", "nasdaq": "arch.data.nasdaq"}


@cache
def load_dataset(symbol: str) -> pl.DataFrame:
    """The whole packaged series for `symbol` as ts/open/high/low/close/volume, loaded once per process."""
    if symbol not in DATASETS:
        raise VendorError(f"vendor packaged: unknown symbol {symbol!r}; known symbols: {sorted(DATASETS)}")
    raw = importlib.import_module(DATASETS[symbol]).load()
    dates = raw.index.to_numpy(dtype="datetime64[us]")
    return (
        pl.DataFrame(
            {
                TS: dates,
                OPEN: raw["Open"].to_numpy(dtype="float64"),
                HIGH: raw["High"].to_numpy(dtype="float64"),
                LOW: raw["Low"].to_numpy(dtype="float64"),
                CLOSE: raw["Close"].to_numpy(dtype="float64"),
                VOLUME: raw["Volume"].to_numpy(dtype="float64"),
            }
        )
        .with_columns(pl.col(TS).dt.truncate("1d").dt.replace_time_zone("UTC"))
        .unique(subset=[TS], keep="last")
        .sort(TS)
    )


class PackagedVendor:
    """Daily OHLCV of the indices packaged in `arch.data`; funding/open interest/trades do not exist here."""

    name = "packaged"

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    def revised_since(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind,
                      since: datetime) -> bool:  # fmt: skip
        """Never: its history is fixed once delivered (so a closed month is not fetched again)."""
        return False

    def fetch(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        kind = DataKind(kind)
        schema = RAW_SCHEMAS[kind]
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(f"start/end must be timezone-aware UTC datetimes, got {start!r}, {end!r}")
        symbol = instrument.vendor_symbol
        if symbol not in DATASETS:
            raise VendorError(
                f"vendor packaged: instrument {instrument.id}: unknown symbol {symbol!r}; "
                f"known symbols: {sorted(DATASETS)}"
            )
        if kind != DataKind.OHLCV:
            return pl.DataFrame(schema=schema)
        lo, hi = instrument.life_window(start, end)
        bars = load_dataset(symbol).filter((pl.col(TS) >= lo) & (pl.col(TS) < hi))
        return conform(
            bars.with_columns(
                pl.lit(instrument.id).alias(INSTRUMENT),
                pl.lit(self.name).alias(VENDOR),
                pl.lit(self._clock()).alias(INGESTED_AT),
            ),
            schema,
        )
