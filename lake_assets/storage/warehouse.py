"""The DuckDB warehouse: one view per lake asset over its parquet glob, plus convenience views from `warehouse/sql/`.

A DuckDB write connection locks the file against every other process, readers included, so the catalog is built in a
temp file and swapped in with `os.replace`: readers holding the old file keep a consistent snapshot and nobody ever
sees a lock error. Views hold no data, so a rebuild is cheap and only needed when an asset appears for the first time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from lake_assets.settings import warehouse_path, warehouse_sql_dir
from lake_assets.storage.lake import PART_FILE, Lake
from lake_assets.vocabulary import QUARANTINE_SCHEMA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeTable:
    """A lake asset exposed as a warehouse view."""

    group: str
    asset: str
    depth: int  # number of partition dimensions in its path
    view: str | None = None  # view name; defaults to the asset name
    schema: pl.Schema | None = None  # lets the view exist (empty, typed) before any partition is written

    @property
    def view_name(self) -> str:
        return self.view or self.asset


# Every lake asset the warehouse exposes. Layers add their tables here (one list, read by the catalog builder).
LAKE_TABLES: list[LakeTable] = [
    LakeTable("raw", "raw_ohlcv", 2),
    LakeTable("raw", "raw_funding", 2),
    LakeTable("raw", "raw_open_interest", 2),
    LakeTable("raw", "raw_trades", 2),
    LakeTable("cleaned", "bars", 2),
    LakeTable("cleaned", "bars_1h", 2),
    LakeTable("cleaned", "bars_1d", 2),
    LakeTable("quality", "quarantine", 3, schema=QUARANTINE_SCHEMA),
]

_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Float64: "DOUBLE", pl.Int64: "BIGINT", pl.Boolean: "BOOLEAN",
                 pl.Int32: "INTEGER", pl.Date: "DATE"}  # fmt: skip


def _duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    return _DUCKDB_TYPES.get(dtype.base_type(), "VARCHAR")  # type: ignore[call-overload]


def _empty_view_sql(table: LakeTable) -> str | None:
    if table.schema is None:
        return None
    cols = ", ".join(f"NULL::{_duckdb_type(t)} AS {n}" for n, t in table.schema.items())
    return f"CREATE OR REPLACE VIEW {table.view_name} AS SELECT * FROM (SELECT {cols}) WHERE false"


def register_table(table: LakeTable) -> None:
    if all(t.view_name != table.view_name for t in LAKE_TABLES):
        LAKE_TABLES.append(table)


_META = "qlake_catalog"  # one row: the signature the catalog was built from
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def _view_sql(lake: Lake, table: LakeTable) -> str | None:
    if not _IDENT.fullmatch(table.view_name):
        raise ValueError(f"unsafe view name {table.view_name!r}")
    base = lake.asset_dir(table.group, table.asset)
    has_data = base.exists() and any(base.rglob(PART_FILE))
    if not has_data:
        return _empty_view_sql(table)
    glob = lake.glob(table.group, table.asset, table.depth).replace("'", "''")
    return (
        f"CREATE OR REPLACE VIEW {table.view_name} AS SELECT * FROM read_parquet('{glob}', "
        f"hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
    )


def build_catalog(lake: Lake | None = None, path: Path | None = None) -> dict[str, list[str]]:
    """Rebuild the catalog atomically; returns the views created and those skipped (no data yet / failed)."""
    lake = lake or Lake()
    path = path or warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    created: list[str] = []
    skipped: list[str] = []
    try:
        con = duckdb.connect(str(tmp))
        try:
            for table in LAKE_TABLES:
                sql = _view_sql(lake, table)
                if sql is None:
                    skipped.append(table.view_name)
                    continue
                try:
                    con.execute(sql)
                    created.append(table.view_name)
                except duckdb.Error as exc:  # one unreadable asset must not take the whole catalog down
                    skipped.append(table.view_name)
                    log.warning("view %s skipped: %s", table.view_name, exc)
            for sql_file in sorted(warehouse_sql_dir().glob("*.sql")):
                try:
                    con.execute(sql_file.read_text())
                    created.append(sql_file.stem)
                except duckdb.Error as exc:  # a convenience view over an asset with no data yet
                    skipped.append(sql_file.stem)
                    log.debug("view %s skipped: %s", sql_file.stem, exc)
            con.execute(f"CREATE TABLE {_META} AS SELECT ? AS signature, now() AS built_at", [catalog_signature(lake)])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return {"created": created, "skipped": skipped}


def catalog_signature(lake: Lake) -> str:
    """What the catalog would contain: every view statement (an empty typed view differs from a glob view) and the
    convenience SQL. Equal signatures mean a rebuild would change nothing."""
    parts = [_view_sql(lake, t) or f"-- {t.view_name}: no data" for t in LAKE_TABLES]
    parts += [f.read_text() for f in sorted(warehouse_sql_dir().glob("*.sql"))]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def refresh_catalog(lake: Lake | None = None, path: Path | None = None) -> bool:
    """Rebuild only when the signature changed (an asset got its first partition, view SQL changed): views are
    globs, so new partitions of existing assets are visible without a rebuild. Returns whether it rebuilt."""
    lake = lake or Lake()
    path = path or warehouse_path()
    if path.exists():
        try:
            con = duckdb.connect(str(path), read_only=True)
            try:
                row = con.execute(f"select signature from {_META}").fetchone()
            finally:
                con.close()
            if row is not None and row[0] == catalog_signature(lake):
                return False
        except duckdb.Error:
            pass
    build_catalog(lake, path)
    return True


def connect_read_only(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection; never blocks the pipeline and is never blocked by it."""
    path = path or warehouse_path()
    if not path.exists():
        build_catalog(path=path)
    return duckdb.connect(str(path), read_only=True)


def query(sql: str, path: Path | None = None) -> pl.DataFrame:
    con = connect_read_only(path)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()
