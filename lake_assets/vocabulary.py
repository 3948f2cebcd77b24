"""The one vocabulary of qlake: canonical column names, enums and polars schemas.

Every layer imports names from here instead of spelling strings, so a rename happens once.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

import polars as pl

from lake_assets import tables

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
BID: Final = "bid"  # top of book at the bar close (vendors that have it; null otherwise)
ASK: Final = "ask"
BID_SIZE: Final = "bid_size"
ASK_SIZE: Final = "ask_size"
TOP_OF_BOOK: Final = (BID, ASK, BID_SIZE, ASK_SIZE)
MONTH: Final = "month"

TS_DTYPE: Final = tables.TS_DTYPE


def _schema(columns: dict[str, Any]) -> pl.Schema:
    return pl.Schema(list(columns.items()))


# --- schemas (declared once, with descriptions and units, in lake_assets/tables.py) --------

RAW_OHLCV_SCHEMA: Final = tables.RAW_OHLCV.schema
RAW_FUNDING_SCHEMA: Final = tables.RAW_FUNDING.schema
RAW_OPEN_INTEREST_SCHEMA: Final = tables.RAW_OPEN_INTEREST.schema
RAW_TRADES_SCHEMA: Final = tables.RAW_TRADES.schema  # side: "buy" | "sell" | null (aggressor side)

RAW_SCHEMAS: Final[dict[DataKind, pl.Schema]] = {
    DataKind.OHLCV: RAW_OHLCV_SCHEMA,
    DataKind.FUNDING: RAW_FUNDING_SCHEMA,
    DataKind.OPEN_INTEREST: RAW_OPEN_INTEREST_SCHEMA,
    DataKind.TRADES: RAW_TRADES_SCHEMA,
}

BARS_SCHEMA: Final = tables.BARS.schema
QUARANTINE_SCHEMA: Final = tables.QUARANTINE.schema


def empty_frame(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Select and cast to the canonical schema; missing columns become typed nulls."""
    cols = [
        (pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype=dtype)).alias(name)
        for name, dtype in schema.items()
    ]
    return df.select(cols)
