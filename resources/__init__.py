"""Resources, configured per environment as plain data (hooli's `{"LOCAL": ..., "PROD": ...}[env]`)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from lake_assets.settings import get_environment
from resources.gate import GateResource
from resources.lake import LakeResource, WarehouseResource
from resources.market_data import MarketDataResource


def resources_for(env: str | None = None) -> dict[str, Any]:
    env = env or get_environment()
    kept = MarketDataResource(refetch_closed_months=False)  # closed months are not fetched again (raw.ingest)
    by_env: dict[str, dict[str, Any]] = {
        "LOCAL": {"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": kept},
        "CI": {"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": kept},
        # production: lake root and warehouse from the deployment's environment
        "PROD": {
            "lake": LakeResource(root=dg.EnvVar("QLAKE_LAKE_ROOT")),
            "warehouse": WarehouseResource(
                database=dg.EnvVar("QLAKE_WAREHOUSE"), lake_root=dg.EnvVar("QLAKE_LAKE_ROOT")
            ),
            "market_data": MarketDataResource(max_retries=8, refetch_closed_months=False),
        },
    }
    return by_env[env]


__all__ = ["GateResource", "LakeResource", "MarketDataResource", "WarehouseResource", "resources_for"]
