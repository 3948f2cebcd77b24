"""`paper_trading` under Dagster over a small lake (three synthetic perps, one month): the latest week replayed, the
audit tables queryable in SQL, a second run with no new bars adds nothing; `paper_sensor` asks for a run when bars of
the session's instruments are materialized."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backtests"))
from perp_lake import perp, write_perp_lake  # noqa: E402

from lake_assets.paper.assets import paper_trading  # noqa: E402
from lake_assets.paper.spec import load_paper_spec  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.storage.warehouse import query  # noqa: E402
from resources import LakeResource, WarehouseResource  # noqa: E402
from sensors.paper import paper_sensor  # noqa: E402


def test_paper_trading_replays_the_latest_week_into_queryable_audit_tables(data_root: Path) -> None:
    lake = Lake()
    pairs = [perp(11, "BTC", 60_000.0), perp(22, "ETH", 3_000.0), perp(33, "SOL", 150.0)]
    assert [p[0].id for p in pairs] == list(load_paper_spec().instruments)
    write_perp_lake(lake, pairs, "2026-01", "2026-01")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"lake": LakeResource(), "warehouse": WarehouseResource()}
    result = dg.materialize([paper_trading], instance=instance, resources=resources)
    assert result.success
    [mat] = [e.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["bars_processed"].value == 7 * 288
    assert all(e.passed for e in result.get_asset_check_evaluations())
    overview = query("select * from paper_overview")
    assert overview.height == 3 and overview["equity"].is_not_null().all()
    fills = query("select count(*) n, count(distinct fill_id) k from paper_fills").row(0)
    assert fills[0] == fills[1] > 0
    assert query("select count(*) from paper_signals where decision in ('long', 'short')").item() > 0
    assert query("select count(*) from paper_telemetry").item() == 7 * 288
    assert set(query("select distinct session from paper_pnl")["session"]) == {"e3_paper"}
    again = dg.materialize([paper_trading], instance=instance, resources=resources)
    [mat2] = [e.materialization for e in again.get_asset_materialization_events()]
    assert mat2.metadata["bars_processed"].value == 0
    assert query("select count(*) from paper_fills").item() == fills[0]


def test_paper_sensor_runs_on_new_bars_of_its_instruments() -> None:
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance)
    assert isinstance(paper_sensor(ctx), dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("bars", partition="SPX|2017-01"))
    assert isinstance(paper_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("bars", partition="BTCUSDT-PERP|2026-01"))
    out = paper_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(out, dg.SensorResult) and len(out.run_requests or []) == 1
    # once paper_trading has materialized after those bars, nothing to do (decided from the event log)
    instance.report_runless_asset_event(dg.AssetMaterialization("paper_trading"))
    assert isinstance(paper_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    instance.report_runless_asset_event(dg.AssetMaterialization("bars", partition="ETHUSDT-PERP|2026-02"))
    again = paper_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(again, dg.SensorResult) and again.run_requests[0].run_key != out.run_requests[0].run_key

