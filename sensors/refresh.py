"""The daily refresh of the current month from the vendors, and the automation sensor that carries it downstream."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from lake_assets.partitions import instrument_month_partitions, multi_key
from lake_assets.raw.ingest import month_key
from lake_assets.specs import universe

refresh_current_month_job = dg.define_asset_job(
    "refresh_current_month",
    selection=dg.AssetSelection.groups("raw"),
    partitions_def=instrument_month_partitions,
    description="Re-ingest the current month of every live instrument; automation carries it downstream.",
)


def live_partition_keys(now: datetime) -> list[str]:
    """Current-month partitions of instruments still live (no end date, already started)."""
    month = month_key(now)
    return [multi_key(i.id, month) for i in universe().instruments if i.end is None and i.start <= now.date()]


@dg.schedule(
    job=refresh_current_month_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    now = context.scheduled_execution_time or datetime.now(UTC)
    day = now.strftime("%Y-%m-%d")
    return [dg.RunRequest(run_key=f"{key}:{day}", partition_key=key) for key in live_partition_keys(now)]


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Eager automation that waits for blocking checks: a refresh flows from raw down to reports.",
)
