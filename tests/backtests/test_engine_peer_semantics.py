"""Engine semantics checked against the peers' own answers on the same inputs, computed live in each test
(vectorbt 1.2 `Portfolio.from_signals`, backtesting.py `Backtest`): the cases of the tracker issue "agree with the
peers' own test cases, or differ on purpose and say so" (differences by design: ENGINE_NOTES.md)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
import vectorbt as vbt

from lake_assets.backtests.engine import EngineConfig, run_orders, run_signals
from lake_assets.backtests.risk import fixed_notional

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ts(i: int) -> datetime:
    return T0 + timedelta(minutes=5 * i)


def ohlc_bars(o: list[float], h: list[float], lo: list[float], c: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [ts(i) for i in range(len(c))], "instrument": "X", "open": o, "high": h, "low": lo, "close": c}
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def close_bars(close: list[float]) -> pl.DataFrame:
    return ohlc_bars(close, close, close, close)


def signals(bars: pl.DataFrame, **cols: list[bool]) -> pl.DataFrame:
    return bars.select("ts", "instrument").with_columns(**{k: pl.Series(v, dtype=pl.Boolean) for k, v in cols.items()})


def vbt_trades(pf: vbt.Portfolio) -> list[tuple[int, int, str, float, float, float, str]]:
    r = pf.trades.records.sort_values(["entry_idx", "exit_idx"])
    return [
        (
            int(t.entry_idx),
            int(t.exit_idx),
            "LONG" if t.direction == 0 else "SHORT",
            float(t.size),
            float(t.entry_price),
            float(t.exit_price),
            "OPEN" if t.status == 0 else "CLOSED",
        )
        for t in r.itertuples()
    ]


def our_trades(trades: pl.DataFrame) -> list[tuple[int, int, str, float, float, float, str]]:
    t = trades.sort("entry_bar", "exit_bar")
    cols = ("entry_bar", "exit_bar", "direction", "size", "entry_price", "exit_price", "status")
    return [tuple(r) for r in t.select(cols).iter_rows()]  # type: ignore[misc]


def assert_same_trades(ours: pl.DataFrame, pf: vbt.Portfolio) -> None:
    a, b = our_trades(ours), vbt_trades(pf)
    assert len(a) == len(b), (a, b)
    for x, y in zip(a, b, strict=True):
        assert x[:3] == y[:3] and x[6] == y[6], (a, b)
        assert x[3:6] == pytest.approx(y[3:6], rel=1e-12), (a, b)


# ---- 1. all-cash short: an opposite entry closes the long and shorts with the free cash (vectorbt 1.2) -----------

ALL_CASH_CASES = {
    "reversal": ([True, True, True, False, False], [False, False, True, True, True]),
    "short_only": ([False] * 5, [True, False, False, False, False]),
    "short_then_long": ([False, False, True, False, False], [True, False, False, False, False]),
}


@pytest.mark.parametrize("costs", [(0.0, 0.0, 0.0), (0.01, 0.5, 0.001)], ids=["no_costs", "costs"])
@pytest.mark.parametrize("case", sorted(ALL_CASH_CASES))
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "full"])
def test_all_cash_short_matches_vectorbt(fast: bool, case: str, costs: tuple[float, float, float]) -> None:
    fees, fixed, slip = costs
    le, se = ALL_CASH_CASES[case]
    bars = close_bars([1.0, 2.0, 3.0, 4.0, 5.0])
    cfg = EngineConfig.vectorbt_compatible(fees=fees, slippage=slip, init_cash=100.0, fixed_fee=fixed)
    res = run_signals(bars, signals(bars, long_entry=le, short_entry=se), cfg, sizing=fixed_notional(np.inf), fast=fast)
    assert res.used_fast_path == fast
    pf = vbt.Portfolio.from_signals(
        pd.Series(bars["close"].to_numpy()),
        entries=pd.Series(le),
        short_entries=pd.Series(se),
        size=np.inf,
        init_cash=100.0,
        fees=fees,
        fixed_fees=fixed,
        slippage=slip,
    )
    assert_same_trades(res.trades, pf)
    assert res.final_equity == pytest.approx(float(pf.final_value()), rel=1e-12)
    if case == "reversal" and fees == 0.0:  # the figures: sells 200 at 4, final 300
        sells = res.fills.filter(pl.col("side") == "SELL")
        assert sells["size"].to_list() == pytest.approx([200.0]) and sells["price"].to_list() == [4.0]
        assert res.final_equity == pytest.approx(300.0)
