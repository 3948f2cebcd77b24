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


@pytest.fixture()
def s3_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """QLAKE_DATA_ROOT on object storage: a moto S3 server on 127.0.0.1 (tests/services.py) with a fresh bucket;
    credentials and endpoint in the environment (AWS_*), local state (Dagster home, warehouse) under tmp_path."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    pytest.importorskip("moto", reason="moto is in the test extra")
    import boto3
    import s3fs
    from services import s3_server

    with s3_server() as endpoint:
        for var, value in {"AWS_ACCESS_KEY_ID": "qlake-test", "AWS_SECRET_ACCESS_KEY": "qlake-test-secret",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():  # fmt: skip
            monkeypatch.setenv(var, value)
        boto3.client("s3").create_bucket(Bucket="qlake-test")
        s3fs.S3FileSystem.clear_instance_cache()  # an instance cached for another server's endpoint
        monkeypatch.setenv("QLAKE_DATA_ROOT", "s3://qlake-test/root")
        monkeypatch.setenv("QLAKE_LOCAL_DATA_ROOT", str(tmp_path / "data"))
        monkeypatch.setenv("QLAKE_WAREHOUSE", str(tmp_path / "warehouse" / "lake.duckdb"))
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        (tmp_path / "dagster_home").mkdir()
        try:
            yield "s3://qlake-test/root"
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
