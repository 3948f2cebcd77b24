"""The engine's fast frame preparation / assembly and buffer handling against straightforward references: result
schemas, record buffers that must be rerun with more room, per-bar state and day boundaries rebuilt in numba, sparse
vs dense signal frames, vectorised name columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from bt_helpers import random_walk_bars

from lake_assets.backtests import engine_kernels as core
from lake_assets.backtests.engine import (
    FUNDING_PAYMENTS_SCHEMA,
    BacktestResult,
    EngineConfig,
    _FrameBuilder,
    run_orders,
    run_signals,
)
from lake_assets.backtests.metrics import accounting_report
from lake_assets.backtests.risk import RiskLimits, fixed_units
from lake_assets.backtests.schema import (
    EQUITY_SCHEMA,
    FILLS_SCHEMA,
    ORDERS_SCHEMA,
    RISK_EVENTS_SCHEMA,
    TRADES_SCHEMA,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _schemas_ok(res: BacktestResult) -> None:
    assert res.orders.schema == ORDERS_SCHEMA
    assert res.fills.schema == FILLS_SCHEMA
    assert res.trades.schema == TRADES_SCHEMA
    assert res.equity.schema == EQUITY_SCHEMA
    assert res.risk_events.schema == RISK_EVENTS_SCHEMA
    assert res.funding_payments.schema == FUNDING_PAYMENTS_SCHEMA


def _signals(bars: pl.DataFrame, seed: int, p: float = 0.03) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = bars.height
    return bars.select("ts", "instrument").with_columns(
        **{c: pl.Series(rng.random(n) < p) for c in ("long_entry", "long_exit", "short_entry", "short_exit")}
    )


def test_result_frames_follow_the_declared_schemas_on_every_path() -> None:
    bars = random_walk_bars(600, seed=3)
    sig = _signals(bars, 4)
    cfg = EngineConfig(init_cash=50_000.0, taker_fee=0.0005, risk=RiskLimits.disabled())
    for fast in (True, False):
        res = run_signals(bars, sig, cfg, sizing=fixed_units(2.0), fast=fast)
        assert res.used_fast_path is fast and res.trades.height > 5
        _schemas_ok(res)
    # empty signal set: every frame still has its schema
    quiet = sig.with_columns(pl.lit(False).alias(c) for c in ("long_entry", "long_exit", "short_entry", "short_exit"))
    for fast in (True, False):
        res = run_signals(bars, quiet, cfg, sizing=fixed_units(2.0), fast=fast)
        assert res.orders.height == 0 and res.trades.height == 0
        _schemas_ok(res)
    # risk events (kill switch: null order id) and funding payments present
    risky = EngineConfig(init_cash=50_000.0, risk=RiskLimits(max_leverage=None, max_drawdown=0.0005))
    res = run_signals(bars, sig, risky, sizing=fixed_units(50.0))
    assert res.risk_events.filter(pl.col("event") == "KILL_SWITCH").height == 1
    assert res.risk_events.filter(pl.col("event") == "KILL_SWITCH")["order_id"].null_count() == 1
    _schemas_ok(res)
    funding = pl.DataFrame(
        {"ts": [T0 + timedelta(hours=8 * k) for k in range(7)], "instrument": "SYN", "funding_rate": 1e-4}
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    res = run_signals(bars, sig, cfg, sizing=fixed_units(2.0), funding=funding)
    assert not res.used_fast_path and res.funding_payments.height > 0
    _schemas_ok(res)


def test_partial_fills_beyond_the_first_buffers_rerun_with_room() -> None:
    # one order filled 1 unit per bar for 150 bars: 150 fills and 149 PARTIAL_FILL events, far beyond the initial
    # buffers sized from the order count, so the simulator must rerun with exact room and lose nothing
    n = 200
    bars = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(n)],
            "instrument": "X",
            "open": 100.0,
            "high": 100.5,
            "low": 99.5,
            "close": 100.0,
            "volume": 10.0,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    orders = pl.DataFrame({"ts": [T0], "instrument": "X", "side": "BUY", "size": 150.0}).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC"))
    )
    cfg = EngineConfig(init_cash=1e6, taker_fee=0.001, participation_rate=0.1, risk=RiskLimits.disabled())
    res = run_orders(bars, orders, cfg)
    assert res.fills.height == 150
    assert res.fills["size"].to_list() == [1.0] * 150
    assert res.fills["ts"].to_list() == [T0 + timedelta(minutes=5 * i) for i in range(1, 151)]
    assert res.fills["fill_id"].to_list() == list(range(150))
    assert res.risk_events.filter(pl.col("event") == "PARTIAL_FILL").height == 149
    o = res.orders.row(0, named=True)
    assert o["status"] == "FILLED" and o["filled_units"] == 150.0
    assert res.equity["cash"][-1] == pytest.approx(1e6 - 150 * 100.0 * 1.001, rel=1e-12)
    assert res.equity["fees_cum"][-1] == pytest.approx(150 * 100.0 * 0.001, rel=1e-12)
    rep = accounting_report(res, bars)
    assert rep["ok"], rep


def test_sparse_signal_rows_equal_dense_signal_rows() -> None:
    bars = random_walk_bars(800, seed=8)
    dense = _signals(bars, 9)
    cols = ("long_entry", "long_exit", "short_entry", "short_exit")
    sparse = dense.filter(pl.any_horizontal(*cols))
    assert 0 < sparse.height < dense.height
    cfg = EngineConfig(init_cash=20_000.0, taker_fee=0.0004, slippage=0.0001, risk=RiskLimits.disabled())
    for fast in (True, False):
        a = run_signals(bars, dense, cfg, sizing=fixed_units(1.5), fast=fast)
        b = run_signals(bars, sparse, cfg, sizing=fixed_units(1.5), fast=fast)
        for name in ("orders", "fills", "trades", "equity", "positions"):
            assert getattr(a, name).equals(getattr(b, name)), name
    # integer / nullable signal columns are read as booleans (null = no signal)
    as_int = dense.with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col(c).cast(pl.Int8)).alias(c) for c in cols
    )
    as_bool = dense.with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 0).then(False).otherwise(pl.col(c)).alias(c) for c in cols
    )
    a = run_signals(bars, as_int, cfg, sizing=fixed_units(1.5))
    b = run_signals(bars, as_bool, cfg, sizing=fixed_units(1.5))
    assert a.used_fast_path and a.trades.equals(b.trades) and a.equity.equals(b.equity)


def test_fills_state_matches_numpy_reference() -> None:
    rng = np.random.default_rng(5)
    n = 500
    bars = np.sort(rng.integers(0, n, 120))
    fills = np.zeros(bars.shape[0], dtype=core.FILL_DT)
    fills["bar"] = bars
    fills["side"] = rng.integers(0, 2, bars.shape[0])
    fills["size"] = rng.uniform(0.1, 5.0, bars.shape[0])
    fills["price"] = rng.uniform(90, 110, bars.shape[0])
    fills["fee"] = rng.uniform(0, 0.3, bars.shape[0])
    mark = rng.uniform(90, 110, n)
    mark[[0, 1, 40, 41, 42, 300]] = np.nan
    mark[77] = np.inf
    state = core.fills_state_nb(n, fills, mark, 12_345.0)

    sgn = np.where(fills["side"] == core.BUY, 1.0, -1.0)
    b = bars.astype(np.int64)
    dcash, dpos, dfee = np.zeros(n), np.zeros(n), np.zeros(n)
    np.add.at(dcash, b, -(sgn * fills["size"] * fills["price"] + fills["fee"]))
    np.add.at(dpos, b, sgn * fills["size"])
    np.add.at(dfee, b, fills["fee"])
    ok = np.isfinite(mark)
    idx = np.maximum.accumulate(np.where(ok, np.arange(n), 0))
    ffill = mark[idx]
    ffill[~np.isfinite(ffill)] = np.nan
    position = np.cumsum(dpos)
    posval = np.where(position != 0, position * ffill, 0.0)
    assert np.array_equal(state.cash, 12_345.0 + np.cumsum(dcash))
    assert np.array_equal(state.positions_value, posval, equal_nan=True)
    assert np.array_equal(state.gross_exposure, np.abs(posval), equal_nan=True)
    assert np.array_equal(state.fees_cum, np.cumsum(dfee))
    assert not state.funding_cum.any() and not state.killed.any()
    with pytest.raises(ValueError, match="sorted by bar"):
        core.fills_state_nb(n, fills[::-1].copy(), mark, 1.0)


def test_equity_drawdown_matches_numpy_reference() -> None:
    rng = np.random.default_rng(6)
    state = core.new_state(300)
    state.cash[:] = 1000 + np.cumsum(rng.normal(0, 5, 300))
    state.positions_value[:] = rng.normal(0, 20, 300)
    out = core.equity_drawdown_nb(state)
    eq = state.cash + state.positions_value
    assert np.array_equal(out[0], eq)
    assert np.array_equal(out[1], eq / np.maximum.accumulate(eq) - 1.0)
    state.positions_value[150] = np.nan  # NaN equity poisons the running peak from there on, as numpy does
    out = core.equity_drawdown_nb(state)
    eq = state.cash + state.positions_value
    assert np.array_equal(out[1], eq / np.maximum.accumulate(eq) - 1.0, equal_nan=True)
    assert np.isnan(out[1, 150:]).all() and np.isfinite(out[1, :150]).all()


def test_day_bounds_match_datetime64_reference() -> None:
    rng = np.random.default_rng(0)
    nat = np.iinfo(np.int64).min
    for t in range(100):
        n = int(rng.integers(1, 200))
        us = rng.integers(-(10**12), 10**12, n)  # includes pre-1970 bars: floor, not truncation
        if t % 2:
            us = np.sort(us)
        if t % 7 == 0:
            us[rng.integers(0, n)] = nat
        day = us.view("datetime64[us]").astype("datetime64[D]").astype(np.int64)
        new_day = np.ones(n, dtype=np.bool_)
        new_day[1:] = day[1:] != day[:-1]
        starts = np.flatnonzero(new_day)
        nxt = np.searchsorted(starts, np.arange(n), side="right")
        next_day = np.where(nxt < starts.shape[0], starts[np.minimum(nxt, starts.shape[0] - 1)], n)
        got_new, got_next = core.day_bounds_nb(us)
        assert np.array_equal(got_new, new_day) and np.array_equal(got_next, next_day), t


def test_frame_builder_name_columns() -> None:
    fb = _FrameBuilder()
    fb.values("k", np.arange(6))
    fb.names("mixed", ["A", "B"], np.array([0.0, 1.0, np.nan, -1.0, 2.0, 1.0]))
    fb.names("same", ["A", "B"], np.ones(6))
    fb.names("none", ["A", "B"], np.full(6, -1.0))
    fb.names("flag", ["NO", "YES"], np.array([True, False, True, True, False, False]))
    df = fb.frame()
    assert df["mixed"].to_list() == ["A", "B", None, None, None, "B"]
    assert df["same"].to_list() == ["B"] * 6
    assert df["none"].to_list() == [None] * 6
    assert df["flag"].to_list() == ["YES", "NO", "YES", "YES", "NO", "NO"]
    assert all(df[c].dtype == pl.String for c in ("mixed", "same", "none", "flag"))
    empty = _FrameBuilder()
    empty.values("k", np.arange(0))
    empty.names("s", ["A"], np.zeros(0))
    assert empty.frame().shape == (0, 2) and empty.frame()["s"].dtype == pl.String


def test_single_slot_detection_with_strategy_column() -> None:
    bars = random_walk_bars(400, seed=12)
    sig = _signals(bars, 13)
    cfg = EngineConfig(init_cash=20_000.0, risk=RiskLimits.disabled())
    base = run_signals(bars, sig, cfg, sizing=fixed_units(1.0))
    named = run_signals(bars, sig.with_columns(strategy=pl.lit("s1")), cfg, sizing=fixed_units(1.0))
    assert base.used_fast_path and named.used_fast_path
    assert named.trades["strategy"].unique().to_list() == ["s1"]
    assert base.trades.drop("strategy").equals(named.trades.drop("strategy"))
    # two strategies on one instrument: two slots sharing cash, full simulator
    two = pl.concat([sig.with_columns(strategy=pl.lit("a")), sig.with_columns(strategy=pl.lit("b"))])
    res = run_signals(bars, two, cfg, sizing=fixed_units(1.0))
    assert not res.used_fast_path
    assert sorted(res.positions["strategy"].to_list()) == ["a", "b"]
    assert res.trades.filter(pl.col("strategy") == "a").height == base.trades.height


def test_multi_instrument_grid_is_the_left_join_of_the_clock() -> None:
    """`_grid` places each instrument's rows at their clock position; the reference is the plain left join of the
    union clock with every instrument's rows (instruments missing bars, shuffled input, dynamic-cost columns)."""
    import random

    from lake_assets.backtests import engine as eng

    rng = random.Random(3)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for trial in range(25):
        rows = []
        for inst in rng.sample(["A", "B", "C", "D"], rng.randint(2, 4)):
            for k in rng.sample(range(300), rng.randint(1, 200)):
                px = 100 + rng.random()
                rows.append((t0 + timedelta(minutes=5 * k), inst, px, px + 1, px - 1, px + rng.random() - 0.5,
                             rng.choice([None, 10.0, 3.0])))  # fmt: skip
        rng.shuffle(rows)
        schema = {"ts": pl.Datetime("us", "UTC"), "instrument": pl.String, "open": pl.Float64, "high": pl.Float64,
                  "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64}  # fmt: skip
        bars = pl.DataFrame(rows, schema=schema, orient="row")
        config = eng.EngineConfig(default_spread_bps=2.0, vol_k=0.1) if trial % 2 else eng.EngineConfig()
        grid = eng._grid(bars, config)
        clock = bars.select(pl.col("ts").unique().sort())
        joined_in = bars.join(eng.cost_inputs(bars, eng.CostProfile(default_spread_bps=config.default_spread_bps,
                              vol_window=config.vol_window, adv_window=config.adv_window)), on=["ts", "instrument"],
                              how="left") if config.dynamic_costs else bars  # fmt: skip
        assert grid.instruments == sorted(bars["instrument"].unique().to_list())
        for j, inst in enumerate(grid.instruments):
            ref = clock.join(joined_in.filter(pl.col("instrument") == inst), on="ts", how="left")
            for col in eng._GRID_COLS:
                want = ref[col].cast(pl.Float64).to_numpy() if col in ref.columns else np.full(clock.height, np.nan)
                assert np.array_equal(grid.arrays[col][:, j], want, equal_nan=True), (trial, inst, col)
