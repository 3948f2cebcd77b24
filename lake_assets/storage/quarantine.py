"""Rows that failed row-level validation, kept with their reason instead of being dropped.

Stored per (asset, instrument, month) like any partition, so re-materializing a partition replaces its quarantine
rows exactly; the warehouse view `quarantine` unions them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT, QUARANTINE_SCHEMA, conform

GROUP, ASSET = "quality", "quarantine"


def quarantine_rows(
    rows: pl.DataFrame, *, asset: str, instrument: str, source: str, reason: str | pl.Expr
) -> pl.DataFrame:
    """Turn rejected data rows into quarantine rows (the record is the row rendered as JSON)."""
    if rows.is_empty():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    out = rows.select(
        pl.lit(asset).alias("asset"),
        pl.lit(instrument).alias(INSTRUMENT),
        pl.lit(source).alias("source"),
        pl.lit(None, dtype=pl.Int64).alias("line"),
        reason_expr.alias("reason"),
        pl.struct(pl.all()).struct.json_encode().alias("record"),
        pl.lit(datetime.now(UTC)).alias("quarantined_at"),
    )
    return conform(out, QUARANTINE_SCHEMA)


def write_quarantine(lake: Lake, df: pl.DataFrame, *, asset: str, instrument: str, month: str) -> None:
    """Replace the quarantine rows of one (asset, instrument, month); an empty frame clears them."""
    dims = {"asset": asset, INSTRUMENT: instrument, "month": month}
    if df.is_empty() and not lake.exists(GROUP, ASSET, dims):
        return
    lake.write(conform(df, QUARANTINE_SCHEMA), GROUP, ASSET, dims)
