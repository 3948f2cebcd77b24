"""The disk guard: when free space on the lake's disk falls under spec/retention.yaml's threshold, run
`lake_retention` (at most once an hour; it cleans harder while space is low)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from lake_assets.storage.lake import Lake
from lake_assets.storage.retention import free_fraction, load_retention


@dg.sensor(
    target=dg.AssetSelection.assets("lake_retention"),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs lake_retention when free space on the lake's disk is under disk.min_free_fraction.",
)
def disk_guard_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    spec = load_retention()
    free = free_fraction(Lake())
    if free >= spec.disk.min_free_fraction:
        return dg.SkipReason(f"free {free:.1%} of the lake's disk, threshold {spec.disk.min_free_fraction:.0%}")
    hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    return dg.RunRequest(run_key=f"disk-guard-{hour}", tags={"qlake/disk_free": f"{free:.4f}"})
