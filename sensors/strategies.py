"""Keeps the dynamic `strategy` partitions equal to spec/strategies/*.json + blueprints.jsonl and requests
`backtests` + `walkforward` for every new or changed strategy.

The cursor maps each strategy key to the content hash it was last requested with, and run keys carry that hash, so
a restart with the saved cursor requests nothing twice and even a lost cursor cannot double-run an unchanged one.
"""

from __future__ import annotations

import json

import dagster as dg

from lake_assets.backtests.runner import strategy_catalog
from lake_assets.backtests.strategy_spec import load_strategies
from resources.lake import LakeResource

STRATEGY_PARTITIONS = "strategy"
TARGET = ("backtests", "walkforward")


def current_strategies(lake: LakeResource) -> dict[str, str]:
    """Every strategy key -> content hash, from the spec folder and the lake's blueprints.jsonl."""
    from lake_assets.discovery.blueprints import load_blueprints

    return strategy_catalog(load_strategies(), list(load_blueprints(lake.lake()).values()))


def strategy_changes(
    existing: set[str], wanted: dict[str, str], seen: dict[str, str]
) -> tuple[list[str], list[str], list[str]]:
    """(partitions to add, partitions to delete, keys to run: new or with a hash other than the one last run)."""
    add = [k for k in wanted if k not in existing]
    delete = sorted(existing - set(wanted))
    run = [k for k, h in wanted.items() if seen.get(k) != h]
    return add, delete, run


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=list(TARGET),
    description="strategy partitions = JSON specs + blueprints; backtest and walk-forward new or changed ones",
)
def strategy_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    wanted = current_strategies(lake)
    existing = set(context.instance.get_dynamic_partitions(STRATEGY_PARTITIONS))
    add, delete, run = strategy_changes(existing, wanted, seen)
    if not (add or delete or run):
        return dg.SkipReason(f"{len(wanted)} strategies, none new or changed")
    reqs: list[dg.DynamicPartitionsRequest] = []
    if add:
        reqs.append(dg.AddDynamicPartitionsRequest(STRATEGY_PARTITIONS, add))
    if delete:
        reqs.append(dg.DeleteDynamicPartitionsRequest(STRATEGY_PARTITIONS, delete))
    runs = [
        dg.RunRequest(run_key=f"{k}:{wanted[k]}", partition_key=k, asset_selection=[dg.AssetKey(a) for a in TARGET])
        for k in run
    ]
    cursor = {k: h for k, h in wanted.items()}  # vanished keys are forgotten: if they return, they run again
    return dg.SensorResult(
        run_requests=runs, dynamic_partitions_requests=reqs, cursor=json.dumps(cursor, sort_keys=True)
    )
