"""Engine semantics checked against the peers' own answers on the same inputs, computed live in each test
(vectorbt 1.2 `Portfolio.from_signals`, backtesting.py `Backtest`): the cases of the tracker issue "agree with the
peers' own test cases, or differ on purpose and say so" (differences by design: ENGINE_NOTES.md)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
import vectorbt as vbt

from lake_assets.backtests.engine import EngineConfig, run_orders, run_signals
from lake_assets.backtests.risk import RiskLimits, fixed_notional, fixed_units

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


# ---- 2. a signal whose fill bar has no price is dropped (vectorbt), not filled at a later price -------------------

NAN = float("nan")


def _shift(x: list[bool]) -> list[bool]:
    return [False, *x[:-1]]


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "full"])
def test_signal_on_unpriced_fill_bar_is_dropped_as_in_vectorbt(fast: bool, fill_at: str) -> None:
    le = [False, True, False, False, True, False, False]
    lx = [False, False, False, True, False, True, False]
    if fill_at == "close":  # the signal bar itself has no close
        o = c = [10.0, NAN, 12.0, 13.0, 14.0, 15.0, 16.0]
    else:  # the bar after the signal has no open
        o = [10.0, 11.0, NAN, 13.0, 14.0, 15.0, 16.0]
        c = [x + 0.5 for x in o]
    bars = ohlc_bars(
        o, [max(a, b) for a, b in zip(o, c, strict=True)], [min(a, b) for a, b in zip(o, c, strict=True)], c
    )
    sig = signals(bars, long_entry=le, long_exit=lx)
    cfg = EngineConfig.vectorbt_compatible(init_cash=1_000.0, fill_at=fill_at)
    res = run_signals(bars, sig, cfg, sizing=fixed_units(1.0), fast=fast)
    assert res.used_fast_path == fast
    if fill_at == "close":
        pf = vbt.Portfolio.from_signals(pd.Series(c), pd.Series(le), pd.Series(lx), size=1.0, init_cash=1_000.0)
    else:  # vectorbt's next-open equivalent: signals shifted a bar, filled at the open
        pf = vbt.Portfolio.from_signals(
            pd.Series(c), pd.Series(_shift(le)), pd.Series(_shift(lx)), price=pd.Series(o), size=1.0, init_cash=1_000.0
        )
    assert_same_trades(res.trades, pf)
    assert our_trades(res.trades)[0][:2] == (5 if fill_at == "next_open" else 4, 6 if fill_at == "next_open" else 5)
    assert res.final_equity == pytest.approx(float(pf.final_value()), rel=1e-12)
    if not fast:
        dropped = res.orders.filter(pl.col("status") == "EXPIRED")
        assert dropped["reason"].to_list() == ["expired: the signal's fill bar has no price"]
    # the old behaviour stays available, explicitly: the order waits for the next priced bar
    waited = run_signals(bars, sig, replace(cfg, signals_wait_for_price=True), sizing=fixed_units(1.0), fast=fast)
    assert our_trades(waited.trades)[0][:2] == ((3, 4) if fill_at == "next_open" else (2, 3))


# ---- 3./4. exit legs: open first, then stop before target; none before an intrabar entry ------------------------


def bt_trades(rows: list[tuple[float, float, float, float]], **order: float) -> list[tuple[int, int, float, float]]:
    """backtesting.py: one `buy(size=1, **order)` at its first `next()` (the close of bar 1); closed trades."""
    from backtesting import Backtest, Strategy

    df = pd.DataFrame(rows, columns=["Open", "High", "Low", "Close"])
    df.index = pd.date_range("2024-01-01", periods=len(rows), freq="5min")
    df["Volume"] = 1e6

    class Once(Strategy):
        def init(self) -> None:
            self.sent = False

        def next(self) -> None:
            if not self.sent:
                self.sent = True
                self.buy(size=1, **order)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backtesting.py warns about the deferred same-bar SL/TP (its issue 119)
        stats = Backtest(df, Once, cash=10_000, commission=0.0).run()
    t = stats["_trades"]
    return [(int(r.EntryBar), int(r.ExitBar), float(r.EntryPrice), float(r.ExitPrice)) for r in t.itertuples()]


def qlake_bracket(rows: list[tuple[float, float, float, float]], entry: dict, legs: list[dict]) -> pl.DataFrame:
    """The same bracket as explicit orders submitted at the close of bar 1, legs in the given order."""
    bars = ohlc_bars(*(list(col) for col in zip(*rows, strict=True)))
    base = {"ts": ts(1), "instrument": "X", "size": 1.0}
    rows_ = [{**base, "side": "BUY", **entry}] + [{**base, "side": "SELL", "action": "EXIT", **leg} for leg in legs]
    orders = pl.DataFrame(rows_).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    cfg = EngineConfig(init_cash=10_000.0, risk=RiskLimits.disabled())
    return run_orders(bars, orders, cfg).trades


def vbt_bracket(rows: list[tuple[float, float, float, float]], entry_bar: int, entry_px: float, sl: float, tp: float):
    """vectorbt: entry at `entry_px` on `entry_bar`, sl_stop / tp_stop relative to it (checked from the next bar)."""
    o, h, lo, c = (pd.Series(col) for col in zip(*rows, strict=True))
    entries = pd.Series([i == entry_bar for i in range(len(rows))])
    price = c.copy()
    price[entry_bar] = entry_px
    return vbt.Portfolio.from_signals(
        c,
        entries,
        price=price,
        open=o,
        high=h,
        low=lo,
        sl_stop=1 - sl / entry_px,
        tp_stop=tp / entry_px - 1,
        size=1.0,
        init_cash=1e4,
        stop_entry_price="fillprice",
    )


PRE = (106.0, 106.0, 106.0, 106.0)
HOLD = (106.0, 107.0, 105.5, 106.5)
AFTER = (107.0, 107.5, 106.5, 107.0)
EXIT_BARS = {
    "gaps_through_stop": ((104.95, 108.0, 104.5, 107.0), 104.95),  # the case: the stop at the open
    "touches_both_inside": ((106.0, 108.0, 104.5, 107.0), 105.0),  # pessimistic: the stop before the target
    "gaps_through_target": ((108.2, 108.5, 105.5, 107.0), 108.2),  # mirror: the target at the open
}


@pytest.mark.parametrize("tp_first", [True, False], ids=["tp_submitted_first", "sl_submitted_first"])
@pytest.mark.parametrize("case", sorted(EXIT_BARS))
def test_exit_legs_fill_open_first_then_stop_before_target(case: str, tp_first: bool) -> None:
    bar, expect = EXIT_BARS[case]
    rows = [PRE, PRE, HOLD, bar, AFTER, AFTER]
    sl = {"order_type": "STOP", "stop_price": 105.0}
    tp = {"order_type": "LIMIT", "limit_price": 107.9}
    ours = qlake_bracket(rows, {"order_type": "MARKET"}, [tp, sl] if tp_first else [sl, tp])
    theirs = bt_trades(rows, sl=105.0, tp=107.9)
    assert theirs == [(2, 3, 106.0, expect)]
    assert our_trades(ours) == [(2, 3, "LONG", 1.0, 106.0, pytest.approx(expect, rel=1e-12), "CLOSED")]
    pf = vbt_bracket(rows, 2, 106.0, 105.0, 107.9)
    assert vbt_trades(pf) == [(2, 3, "LONG", 1.0, 106.0, pytest.approx(expect, rel=1e-9), "CLOSED")]


ENTRY_BAR = (101.6, 105.0, 101.0, 104.5)  # opens at 101.6, rises through the entry stop at 104; low 101 < sl 103
NEXT_BARS = {
    "target_next_bar": ((104.8, 110.5, 104.0, 110.0), 110.0),
    "stop_at_next_open": ((102.5, 104.0, 102.0, 103.0), 102.5),
}


@pytest.mark.parametrize("case", sorted(NEXT_BARS))
def test_exit_legs_never_fill_before_an_intrabar_entry(case: str) -> None:
    """buy(stop=104, sl=103, tp=110): the entry triggers inside bar 2 at 104; the stop-loss may not fill at that
    bar's open 101.6 (before the position existed). The legs wait for the next bar, as in backtesting.py (which
    defers them when the bar's range makes the order ambiguous) and vectorbt (stops checked from the next bar)."""
    bar, expect = NEXT_BARS[case]
    rows = [(100.0, 100.5, 99.5, 100.0)] * 2 + [ENTRY_BAR, bar, (110.0, 110.0, 110.0, 110.0)]
    entry = {"order_type": "STOP", "stop_price": 104.0}
    legs = [{"order_type": "STOP", "stop_price": 103.0}, {"order_type": "LIMIT", "limit_price": 110.0}]
    ours = qlake_bracket(rows, entry, legs)
    assert bt_trades(rows, stop=104.0, sl=103.0, tp=110.0) == [(2, 3, 104.0, expect)]
    assert our_trades(ours) == [(2, 3, "LONG", 1.0, 104.0, expect, "CLOSED")]
    pf = vbt_bracket(rows, 2, 104.0, 103.0, 110.0)
    assert vbt_trades(pf) == [(2, 3, "LONG", 1.0, 104.0, pytest.approx(expect, rel=1e-9), "CLOSED")]


