"""Options pricing and the options simulator: Black–Scholes against closed-form values and finite differences,
put–call parity, the expiry payoff, strikes by delta, P&L attribution adding up, and a roll across a data gap."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lake_assets.workbench.config import OptionsConfig
from lake_assets.workbench.options import bs_greeks, bs_price, implied_vol, run_options, strike_for


def test_closed_form_textbook_value() -> None:
    # Hull, Options, Futures and Other Derivatives, example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5
    assert bs_price(42, 40, 0.5, 0.10, 0.20, call=True) == pytest.approx(4.76, abs=0.005)
    assert bs_price(42, 40, 0.5, 0.10, 0.20, call=False) == pytest.approx(0.81, abs=0.005)


@pytest.mark.parametrize("call", [True, False])
@pytest.mark.parametrize(("s", "k", "t", "vol"), [(100, 100, 0.25, 0.2), (2500, 2600, 30 / 365, 0.15),
                                                  (50, 40, 1.0, 0.5)])  # fmt: skip
def test_greeks_match_finite_differences(call: bool, s: float, k: float, t: float, vol: float) -> None:
    r = 0.02
    g = bs_greeks(s, k, t, r, vol, call)
    h = s * 1e-4
    up, mid, dn = (bs_price(x, k, t, r, vol, call) for x in (s + h, s, s - h))
    assert g.delta == pytest.approx((up - dn) / (2 * h), rel=1e-5, abs=1e-8)
    assert g.gamma == pytest.approx((up - 2 * mid + dn) / h**2, rel=1e-3, abs=1e-8)
    dv = 1e-5
    vega_fd = (bs_price(s, k, t, r, vol + dv, call) - bs_price(s, k, t, r, vol - dv, call)) / (2 * dv)
    assert g.vega == pytest.approx(vega_fd, rel=1e-5)
    dt = 1e-6
    theta_fd = (bs_price(s, k, t - dt, r, vol, call) - bs_price(s, k, t + dt, r, vol, call)) / (2 * dt)
    assert g.theta == pytest.approx(theta_fd, rel=1e-4)


@pytest.mark.parametrize(("s", "k", "t", "r", "vol"), [(100, 90, 0.5, 0.03, 0.25), (100, 120, 2.0, 0.0, 0.4)])
def test_put_call_parity(s: float, k: float, t: float, r: float, vol: float) -> None:
    c, p = bs_price(s, k, t, r, vol, True), bs_price(s, k, t, r, vol, False)
    assert c - p == pytest.approx(s - k * math.exp(-r * t), abs=1e-10)


def test_expiry_payoff() -> None:
    for s in (80.0, 100.0, 120.0):
        assert bs_price(s, 100, 0.0, 0.02, 0.2, True) == max(s - 100, 0)
        assert bs_price(s, 100, 0.0, 0.02, 0.2, False) == max(100 - s, 0)
        assert bs_price(s, 100, 1e-10, 0.02, 0.2, True) == pytest.approx(max(s - 100, 0), abs=1e-3)


def test_strike_by_delta_hits_the_delta() -> None:
    cfg = OptionsConfig(strike_by="delta", delta=0.3, skew=0.2)
    s, t, rv = 2500.0, 30 / 365, 0.15
    for call in (True, False):
        k = strike_for(cfg, rv, s, t, call)
        d = bs_greeks(s, k, t, cfg.rate, implied_vol(cfg, rv, s, k), call).delta
        assert abs(d) == pytest.approx(0.3, abs=1e-6)
        assert (k > s) if call else (k < s)
    # skew: a put below spot is priced with more vol than a call above it
    assert implied_vol(cfg, rv, s, 0.9 * s) > implied_vol(cfg, rv, s, 1.1 * s)


def _bars(days: list[int], close: list[float]) -> pl.DataFrame:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    return pl.DataFrame({"ts": [start + timedelta(days=d) for d in days], "close": close}).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC")))  # fmt: skip


def test_long_call_attribution_adds_up() -> None:
    rng = np.random.default_rng(1)
    n = 60
    close = list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))))
    bars = _bars(list(range(n)), close)
    cfg = OptionsConfig(days_to_expiry=20, roll_days=3, rv_window=5, fee_per_contract=1.0, premium_fraction=0.5)
    trades, equity = run_options(bars, pl.Series([1] * n), cfg, 100_000.0, 365.0)
    assert trades.height >= 2 and set(trades["option"]) == {"call"}
    assert "roll" in trades["exit_reason"].to_list()
    parts = trades.select(pl.sum_horizontal("delta_pnl", "gamma_pnl", "vega_pnl", "theta_pnl", "residual_pnl"))
    assert np.allclose(parts.to_series().to_numpy(), trades["gross_pnl"].to_numpy())
    # the greeks explain most of it on daily steps: the residual is small next to the delta P&L
    assert trades["residual_pnl"].abs().sum() < 0.2 * trades["delta_pnl"].abs().sum()
    assert equity["equity"][-1] == pytest.approx(100_000.0 + trades["pnl"].sum())
    assert (trades["costs"] > 0).all()


def test_put_vertical_on_short_signal() -> None:
    n = 30
    bars = _bars(list(range(n)), [100.0 - 0.5 * i for i in range(n)])
    cfg = OptionsConfig(structure="vertical", spread_width=0.05, days_to_expiry=60, rv_window=5,
                        premium_fraction=0.2)  # fmt: skip
    trades, _ = run_options(bars, pl.Series([-1] * n), cfg, 100_000.0, 365.0)
    row = trades.row(0, named=True)
    assert row["option"] == "put" and row["short_strike"] == pytest.approx(row["strike"] * 0.95)
    assert row["gross_pnl"] > 0  # the underlying fell


def test_roll_across_a_gap_settles_at_expiry_then_reopens() -> None:
    # bars every day for 10 days, then a 40-day hole (the 30-day option expires inside it), then 10 more days
    days = list(range(10)) + list(range(50, 60))
    close = [100.0 + i for i in range(10)] + [130.0 + i for i in range(10)]
    bars = _bars(days, close)
    cfg = OptionsConfig(days_to_expiry=30, roll_days=5, rv_window=3, fee_per_contract=0.0, vol_spread=0.0)
    trades, equity = run_options(bars, pl.Series([1] * 20), cfg, 100_000.0, 365.0)
    first = trades.row(0, named=True)
    assert first["exit_reason"] == "expiry"
    assert first["exit_ts"] == first["expiry"] == first["entry_ts"] + timedelta(days=30)
    # settled at intrinsic against the last close at or before expiry (day 9: 109), not the post-gap price
    assert first["exit_value"] == pytest.approx(first["contracts"] * 100 * max(109.0 - first["strike"], 0.0))
    second = trades.row(1, named=True)
    assert second["entry_ts"] == datetime(2020, 2, 20, tzinfo=UTC)  # re-opened at the first bar after the gap
    assert second["expiry"] == second["entry_ts"] + timedelta(days=30)
    assert equity.height == 20


def test_rolls_when_close_to_expiry_without_gap() -> None:
    n = 40
    bars = _bars(list(range(n)), [100.0] * n)
    cfg = OptionsConfig(days_to_expiry=10, roll_days=3, rv_window=3, min_vol=0.1)
    trades, _ = run_options(bars, pl.Series([1] * n), cfg, 100_000.0, 365.0)
    rolls = trades.filter(pl.col("exit_reason") == "roll")
    assert rolls.height >= 3
    assert ((rolls["expiry"] - rolls["exit_ts"]).dt.total_days() <= 3).all()
