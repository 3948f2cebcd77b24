"""Automation scenarios run in a fresh process (partitions come from the universe when definitions load, as after a
code location reload). Usage: python automation_scenario.py STEP STATE_DIR; prints one JSON line of what happened.

The process uses the instance in $DAGSTER_HOME and the spec in $QLAKE_SPEC_DIR; the automation cursor is kept in
STATE_DIR/cursor between processes, as the automation sensor keeps it between ticks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._serdes import deserialize_value, serialize_value

from lake_assets.cli import PlannedRun, _dagster_home
from lake_assets.definitions import all_assets, defs
from lake_assets.partitions import contiguous_ranges, instrument_month_key
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT

# the layers up to the event registry: what a refresh of one month must reach through automation alone
SCOPE = ["raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades", "bars", "bars_1h", "bars_1d", "features",
         "window_embeddings", "context_features", "market_context", "event_registry"]  # fmt: skip
SELECTION = dg.AssetSelection.assets(*SCOPE)


def materialize(instance: dg.DagsterInstance, key: str, partitions: list[str] | None) -> None:
    asset = next(a for a in all_assets if a.key.to_user_string() == key)
    ordered = list(asset.partitions_def.get_partition_keys()) if asset.partitions_def else []
    ranges = contiguous_ranges(partitions, ordered) if partitions else [(None, None)]
    for lo, hi in ranges:
        result = dg.materialize(
            all_assets,
            selection=dg.AssetSelection.assets(key),
            instance=instance,
            resources=defs.resources,
            tags=PlannedRun(key, [key], lo, hi).run_tags(),
        )
        assert result.success, key


def evaluate(instance: dg.DagsterInstance, state: Path) -> tuple[dict[str, list[str]], Any]:
    cursor_file = state / "cursor"
    cursor = deserialize_value(cursor_file.read_text()) if cursor_file.exists() else None
    res = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=SELECTION, cursor=cursor)
    cursor_file.write_text(serialize_value(res.cursor))
    requested = {k: sorted(res.get_requested_partitions(dg.AssetKey(k))) for k in SCOPE}
    return {k: v for k, v in requested.items() if v}, res


def run_to_fixpoint(instance: dg.DagsterInstance, state: Path, max_ticks: int = 8) -> list[dict[str, list[str]]]:
    """Tick, run what was requested (in graph order), tick again, until a tick requests nothing."""
    ticks = []
    for _ in range(max_ticks):
        requested, _res = evaluate(instance, state)
        ticks.append(requested)
        if not requested:
            break
        for key in SCOPE:
            if key in requested:
                materialize(instance, key, requested[key])
    return ticks


def main(step: str, state: Path) -> dict[str, Any]:
    _dagster_home()
    instance = dg.DagsterInstance.get()
    if step == "load":  # the whole scope for the universe, then the sensor's first (baseline) tick
        for key in SCOPE:
            asset = next(a for a in all_assets if a.key.to_user_string() == key)
            materialize(instance, key, list(asset.partitions_def.get_partition_keys()))
        first, _ = evaluate(instance, state)
        second, _ = evaluate(instance, state)
        return {"first_tick": first, "second_tick": second}
    if step == "correct":  # a corrected delivery of a past month lands in raw (as the landing job would write it)
        key = instrument_month_key("SPX", "2017-05")
        dims = {INSTRUMENT: "SPX", "month": "2017-05"}
        before = Lake().read("cleaned", "bars", [dims])
        materialize(instance, "raw_ohlcv", [key])
        ticks = run_to_fixpoint(instance, state)
        after = Lake().read("cleaned", "bars", [dims])
        registry = instance.fetch_materializations(dg.AssetKey("event_registry"), limit=1).records
        return {"ticks": ticks, "bars_rows": [before.height, after.height],
                "event_registry_updated_after_raw": bool(registry)}  # fmt: skip
    if step == "spec_sensor":  # the spec sensor's tick, what the daemon does with it, and the next tick
        from sensors.specs import spec_sensor

        result = spec_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(result, dg.SensorResult), result
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
        stale = sorted(str(e.partition) for e in result.asset_events if not e.passed)
        requested = sorted(str(r.partition_key) for r in result.run_requests or [])
        key = dg.AssetCheckKey(dg.AssetKey("event_registry"), "spec_current")
        shown = {rec.event.dagster_event.event_specific_data.partition: rec.status.value
                 for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=200)[::-1]
                 if rec.event and rec.event.dagster_event}  # fmt: skip
        failed_in_ui = sorted(p for p, status in shown.items() if status == "FAILED")
        materialize(instance, "event_registry", requested)
        again = spec_sensor(dg.build_sensor_context(instance=instance))
        return {"requested": requested, "stale": stale, "failed_in_ui": failed_in_ui,
                "settled": isinstance(again, dg.SkipReason)}  # fmt: skip
    if step == "tick":
        requested, _ = evaluate(instance, state)
        return {"requested": requested}
    raise SystemExit(f"unknown step {step!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
