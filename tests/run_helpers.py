"""Helpers the layer tests share (imported by path: tests/ is not a package)."""

from __future__ import annotations

from typing import Any


def run_range(
    assets: tuple[str, ...] | list[str],
    first: str,
    last: str,
    instance: object,
    as_of: str | None = None,
    raise_on_error: bool = True,
) -> Any:
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
        raise_on_error=raise_on_error,
    )
