from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from lake_assets.cli import main
from lake_assets.settings import warehouse_path
from lake_assets.storage.lake import Lake
from lake_assets.storage.quarantine import quarantine_rows, write_quarantine
from lake_assets.storage.warehouse import build_catalog, connect_read_only, query, refresh_catalog


def test_views_appear_and_refresh_only_when_needed(tmp_path: Path, data_root: Path) -> None:
    lake = Lake(tmp_path / "lake")
    db = tmp_path / "wh" / "lake.duckdb"
    build_catalog(lake, db)
    assert query("select count(*) from quarantine", db).item() == 0  # typed and empty before any data
    assert not refresh_catalog(lake, db)  # nothing changed
    bars = pl.DataFrame({"ts": [1, 2], "instrument": ["BTCUSDT", "BTCUSDT"], "close": [1.0, 2.0]})
    lake.write(bars, "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    assert refresh_catalog(lake, db)  # first partition of an asset: its view is created
    lake.write(bars, "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-02"})
    assert not refresh_catalog(lake, db)  # a glob view already sees new partitions
    assert query("select month, count(*) from bars group by 1 order by 1", db).rows() == [
        ("2026-01", 2),
        ("2026-02", 2),
    ]
    bad = quarantine_rows(bars.head(1), asset="raw_ohlcv", instrument="BTCUSDT", source="test", reason="why")
    write_quarantine(lake, bad, asset="raw_ohlcv", instrument="BTCUSDT", month="2026-01")
    assert refresh_catalog(lake, db)  # the empty placeholder view becomes the glob view
    assert query("select reason from quarantine", db).item() == "why"


def _bars(close: float) -> pl.DataFrame:
    return pl.DataFrame({"ts": [1, 2], "instrument": ["BTCUSDT", "BTCUSDT"], "close": [close, close]})


