"""The DuckDB warehouse: one view per lake asset over its parquet glob, plus convenience views from `warehouse/sql/`.

A DuckDB write connection locks the file against every other process, readers included, so the catalog is built in a
temp file and swapped in with `os.replace`: readers holding the old file keep a consistent snapshot and nobody ever
sees a lock error. Views hold no data, so a rebuild is cheap and only needed when an asset appears for the first time.

Portable: a view reads a glob *relative to the data root* (`lake/cleaned/bars/*/*/part-0.parquet`), and every
connection opened here sets DuckDB's `file_search_path` to `$QLAKE_DATA_ROOT`, so a copied or moved data root reads
its own files, never the original's. (A lake outside the data root, e.g. `QLAKE_LAKE_ROOT` in PROD, keeps absolute
globs.) The relative glob is resolved when a query binds the view, against `file_search_path` or else the working
directory, so with the stock DuckDB CLI either start it from the data root or set the search path:

    cd "$QLAKE_DATA_ROOT" && duckdb -readonly /path/to/warehouse/lake.duckdb
    duckdb -readonly -cmd "SET file_search_path='$QLAKE_DATA_ROOT'" warehouse/lake.duckdb

The file is written in DuckDB storage format `STORAGE_VERSION` (v1.2.0), not the library's own (v2.0 writes format
69, which DuckDB CLIs up to 1.5 refuse: "can only read versions between 64 and 68"), so any CLI from 1.2 on opens it,
including the pinned `duckdb-cli` test dependency.

Sandboxed reads: `query` (and so `qlake sql`) runs with `enable_external_access = false`, reading files only inside
the lake (`allowed_directories`), with the configuration locked (`lock_configuration = true`) so a query cannot
undo it, and accepts read-only statements only (SELECT, DESCRIBE/SHOW/SUMMARIZE, EXPLAIN, PRAGMA, CALL): no COPY or
EXPORT to a file, no ATTACH, INSTALL/LOAD or reads of files outside the lake.
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

from lake_assets.settings import data_root, warehouse_path, warehouse_sql_dir
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


_META = "qlake_catalog"  # one row: the signature the catalog was built from and the lake directory its globs use
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_CATALOG = "lake"  # the warehouse file's name inside our connections (an in-memory database that attaches it)
STORAGE_VERSION = "v1.2.0"  # the catalog's on-disk format: readable by DuckDB (and its CLI) 1.2 and later
# what `query` runs: anything else (COPY, EXPORT, ATTACH, SET, CREATE, ...) is refused before DuckDB sees it
_READ_STATEMENTS = frozenset(
    {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.PRAGMA, duckdb.StatementType.CALL}
)


def _literal(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _lake_dir(lake: Lake, root: Path) -> str:
    """The lake's directory as the views name it: relative to the data root when inside it, else absolute."""
    lake_root = lake.root.resolve()
    try:
        return lake_root.relative_to(root.resolve()).as_posix()
    except ValueError:
        return lake_root.as_posix()


def _view_sql(lake: Lake, table: LakeTable, root: Path) -> str | None:
    if not _IDENT.fullmatch(table.view_name):
        raise ValueError(f"unsafe view name {table.view_name!r}")
    base = lake.asset_dir(table.group, table.asset)  # also checks the group and asset names
    has_data = base.exists() and any(base.rglob(PART_FILE))
    if not has_data:
        return _empty_view_sql(table)
    glob = "/".join([_lake_dir(lake, root), base.relative_to(lake.root).as_posix(), *["*"] * table.depth, PART_FILE])
    return (
        f"CREATE OR REPLACE VIEW {table.view_name} AS SELECT * FROM read_parquet({_literal(glob)}, "
        f"hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
    )


