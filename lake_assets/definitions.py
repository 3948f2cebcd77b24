"""The one place the asset graph is assembled: assets, checks, resources, sensors and schedules."""

from __future__ import annotations

import dagster as dg

from lake_assets.asset_metadata import with_column_schema
from lake_assets.backtests.assets import backtest_assets
from lake_assets.cleaned.assets import cleaned_assets
from lake_assets.discovery.assets import discovery_assets
from lake_assets.events.assets import event_assets
from lake_assets.features.assets import feature_assets
from lake_assets.maintenance.assets import maintenance_assets
from lake_assets.models.assets import model_assets
from lake_assets.paper.assets import paper_assets, paper_job
from lake_assets.raw.assets import raw_assets
from lake_assets.reports.assets import report_assets
from lake_assets.workbench.assets import workbench_jobs
from resources import resources_for
from sensors.landing import landing_job, landing_sensor
from sensors.maintenance import disk_guard_sensor
from sensors.paper import paper_sensor
from sensors.refresh import automation_sensor, daily_refresh_schedule, refresh_current_month_job
from sensors.specs import spec_sensor
from sensors.strategies import strategy_sensor

all_assets: list[dg.AssetsDefinition] = [
    with_column_schema(a)  # each lake asset's column schema, from the data dictionary (lake_assets/tables.py)
    for a in [
        *raw_assets,
        *cleaned_assets,
        *feature_assets,
        *event_assets,
        *discovery_assets,
        *model_assets,
        *backtest_assets,
        *report_assets,
        *maintenance_assets,
        *paper_assets,
    ]
]

defs = dg.Definitions(
    assets=all_assets,
    jobs=[refresh_current_month_job, landing_job, *workbench_jobs, paper_job],
    schedules=[daily_refresh_schedule],
    sensors=[landing_sensor, automation_sensor, strategy_sensor, spec_sensor, disk_guard_sensor, paper_sensor],
    resources=resources_for(),
)
