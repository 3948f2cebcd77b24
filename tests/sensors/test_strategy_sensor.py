"""strategy_sensor evaluated as the daemon does: partitions follow specs + blueprints.jsonl, runs are requested for
new or changed strategies only, and a restart with the saved cursor requests nothing twice."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import make_blueprint  # noqa: E402

from lake_assets.discovery.blueprints import blueprints_path, write_blueprints_jsonl  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from resources import LakeResource  # noqa: E402
from sensors.strategies import strategy_sensor  # noqa: E402


def evaluate(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": LakeResource()})
    return strategy_sensor(ctx)


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for req in result.dynamic_partitions_requests or []:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)


def test_strategy_sensor_tracks_specs_and_blueprints(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_copy = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec_copy)
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec_copy))
    json_keys = sorted(f"json.{p.stem}" for p in (spec_copy / "strategies").glob("*.json"))
    bp1 = make_blueprint("BTCUSDT-PERP", "a")
    write_blueprints_jsonl([bp1], blueprints_path(Lake()))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("strategy", ["json.deleted_strategy"])

    first = evaluate(instance, None)
    assert isinstance(first, dg.SensorResult)
    adds = [r for r in first.dynamic_partitions_requests or [] if isinstance(r, dg.AddDynamicPartitionsRequest)]
    deletes = [r for r in first.dynamic_partitions_requests or [] if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
    assert [sorted(r.partition_keys) for r in adds] == [sorted([*json_keys, bp1.blueprint_id])]
    assert [list(r.partition_keys) for r in deletes] == [["json.deleted_strategy"]]
    requested = {r.partition_key for r in first.run_requests or []}
    assert requested == {*json_keys, bp1.blueprint_id}
    assert all({k.to_user_string() for k in r.asset_selection or []} == {"backtests", "walkforward"}
               for r in first.run_requests or [])  # fmt: skip
    assert all(":" in (r.run_key or "") for r in first.run_requests or [])
    apply(instance, first)
    assert sorted(instance.get_dynamic_partitions("strategy")) == sorted([*json_keys, bp1.blueprint_id])

    # restart with the saved cursor: nothing new, nothing requested
    assert isinstance(evaluate(instance, first.cursor), dg.SkipReason)

    # a changed spec and a replaced blueprint: only those run; the vanished blueprint's partition goes
    rsi = spec_copy / "strategies" / "rsi_reversal.json"
    data = json.loads(rsi.read_text())
    data["exit_rules"]["stop_loss_pct"] = 4.0
    rsi.write_text(json.dumps(data))
    bp2 = make_blueprint("ETHUSDT-PERP", "a", horizon=24)
    write_blueprints_jsonl([bp2], blueprints_path(Lake()))
    second = evaluate(instance, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert {r.partition_key for r in second.run_requests or []} == {"json.rsi_reversal", bp2.blueprint_id}
    old_key = next(r.run_key for r in first.run_requests or [] if r.partition_key == "json.rsi_reversal")
    new_key = next(r.run_key for r in second.run_requests or [] if r.partition_key == "json.rsi_reversal")
    assert old_key != new_key  # the content hash is part of the run key
    apply(instance, second)
    assert bp1.blueprint_id not in instance.get_dynamic_partitions("strategy")
    assert bp2.blueprint_id in instance.get_dynamic_partitions("strategy")
    assert isinstance(evaluate(instance, second.cursor), dg.SkipReason)
