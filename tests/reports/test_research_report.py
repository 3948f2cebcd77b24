"""The research report's pure parts: monthly returns against a hand computation, the Markdown/JSON/PNG contents
from real backtest tables, the discovery funnel when candidates exist, and the atomic folder write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from small_lake import make_blueprint, synthetic_bars, write_bars, write_events

from lake_assets.backtests.book_runs import result_tables, run_blueprint, run_json_strategy
from lake_assets.backtests.strategy_spec import load_strategies
from lake_assets.discovery.spec_model import GATE_NAMES
from lake_assets.reports.plots import monthly_returns
from lake_assets.reports.research import ReportInputs, build_report, gather, write_report
from lake_assets.specs import universe
from lake_assets.storage.lake import Lake

PNG = b"\x89PNG\r\n\x1a\n"


def test_monthly_returns_compound_from_month_end_equity() -> None:
    ts = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC),
          datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)]  # fmt: skip
    eq = pl.DataFrame({"ts": ts, "equity": [100.0, 110.0, 99.0, 121.0, 108.9], "strategy": "s", "book": "perp"})
    mr = monthly_returns(eq)
    assert mr["month"].to_list() == ["2026-01", "2026-02", "2026-03"]
    assert mr["return"].to_list() == pytest.approx([0.10, 0.10, -0.10])


def test_report_from_backtest_tables(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    bars = pl.concat(
        [synthetic_bars("BTCUSDT-PERP", 288 * 40, 1, 60_000.0), synthetic_bars("ETHUSDT-PERP", 288 * 40, 2, 3000.0)]
    )
    write_bars(lake, bars)
    write_events(lake, bars.filter(pl.col("instrument") == "BTCUSDT-PERP"), "evt", every=53)
    bp = make_blueprint("BTCUSDT-PERP", "evt", state=None)
    keys = ["json.sma_crossover", bp.blueprint_id]
    for key, runs in ((keys[0], run_json_strategy(lake, load_strategies()["sma_crossover"], universe().instruments)),
                      (keys[1], run_blueprint(lake, bp, universe().instruments))):  # fmt: skip
        for name, df in result_tables(runs, "h").items():
            lake.write(df, "backtests", name, {"strategy": key})
    inputs = gather(lake, keys)
    assert sorted(inputs.metrics["strategy"].to_list()) == sorted(keys)
    report = build_report(inputs, run_id="r1")
    assert set(report.pngs) == {"equity_curves.png", "drawdowns.png", "monthly_returns.png"}
    assert all(p.startswith(PNG) for p in report.pngs.values())
    assert "json.sma_crossover" in report.markdown and bp.blueprint_id in report.markdown
    assert "accounting identity failures: **0**" in report.markdown
    ranked = [r["sharpe"] for r in report.data["metrics"]]
    assert ranked == sorted(ranked, reverse=True)  # best first
    # the report only shows current strategies
    assert gather(lake, keys[:1]).metrics["strategy"].unique().to_list() == keys[:1]

    out = write_report(report, tmp_path / "reports" / "r1")
    assert {p.name for p in (tmp_path / "reports" / "r1").iterdir()} == set(out)  # no temp files left
    data = json.loads(out["report.json"].read_text())
    assert data["run_id"] == "r1" and len(data["metrics"]) == 2 and data["funnel"] is None


def test_funnel_is_included_when_discovery_ran() -> None:
    n = 100  # every gate removes 10 more rows: enough rows that the last gate still has survivors
    cand = pl.DataFrame({f"gate_{g}": [i < n - 10 * k for i in range(n)] for k, g in enumerate(GATE_NAMES)})
    cand = cand.with_columns(pl.lit("standard").alias("promotion_track"))
    bridge = pl.DataFrame({"bridge_pass": [True, False, True]})
    inputs = ReportInputs(metrics=pl.DataFrame(), equity=pl.DataFrame(), candidates=cand, bridge=bridge,
                          blueprints=pl.DataFrame({"blueprint_id": ["bp_1", "bp_2"]}))  # fmt: skip
    report = build_report(inputs)
    assert "discovery_funnel.png" in report.pngs
    stages = {r["stage"]: r["cumulative"] for r in report.data["funnel"]}
    assert stages["hypotheses"] == n and stages["bridge_pass"] == 2 and stages["blueprints"] == 2
    assert stages[GATE_NAMES[-1]] == n - 10 * (len(GATE_NAMES) - 1)
