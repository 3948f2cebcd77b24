"""Test-wide settings: every test gets its own data root, warehouse and Dagster home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("QLAKE_DATA_ROOT", str(root))
    monkeypatch.setenv("QLAKE_WAREHOUSE", str(tmp_path / "warehouse" / "lake.duckdb"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    yield root



@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One throwaway PostgreSQL cluster for the session (tests/services.py); each test creates its own database.
    Skipped only when the binaries are absent (scripts/test.sh installs them as root)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from services import postgres_bin_dir, postgres_server

    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl, postgres) are not installed: apt-get install postgresql")
    with postgres_server() as pg:
        yield pg
