"""strategy_sensor evaluated as the daemon does: partitions follow specs + blueprints.jsonl, and runs are requested for
the strategies whose latest `backtests` / `walkforward` materializations were not computed from their current
content hash (missing, changed, new) - decided from the instance, so a sensor without a cursor on an up-to-date
instance (`qlake demo` materializes in-process) requests nothing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import build_strategy_lake, make_blueprint  # noqa: E402

from lake_assets import cli  # noqa: E402
from lake_assets.backtests.strategies import STRATEGY_HASH  # noqa: E402
from lake_assets.definitions import all_assets  # noqa: E402
from lake_assets.discovery.blueprints import blueprints_path, write_blueprints_jsonl  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from resources import LakeResource, MarketDataResource, WarehouseResource  # noqa: E402
from sensors.strategies import TARGET, current_strategies, strategy_sensor  # noqa: E402

JSON_KEY = "json.rsi_reversal"


def evaluate(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": LakeResource()})
    result = strategy_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for req in result.dynamic_partitions_requests or []:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)


def requested(result: dg.SensorResult) -> dict[str, set[str]]:
    """partition -> assets of each run request."""
    return {str(r.partition_key): {k.to_user_string() for k in r.asset_selection or []}
            for r in result.run_requests or []}  # fmt: skip


def run_keys(result: dg.SensorResult) -> list[str]:
    return sorted(r.run_key or "" for r in result.run_requests or [])


def copy_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: tuple[str, ...] | None = None) -> Path:
    spec_copy = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec_copy)
    if keep is not None:
        for p in (spec_copy / "strategies").glob("*.json"):
            if p.stem not in keep:
                p.unlink()
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec_copy))
    return spec_copy


def edit_json(path: Path, **exit_rules: float) -> None:
    data = json.loads(path.read_text())
    data["exit_rules"].update(exit_rules)
    path.write_text(json.dumps(data))


def test_strategy_sensor_tracks_specs_and_blueprints(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_copy = copy_spec(tmp_path, monkeypatch)
    json_keys = sorted(f"json.{p.stem}" for p in (spec_copy / "strategies").glob("*.json"))
    bp1 = make_blueprint("BTCUSDT-PERP", "a")
    write_blueprints_jsonl([bp1], blueprints_path(Lake()))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("strategy", ["json.deleted_strategy"])

    first = evaluate(instance, None)
    adds = [r for r in first.dynamic_partitions_requests or [] if isinstance(r, dg.AddDynamicPartitionsRequest)]
    deletes = [r for r in first.dynamic_partitions_requests or [] if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert [sorted(r.partition_keys) for r in adds] == [sorted([*json_keys, bp1.blueprint_id])]
    assert [list(r.partition_keys) for r in deletes] == [["json.deleted_strategy"]]
    assert requested(first) == {k: set(TARGET) for k in [*json_keys, bp1.blueprint_id]}
    assert all(":" in (r.run_key or "") for r in first.run_requests or [])
    apply(instance, first)
    assert sorted(instance.get_dynamic_partitions("strategy")) == sorted([*json_keys, bp1.blueprint_id])

    # the saved cursor remembers what was requested and not yet materialized: nothing is requested twice
    again = evaluate(instance, first.cursor)
    assert not again.run_requests and again.skip_reason is not None
    # without it the same run keys come back (content-derived; the daemon skips run keys it already launched)
    assert run_keys(evaluate(instance, None)) == run_keys(first)

    # a changed spec and a replaced blueprint get new run keys; the vanished blueprint's partition goes
    edit_json(spec_copy / "strategies" / "rsi_reversal.json", stop_loss_pct=4.0)
    bp2 = make_blueprint("ETHUSDT-PERP", "a", horizon=24)
    write_blueprints_jsonl([bp2], blueprints_path(Lake()))
    second = evaluate(instance, first.cursor)
    assert set(requested(second)) == {JSON_KEY, bp2.blueprint_id}  # the others were requested already
    old_key = next(r.run_key for r in first.run_requests or [] if r.partition_key == JSON_KEY)
    new_key = next(r.run_key for r in second.run_requests or [] if r.partition_key == JSON_KEY)
    assert old_key != new_key  # the content hash is part of the run key
    apply(instance, second)
    assert bp1.blueprint_id not in instance.get_dynamic_partitions("strategy")
    assert bp2.blueprint_id in instance.get_dynamic_partitions("strategy")
    assert not evaluate(instance, second.cursor).run_requests


def materialize(instance: dg.DagsterInstance, keys: list[str]) -> dg.ExecuteInProcessResult:
    """backtests + walkforward in-process over `keys` (as `qlake demo` does), not through the sensor."""
    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(*TARGET),
        instance=instance,
        resources={"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": MarketDataResource()},
        tags=cli.PlannedRun("test", list(TARGET), keys[0], keys[-1]).run_tags(),
        raise_on_error=False,
    )


def test_sensor_decides_from_materialized_hashes(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QLAKE_WORKERS", "1")
    spec_copy = copy_spec(tmp_path, monkeypatch, keep=("rsi_reversal",))
    lake = Lake()
    bp_id = build_strategy_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    keys = [JSON_KEY, bp_id]
    cli.sync_strategies(instance)
    assert sorted(instance.get_dynamic_partitions("strategy")) == sorted(keys)
    before = evaluate(instance, None)
    assert set(requested(before)) == set(keys)

    result = materialize(instance, list(instance.get_dynamic_partitions("strategy")))
    assert result.success
    hashes = current_strategies(LakeResource())
    recorded = {
        (m.asset_key.to_user_string(), m.partition): m.metadata[STRATEGY_HASH].value
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }
    assert recorded == {(a, k): hashes[k] for a in TARGET for k in keys}

    # (a) a sensor with no cursor (first `dagster dev` after `qlake demo`) and one with the cursor saved before the
    # runs: everything is materialized for the current hashes, nothing is requested
    fresh = evaluate(instance, None)
    assert not fresh.run_requests and not fresh.dynamic_partitions_requests and fresh.skip_reason is not None
    assert not evaluate(instance, before.cursor).run_requests
    assert not evaluate(instance, fresh.cursor).run_requests

    # (b) one changed spec: exactly that partition, both assets, under a new run key
    rsi = spec_copy / "strategies" / "rsi_reversal.json"
    original = rsi.read_text()
    edit_json(rsi, stop_loss_pct=4.0)
    changed = evaluate(instance, fresh.cursor)
    assert requested(changed) == {JSON_KEY: set(TARGET)}
    assert not changed.dynamic_partitions_requests
    [req] = changed.run_requests or []
    assert req.run_key != next(r.run_key for r in before.run_requests or [] if r.partition_key == JSON_KEY)
    # mid-run (backtests materialized for the new hash, walkforward not yet): walkforward is what is left, under
    # the same run key, so the daemon does not launch it twice; the cursor knows it was requested
    edited_hash = current_strategies(LakeResource())[JSON_KEY]
    mark = {STRATEGY_HASH: edited_hash}
    instance.report_runless_asset_event(dg.AssetMaterialization("backtests", partition=JSON_KEY, metadata=mark))
    mid = evaluate(instance, None)
    assert requested(mid) == {JSON_KEY: {"walkforward"}}
    assert [r.run_key for r in mid.run_requests or []] == [req.run_key]
    assert not evaluate(instance, changed.cursor).run_requests
    # back to the original definition: walkforward still has it, backtests is re-run
    rsi.write_text(original)
    back = evaluate(instance, changed.cursor)
    assert requested(back) == {JSON_KEY: {"backtests"}}
    mark = {STRATEGY_HASH: hashes[JSON_KEY]}
    instance.report_runless_asset_event(dg.AssetMaterialization("backtests", partition=JSON_KEY, metadata=mark))
    assert not evaluate(instance, back.cursor).run_requests

    # (c) a new strategy: its partition is added and only it is requested
    shutil.copy(PROJECT_ROOT / "spec" / "strategies" / "sma_crossover.json", spec_copy / "strategies")
    added = evaluate(instance, None)
    assert requested(added) == {"json.sma_crossover": set(TARGET)}
    assert [list(r.partition_keys) for r in added.dynamic_partitions_requests or []] == [["json.sma_crossover"]]
    (spec_copy / "strategies" / "sma_crossover.json").unlink()

    # a materialization that recorded no hash (made before it was recorded) is judged by its lake table's spec_hash
    instance.report_runless_asset_event(dg.AssetMaterialization("walkforward", partition=bp_id))
    assert not evaluate(instance, None).run_requests
    lake.write(pl.DataFrame(), "backtests", "walkforward", {"strategy": bp_id})  # no table: no evidence of the hash
    instance.report_runless_asset_event(dg.AssetMaterialization("walkforward", partition=bp_id))
    stale = evaluate(instance, fresh.cursor)
    assert requested(stale) == {bp_id: {"walkforward"}}  # backtests is current: only walkforward re-runs


def test_a_bad_strategy_file_is_skipped_with_a_warning(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One invalid JSON next to good specs: the sensor still adds and requests the good strategies, warns about the
    bad file (naming it), and gives it a partition so its backtests can report the error; the CLI's sync does not
    fail either."""
    spec_copy = copy_spec(tmp_path, monkeypatch, keep=("rsi_reversal", "sma_crossover"))
    (spec_copy / "strategies" / "broken.json").write_text('{"name": "broken",\n "description": }')
    instance = dg.DagsterInstance.ephemeral()
    result = evaluate(instance, None)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]  # the sensor's log
    good = {"json.rsi_reversal", "json.sma_crossover"}
    assert good <= set(requested(result))
    assert requested(result)["json.broken"] == set(TARGET)  # run once, to report the error on its partition
    added = {k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys}
    assert added == good | {"json.broken"}
    assert any("json.broken" in w and "broken.json" in w and "not valid JSON" in w for w in warnings), warnings

    # an unchanged bad file is not requested again; a fixed one is (its hash changes)
    apply(instance, result)
    assert "json.broken" not in requested(evaluate(instance, result.cursor))
    assert cli.sync_strategies(instance) == sorted(good | {"json.broken"})
    (spec_copy / "strategies" / "broken.json").unlink()
    assert cli.sync_strategies(instance) == sorted(good)
    assert sorted(instance.get_dynamic_partitions("strategy")) == sorted(good)
