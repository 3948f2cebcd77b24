"""Parity with backtesting.py on an SMA crossover: next-open fills, exclusive orders, no commission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA
from bt_helpers import sma_cross, sp500_bars

from lake_assets.backtests.engine import EngineConfig, run_signals
from lake_assets.backtests.risk import RiskLimits, fixed_units


class SmaCross(Strategy):
    fast = 10
    slow = 30

    def init(self) -> None:
        self.s1 = self.I(SMA, self.data.Close, self.fast)
        self.s2 = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.s1, self.s2):
            self.buy(size=10)
        elif crossover(self.s2, self.s1):
            self.sell(size=10)


@pytest.mark.filterwarnings("ignore:Some trades remain open")
def test_sma_crossover_trades_match_backtesting_py() -> None:
    bars = sp500_bars(1200)
    df = pd.DataFrame(
        {c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(bars["ts"].dt.replace_time_zone(None).to_numpy()),
    )
    bt = Backtest(df, SmaCross, cash=10_000_000, commission=0.0, trade_on_close=False, exclusive_orders=True)
    stats = bt.run()
    ref = stats["_trades"].sort_values(["EntryBar", "ExitBar"]).reset_index(drop=True)

    up, down = sma_cross(bars["close"].to_numpy(), 10, 30)
    signals = bars.select("ts", "instrument").with_columns(long_entry=pl.Series(up), short_entry=pl.Series(down))
    cfg = EngineConfig(init_cash=10_000_000.0, fill_at="next_open", risk=RiskLimits.disabled())
    res = run_signals(bars, signals, cfg, sizing=fixed_units(10.0))
    ours = res.trades.filter(pl.col("status") == "CLOSED").sort("entry_bar", "exit_bar")
    # backtesting.py closes trades still open at the end on the last bar; compare the trades closed by signals
    ref = ref[ref["ExitBar"] < len(df) - 1].reset_index(drop=True)
    assert ours.height == len(ref) > 10
    np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), ref["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), ref["ExitBar"].to_numpy())
    np.testing.assert_allclose(ours["entry_price"].to_numpy(), ref["EntryPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["exit_price"].to_numpy(), ref["ExitPrice"].to_numpy(), rtol=1e-12)
    signed = np.where(ours["direction"].to_numpy() == "LONG", 1.0, -1.0) * ours["size"].to_numpy()
    np.testing.assert_allclose(signed, ref["Size"].to_numpy(dtype=float))
    np.testing.assert_allclose(ours["pnl"].to_numpy(), ref["PnL"].to_numpy(), rtol=1e-9)
