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

import contextlib
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from lake_assets import tables
from lake_assets.settings import data_root, warehouse_path, warehouse_sql_dir
from lake_assets.storage.lake import PART_FILE, Lake
from lake_assets.tables import Table

log = logging.getLogger(__name__)


# Every lake table the warehouse exposes, declared once with its columns, units and aliases: lake_assets/tables.py.
LAKE_TABLES: tuple[Table, ...] = tables.TABLES


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _empty_view_sql(table: Table) -> str:
    """A typed, empty view: the table's columns, then its partition dimensions, as a view over its files would be."""
    cols = [(c.name, tables.sql_type(c.dtype)) for c in table.all_columns]
    cols += [(d.name, "VARCHAR") for d in table.partitions if d.name not in {n for n, _ in cols}]
    select = ", ".join(f"NULL::{t} AS {_ident(n)}" for n, t in cols)
    return f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM (SELECT {select}) WHERE false"


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
    """The lake's directory as the views name it: relative to the data root when inside it, else absolute (an
    object-storage lake: its URL)."""
    if lake.remote:
        return str(lake.root).rstrip("/")
    lake_root = lake.root.resolve()
    try:
        return lake_root.relative_to(root.resolve()).as_posix()
    except ValueError:
        return lake_root.as_posix()


def _files(lake: Lake, table: Table) -> list[Path]:
    base = lake.asset_dir(table.group, table.name)  # also checks the group and table names
    return lake._part_files(base)


def register_object_storage(con: duckdb.DuckDBPyConnection, lake_dir: str) -> None:
    """Views over an object-storage lake read it through fsspec (s3fs) registered on the connection: credentials and
    endpoint come from the environment (AWS_* variables, as boto reads them), never from the catalog or a log.
    (DuckDB's httpfs would do as well where its extension can be installed; fsspec needs no download.)"""
    if "://" not in lake_dir:
        return
    import fsspec

    protocol = lake_dir.split("://", 1)[0]
    if not con.filesystem_is_registered(protocol):
        con.register_filesystem(fsspec.filesystem(protocol))


def _view_sql(lake: Lake, table: Table, root: Path, has_data: bool) -> str:
    if not _IDENT.fullmatch(table.name):
        raise ValueError(f"unsafe view name {table.name!r}")
    if not has_data:
        return _empty_view_sql(table)
    lake.asset_dir(table.group, table.name)  # checks the group and table names
    glob = "/".join([_lake_dir(lake, root), table.group, table.name, *["*"] * table.depth, PART_FILE])
    return (
        f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM read_parquet({_literal(glob)}, "
        f"hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
    )


def _plan(lake: Lake, root: Path) -> list[tuple[Table, str, str]]:
    """(table, view statement, what its columns are: the first file's schema, or 'declared')."""
    out = []
    for table in (t.resolved() for t in LAKE_TABLES):
        files = _files(lake, table)
        shape = "declared"
        if files:
            try:
                shape = str(lake.schema(files[0]))
            except (OSError, pl.exceptions.ComputeError):  # replaced or removed meanwhile: the glob still binds
                shape = "unreadable"
        out.append((table, _view_sql(lake, table, root, bool(files)), shape))
    return out


def _docs(table: Table) -> str:
    """Everything the table's comments are made of (part of the catalog signature)."""
    cols = [f"{c.name}: {c.comment}" for c in (*table.all_columns, *table.partitions)]
    return "\n".join([table.view_comment, *cols, *map(str, table.patterns), *table.aliases])


def _comment_columns(
    con: duckdb.DuckDBPyConnection, view: str, comment: Callable[[str], str | None], fallback: str
) -> None:
    """COMMENT ON COLUMN for every column of `view` that has none yet: `comment(name)`, else `fallback`."""
    rows = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
        "AND table_name = ? ORDER BY column_index",
        [_CATALOG, view],
    ).fetchall()
    for name, existing in rows:
        if not existing:
            text = comment(name) or f"{fallback} {name}"
            con.execute(f"COMMENT ON COLUMN {view}.{_ident(name)} IS {_literal(text)}")


def _create_table_view(con: duckdb.DuckDBPyConnection, table: Table, sql: str) -> None:
    con.execute(sql)
    con.execute(f"COMMENT ON VIEW {table.name} IS {_literal(table.view_comment)}")
    _comment_columns(con, table.name, table.comment, f"column of {table.name}:")
    for alias in table.aliases:
        if not _IDENT.fullmatch(alias):
            raise ValueError(f"unsafe view name {alias!r}")
        con.execute(f"CREATE OR REPLACE VIEW {alias} AS SELECT * FROM {table.name}")
        why = f"named after its asset {table.asset}" if alias == table.asset else "the older view name"
        con.execute(f"COMMENT ON VIEW {alias} IS {_literal(f'Alias of {table.name} ({why}). {table.view_comment}')}")
        _comment_columns(con, alias, table.comment, f"column of {table.name}:")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # the failure may have ended the transaction already
        con.execute("ROLLBACK")


