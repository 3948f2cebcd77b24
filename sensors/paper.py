"""`paper_sensor`: a paper-trading run whenever a `bars` partition of the paper session's instruments was
materialized after `paper_trading`'s latest materialization. Decided from what is materialized (storage ids in the
instance's event log), not from the sensor's memory, so `qlake demo` followed by `dagster dev` launches nothing; the
run key (the newest bars storage id) keeps a tick from requesting the same run twice while it is in flight."""

from __future__ import annotations

import dagster as dg

from lake_assets.paper.assets import paper_job
from lake_assets.paper.spec import load_paper_spec


def new_bars(instance: dg.DagsterInstance) -> dict[str, int]:
    """Bars partitions of the session's instruments materialized after paper_trading last was -> storage id."""
    instruments = set(load_paper_spec().instruments)
    latest = instance.get_latest_storage_id_by_partition(dg.AssetKey("bars"), dg.DagsterEventType.ASSET_MATERIALIZATION)
    records = instance.fetch_materializations(dg.AssetKey("paper_trading"), limit=1).records
    done = records[0].storage_id if records else -1
    return {p: sid for p, sid in latest.items() if p.split("|", 1)[0] in instruments and sid > done}


@dg.sensor(job=paper_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="runs paper_trading when bars of the paper session's instruments are newer than its last run")
def paper_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    new = new_bars(context.instance)
    if not new:
        return dg.SkipReason("no bars of the paper instruments newer than paper_trading's last materialization")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"paper:{max(new.values())}")])
