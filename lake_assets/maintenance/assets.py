"""`lake_retention`: applies spec/retention.yaml (old deliveries pruned after N versions, orphan temp files of dead
writers removed, harder cleanup when the disk guard finds free space low) daily and whenever the disk guard sensor
asks; its checks say whether the lake is within the spec afterwards."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from lake_assets.asset_metadata import frame_metadata
from lake_assets.specs import spec_hash
from lake_assets.storage.retention import apply_retention, load_retention
from resources.lake import LakeResource

GROUP = "maintenance"


@dg.asset(
    group_name=GROUP,
    code_version=f"retention-1-{spec_hash('retention.yaml')}",
    automation_condition=dg.AutomationCondition.on_cron("30 3 * * *"),
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec("deliveries_within_retention", asset="lake_retention",
                          description="no raw partition keeps more deliveries than spec/retention.yaml allows"),
        dg.AssetCheckSpec("no_orphan_temp_files", asset="lake_retention",
                          description="no temp file of a dead writer is left in the lake"),
        dg.AssetCheckSpec("disk_free", asset="lake_retention",
                          description="free share of the lake's disk at least disk.min_free_fraction after cleanup"),
    ],
)  # fmt: skip
def lake_retention(context: AssetExecutionContext, lake: LakeResource) -> Iterator[Any]:
    """Retention of the lake as declared in spec/retention.yaml; writes what it removed (the lake_retention table)."""
    store = lake.lake()
    spec = load_retention()
    out = apply_retention(store, spec)
    store.write(out.actions, GROUP, "lake_retention")
    meta = frame_metadata(out.actions)
    meta.update({"removed_bytes": dg.MetadataValue.int(int(out.actions["bytes"].sum() or 0)),
                 "free_fraction_before": dg.MetadataValue.float(round(out.free_before, 4)),
                 "free_fraction_after": dg.MetadataValue.float(round(out.free_after, 4)),
                 "disk_guard_triggered": dg.MetadataValue.bool(out.guard_triggered),
                 "delivery_versions_kept": dg.MetadataValue.int(out.keep_versions)})  # fmt: skip
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(
        check_name="deliveries_within_retention",
        passed=out.max_versions_left <= out.keep_versions,
        metadata={"max_versions_left": out.max_versions_left, "allowed": out.keep_versions},
    )
    yield dg.AssetCheckResult(check_name="no_orphan_temp_files", passed=out.orphans_left == 0,
                              metadata={"orphans_left": out.orphans_left})  # fmt: skip
    yield dg.AssetCheckResult(check_name="disk_free", passed=out.free_after >= spec.disk.min_free_fraction,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"free_fraction": round(out.free_after, 4),
                                        "min_free_fraction": spec.disk.min_free_fraction})  # fmt: skip


maintenance_assets = [lake_retention]
