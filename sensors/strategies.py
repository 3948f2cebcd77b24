"""Keeps the dynamic `strategy` partitions equal to spec/strategies/*.json + blueprints.jsonl + the models the
leaderboard keeps (`model.<variant>`) and requests
`backtests` + `walkforward` for every strategy whose current content hash is not the one its latest materializations
were computed from.

What is materialized decides, not what this sensor once requested: each partition's materialization records the
strategy's content hash (metadata `strategy_hash`; materializations from before it existed are judged by the
`spec_hash` column of the partition's lake table), so backtests run in-process (`qlake demo`, `qlake materialize`)
count, and a sensor without a cursor on an up-to-date instance requests nothing.

Run keys are `<strategy>:<content hash>:<storage id of its latest walkforward materialization>`: a strategy whose run
is in flight (walkforward, the last asset, not yet materialized) keeps its key and is not launched twice, while one
that changes back to an older definition after a newer one ran gets a new key. The cursor is only a cache: the hash
read from each partition's latest materialization (by storage id, so only new materializations are read again) and
the run keys already requested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from lake_assets.backtests.strategies import STRATEGY_HASH, spec_errors, strategy_catalog
from lake_assets.backtests.strategy_spec import load_strategies
from lake_assets.storage.lake import Lake
from resources.lake import LakeResource
from sensors.materialized import Recorded, latest_recorded

STRATEGY_PARTITIONS = "strategy"
TARGET = ("backtests", "walkforward")
# the lake table of each target whose `spec_hash` column judges a materialization that recorded no hash
LAKE_HASH_TABLES = {"backtests": "metrics", "walkforward": "walkforward"}
CURSOR_VERSION = 2


def current_strategies(lake: LakeResource, log: Any = None) -> dict[str, str]:
    """Every strategy key -> content hash, from the spec folder and the lake's blueprints.jsonl.

    A strategy file that does not load is skipped, never fatal: `log` (a logger, if given) gets a warning naming its
    file, key and problem, and its key stays in the catalog, hashed from its error, so its `backtests` partition
    runs once and reports the error as a failed `has_data` check (the `spec_errors` view lists it too)."""
    from lake_assets.backtests.model_eval import kept_models
    from lake_assets.discovery.blueprints import load_blueprints

    specs = load_strategies()
    if log is not None:
        for key, err in spec_errors(specs).items():
            log.warning(f"strategy {key}: skipped, its spec does not load: {err}")
    store = lake.lake()
    return strategy_catalog(specs, list(load_blueprints(store).values()), kept_models(store))


def strategy_changes(
    existing: set[str], wanted: Mapping[str, str], recorded: Mapping[str, Mapping[str, str | None]]
) -> tuple[list[str], list[str], list[str]]:
    """(partitions to add, partitions to delete, keys to run: a target asset's latest materialization of the key
    is missing or recorded another hash). `recorded` maps each target asset to partition -> recorded hash."""
    add = [k for k in wanted if k not in existing]
    delete = sorted(existing - set(wanted))
    run = [k for k, h in wanted.items() if any(recorded.get(a, {}).get(k) != h for a in TARGET)]
    return add, delete, run


def lake_hash(store: Lake, asset: str, key: str) -> str | None:
    """The single `spec_hash` of a strategy partition's lake table, or None (no table, none or several hashes)."""
    try:
        df = store.read("backtests", LAKE_HASH_TABLES[asset], [{"strategy": key}], columns=["spec_hash"])
    except (ValueError, OSError):  # a key that is not a safe path, an unreadable file
        return None
    if "spec_hash" not in df.columns:
        return None
    hashes = df["spec_hash"].drop_nulls().unique()
    return str(hashes[0]) if hashes.len() == 1 else None


def materialized_hashes(
    instance: dg.DagsterInstance, store: Lake, asset: str, cache: Mapping[str, Any] | None = None
) -> Recorded:
    """Each partition of `asset` -> (storage id, recorded strategy hash) of its latest materialization; partitions
    materialized before the hash was recorded fall back to the `spec_hash` in their lake table."""
    return latest_recorded(instance, asset, STRATEGY_HASH, cache, lambda partition: lake_hash(store, asset, partition))


def run_key(key: str, content_hash: str, last: tuple[int, str | None] | None) -> str:
    """Content-derived run key: the strategy, its hash and the walkforward materialization the run supersedes."""
    return f"{key}:{content_hash}:{last[0] if last else 0}"


def _read_cursor(cursor: str | None) -> dict[str, Any]:
    try:
        state = json.loads(cursor) if cursor else {}
    except ValueError:
        state = {}
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        return {"v": CURSOR_VERSION, "materialized": {}, "requested": []}  # no cursor, or one of the old format
    return state


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=list(TARGET),
    description="strategy partitions = JSON specs + blueprints; backtest and walk-forward the strategies whose "
    "materializations were not computed from their current definition",
)
def strategy_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    state = _read_cursor(context.cursor)
    store = lake.lake()
    wanted = current_strategies(lake, context.log)
    existing = set(context.instance.get_dynamic_partitions(STRATEGY_PARTITIONS))
    recorded = {a: materialized_hashes(context.instance, store, a, state["materialized"].get(a)) for a in TARGET}
    add, delete, run = strategy_changes(
        existing, wanted, {a: {p: h for p, (_, h) in r.items()} for a, r in recorded.items()}
    )
    keys = {k: run_key(k, wanted[k], recorded[TARGET[-1]].get(k)) for k in run}
    already = set(state["requested"])
    runs = [
        dg.RunRequest(
            run_key=keys[k],
            partition_key=k,
            asset_selection=[dg.AssetKey(a) for a in TARGET if recorded[a].get(k, (0, None))[1] != wanted[k]],
        )
        for k in run
        if keys[k] not in already  # requested on an earlier tick and still running (the daemon would skip it too)
    ]
    reqs: list[dg.DynamicPartitionsRequest] = []
    if add:
        reqs.append(dg.AddDynamicPartitionsRequest(STRATEGY_PARTITIONS, add))
    if delete:
        reqs.append(dg.DeleteDynamicPartitionsRequest(STRATEGY_PARTITIONS, delete))
    cursor = {
        "v": CURSOR_VERSION,
        "materialized": {a: {p: [sid, h] for p, (sid, h) in sorted(r.items())} for a, r in recorded.items()},
        "requested": sorted(keys.values()),  # only keys still waiting for their materializations
    }
    skip = None
    if not (add or delete or runs):
        pending = f", {len(run)} awaiting runs already requested" if run else ""
        skip = f"{len(wanted)} strategies, none new or changed{pending}"
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=reqs,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=skip,
    )
