"""Vendor frames -> raw lake partitions: typed, row-validated, with rejected rows kept for quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from lake_assets.vocabulary import (
    CLOSE,
    FUNDING_RATE,
    HIGH,
    LOW,
    OPEN,
    OPEN_INTEREST,
    PRICE,
    SIZE,
    TS,
    VOLUME,
    DataKind,
)

RAW_ASSET = {
    DataKind.OHLCV: "raw_ohlcv",
    DataKind.FUNDING: "raw_funding",
    DataKind.OPEN_INTEREST: "raw_open_interest",
    DataKind.TRADES: "raw_trades",
}
MAX_ABS_FUNDING = 0.05  # 5% per funding interval: anything beyond is a unit error, not a market


def validate_raw_ohlcv(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split raw bars into rows fit for the grid and rejected rows with a `reason` column.

    OHLC inconsistencies are kept (and flagged later); what is rejected cannot be a bar at all.
    """
    reason = (
        pl.when(pl.col(TS).is_null())
        .then(pl.lit("null timestamp"))
        .when(pl.any_horizontal([pl.col(c).is_null() | ~pl.col(c).is_finite() for c in _PRICES]))
        .then(pl.lit("missing or non-finite price"))
        .when(pl.any_horizontal([pl.col(c) <= 0 for c in _PRICES]))
        .then(pl.lit("non-positive price"))
        .when(pl.col(VOLUME).is_not_null() & (~pl.col(VOLUME).is_finite() | (pl.col(VOLUME) < 0)))
        .then(pl.lit("negative or non-finite volume"))
        .otherwise(None)
    )
    tagged = df.with_columns(reason.alias("reason"))
    return tagged.filter(pl.col("reason").is_null()).drop("reason"), tagged.filter(pl.col("reason").is_not_null())


_PRICES = (OPEN, HIGH, LOW, CLOSE)


@dataclass
class RawBatch:
    """The accepted rows of one raw partition and the rejected ones with a `reason`."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def validate_raw(df: pl.DataFrame, kind: DataKind) -> RawBatch:
    """Row-level validation per kind; nothing is dropped silently."""
    if kind == DataKind.OHLCV:
        good, bad = validate_raw_ohlcv(df)
    else:
        reason = _REASONS[kind]()
        tagged = df.with_columns(reason.alias("reason"))
        good = tagged.filter(pl.col("reason").is_null()).drop("reason")
        bad = tagged.filter(pl.col("reason").is_not_null())
    counts = {"delivered": df.height, "accepted": good.height, "quarantined": bad.height}
    return RawBatch(good, bad, counts)


def _funding_reason() -> pl.Expr:
    return (
        pl.when(pl.col(TS).is_null())
        .then(pl.lit("null timestamp"))
        .when(pl.col(FUNDING_RATE).is_null() | ~pl.col(FUNDING_RATE).is_finite())
        .then(pl.lit("missing or non-finite funding rate"))
        .when(pl.col(FUNDING_RATE).abs() > MAX_ABS_FUNDING)
        .then(pl.lit(f"funding rate beyond +/-{MAX_ABS_FUNDING}"))
        .otherwise(None)
    )


def _oi_reason() -> pl.Expr:
    return (
        pl.when(pl.col(TS).is_null())
        .then(pl.lit("null timestamp"))
        .when(pl.col(OPEN_INTEREST).is_null() | ~pl.col(OPEN_INTEREST).is_finite())
        .then(pl.lit("missing or non-finite open interest"))
        .when(pl.col(OPEN_INTEREST) < 0)
        .then(pl.lit("negative open interest"))
        .otherwise(None)
    )


def _trades_reason() -> pl.Expr:
    return (
        pl.when(pl.col(TS).is_null())
        .then(pl.lit("null timestamp"))
        .when(pl.col(PRICE).is_null() | ~pl.col(PRICE).is_finite() | (pl.col(PRICE) <= 0))
        .then(pl.lit("missing, non-finite or non-positive price"))
        .when(pl.col(SIZE).is_null() | ~pl.col(SIZE).is_finite() | (pl.col(SIZE) < 0))
        .then(pl.lit("missing, non-finite or negative size"))
        .otherwise(None)
    )


_REASONS = {DataKind.FUNDING: _funding_reason, DataKind.OPEN_INTEREST: _oi_reason, DataKind.TRADES: _trades_reason}
