"""Where things live, chosen once from the environment (dagster-open-platform's `get_environment`)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def get_environment() -> str:
    """LOCAL (default), CI or PROD; every environment-specific choice is keyed on this."""
    env = os.environ.get("QLAKE_ENV", "CI" if os.environ.get("CI") else "LOCAL").upper()
    if env not in {"LOCAL", "CI", "PROD"}:
        raise ValueError(f"QLAKE_ENV must be LOCAL, CI or PROD, got {env!r}")
    return env


def data_root() -> Path:
    return Path(os.environ.get("QLAKE_DATA_ROOT", PROJECT_ROOT / "data")).resolve()


def spec_dir() -> Path:
    return Path(os.environ.get("QLAKE_SPEC_DIR", PROJECT_ROOT / "spec")).resolve()


def warehouse_path() -> Path:
    default = PROJECT_ROOT / "warehouse" / "lake.duckdb"
    return Path(os.environ.get("QLAKE_WAREHOUSE", default)).resolve()


def warehouse_sql_dir() -> Path:
    return PROJECT_ROOT / "warehouse" / "sql"


def lake_root() -> Path:
    return data_root() / "lake"


def landing_root() -> Path:
    return data_root() / "landing"


def reports_root() -> Path:
    return data_root() / "reports"
