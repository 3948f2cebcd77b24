"""Resources, configured per environment as plain data (hooli's `{"LOCAL": ..., "PROD": ...}[env]`)."""

from __future__ import annotations

from typing import Any

from lake_assets.settings import get_environment
from resources.lake import LakeResource, WarehouseResource
from resources.market_data import MarketDataResource


def resources_for(env: str | None = None) -> dict[str, Any]:
    env = env or get_environment()
    by_env: dict[str, dict[str, Any]] = {
        "LOCAL": {"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": MarketDataResource()},
        "CI": {"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": MarketDataResource()},
        "PROD": {
            "lake": LakeResource(),
            "warehouse": WarehouseResource(),
            "market_data": MarketDataResource(live=True),
        },
    }
    return by_env[env]


__all__ = ["LakeResource", "MarketDataResource", "WarehouseResource", "resources_for"]