# ---- leverage cap: "reject" cancels the opening part as backtesting.py does; "resize" (default) fills what fits ---


def bt_sequence(rows: list[tuple[float, float, float, float]], sizes: list[float]) -> list[tuple[int, int, float]]:
    """backtesting.py (cash 10,000, margin 1): the k-th `next()` sends a market order of `sizes[k]` units."""
    from backtesting import Backtest, Strategy

    df = pd.DataFrame(rows, columns=["Open", "High", "Low", "Close"])
    df.index = pd.date_range("2024-01-01", periods=len(rows), freq="5min")
    df["Volume"] = 1e6

    class Seq(Strategy):
        def init(self) -> None:
            self.k = 0

        def next(self) -> None:
            if self.k < len(sizes):
                sz = sizes[self.k]
                (self.buy if sz > 0 else self.sell)(size=abs(sz))
            self.k += 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Broker canceled the order due to insufficient margin"
        stats = Backtest(df, Seq, cash=10_000, commission=0.0, finalize_trades=True).run()
    return [(int(r.EntryBar), int(r.ExitBar), float(r.Size)) for r in stats["_trades"].itertuples()]


@pytest.mark.parametrize("sizes", [[200.0], [50.0, -250.0]], ids=["too_large_entry", "reversal_too_large_opening_part"])
def test_leverage_cap_reject_matches_backtesting_py(sizes: list[float]) -> None:
    rows = [(100.0, 100.5, 99.5, 100.0)] * 6
    theirs = bt_sequence(rows, sizes)
    bars = ohlc_bars(*(list(col) for col in zip(*rows, strict=True)))
    orders = pl.DataFrame(
        [
            {"ts": ts(1 + k), "instrument": "X", "side": "BUY" if s > 0 else "SELL", "size": abs(s)}
            for k, s in enumerate(sizes)
        ]
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    reject = EngineConfig(init_cash=10_000.0, risk=RiskLimits(max_leverage=1.0, on_cap="reject"))
    res = run_orders(bars, orders, reject)
    ours = [
        (e, x, size if d == "LONG" else -size)
        for e, x, d, size in res.trades.select("entry_bar", "exit_bar", "direction", "size").iter_rows()
    ]
    assert ours == theirs
    last = res.orders.sort("order_id").row(-1, named=True)
    assert last["reason"] == "rejected: portfolio leverage cap"
    ev = res.risk_events.row(0, named=True)
    assert ev["event"] == "REJECTED" and ev["allowed_units"] == 0.0
    # the default resizes to what the cap allows instead
    resized = run_orders(bars, orders, replace(reject, risk=RiskLimits(max_leverage=1.0)))
    assert resized.risk_events["event"].to_list() == ["RESIZED"]
    assert abs(resized.positions["size"][0]) == pytest.approx(100.0)


def test_trade_open_at_end_is_marked_at_last_close_not_closed_at_last_open() -> None:
    """Different by design (ENGINE_NOTES.md): vectorbt's mark at the last close, not backtesting.py's exit at the
    last bar's open."""
    rows = [
        (100.0, 101.0, 99.0, 100.5),
        (101.0, 102.0, 100.0, 101.5),
        (102.0, 103.0, 101.0, 102.5),
        (103.0, 104.0, 102.0, 103.5),
    ]
    assert bt_sequence(rows, [1.0]) == [(2, 3, 1.0)]  # closed at the last open, 103
    bars = ohlc_bars(*(list(col) for col in zip(*rows, strict=True)))
    orders = pl.DataFrame([{"ts": ts(1), "instrument": "X", "side": "BUY", "size": 1.0}]).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC"))
    )
    res = run_orders(bars, orders, EngineConfig(init_cash=10_000.0, risk=RiskLimits.disabled()))
    assert our_trades(res.trades) == [(2, 3, "LONG", 1.0, 102.0, 103.5, "OPEN")]
    assert res.final_equity == pytest.approx(10_001.5)
