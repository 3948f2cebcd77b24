"""Metrics against independent computations, regime breakdown and the accounting report catching a tampered run."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from bt_helpers import random_walk_bars

from lake_assets.backtests.engine import EngineConfig, run_signals
from lake_assets.backtests.metrics import (
    _bar_positions,
    accounting_report,
    compute_metrics,
    equity_curves,
    regime_breakdown,
)
from lake_assets.backtests.risk import RiskLimits, fixed_units


@pytest.fixture(scope="module")
def run() -> tuple[pl.DataFrame, object]:
    bars = random_walk_bars(2000, seed=4)
    rng = np.random.default_rng(1)
    sig = bars.select("ts", "instrument").with_columns(
        **{c: pl.Series(rng.random(2000) < 0.02) for c in ("long_entry", "long_exit", "short_entry", "short_exit")}
    )
    cfg = EngineConfig(init_cash=100_000.0, taker_fee=0.0005, slippage=0.0002, risk=RiskLimits.disabled())
    return bars, run_signals(bars, sig, cfg, sizing=fixed_units(100.0))


def test_metrics_match_independent_computation(run) -> None:
    bars, res = run
    m = compute_metrics(res, periods_per_year=105_120)
    eq = np.r_[100_000.0, res.equity["equity"].to_numpy()]
    r = np.diff(eq) / eq[:-1]
    assert m["total_return"] == pytest.approx(eq[-1] / eq[0] - 1)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(105_120))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(105_120))
    dd = 1 - eq / np.maximum.accumulate(eq)
    assert m["max_drawdown"] == pytest.approx(dd.max())
    closed = res.trades.filter(pl.col("status") == "CLOSED")
    pnl = closed["pnl"].to_numpy()
    assert m["n_trades"] == closed.height > 10
    assert m["win_rate"] == pytest.approx((pnl > 0).mean())
    assert m["profit_factor"] == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert m["avg_trade"] == pytest.approx(pnl.mean())
    assert m["fees_paid"] == pytest.approx(res.fills["fee"].sum()) and m["fees_paid"] > 0
    assert 0 < m["exposure"] <= 1 and m["turnover"] > 0 and m["funding_paid"] == 0
    years = 2000 / 105_120
    assert m["cagr"] == pytest.approx((eq[-1] / eq[0]) ** (1 / years) - 1)
    assert m["calmar"] == pytest.approx(m["cagr"] / m["max_drawdown"])
    curves = equity_curves(res)
    assert curves.columns == ["ts", "equity", "drawdown"] and curves["drawdown"].max() <= 0


def test_regime_breakdown_partitions_bars(run) -> None:
    bars, res = run
    regimes = bars.select("ts").with_columns(
        vol_regime=pl.when(pl.int_range(pl.len()) < 700).then(pl.lit("low")).otherwise(pl.lit("high"))
    )
    out = regime_breakdown(res, regimes, "vol_regime", periods_per_year=105_120)
    assert sorted(out["vol_regime"].to_list()) == ["high", "low"]
    assert out["bars"].sum() == 2000 and out.filter(pl.col("vol_regime") == "low")["bars"][0] == 700
    eq = np.r_[100_000.0, res.equity["equity"].to_numpy()]
    low_total = eq[700] / eq[0] - 1
    assert out.filter(pl.col("vol_regime") == "low")["total_return"][0] == pytest.approx(low_total)
    assert out["n_trades"].sum() == res.trades.height


def test_accounting_report_passes_and_detects_tampering(run) -> None:
    bars, res = run
    rep = accounting_report(res, bars)
    assert rep["ok"] and rep["max_abs_error_cash_plus_positions"] < 1e-6
    bad = replace(res, fills=res.fills.with_columns(pl.col("fee") * 1.01))
    rep_bad = accounting_report(bad, bars)
    assert not rep_bad["ok"] and rep_bad["max_abs_error_cash_plus_positions"] > 1e-3


def test_bar_positions_map_records_to_the_equity_clock_and_refuse_strays() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    clock = pl.Series("ts", [t0 + timedelta(minutes=5 * k) for k in (3, 0, 2, 1)])  # any order: rows are positions
    rows = _bar_positions(clock)
    assert rows(pl.Series("ts", [t0, t0 + timedelta(minutes=15), t0])).tolist() == [1, 0, 1]
    assert rows(pl.Series("ts", [], dtype=clock.dtype)).tolist() == []
    for stray in (t0 + timedelta(minutes=7), t0 + timedelta(minutes=20), t0 - timedelta(minutes=5)):
        with pytest.raises(KeyError, match="1 of 2 record timestamp"):
            rows(pl.Series("ts", [t0, stray]))
