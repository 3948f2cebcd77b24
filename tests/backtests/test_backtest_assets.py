"""`backtests`, `walkforward` and `research_report` under Dagster on an ephemeral instance, over a small lake written
directly (two perps x three weeks of 5m bars, funding, one event type) with one JSON strategy and one hand-made
blueprint as `strategy` partitions; then the "no data" failure path."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import STRATEGY_DAYS, STRATEGY_EVENT, STRATEGY_PERPS, build_strategy_lake, make_blueprint  # noqa: E402

from lake_assets import cli, tables  # noqa: E402
from lake_assets.definitions import all_assets  # noqa: E402
from lake_assets.discovery.blueprints import blueprints_path, write_blueprints_jsonl  # noqa: E402
from lake_assets.storage.check_failures import read_failures  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.storage.warehouse import query  # noqa: E402
from resources import LakeResource, MarketDataResource, WarehouseResource  # noqa: E402

PERPS, DAYS = STRATEGY_PERPS, STRATEGY_DAYS
JSON_KEY = "json.rsi_reversal"
EVENT = STRATEGY_EVENT


def materialize(
    instance: dg.DagsterInstance, assets: tuple[str, ...], keys: list[str] | None
) -> dg.ExecuteInProcessResult:
    tags = cli.PlannedRun("test", list(assets), keys[0], keys[-1]).run_tags() if keys else {}
    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(*assets),
        instance=instance,
        resources={"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": MarketDataResource()},
        tags=tags,
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """(asset, check) -> evaluation; partitioned checks as (asset, check@partition)."""
    return {(e.asset_key.to_user_string(), e.check_name + (f"@{e.partition}" if e.partition else "")): e
            for e in result.get_asset_check_evaluations()}  # fmt: skip


def test_backtests_walkforward_and_report_end_to_end(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = Lake()
    bp_id = build_strategy_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    keys = [JSON_KEY, bp_id]
    instance.add_dynamic_partitions("strategy", keys)

    result = materialize(instance, ("backtests", "walkforward"), keys)
    assert result.success
    evals = checks(result)
    # every check of every strategy partition, each on its own partition
    assert set(evals) == {(a, f"{c}@{k}") for k in keys for a, c in (
        ("backtests", "accounting_identity"), ("backtests", "has_data"), ("backtests", "has_trades"),
        ("backtests", "no_lookahead"),
        ("walkforward", "statistics_valid"))}  # fmt: skip
    assert all(e.passed for e in evals.values()), {k: e.metadata for k, e in evals.items() if not e.passed}
    mats = {str(e.materialization.partition): e.materialization for e in result.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() == "backtests"}  # fmt: skip
    assert set(mats) == set(keys)
    for key, mat in mats.items():  # each partition's metrics are its own strategy's
        other = next(k for k in keys if k != key)
        assert key in mat.metadata["metrics"].value and other not in mat.metadata["metrics"].value
        assert mat.metadata["published"].value is True

    # tables are partitioned by strategy in the lake and exposed as warehouse views
    for table in ("trades", "orders", "fills", "equity", "risk_events", "metrics", "walkforward", "walkforward_folds"):
        for key in keys:
            assert lake.exists("backtests", table, {"strategy": key}), (table, key)
    metrics = query("select * from backtest_metrics order by strategy")
    assert metrics["strategy"].to_list() == sorted(keys)
    assert metrics["identity_ok"].all()
    json_row = metrics.filter(pl.col("strategy") == JSON_KEY).row(0, named=True)
    assert json_row["book"] == "perp" and json_row["instruments"] == ",".join(PERPS)
    assert json_row["execution"] == "orders"  # rsi_reversal has a stop-loss: bracket orders through run_orders
    assert json_row["n_trades"] > 0 and json_row["funding_paid"] != 0.0  # perps pay funding while held
    bp_row = metrics.filter(pl.col("strategy") == bp_id).row(0, named=True)
    assert bp_row["n_events"] > bp_row["n_event_entries"] > 0  # state filter and gaps remove some events
    # identity recomputed in SQL from the views: final equity = init + sum gross PnL - fees - funding
    ident = query(
        "select m.strategy, m.final_equity, m.init_cash + t.gross - f.fees - m.funding_paid as rebuilt "
        "from backtest_metrics m "
        "join (select strategy, sum(gross_pnl) gross from trades group by 1) t using (strategy) "
        "join (select strategy, sum(fee) fees from fills group by 1) f using (strategy)"
    )
    for row in ident.iter_rows(named=True):
        assert row["final_equity"] == pytest.approx(row["rebuilt"], rel=1e-9)
    eq = query(f"select count(*) n from equity_curves where strategy = '{bp_id}'").item()
    assert eq == 288 * DAYS
    trades = query(f"select * from trades where strategy = '{bp_id}' and status = 'CLOSED'")
    bars_held = (trades["exit_bar"] - trades["entry_bar"]).to_list()
    assert max(bars_held) <= 12  # the blueprint's time stop (exit at the open after the 12th bar)
    wf = query("select * from walkforward order by strategy")
    assert wf["strategy"].to_list() == sorted(keys) and wf["applicable"].all()
    assert wf.filter(pl.col("strategy") == JSON_KEY)["pbo"].is_between(0, 1).all()
    folds = query("select * from walkforward_folds")
    assert folds.group_by("strategy").len().sort("strategy")["len"].to_list() == [4, 4]
    assert tables.check_lake(lake.root) == []  # every table written matches its declaration in the data dictionary

    report = materialize(instance, ("research_report",), None)
    assert report.success
    assert all(e.passed for e in checks(report).values())
    [out] = list((data_root / "reports").iterdir())
    assert {p.name for p in out.iterdir()} >= {"report.md", "report.json", "equity_curves.png", "drawdowns.png",
                                              "monthly_returns.png"}  # fmt: skip
    text = (out / "report.md").read_text()
    assert JSON_KEY in text and bp_id in text
    # in the UI the report's images are inline (the text has no folder to resolve relative links against)
    [mat] = [e.materialization for e in report.get_asset_materialization_events()]
    shown = str(mat.metadata["report"].value)
    assert "](equity_curves.png)" in text and "](equity_curves.png)" not in shown
    assert shown.count("](data:image/png;base64,") == text.count(".png)") >= 3
    assert str(mat.metadata["path"].value) == str(out / "report.md")  # the current lake's report
    assert cli.main(["report"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(out / "report.md"))


def test_no_data_fails_the_check_naming_strategy_and_instrument(data_root: Path) -> None:
    lake = Lake()
    build_strategy_lake(lake)
    missing = make_blueprint("SOLUSDT-PERP", EVENT)  # no bars for SOL in this lake
    write_blueprints_jsonl([missing], blueprints_path(lake))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("strategy", [missing.blueprint_id])
    result = materialize(instance, ("backtests",), [missing.blueprint_id])
    assert result.success  # a failing strategy holds back only itself
    ev = checks(result)[("backtests", f"has_data@{missing.blueprint_id}")]
    assert not ev.passed and ev.blocking
    text = str(ev.metadata["reason"].value)
    assert missing.blueprint_id in text and "SOLUSDT-PERP" in text and "no cleaned bars" in text
    # never a zero-return backtest: nothing was written for it, and the failure is listed
    assert not lake.exists("backtests", "metrics", {"strategy": missing.blueprint_id})
    failures = read_failures(lake, "backtests")
    assert failures.select("partition", "check_name").rows() == [(missing.blueprint_id, "has_data")]


def test_leaderboard_view_joins_metrics_and_walkforward(data_root: Path) -> None:
    lake = Lake()
    bp_id = build_strategy_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("strategy", [bp_id])
    assert materialize(instance, ("backtests", "walkforward"), [bp_id]).success
    board = query("select * from strategy_leaderboard")
    assert board["strategy"].to_list() == [bp_id]
    assert board["wf_folds"].to_list() == [4] and board["identity_ok"].all()
