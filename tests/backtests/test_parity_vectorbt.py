"""Parity with vectorbt `Portfolio.from_signals` (price = close of the signal bar, our `fill_at="close"`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import vectorbt as vbt
from bt_helpers import random_walk_bars, sma_cross, sp500_bars

from lake_assets.backtests.engine import EngineConfig, run_signals, run_signals_batch, signal_flags
from lake_assets.backtests.risk import fixed_notional, fixed_units

REL = 1e-9


def _compare(ours: pl.DataFrame, pf: vbt.Portfolio, final_equity: float) -> None:
    ref = pf.trades.records.sort_values(["entry_idx", "exit_idx"]).reset_index(drop=True)
    ours = ours.sort("entry_bar", "exit_bar")
    assert ours.height == len(ref) > 5
    np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), ref["entry_idx"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), ref["exit_idx"].to_numpy())
    np.testing.assert_array_equal(
        ours["direction"].to_numpy(), np.where(ref["direction"].to_numpy() == 0, "LONG", "SHORT")
    )
    np.testing.assert_array_equal(ours["status"].to_numpy(), np.where(ref["status"].to_numpy() == 0, "OPEN", "CLOSED"))
    for a, b in (
        ("entry_price", "entry_price"),
        ("exit_price", "exit_price"),
        ("size", "size"),
        ("pnl", "pnl"),
    ):
        np.testing.assert_allclose(ours[a].to_numpy(), ref[b].to_numpy(), rtol=REL, atol=1e-9)
    np.testing.assert_allclose(
        ours["fees"].to_numpy(), (ref["entry_fees"] + ref["exit_fees"]).to_numpy(), rtol=REL, atol=1e-9
    )
    assert final_equity == pytest.approx(float(pf.final_value()), rel=REL)


@pytest.mark.parametrize("fast", [False, True])
def test_sp500_long_only_all_cash_matches_vectorbt(fast: bool) -> None:
    bars = sp500_bars(1500)
    close = bars["close"].to_numpy()
    up, down = sma_cross(close, 10, 30)
    signals = bars.select("ts", "instrument").with_columns(long_entry=pl.Series(up), long_exit=pl.Series(down))
    cfg = EngineConfig.vectorbt_compatible(fees=0.001, slippage=0.0005, init_cash=100_000.0)
    res = run_signals(bars, signals, cfg, sizing=fixed_notional(np.inf), fast=fast)
    assert res.used_fast_path == fast
    pf = vbt.Portfolio.from_signals(
        pd.Series(close), pd.Series(up), pd.Series(down), size=np.inf, fees=0.001, slippage=0.0005, init_cash=100_000.0
    )
    _compare(res.trades, pf, res.final_equity)


@pytest.mark.parametrize("fast", [False, True])
def test_synthetic_5m_long_short_fixed_size_matches_vectorbt(fast: bool) -> None:
    bars = random_walk_bars(3000, seed=7)
    close = bars["close"].to_numpy()
    rng = np.random.default_rng(3)
    le, lx, se, sx = (rng.random(3000) < p for p in (0.02, 0.02, 0.02, 0.02))
    signals = bars.select("ts", "instrument").with_columns(
        long_entry=pl.Series(le), long_exit=pl.Series(lx), short_entry=pl.Series(se), short_exit=pl.Series(sx)
    )
    cfg = EngineConfig.vectorbt_compatible(fees=0.0007, slippage=0.0003, init_cash=1_000_000.0, fixed_fee=0.5)
    res = run_signals(bars, signals, cfg, sizing=fixed_units(25.0), fast=fast)
    pf = vbt.Portfolio.from_signals(
        pd.Series(close),
        entries=pd.Series(le),
        exits=pd.Series(lx),
        short_entries=pd.Series(se),
        short_exits=pd.Series(sx),
        size=25.0,
        fees=0.0007,
        fixed_fees=0.5,
        slippage=0.0003,
        init_cash=1_000_000.0,
    )
    assert (res.trades["direction"] == "SHORT").sum() > 3
    _compare(res.trades, pf, res.final_equity)


def test_batch_fast_path_matches_vectorbt_many_columns() -> None:
    bars = random_walk_bars(2000, seed=11)
    close = bars["close"].to_numpy()
    rng = np.random.default_rng(5)
    m = 8
    le = rng.random((2000, m)) < 0.03
    lx = rng.random((2000, m)) < 0.03
    res = run_signals_batch(close, signal_flags(le, lx), size=np.inf, fees=0.001, slippage=0.001, init_cash=1e4)
    pf = vbt.Portfolio.from_signals(
        pd.Series(close), pd.DataFrame(le), pd.DataFrame(lx), size=np.inf, fees=0.001, slippage=0.001, init_cash=1e4
    )
    np.testing.assert_allclose(res.final_equity, pf.final_value().to_numpy(), rtol=REL)
    ref = pf.trades.records
    assert res.trades.shape[0] == len(ref)
    ours = np.sort(res.trades, order=["slot", "entry_bar"])
    ref = ref.sort_values(["col", "entry_idx"])
    np.testing.assert_array_equal(ours["entry_bar"], ref["entry_idx"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"], ref["exit_idx"].to_numpy())
    np.testing.assert_allclose(ours["size"], ref["size"].to_numpy(), rtol=REL)


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
def test_all_in_sizing_nets_costs_and_never_borrows_sp500(fill_at: str) -> None:
    """Default sizing (100% of equity) under the default 1.0 leverage cap pays fees and slippage out of the equity it
    commits: cash never goes below zero (it went to about -120 on this case when the fee was paid on top)."""
    bars = sp500_bars(1500)
    close = bars["close"].to_numpy()
    up, down = sma_cross(close, 20, 50)
    signals = bars.select("ts", "instrument").with_columns(long_entry=pl.Series(up), long_exit=pl.Series(down))
    cfg = EngineConfig(init_cash=100_000.0, fill_at=fill_at, taker_fee=0.001, slippage=0.0005)  # type: ignore[arg-type]
    assert cfg.risk.max_leverage == 1.0
    res = run_signals(bars, signals, cfg)
    assert not res.used_fast_path and res.trades.height > 10
    assert res.equity["cash"].min() >= 0.0
    assert res.risk_events.height == 0  # the netted size never reaches the cap
    if fill_at == "close":
        # the same arithmetic as vectorbt's all-cash order (size=inf): cash / (price * (1 + slippage) * (1 + fees))
        pf = vbt.Portfolio.from_signals(
            pd.Series(close), pd.Series(up), pd.Series(down), size=np.inf, fees=0.001, slippage=0.0005, init_cash=1e5
        )
        _compare(res.trades, pf, res.final_equity)
        assert float(pf.cash().min()) >= 0.0
