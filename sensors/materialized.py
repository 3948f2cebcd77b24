"""What is materialized, per partition: the value a metadata key holds in each partition's latest materialization.

Sensors decide from this, not from their own memory: one query for each partition's latest storage id, then the
records (in batches) only for partitions whose latest materialization is not already in the caller's cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

FETCH_BATCH = 200
Recorded = dict[str, tuple[int, str | None]]  # partition -> (storage id, recorded value)


def latest_recorded(
    instance: dg.DagsterInstance,
    asset: str,
    metadata_key: str,
    cache: Mapping[str, Any] | None = None,
    fallback: Callable[[str], str | None] | None = None,
) -> Recorded:
    """Each materialized partition of `asset` -> (storage id, `metadata_key`'s value in its latest materialization).

    `cache` maps partition -> [storage id, value] from an earlier call (a sensor cursor); `fallback(partition)` gives
    the value for materializations written before the key was recorded.
    """
    key = dg.AssetKey(asset)
    latest = instance.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
    cache = cache or {}
    out: Recorded = {}
    stale: list[int] = []
    for partition, storage_id in latest.items():
        hit = cache.get(partition)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == storage_id:
            out[partition] = (storage_id, hit[1])
        else:
            stale.append(storage_id)
    stale.sort()
    for chunk in (stale[i : i + FETCH_BATCH] for i in range(0, len(stale), FETCH_BATCH)):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=chunk), limit=len(chunk)
        ).records
        for rec in records:
            mat = rec.asset_materialization
            if mat is None or mat.partition is None:
                continue
            value = mat.metadata.get(metadata_key)
            if value is not None:
                out[mat.partition] = (rec.storage_id, str(value.value))
            else:
                out[mat.partition] = (rec.storage_id, fallback(mat.partition) if fallback else None)
    return out
