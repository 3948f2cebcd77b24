"""The daily refresh of the current month from the vendors, and the automation sensor that carries it downstream."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from lake_assets.months import month_key
from lake_assets.partitions import instrument_month_key, instrument_month_partitions
from lake_assets.specs import universe

refresh_current_month_job = dg.define_asset_job(
    "refresh_current_month",
    selection=dg.AssetSelection.groups("raw"),
    partitions_def=instrument_month_partitions,
    description="Re-ingest the current month of every live instrument; automation carries it downstream.",
)


def live_partition_keys(now: datetime) -> tuple[list[str], list[str]]:
    """Current-month partitions of instruments still live (no end date, already started): (existing, not yet
    loaded). A month that began after the code location loaded has no partition until the location reloads."""
    month = month_key(now)
    existing = set(instrument_month_partitions.get_partition_keys())
    live = [i for i in universe().instruments if i.end is None and i.start <= now.date()]
    wanted = [instrument_month_key(i.id, month) for i in live]
    return [k for k in wanted if k in existing], [k for k in wanted if k not in existing]


@dg.schedule(
    job=refresh_current_month_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    now = context.scheduled_execution_time or datetime.now(UTC)
    day = now.strftime("%Y-%m-%d")
    keys, not_loaded = live_partition_keys(now)
    if not_loaded:
        context.log.warning(f"{len(not_loaded)} current-month partitions ({', '.join(not_loaded[:3])}...) do not exist "
                            "yet: reload the code location to add the new month")  # fmt: skip
    if not keys:
        return dg.SkipReason("no live instrument has a partition for the current month; reload the code location")
    return [dg.RunRequest(run_key=f"{key}:{day}", partition_key=key) for key in keys]


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Eager automation over every partition that waits for blocking checks: a refresh of any month of "
    "any instrument flows from raw down to reports, to exactly the partitions that read it.",
)