def _sql_file_comment(text: str) -> str:
    """The leading `--` comment lines of a convenience view's SQL file."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.removeprefix("--").strip())
    return " ".join(lines)


def _create_sql_view(con: duckdb.DuckDBPyConnection, sql_file: Path) -> None:
    """A convenience view from warehouse/sql/<view>.sql; columns without a COMMENT in the file take the data
    dictionary's comment for their name."""
    text = sql_file.read_text()
    view = sql_file.stem
    con.execute(text)
    row = con.execute(
        "SELECT comment FROM duckdb_views() WHERE database_name = ? AND view_name = ?", [_CATALOG, view]
    ).fetchone()
    if row is not None and not row[0]:
        about = _sql_file_comment(text) or "Convenience view."
        con.execute(f"COMMENT ON VIEW {view} IS {_literal(f'{about} Defined in warehouse/sql/{sql_file.name}.')}")
    sources = re.findall(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", text, flags=re.IGNORECASE)
    _comment_columns(
        con, view, lambda name: c.comment if (c := tables.column_doc(name, sources)) else None,
        f"column of {view} (warehouse/sql/{sql_file.name}):",
    )  # fmt: skip


def build_catalog(lake: Lake | None = None, path: Path | None = None) -> dict[str, list[str]]:
    """Rebuild the catalog atomically; returns the views created and those skipped (failed). A table without data
    yet is a typed empty view; every view and column carries a COMMENT from the data dictionary."""
    lake = lake or Lake()
    path = path or warehouse_path()
    root = data_root()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    created: list[str] = []
    skipped: list[str] = []
    plan = _plan(lake, root)
    try:
        con = duckdb.connect()
        try:
            con.execute(f"SET file_search_path = {_literal(root)}")  # the views' relative globs bind here too
            register_object_storage(con, _lake_dir(lake, root))
            con.execute(f"ATTACH {_literal(tmp)} AS {_CATALOG} (STORAGE_VERSION '{STORAGE_VERSION}')")
            con.execute(f"USE {_CATALOG}")
            for table, sql, _ in plan:  # one transaction per view and its comments: one commit, not hundreds
                try:
                    con.execute("BEGIN TRANSACTION")
                    _create_table_view(con, table, sql)
                    con.execute("COMMIT")
                    created += [table.name, *table.aliases]
                except duckdb.Error as exc:  # one unreadable asset must not take the whole catalog down
                    _rollback(con)
                    skipped += [table.name, *table.aliases]
                    log.warning("view %s skipped: %s", table.name, exc)
            for sql_file in sorted(warehouse_sql_dir().glob("*.sql")):
                try:
                    con.execute("BEGIN TRANSACTION")
                    _create_sql_view(con, sql_file)
                    con.execute("COMMIT")
                    created.append(sql_file.stem)
                except duckdb.Error as exc:  # a convenience view over a view that failed
                    _rollback(con)
                    skipped.append(sql_file.stem)
                    log.debug("view %s skipped: %s", sql_file.stem, exc)
            con.execute(
                f"CREATE TABLE {_META} AS SELECT ? AS signature, ? AS lake_dir, now() AS built_at",
                [_signature(plan), _lake_dir(lake, root)],
            )
            con.execute(f"COMMENT ON TABLE {_META} IS 'qlake bookkeeping: what this catalog was built from'")
            for col, text in (("signature", "hash of the view statements, comments and table shapes built from"),
                              ("lake_dir", "the lake directory the views read, relative to the data root"),
                              ("built_at", "when the catalog was built [UTC timestamp]")):  # fmt: skip
                con.execute(f"COMMENT ON COLUMN {_META}.{col} IS {_literal(text)}")
            con.execute("USE memory")
            con.execute(f"DETACH {_CATALOG}")  # checkpoints and closes the file before it is swapped in
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return {"created": created, "skipped": skipped}


def _signature(plan: list[tuple[Table, str, str]]) -> str:
    parts = [f"-- storage {STORAGE_VERSION}"]
    for table, sql, shape in plan:
        parts += [sql, shape, _docs(table)]
    parts += [f.read_text() for f in sorted(warehouse_sql_dir().glob("*.sql"))]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def catalog_signature(lake: Lake) -> str:
    """What the catalog would contain: its format, every view statement (an empty typed view differs from a glob
    view), the columns of each table's first file, the comments and the convenience SQL. Equal signatures mean a
    rebuild would change nothing."""
    return _signature(_plan(lake, data_root()))


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
        register_object_storage(con, _catalog_lake_dir(con))
        if sandbox:
            _sandbox(con, root)
    except BaseException:
        con.close()
        raise
    return con


def _catalog_lake_dir(con: duckdb.DuckDBPyConnection) -> str:
    try:
        row = con.execute(f"select lake_dir from {_META}").fetchone()
        return str(row[0]) if row else "lake"
    except duckdb.Error:  # a catalog from before lake_dir was recorded: its views read the default lake
        return "lake"


def _sandbox(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    lake_dir = _catalog_lake_dir(con)
    if "://" in lake_dir:  # object storage: reads confined to the lake's prefix
        con.execute(f"SET allowed_directories = [{_literal(lake_dir + '/')}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return
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
