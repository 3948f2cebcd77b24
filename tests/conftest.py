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


def run_range(
    assets: tuple[str, ...] | list[str], first: str, last: str, instance: object, as_of: str | None = None
) -> object:
    """One in-process run of `assets` over the partition key range first..last (as `qlake materialize` plans it),
    with the synthetic vendor frozen at `as_of`."""
    import dagster as dg

    from lake_assets.cli import PlannedRun
    from lake_assets.definitions import all_assets
    from resources import LakeResource, MarketDataResource, WarehouseResource

    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(*assets),
        instance=instance,  # type: ignore[arg-type]
        resources={
            "lake": LakeResource(),
            "warehouse": WarehouseResource(),
            "market_data": MarketDataResource(as_of=as_of),
        },
        tags=PlannedRun("test", list(assets), first, last).run_tags(),
    )