def test_a_copied_data_root_reads_its_own_files(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake()  # $QLAKE_DATA_ROOT/lake
    lake.write(_bars(1.0), "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    build_catalog()
    con = connect_read_only()
    try:
        view_sql = con.execute("select sql from duckdb_views() where view_name = 'bars'").fetchone()
    finally:
        con.close()
    assert view_sql is not None and "'lake/cleaned/bars/*/*/part-0.parquet'" in view_sql[0]
    assert str(data_root) not in view_sql[0]
    copy = tmp_path / "copy"
    shutil.copytree(data_root, copy / "data")
    shutil.copytree(warehouse_path().parent, copy / "warehouse")
    lake.write(_bars(5.0), "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})  # the original moves on
    lake.write(_bars(5.0), "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-02"})
    assert query("select sum(close) from bars").item() == 20.0
    monkeypatch.setenv("QLAKE_DATA_ROOT", str(copy / "data"))
    monkeypatch.setenv("QLAKE_WAREHOUSE", str(copy / "warehouse" / "lake.duckdb"))
    monkeypatch.chdir(data_root)  # even from inside the original, the copy reads its own files
    assert query("select month, sum(close) from bars group by 1").rows() == [("2026-01", 2.0)]
    assert not refresh_catalog()  # nothing to rebuild: the copied catalog is the catalog of the copy


def test_queries_cannot_write_files_or_read_outside_the_lake(tmp_path: Path, data_root: Path) -> None:
    Lake().write(_bars(1.0), "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    build_catalog()
    target = tmp_path / "out.csv"
    inside = data_root / "lake" / "out.csv"
    for sql in (f"copy (select * from bars) to '{target}'", f"copy (select * from bars) to '{inside}'",
                f"export database '{tmp_path / 'export'}'", "set enable_external_access = true",
                f"attach '{tmp_path / 'other.duckdb'}'", "install httpfs"):  # fmt: skip
        with pytest.raises(duckdb.PermissionException):
            query(sql)  # refused before it runs: only reading statements are accepted
    with pytest.raises(duckdb.PermissionException):
        query("select * from read_csv('/etc/passwd')")
    with pytest.raises(duckdb.PermissionException):
        query(f"select * from read_parquet('{data_root}/lake/../../../../../etc/passwd')")
    # the connection itself, without that statement check: DuckDB refuses files outside the lake
    con = connect_read_only(sandbox=True)
    try:
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"copy (select * from bars) to '{target}'")
        with pytest.raises(duckdb.PermissionException):
            con.execute("select * from read_csv('/etc/passwd')")
        with pytest.raises(duckdb.Error, match="locked"):  # and nobody can widen what it may touch
            con.execute("set allowed_directories = ['/']")
        with pytest.raises(duckdb.Error):
            con.execute("set enable_external_access = true")
        assert con.execute("select count(*) from bars").fetchone() == (2,)
    finally:
        con.close()
    assert not target.exists() and not inside.exists() and not (tmp_path / "export").exists()
    # while the views over the lake, and reads inside it, work
    assert query("select count(*) from bars").item() == 2
    assert query("select count(*) from read_parquet('lake/cleaned/bars/*/*/part-0.parquet')").item() == 2
    assert query("describe bars")["column_name"].to_list() == ["ts", "instrument", "close", "month"]


@pytest.fixture()
def cli_env(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QLAKE_MALLOC_TUNING", "0")
    monkeypatch.setenv("COLUMNS", "80")
    Lake().write(_bars(1.0), "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    build_catalog()
    return data_root


def test_qlake_sql_formats(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select instrument, close from bars", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "instrument,close\nBTCUSDT,1.0\nBTCUSDT,1.0\n"
    assert main(["sql", "select instrument, close from bars", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"instrument": "BTCUSDT", "close": 1.0}] * 2
    assert main(["sql", "--describe", "bars", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bars: Regular bar grid")  # the view's comment, then its columns' type, unit, comment
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].split("|")[1:5]] == ["column", "type", "unit", "description"]
    assert len(lines) == 2 + 4 and "| close " in out and "quote currency per unit" in out
    assert main(["sql", "describe bars"]) == 0
    assert "instrument" in capsys.readouterr().out
    assert main(["sql"]) == 0  # no query: the views
    assert "bars" in capsys.readouterr().out


def test_qlake_sql_elides_the_middle_columns_of_wide_results(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide = "select " + ", ".join(f"{i} as column_{i:02d}" for i in range(30)) + " from bars"
    assert main(["sql", wide]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 80  # fits the terminal
    assert "column_00" in out and "column_29" in out and "column_15" not in out and "…" in out
    assert main(["sql", wide, "--max-columns", "4"]) == 0
    header = capsys.readouterr().out.splitlines()[2]
    shown = [c.strip() for c in header.strip("│").split("┆")]
    assert shown == ["column_00", "column_01", "…", "column_28", "column_29"]
    assert main(["sql", wide, "--max-columns", "0"]) == 0
    out = capsys.readouterr().out
    assert all(f"column_{i:02d}" in out for i in range(30))


def test_qlake_sql_errors_are_one_line(cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select * from no_such_view"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("qlake sql: Catalog Error: Table with name no_such_view does not exist")
    assert err.count("\n") == 1
    target = tmp_path / "stolen.csv"
    assert main(["sql", f"copy (select * from bars) to '{target}'"]) == 1
    assert capsys.readouterr().err.startswith("qlake sql: Permission Error")
    assert not target.exists()
    assert main(["sql", "select * from read_csv('/etc/passwd')"]) == 1
    assert capsys.readouterr().err.startswith("qlake sql: Permission Error")
    assert main(["sql", "--describe", "bars' ; drop view bars; --"]) == 1
    assert capsys.readouterr().err.startswith("qlake sql: no view named")
    assert main(["sql", "select count(*) as n from bars", "--format", "csv"]) == 0  # the view is still there
    assert capsys.readouterr().out == "n\n2\n"


def test_the_warehouse_resource_is_a_read_only_duckdb_resource(tmp_path: Path, data_root: Path) -> None:
    from dagster_duckdb import DuckDBResource

    from resources import WarehouseResource

    Lake().write(_bars(1.0), "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    db = tmp_path / "wh.duckdb"
    warehouse = WarehouseResource(database=str(db))
    assert isinstance(warehouse, DuckDBResource)
    assert warehouse.refresh() and not warehouse.refresh()
    with warehouse.get_connection() as con:
        assert con.execute("select count(*) from bars").fetchone() == (2,)
        with pytest.raises(duckdb.Error):  # the catalog is attached read-only, and the sandbox is locked
            con.execute("create table t as select 1")
        with pytest.raises(duckdb.PermissionException):
            con.execute("select * from read_csv('/etc/passwd')")
    with pytest.raises(duckdb.PermissionException):
        warehouse.query("drop view bars")
    assert warehouse.query("select count(*) from bars").item() == 2
