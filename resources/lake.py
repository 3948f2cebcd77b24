"""The parquet lake and the DuckDB warehouse as Dagster resources (roots default to the environment settings)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import query, refresh_catalog


class LakeResource(dg.ConfigurableResource):
    """Where partitions are written; `root` overrides $QLAKE_DATA_ROOT/lake."""

    root: str | None = None

    def lake(self) -> Lake:
        return Lake(self.root)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB catalog of views; rebuilt atomically, read by anyone read-only."""

    path: str | None = None
    lake_root: str | None = None

    def refresh(self) -> bool:
        """Make new assets visible as views (cheap no-op when every view already exists)."""
        return refresh_catalog(Lake(self.lake_root), Path(self.path) if self.path else None)

    def query(self, sql: str) -> pl.DataFrame:
        return query(sql, Path(self.path) if self.path else None)
