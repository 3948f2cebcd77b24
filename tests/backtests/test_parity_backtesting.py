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
from lake_assets.backtests.risk import RiskLimits, fixed_units, percent_equity


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


class FractionCross(Strategy):
    """All-equity style orders: `buy(size=fraction)` buys whole units worth that fraction of the margin available."""

    fraction = 0.5
    fast = 10
    slow = 30

    def init(self) -> None:
        self.s1 = self.I(SMA, self.data.Close, self.fast)
        self.s2 = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.s1, self.s2):
            self.buy(size=self.fraction)
        elif crossover(self.s2, self.s1):
            self.sell(size=self.fraction)


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.parametrize(
    ("fraction", "spread", "commission", "fast", "slow"),
    [
        (0.5, 0.001, 0.002, 10, 30),
        (0.9999, 0.0005, 0.001, 20, 50),
        (0.3, 0.002, 0.0, 5, 20),
        (0.7, 0.0, 0.0015, 8, 40),
    ],
)
def test_whole_unit_fraction_sizing_and_entry_spread_match_backtesting_py(
    fraction: float, spread: float, commission: float, fast: int, slow: int
) -> None:
    """backtesting.py's fraction-of-equity orders (whole units: floor(fraction * margin / (price * (1 + spread) +
    commission per unit))), its entry-only `spread` (exits at the unadjusted price) and exclusive-order reversals
    (a close, then an entry sized on the cash after it), long and short, live on the S&P 500."""
    bars = sp500_bars(1500)
    df = pd.DataFrame(
        {c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(bars["ts"].dt.replace_time_zone(None).to_numpy()),
    )
    bt = Backtest(
        df, FractionCross, cash=1_000_000, commission=commission, spread=spread, exclusive_orders=True,
        trade_on_close=False,
    )  # fmt: skip
    stats = bt.run(fraction=fraction, fast=fast, slow=slow)
    ref = stats["_trades"].sort_values(["EntryBar", "ExitBar"]).reset_index(drop=True)
    ref = ref[ref["ExitBar"] < len(df) - 1].reset_index(drop=True)  # closed by signals, not by the end of data

    up, down = sma_cross(bars["close"].to_numpy(), fast, slow)
    signals = bars.select("ts", "instrument").with_columns(long_entry=pl.Series(up), short_entry=pl.Series(down))
    cfg = EngineConfig(
        init_cash=1_000_000.0, fill_at="next_open", taker_fee=commission, maker_fee=commission, entry_spread=spread,
        risk=RiskLimits.disabled(),
    )  # fmt: skip
    res = run_signals(bars, signals, cfg, sizing=percent_equity(fraction, whole_units=True))
    assert not res.used_fast_path
    ours = res.trades.filter(pl.col("status") == "CLOSED").sort("entry_bar", "exit_bar")
    assert ours.height == len(ref) > 10
    assert (ours["direction"] == "SHORT").sum() > 3
    np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), ref["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), ref["ExitBar"].to_numpy())
    signed = np.where(ours["direction"].to_numpy() == "LONG", 1.0, -1.0) * ours["size"].to_numpy()
    np.testing.assert_array_equal(signed, ref["Size"].to_numpy(dtype=float))
    np.testing.assert_allclose(ours["entry_price"].to_numpy(), ref["EntryPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["exit_price"].to_numpy(), ref["ExitPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["pnl"].to_numpy(), ref["PnL"].to_numpy(), rtol=1e-9, atol=1e-6)


class PartialClose(Strategy):
    """Long-only: enter on a cross up, close a portion of the position on the marked bars, all of it on a cross down
    (signals precomputed, read by bar)."""

    fraction = 0.6
    portion = 0.5
    up: np.ndarray = np.zeros(0, dtype=bool)
    down: np.ndarray = np.zeros(0, dtype=bool)
    part: np.ndarray = np.zeros(0, dtype=bool)

    def init(self) -> None:
        pass

    def next(self) -> None:
        i = len(self.data) - 1
        if self.up[i] and not self.position:
            self.buy(size=self.fraction)
        elif self.down[i] and self.position:
            self.position.close()
        elif self.part[i] and self.position:
            self.position.close(self.portion)


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.parametrize(("portion", "seed"), [(0.5, 1), (0.3, 2), (0.75, 3), (0.5, 4)])
def test_partial_close_by_portion_matches_backtesting_py(portion: float, seed: int) -> None:
    """`exit_portion` on an exit signal closes that fraction of the position in whole units (at least one, rounded
    half to even), as backtesting.py's `position.close(portion)`; at the signal bar's close (`trade_on_close`)."""
    bars = sp500_bars(1200)
    n = bars.height
    df = pd.DataFrame(
        {c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(bars["ts"].dt.replace_time_zone(None).to_numpy()),
    )
    up, down = sma_cross(bars["close"].to_numpy(), 10, 30)
    # partial-close bars apart from the crosses (a bar with an entry and an exit is a conflict, ignored by default)
    part = (np.random.default_rng(seed).random(n) < 0.08) & ~up & ~down
    bt = Backtest(
        df, PartialClose, cash=1_000_000, commission=0.001, spread=0.0005, exclusive_orders=False, trade_on_close=True
    )
    stats = bt.run(portion=portion, up=up, down=down, part=part)
    ref = stats["_trades"].sort_values(["EntryBar", "ExitBar"]).reset_index(drop=True)
    ref = ref[ref["ExitBar"] < n - 1].reset_index(drop=True)

    exit_any = down | part
    signals = bars.select("ts", "instrument").with_columns(
        long_entry=pl.Series(up),
        long_exit=pl.Series(exit_any),
        exit_portion=pl.Series(np.where(part & ~down, portion, np.nan)).fill_nan(None),
    )
    cfg = EngineConfig(
        init_cash=1_000_000.0, fill_at="close", taker_fee=0.001, maker_fee=0.001, entry_spread=0.0005,
        risk=RiskLimits.disabled(),
    )  # fmt: skip
    res = run_signals(bars, signals, cfg, sizing=percent_equity(0.6, whole_units=True))
    ours = res.trades.filter(pl.col("status") == "CLOSED").sort("entry_bar", "exit_bar")
    assert ours.height == len(ref) > 10
    assert (ours.group_by("entry_bar").len()["len"] > 1).sum() > 3  # positions closed in several parts
    np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), ref["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), ref["ExitBar"].to_numpy())
    np.testing.assert_array_equal(ours["size"].to_numpy(), ref["Size"].to_numpy(dtype=float))
    np.testing.assert_allclose(ours["entry_price"].to_numpy(), ref["EntryPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["exit_price"].to_numpy(), ref["ExitPrice"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours["pnl"].to_numpy(), ref["PnL"].to_numpy(), rtol=1e-9, atol=1e-6)


class TrailingCross(Strategy):
    """Long and short on precomputed signals with a stop-loss `sl` and take-profit `tp` from the signal bar's close;
    when `trail`, each bar moves every trade's stop-loss to `sl` below the bar's high (above its low for a short)
    if that is tighter: a percentage trailing stop."""

    sl = 0.01
    tp = 0.03
    trail = True
    units = 10
    up: np.ndarray = np.zeros(0, dtype=bool)
    down: np.ndarray = np.zeros(0, dtype=bool)

    def init(self) -> None:
        pass

    def next(self) -> None:
        i = len(self.data) - 1
        c = self.data.Close[-1]
        if self.trail:
            for t in self.trades:
                if t.is_long:
                    t.sl = max(t.sl, self.data.High[-1] * (1 - self.sl))
                else:
                    t.sl = min(t.sl, self.data.Low[-1] * (1 + self.sl))
        tp_long = c * (1 + self.tp) if self.tp else None
        tp_short = c * (1 - self.tp) if self.tp else None
        # an entry in the held direction is ignored (vectorbt's accumulate=False; exclusive orders would re-enter)
        if self.up[i] and not self.position.is_long:
            self.buy(size=self.units, sl=c * (1 - self.sl), tp=tp_long)
        elif self.down[i] and not self.position.is_short:
            self.sell(size=self.units, sl=c * (1 + self.sl), tp=tp_short)


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.parametrize(
    ("sl", "tp", "trail", "seed"),
    [(0.01, 0.0, True, 1), (0.015, 0.04, True, 2), (0.02, 0.03, False, 3), (0.008, 0.0, True, 4)],
)
def test_signal_stops_and_trailing_stop_match_backtesting_py(sl: float, tp: float, trail: bool, seed: int) -> None:
    """`sl_stop` / `tp_stop` / `sl_trail` against backtesting.py's contingent SL/TP orders moved by the strategy each
    bar (a percentage trailing stop), long and short, at the signal bar's close (`trade_on_close`, our fill_at=
    "close") with `stop_ignores_signals=False`: a bar whose stop fired still trades its signal at the close."""
    bars = sp500_bars(1500)
    n = bars.height
    df = pd.DataFrame(
        {c.capitalize(): bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(bars["ts"].dt.replace_time_zone(None).to_numpy()),
    )
    rng = np.random.default_rng(seed)
    up, down = rng.random(n) < 0.03, rng.random(n) < 0.03
    up &= ~down
    bt = Backtest(df, TrailingCross, cash=1_000_000, commission=0.001, exclusive_orders=True, trade_on_close=True)
    stats = bt.run(sl=sl, tp=tp, trail=trail, up=up, down=down)
    ref = stats["_trades"].sort_values(["EntryBar", "ExitBar"]).reset_index(drop=True)
    ref = ref[ref["ExitBar"] < n - 1].reset_index(drop=True)

    signals = bars.select("ts", "instrument").with_columns(long_entry=pl.Series(up), short_entry=pl.Series(down))
    cfg = EngineConfig(
        init_cash=1_000_000.0, fill_at="close", taker_fee=0.001, maker_fee=0.001, risk=RiskLimits.disabled()
    )
    for fast in (False, True):
        res = run_signals(
            bars, signals, cfg, sizing=fixed_units(10.0), fast=fast, sl_stop=sl, tp_stop=tp or None, sl_trail=trail,
            stop_ignores_signals=False,
        )  # fmt: skip
        ours = res.trades.filter(pl.col("status") == "CLOSED").sort("entry_bar", "exit_bar")
        assert ours.height == len(ref) > 10
        assert res.orders.filter(pl.col("order_type") == "STOP").height > 3  # the stops fired
        np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), ref["EntryBar"].to_numpy())
        np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), ref["ExitBar"].to_numpy())
        signed = np.where(ours["direction"].to_numpy() == "LONG", 1.0, -1.0) * ours["size"].to_numpy()
        np.testing.assert_array_equal(signed, ref["Size"].to_numpy(dtype=float))
        np.testing.assert_allclose(ours["entry_price"].to_numpy(), ref["EntryPrice"].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours["exit_price"].to_numpy(), ref["ExitPrice"].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours["pnl"].to_numpy(), ref["PnL"].to_numpy(), rtol=1e-9, atol=1e-6)