def build_catalog(lake: Lake | None = None, path: Path | None = None) -> dict[str, list[str]]:
    """Rebuild the catalog atomically; returns the views created and those skipped (no data yet / failed)."""
    lake = lake or Lake()
    path = path or warehouse_path()
    root = data_root()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    created: list[str] = []
    skipped: list[str] = []
    try:
        con = duckdb.connect()
        try:
            con.execute(f"SET file_search_path = {_literal(root)}")  # the views' relative globs bind here too
            con.execute(f"ATTACH {_literal(tmp)} AS {_CATALOG} (STORAGE_VERSION '{STORAGE_VERSION}')")
            con.execute(f"USE {_CATALOG}")
            for table in LAKE_TABLES:
                sql = _view_sql(lake, table, root)
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
            con.execute(
                f"CREATE TABLE {_META} AS SELECT ? AS signature, ? AS lake_dir, now() AS built_at",
                [catalog_signature(lake), _lake_dir(lake, root)],
            )
            con.execute("USE memory")
            con.execute(f"DETACH {_CATALOG}")  # checkpoints and closes the file before it is swapped in
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return {"created": created, "skipped": skipped}


def catalog_signature(lake: Lake) -> str:
    """What the catalog would contain: its format, every view statement (an empty typed view differs from a glob view)
    and the convenience SQL. Equal signatures mean a rebuild would change nothing."""
    root = data_root()
    parts = [f"-- storage {STORAGE_VERSION}"]
    parts += [_view_sql(lake, t, root) or f"-- {t.view_name}: no data" for t in LAKE_TABLES]
    parts += [f.read_text() for f in sorted(warehouse_sql_dir().glob("*.sql"))]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def refresh_catalog(lake: Lake | None = None, path: Path | None = None) -> bool:
    """Rebuild only when the signature changed (an asset got its first partition, view SQL changed): views are
    globs, so new partitions of existing assets are visible without a rebuild. Returns whether it rebuilt."""
    lake = lake or Lake()
    path = path or warehouse_path()
    if path.exists():
        try:
            con = connect_read_only(path)
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


def connect_read_only(path: Path | None = None, *, sandbox: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only connection; never blocks the pipeline and is never blocked by it.

    An in-memory database attaches the catalog read-only (so each connection has its own settings, unlike
    `duckdb.connect(path)`, whose connections to one file in a process share them), with `file_search_path` at the
    data root for the views' relative globs. `sandbox=True` then confines file access to the lake and locks the
    configuration (see the module docstring)."""
    path = path or warehouse_path()
    if not path.exists():
        build_catalog(path=path)
    root = data_root()
    con = duckdb.connect()
    try:
        con.execute(f"SET file_search_path = {_literal(root)}")
        con.execute(f"ATTACH {_literal(path)} AS {_CATALOG} (READ_ONLY)")
        con.execute(f"USE {_CATALOG}")
        if sandbox:
            _sandbox(con, root)
    except BaseException:
        con.close()
        raise
    return con


def _sandbox(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    try:
        row = con.execute(f"select lake_dir from {_META}").fetchone()
        lake_dir = str(row[0]) if row else "lake"
    except duckdb.Error:  # a catalog from before lake_dir was recorded: its views read the default lake
        lake_dir = "lake"
    # DuckDB checks a relative glob against the working directory *before* resolving it through file_search_path,
    # and then checks each file it resolved to: both spellings of the lake must be allowed (reads only; `query`
    # refuses writes). An absolute lake_dir makes both the same.
    allowed = sorted({f"{(root / lake_dir).resolve()}/", f"{Path(lake_dir).resolve()}/"})
    con.execute(f"SET allowed_directories = [{', '.join(map(_literal, allowed))}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def check_read_only(sql: str) -> None:
    """Raise `duckdb.PermissionException` unless every statement in `sql` only reads."""
    for statement in duckdb.extract_statements(sql):
        if statement.type not in _READ_STATEMENTS:
            kind = statement.type.name.replace("_", " ")
            raise duckdb.PermissionException(f"Permission Error: read-only queries only; {kind} is not allowed")


def query(sql: str, path: Path | None = None) -> pl.DataFrame:
    """Run read-only SQL against the warehouse in the sandbox; the last statement's result as a DataFrame."""
    check_read_only(sql)
    con = connect_read_only(path, sandbox=True)
    try:
        rel = con.sql(sql)
        return rel.pl() if rel is not None else pl.DataFrame()
    finally:
        con.close()
