"""The one vocabulary of qlake: canonical column names, enums and polars schemas.

Every layer imports names from here instead of spelling strings, so a rename happens once.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

import polars as pl

# --- identifiers ---------------------------------------------------------------------------

INSTRUMENT_ID_PATTERN: Final = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")


class InvalidIdentifierError(ValueError):
    """An identifier that would be unsafe as a path, SQL literal or partition key."""


def validate_instrument_id(value: object) -> str:
    """Return the id if it is safe for paths, SQL and partition keys; raise otherwise."""
    if not isinstance(value, str) or not INSTRUMENT_ID_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidIdentifierError(
            f"invalid instrument id {value!r}: must match {INSTRUMENT_ID_PATTERN.pattern} and not contain '..'"
        )
    return value


# --- enums ---------------------------------------------------------------------------------


class Market(StrEnum):
    PERP = "perp"
    SPOT = "spot"
    EQUITY = "equity"
    INDEX = "index"


class DataKind(StrEnum):
    OHLCV = "ohlcv"
    FUNDING = "funding"
    OPEN_INTEREST = "open_interest"
    TRADES = "trades"


TIMEFRAMES: Final[dict[str, timedelta]] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}

# --- column names --------------------------------------------------------------------------

TS: Final = "ts"  # bar open time (UTC); for funding/OI/trades: event time
INSTRUMENT: Final = "instrument"
VENDOR: Final = "vendor"
INGESTED_AT: Final = "ingested_at"
OPEN: Final = "open"
HIGH: Final = "high"
LOW: Final = "low"
CLOSE: Final = "close"
VOLUME: Final = "volume"
FUNDING_RATE: Final = "funding_rate"
OPEN_INTEREST: Final = "open_interest"
PRICE: Final = "price"
SIZE: Final = "size"
SIDE: Final = "side"
TRADE_ID: Final = "trade_id"
TRADE_COUNT: Final = "trade_count"
BUY_VOLUME: Final = "buy_volume"
SELL_VOLUME: Final = "sell_volume"
IS_GAP: Final = "is_gap"
IS_OUTLIER: Final = "is_outlier"
OHLC_VIOLATION: Final = "ohlc_violation"
BASIS_BPS: Final = "basis_bps"
SPOT_CLOSE: Final = "spot_close"
RETURN: Final = "ret"
MONTH: Final = "month"

TS_DTYPE: Final = pl.Datetime("us", "UTC")


def _schema(columns: dict[str, Any]) -> pl.Schema:
    return pl.Schema(list(columns.items()))


# --- schemas -------------------------------------------------------------------------------

RAW_OHLCV_SCHEMA: Final = _schema(
    {
        TS: TS_DTYPE,
        INSTRUMENT: pl.String,
        OPEN: pl.Float64,
        HIGH: pl.Float64,
        LOW: pl.Float64,
        CLOSE: pl.Float64,
        VOLUME: pl.Float64,
        VENDOR: pl.String,
        INGESTED_AT: TS_DTYPE,
    }
)

RAW_FUNDING_SCHEMA: Final = _schema(
    {TS: TS_DTYPE, INSTRUMENT: pl.String, FUNDING_RATE: pl.Float64, VENDOR: pl.String, INGESTED_AT: TS_DTYPE}
)

RAW_OPEN_INTEREST_SCHEMA: Final = _schema(
    {TS: TS_DTYPE, INSTRUMENT: pl.String, OPEN_INTEREST: pl.Float64, VENDOR: pl.String, INGESTED_AT: TS_DTYPE}
)

RAW_TRADES_SCHEMA: Final = _schema(
    {
        TS: TS_DTYPE,
        INSTRUMENT: pl.String,
        PRICE: pl.Float64,
        SIZE: pl.Float64,
        SIDE: pl.String,  # "buy" | "sell" | null (aggressor side)
        TRADE_ID: pl.String,
        VENDOR: pl.String,
        INGESTED_AT: TS_DTYPE,
    }
)

RAW_SCHEMAS: Final[dict[DataKind, pl.Schema]] = {
    DataKind.OHLCV: RAW_OHLCV_SCHEMA,
    DataKind.FUNDING: RAW_FUNDING_SCHEMA,
    DataKind.OPEN_INTEREST: RAW_OPEN_INTEREST_SCHEMA,
    DataKind.TRADES: RAW_TRADES_SCHEMA,
}

BARS_SCHEMA: Final = _schema(
    {
        TS: TS_DTYPE,
        INSTRUMENT: pl.String,
        OPEN: pl.Float64,
        HIGH: pl.Float64,
        LOW: pl.Float64,
        CLOSE: pl.Float64,
        VOLUME: pl.Float64,
        TRADE_COUNT: pl.Int64,
        BUY_VOLUME: pl.Float64,
        SELL_VOLUME: pl.Float64,
        RETURN: pl.Float64,
        IS_GAP: pl.Boolean,
        IS_OUTLIER: pl.Boolean,
        OHLC_VIOLATION: pl.Boolean,
        FUNDING_RATE: pl.Float64,
        OPEN_INTEREST: pl.Float64,
        SPOT_CLOSE: pl.Float64,
        BASIS_BPS: pl.Float64,
    }
)

QUARANTINE_SCHEMA: Final = _schema(
    {
        "asset": pl.String,
        INSTRUMENT: pl.String,
        "source": pl.String,  # file path or vendor name
        "line": pl.Int64,  # 1-based line number in the source, null when not line-based
        "reason": pl.String,
        "record": pl.String,  # the offending record as text
        "quarantined_at": TS_DTYPE,
    }
)


def empty_frame(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Select and cast to the canonical schema; missing columns become typed nulls."""
    cols = [
        (pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype=dtype)).alias(name)
        for name, dtype in schema.items()
    ]
    return df.select(cols)
