"""Where things live, chosen once from the environment (dagster-open-platform's `get_environment`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def get_environment() -> str:
    """LOCAL (default), CI or PROD; every environment-specific choice is keyed on this."""
    env = os.environ.get("QLAKE_ENV", "CI" if os.environ.get("CI") else "LOCAL").upper()
    if env not in {"LOCAL", "CI", "PROD"}:
        raise ValueError(f"QLAKE_ENV must be LOCAL, CI or PROD, got {env!r}")
    return env


def is_url(root: object) -> bool:
    """Whether a root names object storage (`s3://bucket/prefix`) rather than a local directory."""
    return "://" in str(root)


def data_root_url() -> str | None:
    """$QLAKE_DATA_ROOT when it is an object-storage URL (the lake lives there), else None."""
    root = os.environ.get("QLAKE_DATA_ROOT", "")
    return root.rstrip("/") if is_url(root) else None


def data_root() -> Path:
    """The local data directory: $QLAKE_DATA_ROOT, or, when that is an object-storage URL, $QLAKE_LOCAL_DATA_ROOT
    (default ./data) for what stays on the machine (landing files, reports, the Dagster home)."""
    if data_root_url() is not None:
        return Path(os.environ.get("QLAKE_LOCAL_DATA_ROOT", PROJECT_ROOT / "data")).resolve()
    return Path(os.environ.get("QLAKE_DATA_ROOT", PROJECT_ROOT / "data")).resolve()


def spec_dir() -> Path:
    return Path(os.environ.get("QLAKE_SPEC_DIR", PROJECT_ROOT / "spec")).resolve()


def warehouse_path() -> Path:
    default = PROJECT_ROOT / "warehouse" / "lake.duckdb"
    return Path(os.environ.get("QLAKE_WAREHOUSE", default)).resolve()


def warehouse_sql_dir() -> Path:
    return PROJECT_ROOT / "warehouse" / "sql"


def lake_root() -> Path:
    """The lake's root: `<data root>/lake`, on object storage when $QLAKE_DATA_ROOT is a URL (a `upath.UPath`, which
    has Path's interface; `storage.lake.Lake` reads and writes it through fsspec)."""
    url = data_root_url()
    if url is not None:
        from upath import UPath

        return cast(Path, UPath(f"{url}/lake"))
    return data_root() / "lake"


def landing_root() -> Path:
    return data_root() / "landing"


def reports_root() -> Path:
    return data_root() / "reports"
