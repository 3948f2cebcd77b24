"""`paper_sensor`: a paper-trading tick whenever a `bars` partition of the paper session's instruments has a new
materialization (decided from the instance's records: the latest storage id per partition, not the sensor's memory;
the cursor only remembers which it has seen)."""

from __future__ import annotations

import json

import dagster as dg

from lake_assets.paper.assets import paper_job
from lake_assets.paper.spec import load_paper_spec


@dg.sensor(job=paper_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="runs paper_trading when bars of the paper session's instruments are materialized")  # fmt: skip
def paper_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    instruments = set(load_paper_spec().instruments)
    latest = context.instance.get_latest_storage_id_by_partition(
        dg.AssetKey("bars"), dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    mine = {p: sid for p, sid in latest.items() if p.split("|", 1)[0] in instruments}
    seen = json.loads(context.cursor) if context.cursor else {}
    new = {p: sid for p, sid in mine.items() if seen.get(p) != sid}
    if not new:
        return dg.SkipReason(f"no new bars for {len(instruments)} paper instruments")
    run_key = f"paper:{max(new.values())}"
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key)], cursor=json.dumps(mine, sort_keys=True))
