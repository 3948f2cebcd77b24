"""Vendor frames -> raw lake partitions: typed, row-validated, with rejected rows kept for quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from lake_assets.specs import Instrument
from lake_assets.storage.lake import Delivery, Lake
from lake_assets.vocabulary import (
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    LOW,
    MONTH,
    OPEN,
    OPEN_INTEREST,
    PRICE,
    RAW_SCHEMAS,
    SIZE,
    TS,
    VOLUME,
    DataKind,
    conform,
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


# --- deliveries: point-in-time raw ----------------------------------------------------------------------------------
RAW_GROUP = "raw"
REFETCH_TAG = "qlake/refetch"  # a run tagged "true" re-fetches closed months too


def vendor_revised(vendor: Any, inst: Instrument, window: tuple[datetime, datetime], kind: DataKind,
                   since: datetime) -> bool | None:  # fmt: skip
    """Whether the vendor says its data for the window changed since `since`: True, False, or None when it cannot
    say (it has no `revised_since`)."""
    revised = getattr(vendor, "revised_since", None)
    return None if revised is None else bool(revised(inst, window[0], window[1], kind, since))


def delivery_for_run(
    store: Lake,
    vendor: Any,
    inst: Instrument,
    month: str,
    window: tuple[datetime, datetime],
    kind: DataKind,
    *,
    vendor_clock: datetime | None,
    refetch_closed: bool,
) -> tuple[pl.DataFrame, Delivery, bool]:
    """The delivery a raw partition is built from, and whether it was fetched now.

    A month whose latest delivery is closed (fetched when the vendor's clock had passed the window's end) is not
    fetched again unless `refetch_closed` or the vendor says it changed since; anything else is fetched and kept as a
    new delivery (`Lake.write_delivery`: every delivery with its `ingested_at`, never overwritten), so a vendor
    restating history adds a version instead of rewriting what past research read (`raw_as_of`)."""
    name = RAW_ASSET[kind]
    dims = {INSTRUMENT: inst.id, MONTH: month}
    deliveries = store.deliveries(RAW_GROUP, name, dims)
    latest = deliveries[-1] if deliveries else None
    settled = latest is not None and latest.closed and not refetch_closed
    if settled and latest is not None and not vendor_revised(vendor, inst, window, kind, latest.ingested_at):
        return conform(store.read_frame(latest.path), RAW_SCHEMAS[kind]), latest, False
    raw = conform(vendor.fetch(inst, window[0], window[1], kind), RAW_SCHEMAS[kind])
    stamped = raw[INGESTED_AT].drop_nulls()
    ingested_at = stamped.max() if stamped.len() else datetime.now().astimezone()
    assert isinstance(ingested_at, datetime)
    clock = vendor_clock or ingested_at
    delivery = store.write_delivery(raw, RAW_GROUP, name, dims, ingested_at, closed=clock >= window[1])
    return raw, delivery, True


def raw_as_of(store: Lake, kind: DataKind, instrument: str, month: str, as_of: datetime) -> pl.DataFrame:
    """A raw partition as the lake held it at `as_of`: the accepted rows of the delivery in force then (empty, typed,
    when nothing had been delivered). Validated with today's rules, like the partition itself."""
    delivery = store.delivery_as_of(RAW_GROUP, RAW_ASSET[kind], {INSTRUMENT: instrument, MONTH: month}, as_of)
    if delivery is None:
        return pl.DataFrame(schema=RAW_SCHEMAS[kind])
    return validate_raw(conform(store.read_frame(delivery.path), RAW_SCHEMAS[kind]), kind).accepted
