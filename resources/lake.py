"""The parquet lake and the DuckDB warehouse as Dagster resources (roots default to the environment settings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import connect_read_only, query, refresh_catalog


class LakeResource(dg.ConfigurableResource):
    """Where partitions are written; `root` overrides $QLAKE_DATA_ROOT/lake."""

    root: str | None = None

    def lake(self) -> Lake:
        return Lake(self.root)


class WarehouseResource(DuckDBResource):
    """The DuckDB catalog of views, as dagster-duckdb's `DuckDBResource`: `get_connection()` is a read-only, sandboxed
    connection (it never blocks the pipeline, and SQL through it cannot write or read outside the lake); the catalog is
    rebuilt atomically by `refresh()`, never written through a connection. `database` defaults to
    the environment's warehouse path (`lake_assets.settings.warehouse_path`)."""

    database: str = ""
    lake_root: str | None = None

    def _path(self) -> Path | None:
        return Path(self.database) if self.database else None

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect_read_only(self._path(), sandbox=True)
        try:
            yield con
        finally:
            con.close()

    def refresh(self) -> bool:
        """Make new assets visible as views (cheap no-op when every view already exists)."""
        return refresh_catalog(Lake(self.lake_root), self._path())

    def query(self, sql: str) -> pl.DataFrame:
        """Read-only SQL (a write is refused before it runs); the last statement's result."""
        return query(sql, self._path())
