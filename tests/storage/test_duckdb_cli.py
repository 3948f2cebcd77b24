"""The stock DuckDB CLI (PyPI `duckdb-cli`, a pinned test dependency) opens the warehouse and reads the lake through
its views: the catalog is written in a storage format older CLIs read (DuckDB 2.0's own, 69, they refuse)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from lake_assets.settings import warehouse_path
from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import build_catalog


def _duckdb_cli() -> str:
    beside = Path(sys.executable).parent / "duckdb"  # where pip puts the entry point of the venv's duckdb-cli
    found = str(beside) if beside.is_file() else shutil.which("duckdb")
    if found is None:
        pytest.fail("the DuckDB CLI is a test dependency: pip install duckdb-cli (pinned in requirements.lock)")
    return found


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_duckdb_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def catalog(data_root: Path) -> Path:
    bars = pl.DataFrame({"ts": [1, 2, 3], "instrument": ["BTCUSDT"] * 3, "close": [1.0, 2.0, 3.0]})
    Lake().write(bars, "cleaned", "bars", {"instrument": "BTCUSDT", "month": "2026-01"})
    build_catalog()
    return warehouse_path()


def test_the_stock_cli_reads_the_views(catalog: Path, data_root: Path, tmp_path: Path) -> None:
    version = _cli("--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    sql = "select instrument, month, count(*) as n, sum(close) as total from bars group by all"
    # with the search path set (from anywhere) ...
    search_path = f"SET file_search_path='{data_root}'"
    run = _cli("-readonly", "-csv", "-cmd", search_path, str(catalog), "-c", sql, cwd=tmp_path)
    assert run.returncode == 0 and run.stderr == "", (version.stdout, run.stderr)  # a too-new file fails here
    assert run.stdout.splitlines() == ["instrument,month,n,total", "BTCUSDT,2026-01,3,6.0"]
    # ... or started from the data root, SQL on stdin
    run = subprocess.run([_duckdb_cli(), "-readonly", "-csv", str(catalog)], input=sql + ";\n", cwd=data_root,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert run.stdout.splitlines() == ["instrument,month,n,total", "BTCUSDT,2026-01,3,6.0"]


def test_the_stock_cli_sees_the_comments(catalog: Path, data_root: Path, tmp_path: Path) -> None:
    sql = ("select comment from duckdb_views() where view_name = 'events'; "
           "select comment from duckdb_columns() where table_name = 'bars' and column_name = 'close'")  # fmt: skip
    run = _cli("-readonly", "-csv", "-noheader", str(catalog), "-c", sql, cwd=data_root)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    view, column = run.stdout.splitlines()
    assert view.strip('"').startswith("Alias of event_registry (the older view name).")
    assert column == "close price (null on a gap bar) [quote currency per unit]"
