"""Risk allocator, sizing, kill switches, daily loss cap and the dynamic cost model, each hand-checked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_engine import FLAT, make_bars, orders, ts

from lake_assets.backtests.costs import load_costs
from lake_assets.backtests.engine import EngineConfig, run_orders, run_signals
from lake_assets.backtests.metrics import accounting_report
from lake_assets.backtests.risk import (
    RiskLimits,
    capped_kelly,
    fixed_units,
    kelly_fraction,
    percent_equity,
    risk_percent_atr,
    volatility_target,
)
from lake_assets.specs import SpecError


def two_instruments(n: int = 4) -> pl.DataFrame:
    return pl.concat([make_bars(FLAT * n, inst="A"), make_bars(FLAT * n, inst="B")])


def test_leverage_cap_resizes_second_instrument_with_shared_cash() -> None:
    bars = two_instruments()
    o = pl.DataFrame(
        {"ts": [ts(0), ts(0)], "instrument": ["A", "B"], "side": ["BUY", "BUY"], "size": [60.0, 60.0]}
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    res = run_orders(bars, o, EngineConfig(init_cash=10_000.0, risk=RiskLimits(max_leverage=1.0)))
    assert res.fills.sort("instrument")["size"].to_list() == pytest.approx([60.0, 40.0])
    ev = res.risk_events.row(0, named=True)
    assert (
        ev["event"] == "RESIZED" and ev["reason"] == "resized: portfolio leverage cap" and ev["allowed_units"] == 40.0
    )
    assert res.orders.filter(pl.col("instrument") == "B")["reason"][0] == "resized: portfolio leverage cap"


def test_caps_apply_in_order_strategy_instrument_new_exposure() -> None:
    bars = make_bars(FLAT * 4)
    base = {"ts": ts(0), "side": "BUY", "size": 50.0}
    for limits, reason, allowed in (
        (RiskLimits(max_leverage=None, max_strategy_exposure=0.2), "strategy", 20.0),
        (RiskLimits(max_leverage=None, max_instrument_exposure=0.3), "instrument", 30.0),
        (RiskLimits(max_leverage=None, max_new_exposure_per_bar=0.1), "new exposure", 10.0),
    ):
        res = run_orders(bars, orders(base), EngineConfig(init_cash=10_000.0, risk=limits))
        assert res.fills["size"][0] == pytest.approx(allowed)
        assert reason in res.risk_events["reason"][0]
    # a reducing order is never capped
    res = run_orders(
        bars,
        orders(base, {"ts": ts(1), "side": "SELL", "action": "EXIT"}),
        EngineConfig(init_cash=10_000.0, risk=RiskLimits(max_leverage=None, max_new_exposure_per_bar=0.1)),
    )
    assert res.positions["size"][0] == 0.0


def test_shorts_disabled_rejects_short_entry() -> None:
    res = run_orders(
        make_bars(FLAT * 3), orders({"ts": ts(0), "side": "SELL", "size": 1.0}), EngineConfig(allow_short=False)
    )
    assert res.orders["status"][0] == "REJECTED" and res.orders["reason"][0] == "rejected: short selling disabled"


def _falling(n: int, step: float) -> pl.DataFrame:
    return make_bars(
        [(100 - step * i, 100 - step * i + 0.1, 100 - step * (i + 1) - 0.1, 100 - step * (i + 1)) for i in range(n)]
    )


def test_drawdown_kill_switch_flattens_and_blocks_entries() -> None:
    bars = _falling(8, 2.0)
    res = run_orders(
        bars,
        orders({"ts": ts(0), "side": "BUY", "size": 100.0}, {"ts": ts(5), "side": "BUY", "size": 1.0}),
        EngineConfig(init_cash=10_000.0, risk=RiskLimits(max_leverage=None, max_drawdown=0.03)),
    )
    kills = res.risk_events.filter(pl.col("event") == "KILL_SWITCH")
    # long 100 @ 98 (open of bar 1); close of bar 1 = 96 -> equity 9_800 (-2%); bar 2 close 94 -> -4% -> trip
    assert kills["ts"].to_list() == [ts(2)] and "drawdown" in kills["reason"][0]
    assert res.positions["size"][0] == 0.0
    assert res.fills.filter(pl.col("side") == "SELL")["ts"].to_list() == [ts(3)]
    late = res.orders.filter(pl.col("ts") == ts(5))
    assert late["status"][0] == "REJECTED" and late["reason"][0] == "rejected: kill switch active"


def test_daily_loss_cap_blocks_entries_until_next_day_and_cooldown() -> None:
    bars = _falling(300, 0.01)  # 5m bars: day 2 starts at bar 288
    res = run_orders(
        bars,
        orders(
            {"ts": ts(0), "side": "BUY", "size": 1000.0},
            {"ts": ts(10), "side": "SELL", "action": "EXIT"},
            {"ts": ts(20), "side": "BUY", "size": 1.0},
            {"ts": ts(287), "side": "BUY", "size": 1.0},
        ),
        EngineConfig(init_cash=100_000.0, risk=RiskLimits(max_leverage=None, daily_loss_cap=0.0005, cooldown_bars=3)),
    )
    hits = res.risk_events.filter(pl.col("event") == "DAILY_LOSS_CAP")
    assert hits.height >= 1 and hits["ts"][0] < ts(10)
    o = {r["ts"]: r for r in res.orders.iter_rows(named=True)}
    assert o[ts(20)]["status"] == "REJECTED" and o[ts(20)]["reason"] == "rejected: daily loss cap / cooldown"
    assert o[ts(287)]["status"] == "FILLED"  # fills at bar 288, the first bar of the next day


def test_staleness_kill_switch() -> None:
    bars = make_bars(FLAT * 10).with_columns(
        pl.when(pl.int_range(pl.len()).is_between(3, 7)).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )
    res = run_orders(
        bars, orders({"ts": ts(0), "side": "BUY", "size": 1.0}), EngineConfig(risk=RiskLimits(max_stale_bars=3))
    )
    kill = res.risk_events.filter(pl.col("event") == "KILL_SWITCH")
    assert kill["ts"].to_list() == [ts(6)] and "stale" in kill["reason"][0] and kill["instrument"][0] == "X"
    assert res.fills.filter(pl.col("side") == "SELL")["ts"].to_list() == [ts(8)]  # first valid bar after the trip


def test_slippage_ratio_kill_switch_and_dynamic_cost_formula() -> None:
    bars = make_bars(FLAT * 6, volume=100.0)
    cfg = EngineConfig(
        init_cash=1e6,
        slippage=0.0001,
        default_spread_bps=2.0,
        impact_k=0.0,
        liquidity_k=0.0,
        risk=RiskLimits(max_leverage=None, max_slippage_ratio=1.5, min_fills_for_slippage=1),
    )
    res = run_orders(bars, orders({"ts": ts(0), "side": "BUY", "size": 10.0}), cfg)
    assert res.fills["price"][0] == pytest.approx(100.0 * (1 + 0.0001 + 0.0001))  # fixed + half of 2 bps
    assert res.risk_events.filter(pl.col("event") == "KILL_SWITCH").height == 0
    # impact: 0.5 * sigma * sqrt(units / volume) makes realised >> expected and trips the switch
    noisy = make_bars([(100.0, 101, 99, 100 + (i % 2)) for i in range(60)], volume=100.0)
    cfg2 = EngineConfig(
        init_cash=1e6, slippage=0.0001, impact_k=0.5, vol_window=10,
        risk=RiskLimits(max_leverage=None, max_slippage_ratio=1.5, min_fills_for_slippage=1),
    )  # fmt: skip
    res2 = run_orders(noisy, orders({"ts": ts(30), "side": "BUY", "size": 50.0}), cfg2)
    f = res2.fills.row(0, named=True)
    sigma = float(np.std(np.diff(np.log(noisy["close"].to_numpy()[20:31])), ddof=1))
    ref = 100.0
    assert f["price"] == pytest.approx(ref * (1 + 0.0001 + 0.5 * sigma * math.sqrt(50 / 100)), rel=1e-9)
    assert res2.risk_events.filter(pl.col("event") == "KILL_SWITCH")["reason"][0].startswith("kill switch: realised")


def test_sizing_rules() -> None:
    bars = make_bars(FLAT * 4).with_columns(atr=pl.lit(2.0), rv=pl.lit(0.02))
    sig = bars.select("ts", "instrument").with_columns(long_entry=pl.int_range(pl.len()) == 0)
    cfg = EngineConfig(init_cash=10_000.0, risk=RiskLimits.disabled())
    units = lambda s: run_signals(bars, sig, cfg, sizing=s).fills["size"][0]  # noqa: E731
    assert units(fixed_units(7.0)) == 7.0
    assert units(percent_equity(0.5)) == pytest.approx(50.0)
    assert units(risk_percent_atr(0.01, "atr", 2.5)) == pytest.approx(10_000 * 0.01 / 5.0)
    assert units(volatility_target(0.01, "rv", max_fraction=2.0)) == pytest.approx(50.0)
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.2)
    assert units(capped_kelly(0.6, 1.0, multiplier=0.5, cap=0.25)) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no edge"):
        capped_kelly(0.3, 1.0)


def test_costs_spec_validation(tmp_path: Path) -> None:
    spec = load_costs()
    assert spec.profile().taker_fee_bps > 0 and spec.profile("equity").fixed_slippage_bps == 5.0
    cfg = EngineConfig.from_costs(spec.profile("perp"))
    assert cfg.taker_fee == pytest.approx(5e-4) and cfg.participation_rate == 0.1
    bad = tmp_path / "costs.yaml"
    bad.write_text("default_profile: perp\nprofiles:\n  perp:\n    taker_fee_bps: -1\n")
    with pytest.raises(SpecError, match=r"costs.yaml: profiles.perp.taker_fee_bps: "):
        load_costs(bad)
    bad.write_text("default_profile: nope\nprofiles:\n  perp: {}\n")
    with pytest.raises(SpecError, match="default_profile 'nope'"):
        load_costs(bad)
    bad.write_text("default_profile: perp\nprofiles:\n  perp:\n    participation_rate: 2\n")
    with pytest.raises(SpecError, match="participation_rate"):
        load_costs(bad)


def test_realistic_multi_instrument_run_keeps_accounting_identities() -> None:
    from bt_helpers import random_walk_bars

    bars = pl.concat([random_walk_bars(800, seed=s, instrument=f"I{s}") for s in range(3)])
    rng = np.random.default_rng(9)
    sig = bars.select("ts", "instrument").with_columns(
        **{
            c: pl.Series(rng.random(bars.height) < 0.03)
            for c in ("long_entry", "long_exit", "short_entry", "short_exit")
        }
    )
    funding = (
        bars.filter(pl.col("ts").dt.minute() == 0).select("ts", "instrument").with_columns(funding_rate=pl.lit(1e-4))
    )
    cfg = EngineConfig.from_costs(
        load_costs().profile("perp"), latency_bars=1, risk=RiskLimits(max_leverage=2.0, max_instrument_exposure=0.8)
    )
    res = run_signals(bars, sig, cfg, sizing=percent_equity(0.5), funding=funding)
    assert res.fills.height > 50 and res.funding_payments.height > 0
    assert res.risk_events.height > 0
    rep = accounting_report(res, bars)
    assert rep["ok"], rep
