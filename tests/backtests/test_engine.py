"""Hand-computed execution cases: order types, partial fills, latency, funding, NaN bars, rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from bt_helpers import random_walk_bars

from lake_assets.backtests.engine import EngineConfig, run_orders, run_signals
from lake_assets.backtests.metrics import accounting_report
from lake_assets.backtests.risk import RiskLimits, fixed_units

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ts(i: int) -> datetime:
    return T0 + timedelta(minutes=5 * i)


def make_bars(ohlc: list[tuple[float, float, float, float]], volume: float = 1e9, inst: str = "X") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [ts(i) for i in range(len(ohlc))],
            "instrument": inst,
            "open": [r[0] for r in ohlc],
            "high": [r[1] for r in ohlc],
            "low": [r[2] for r in ohlc],
            "close": [r[3] for r in ohlc],
            "volume": volume,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def orders(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([{"instrument": "X", **r} for r in rows]).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC"))
    )


CFG = EngineConfig(init_cash=10_000.0, maker_fee=0.0002, taker_fee=0.001, slippage=0.0005, risk=RiskLimits.disabled())
FLAT = [(100.0, 100.5, 99.5, 100.0)]


def test_limit_buy_fills_at_limit_when_touched_and_at_open_when_gapped_through() -> None:
    bars = make_bars(FLAT + [(100.0, 100.4, 98.5, 99.8), (99.0, 99.5, 97.0, 98.0)])
    res = run_orders(
        bars,
        orders(
            {"ts": ts(0), "side": "BUY", "order_type": "LIMIT", "size": 10.0, "limit_price": 99.0},
            {"ts": ts(1), "side": "BUY", "order_type": "LIMIT", "size": 5.0, "limit_price": 99.2},
        ),
        CFG,
    )
    f = res.fills.sort("order_id")
    assert f["price"].to_list() == [99.0, 99.0]  # touched at 99.0; second: open 99.0 <= 99.2 -> open
    assert f["ts"].to_list() == [ts(1), ts(2)]
    assert f["liquidity"].to_list() == ["MAKER", "MAKER"]
    assert f["fee"].to_list() == pytest.approx([10 * 99.0 * 0.0002, 5 * 99.0 * 0.0002])
    assert res.equity[-1, "cash"] == pytest.approx(10_000 - 15 * 99.0 - 15 * 99.0 * 0.0002)


def test_limit_not_touched_stays_pending_then_expires() -> None:
    bars = make_bars(FLAT * 5)
    res = run_orders(
        bars,
        orders(
            {
                "ts": ts(0),
                "side": "BUY",
                "order_type": "LIMIT",
                "size": 1.0,
                "limit_price": 90.0,
                "time_in_force_bars": 2,
            }
        ),
        CFG,
    )
    o = res.orders.row(0, named=True)
    assert o["status"] == "EXPIRED" and o["last_update_ts"] == ts(2) and res.fills.height == 0


def test_stop_buy_triggers_at_stop_or_gap_open_with_slippage() -> None:
    bars = make_bars(FLAT + [(100.0, 102.0, 99.8, 101.5), (103.0, 104.0, 102.5, 103.5)])
    res = run_orders(
        bars,
        orders(
            {"ts": ts(0), "side": "BUY", "order_type": "STOP", "size": 2.0, "stop_price": 101.0},
            {"ts": ts(1), "side": "BUY", "order_type": "STOP", "size": 1.0, "stop_price": 102.8},
        ),
        CFG,
    )
    f = res.fills.sort("order_id")
    assert f["price"].to_list() == pytest.approx([101.0 * 1.0005, 103.0 * 1.0005])
    assert f["liquidity"].to_list() == ["TAKER", "TAKER"]
    assert f["slippage_cost"].to_list() == pytest.approx([2 * 101.0 * 0.0005, 103.0 * 0.0005])


def test_stop_sell_protects_a_long() -> None:
    bars = make_bars(FLAT + [(100.0, 100.2, 99.9, 100.0), (99.5, 99.6, 96.0, 97.0)])
    res = run_orders(
        bars,
        orders(
            {"ts": ts(0), "side": "BUY", "size": 3.0},
            {"ts": ts(0), "side": "SELL", "action": "EXIT", "order_type": "STOP", "stop_price": 98.0},
        ),
        CFG,
    )
    f = res.fills.sort("ts")
    assert f["side"].to_list() == ["BUY", "SELL"]
    assert f["price"][1] == pytest.approx(98.0 * (1 - 0.0005))
    assert res.positions["size"][0] == 0.0
    t = res.trades.row(0, named=True)
    assert t["gross_pnl"] == pytest.approx(3 * (98.0 * 0.9995 - 100.0 * 1.0005))


def test_stop_limit_immediate_and_resting_after_gap() -> None:
    bars = make_bars(FLAT + [(100.0, 102.0, 99.8, 101.5), (103.0, 104.0, 102.5, 103.5), (102.0, 102.5, 101.0, 101.2)])
    res = run_orders(
        bars,
        orders(
            # triggers intrabar at 101, marketable (<= 101.5): fills at 101 * (1 + slip), taker
            {
                "ts": ts(0),
                "side": "BUY",
                "order_type": "STOP_LIMIT",
                "size": 1.0,
                "stop_price": 101.0,
                "limit_price": 101.5,
            },
            # bar 2 gaps to 103 > limit 101.6: triggered but no fill; bar 3 low 101.0 <= 101.6: maker fill at 101.6
            {
                "ts": ts(1),
                "side": "BUY",
                "order_type": "STOP_LIMIT",
                "size": 1.0,
                "stop_price": 102.5,
                "limit_price": 101.6,
            },
        ),
        CFG,
    )
    f = res.fills.sort("order_id")
    assert f["price"].to_list() == pytest.approx([101.0 * 1.0005, 101.6])
    assert f["ts"].to_list() == [ts(1), ts(3)]
    assert f["liquidity"].to_list() == ["TAKER", "MAKER"]


def test_stop_limit_cap_limits_slipped_price() -> None:
    bars = make_bars(FLAT + [(100.0, 102.0, 99.8, 101.5)])
    res = run_orders(
        bars,
        orders(
            {
                "ts": ts(0),
                "side": "BUY",
                "order_type": "STOP_LIMIT",
                "size": 1.0,
                "stop_price": 101.0,
                "limit_price": 101.02,
            }
        ),
        CFG,
    )
    assert res.fills["price"][0] == pytest.approx(101.02)  # 101 * 1.0005 = 101.0505 capped at the limit


def test_partial_fills_by_participation() -> None:
    bars = make_bars(FLAT * 5, volume=100.0)
    cfg = EngineConfig(init_cash=10_000.0, participation_rate=0.1, risk=RiskLimits.disabled())
    res = run_orders(bars, orders({"ts": ts(0), "side": "BUY", "size": 25.0}), cfg)
    assert res.fills["size"].to_list() == [10.0, 10.0, 5.0]
    assert res.fills["ts"].to_list() == [ts(1), ts(2), ts(3)]
    o = res.orders.row(0, named=True)
    assert o["status"] == "FILLED" and o["filled_units"] == 25.0
    assert res.risk_events.filter(pl.col("event") == "PARTIAL_FILL").height == 2


def test_latency_delays_fill() -> None:
    bars = make_bars([(100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i) for i in range(6)])
    for lat, fill_at, bar in ((0, "next_open", 1), (2, "next_open", 3), (0, "close", 0), (3, "close", 3)):
        cfg = EngineConfig(init_cash=10_000.0, latency_bars=lat, fill_at=fill_at, risk=RiskLimits.disabled())
        res = run_orders(bars, orders({"ts": ts(0), "side": "BUY", "size": 1.0}), cfg)
        expect = 100.0 + bar if fill_at == "next_open" else 100.5 + bar
        assert res.fills["ts"][0] == ts(bar) and res.fills["price"][0] == expect


def test_funding_long_pays_positive_short_receives() -> None:
    bars = make_bars(
        [
            (100.0, 101.0, 99.0, 100.0),
            (100.0, 101.0, 99.0, 100.0),
            (102.0, 103.0, 101.0, 102.0),
            (104.0, 105.0, 103.0, 104.0),
        ]
    )
    funding = pl.DataFrame(
        {"ts": [ts(2), ts(3) - timedelta(minutes=2)], "instrument": "X", "funding_rate": [0.001, -0.0005]}
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    cfg = EngineConfig(init_cash=10_000.0, risk=RiskLimits.disabled())
    long = run_orders(bars, orders({"ts": ts(0), "side": "BUY", "size": 10.0}), cfg, funding=funding)
    pays = long.funding_payments["payment"].to_list()
    # held over ts(2): pays 10 * open(2) * 0.001; the event at ts(3)-2min lands on bar 3: 10 * 104 * -0.0005
    assert pays == pytest.approx([10 * 102.0 * 0.001, 10 * 104.0 * -0.0005])
    assert long.equity[-1, "cash"] == pytest.approx(10_000 - 1000.0 - sum(pays))
    assert long.trades["funding"][0] == pytest.approx(sum(pays))
    short = run_orders(bars, orders({"ts": ts(0), "side": "SELL", "size": 10.0}), cfg, funding=funding)
    assert short.funding_payments["payment"].to_list() == pytest.approx([-p for p in pays])
    assert accounting_report(long, bars)["ok"] and accounting_report(short, bars)["ok"]


def test_nan_bars_produce_no_fill_and_order_waits() -> None:
    bars = make_bars(FLAT * 4).with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )
    res = run_orders(bars, orders({"ts": ts(0), "side": "BUY", "size": 1.0}), CFG)
    assert res.fills["ts"].to_list() == [ts(2)]


def test_invalid_orders_rejected_with_reason() -> None:
    bars = make_bars(FLAT * 3)
    res = run_orders(
        bars,
        orders(
            {"ts": ts(0), "side": "BUY", "size": 0.0},
            {"ts": ts(0), "side": "BUY", "size": -3.0},
            {"ts": ts(0), "side": "BUY", "size": 1.0, "order_type": "LIMIT", "limit_price": -1.0},
            {"ts": ts(0), "side": "BUY", "size": 1.0, "order_type": "STOP"},
        ),
        CFG,
    )
    o = res.orders.sort("order_id")
    assert o["status"].to_list() == ["REJECTED"] * 4
    assert o["reason"].to_list()[:2] == ["size must be a positive number"] * 2
    assert "limit/stop price" in o["reason"][2] and "limit/stop price" in o["reason"][3]
    assert res.risk_events.filter(pl.col("event") == "REJECTED").height == 4
    with pytest.raises(ValueError, match="unknown values"):
        run_orders(bars, orders({"ts": ts(0), "side": "HOLD", "size": 1.0}), CFG)


def test_modify_and_cancel() -> None:
    bars = make_bars(FLAT + [(100.0, 100.5, 99.0, 100.0)] * 3)
    res = run_orders(
        bars,
        orders(
            {"ts": ts(0), "order_id": 1, "side": "BUY", "order_type": "LIMIT", "size": 1.0, "limit_price": 95.0},
            {"ts": ts(0), "order_id": 2, "side": "BUY", "order_type": "LIMIT", "size": 1.0, "limit_price": 95.0},
            {
                "ts": ts(1),
                "order_id": 3,
                "side": "BUY",
                "action": "MODIFY",
                "ref_order_id": 1,
                "limit_price": 99.5,
                "size": 2.0,
            },
            {"ts": ts(1), "order_id": 4, "side": "BUY", "action": "CANCEL", "ref_order_id": 2},
            {"ts": ts(1), "order_id": 5, "side": "BUY", "action": "CANCEL", "ref_order_id": 99},
        ),
        CFG,
    )
    o = {r["order_id"]: r for r in res.orders.iter_rows(named=True)}
    assert o[1]["status"] == "FILLED" and o[1]["filled_units"] == 2.0 and o[1]["avg_fill_price"] == 99.5
    assert o[2]["status"] == "CANCELLED" and o[5]["status"] == "REJECTED"


def test_fast_path_identical_to_full_simulator_next_open_with_gaps() -> None:
    bars = random_walk_bars(1500, seed=21).with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 5).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )
    rng = np.random.default_rng(2)
    sig = bars.select("ts", "instrument").with_columns(
        **{c: pl.Series(rng.random(1500) < 0.03) for c in ("long_entry", "long_exit", "short_entry", "short_exit")}
    )
    cfg = EngineConfig(init_cash=50_000.0, taker_fee=0.0005, fixed_fee=0.1, slippage=0.0002, risk=RiskLimits.disabled())
    full = run_signals(bars, sig, cfg, sizing=fixed_units(3.0), fast=False)
    fast = run_signals(bars, sig, cfg, sizing=fixed_units(3.0), fast=True)
    assert fast.used_fast_path and not full.used_fast_path and full.trades.height > 20
    assert full.trades.drop("trade_id").equals(fast.trades.drop("trade_id"))
    cols = ["ts", "side", "price", "size", "fee"]
    assert full.fills.select(cols).equals(fast.fills.select(cols))
    np.testing.assert_allclose(full.equity["equity"].to_numpy(), fast.equity["equity"].to_numpy(), rtol=1e-12)
