"""Options backtests: Black–Scholes prices and greeks, a spec'd implied-vol model, and a bar-by-bar simulator.

A long target direction holds a call (or a call vertical: long K1, short K2 = K1 * (1 + width)), a short one a put
(long K1, short K1 * (1 - width)). Direction d of bar t is acted on at the close of bar t + 1 (one bar after the
signal is known, like the equities engine's next-bar fill).

- Strike: by moneyness (call K = m * S, put K = (2 - m) * S) or by |delta| of the bought leg (solved with the skewed
  vol). Expiry: `days_to_expiry` calendar days after entry; roll (close and reopen) when `roll_days` or fewer are
  left and the signal still holds. An option whose expiry falls inside a data gap settles at intrinsic value against
  the last close at or before its expiry, then the position re-opens at the next bar if the signal holds.
- Implied vol: realised vol of log returns over `rv_window` bars (annualised, as of the bar) + `vol_risk_premium`
  + `skew * (1 - K / S)` (puts below spot richer, calls above cheaper), floored at `min_vol`.
- Costs: `fee_per_contract` per contract and leg on every open and close; buying pays `vol_spread / 2` vol points
  over mid, selling receives `vol_spread / 2` under.
- Attribution per trade: delta dS + gamma dS^2 / 2 + vega dvol + theta dt per bar from the previous bar's greeks,
  and the residual (the exact repricing minus these), all in quote currency and excluding costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import norm

from lake_assets.vocabulary import CLOSE, TS
from lake_assets.workbench.config import OptionsConfig

YEAR_DAYS = 365.0


# --- Black–Scholes ------------------------------------------------------------------------------------------------


def _d1d2(s: float, k: float, t: float, r: float, vol: float) -> tuple[float, float]:
    sq = vol * math.sqrt(t)
    d1 = (math.log(s / k) + (r + 0.5 * vol * vol) * t) / sq
    return d1, d1 - sq


def bs_price(s: float, k: float, t: float, r: float, vol: float, call: bool) -> float:
    """Black–Scholes price (no dividends); at or after expiry (t <= 0) the intrinsic value."""
    if t <= 0 or vol <= 0:
        return max(s - k, 0.0) if call else max(k - s, 0.0)
    d1, d2 = _d1d2(s, k, t, r, vol)
    disc = k * math.exp(-r * t)
    if call:
        return float(s * norm.cdf(d1) - disc * norm.cdf(d2))
    return float(disc * norm.cdf(-d2) - s * norm.cdf(-d1))


@dataclass(frozen=True)
class Greeks:
    """Per one option: delta (per 1 of spot), gamma (per 1 of spot, squared), vega (per 1.00 of vol, i.e. 100 vol
    points), theta (per year of calendar time)."""

    delta: float
    gamma: float
    vega: float
    theta: float

    def scaled(self, q: float) -> Greeks:
        return Greeks(self.delta * q, self.gamma * q, self.vega * q, self.theta * q)

    def __add__(self, other: Greeks) -> Greeks:
        return Greeks(self.delta + other.delta, self.gamma + other.gamma, self.vega + other.vega,
                      self.theta + other.theta)  # fmt: skip


ZERO_GREEKS = Greeks(0.0, 0.0, 0.0, 0.0)


def bs_greeks(s: float, k: float, t: float, r: float, vol: float, call: bool) -> Greeks:
    if t <= 0 or vol <= 0:
        itm = (s > k) if call else (s < k)
        return Greeks((1.0 if call else -1.0) if itm else 0.0, 0.0, 0.0, 0.0)
    d1, d2 = _d1d2(s, k, t, r, vol)
    pdf = float(norm.pdf(d1))
    sqt = math.sqrt(t)
    gamma = pdf / (s * vol * sqt)
    vega = s * pdf * sqt
    decay = -s * pdf * vol / (2 * sqt)
    if call:
        return Greeks(float(norm.cdf(d1)), gamma, vega, decay - r * k * math.exp(-r * t) * float(norm.cdf(d2)))
    return Greeks(float(norm.cdf(d1)) - 1.0, gamma, vega, decay + r * k * math.exp(-r * t) * float(norm.cdf(-d2)))


def implied_vol(cfg: OptionsConfig, rv: float, s: float, k: float) -> float:
    """The spec'd implied-vol model: realised vol + risk premium + linear skew in moneyness."""
    return max(cfg.min_vol, rv + cfg.vol_risk_premium + cfg.skew * (1.0 - k / s))


def strike_for(cfg: OptionsConfig, rv: float, s: float, t: float, call: bool) -> float:
    """The bought leg's strike: by moneyness, or by |delta| (fixed point over the skewed vol, 20 steps)."""
    if cfg.strike_by == "moneyness":
        return s * (cfg.moneyness if call else 2.0 - cfg.moneyness)
    target = cfg.delta if call else 1.0 - cfg.delta  # N(d1) of the wanted strike
    d1 = float(norm.ppf(target))
    k = s
    for _ in range(20):
        vol = implied_vol(cfg, rv, s, k)
        k = s * math.exp(-(d1 * vol * math.sqrt(t) - (cfg.rate + 0.5 * vol * vol) * t))
    return k


# --- the simulator ------------------------------------------------------------------------------------------------


ATTRIBUTION: tuple[str, ...] = ("delta_pnl", "gamma_pnl", "vega_pnl", "theta_pnl", "residual_pnl")


@dataclass
class Leg:
    strike: float
    call: bool
    qty: float  # contracts, signed (+ long)


@dataclass
class Position:
    direction: int
    legs: list[Leg]
    expiry: datetime
    entry_ts: datetime
    entry_value: float  # mid value at entry (quote currency, signed)
    cost: float  # fees + spread paid at entry
    entry_greeks: Greeks
    attribution: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ATTRIBUTION, 0.0))



def realised_vol(close: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Annualised std of log returns over the last `window` bars (as of each bar; NaN before the window)."""
    lr = np.r_[np.nan, np.diff(np.log(close))]
    out = pl.Series(lr).rolling_std(window, min_samples=max(2, window // 2)).to_numpy()
    return np.asarray(out, dtype=float) * math.sqrt(periods_per_year)


def _years(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 86_400.0 / YEAR_DAYS


class _Book:
    def __init__(self, cfg: OptionsConfig, capital: float) -> None:
        self.cfg, self.cash = cfg, capital
        self.pos: Position | None = None
        self.trades: list[dict[str, Any]] = []

    def leg_value(self, leg: Leg, s: float, t: float, rv: float, side: int = 0) -> float:
        """Value of a leg's contracts; side +1 = what buying costs (mid + half the vol spread), -1 = selling."""
        vol = implied_vol(self.cfg, rv, s, leg.strike) + side * self.cfg.vol_spread / 2
        return bs_price(s, leg.strike, t, self.cfg.rate, max(vol, 1e-6), leg.call) * leg.qty * \
            self.cfg.contract_multiplier  # fmt: skip

    def value(self, s: float, now: datetime, rv: float, side: int = 0) -> float:
        if self.pos is None:
            return 0.0
        t = _years(now, self.pos.expiry)
        # a trade crosses the spread per leg: buying a long leg pays the ask, selling it receives the bid
        return sum(self.leg_value(leg, s, t, rv, side * (1 if leg.qty > 0 else -1)) for leg in self.pos.legs)

    def greeks(self, s: float, now: datetime, rv: float) -> Greeks:
        if self.pos is None:
            return ZERO_GREEKS
        t = _years(now, self.pos.expiry)
        g = ZERO_GREEKS
        for leg in self.pos.legs:
            vol = implied_vol(self.cfg, rv, s, leg.strike)
            g = g + bs_greeks(s, leg.strike, t, self.cfg.rate, vol, leg.call).scaled(
                leg.qty * self.cfg.contract_multiplier)
        return g

    def fees(self) -> float:
        assert self.pos is not None
        return sum(abs(leg.qty) for leg in self.pos.legs) * self.cfg.fee_per_contract

    def open(self, direction: int, s: float, now: datetime, rv: float, equity: float) -> None:
        cfg = self.cfg
        call = direction > 0
        expiry = now + timedelta(days=cfg.days_to_expiry)
        t = _years(now, expiry)
        k1 = strike_for(cfg, rv, s, t, call)
        legs = [Leg(k1, call, 1.0)]
        if cfg.structure == "vertical":
            legs.append(Leg(k1 * (1 + cfg.spread_width) if call else k1 * (1 - cfg.spread_width), call, -1.0))
        self.pos = Position(direction, legs, expiry, now, 0.0, 0.0, ZERO_GREEKS)
        unit = self.value(s, now, rv, side=1)  # one structure, ask side
        contracts = math.floor(cfg.premium_fraction * equity / unit) if unit > 0 else 0
        if contracts < 1:
            self.pos = None
            return
        for leg in legs:
            leg.qty *= contracts
        paid = self.value(s, now, rv, side=1)
        mid = self.value(s, now, rv)
        fee = self.fees()
        self.cash -= paid + fee
        self.pos.entry_value, self.pos.cost = mid, (paid - mid) + fee
        self.pos.entry_greeks = self.greeks(s, now, rv)

    def close(self, s: float, now: datetime, rv: float, reason: str, settle: bool = False) -> None:
        pos = self.pos
        assert pos is not None
        if settle:  # expired: intrinsic value, no spread, no fee
            got = sum(leg.qty * self.cfg.contract_multiplier * (max(s - leg.strike, 0.0) if leg.call
                      else max(leg.strike - s, 0.0)) for leg in pos.legs)  # fmt: skip
            mid, fee = got, 0.0
        else:
            got = self.value(s, now, rv, side=-1)
            mid = self.value(s, now, rv)
            fee = self.fees()
        self.cash += got - fee
        cost = pos.cost + (mid - got) + fee
        g = pos.entry_greeks
        self.trades.append({
            "entry_ts": pos.entry_ts, "exit_ts": now, "direction": "LONG" if pos.direction > 0 else "SHORT",
            "option": "call" if pos.legs[0].call else "put", "structure": self.cfg.structure,
            "strike": pos.legs[0].strike, "short_strike": pos.legs[1].strike if len(pos.legs) > 1 else None,
            "expiry": pos.expiry, "contracts": abs(pos.legs[0].qty), "entry_value": pos.entry_value,
            "exit_value": mid, "gross_pnl": mid - pos.entry_value, "costs": cost,
            "pnl": mid - pos.entry_value - cost, "exit_reason": reason,
            "entry_delta": g.delta, "entry_gamma": g.gamma, "entry_vega": g.vega, "entry_theta": g.theta,
            **pos.attribution,
        })  # fmt: skip
        self.pos = None

    def attribute(self, s0: float, s1: float, t0: datetime, t1: datetime, rv0: float, rv1: float) -> None:
        """Split one bar's mid-value change of the open position into greeks' P&L and a residual."""
        pos = self.pos
        if pos is None:
            return
        g = self.greeks(s0, t0, rv0)
        v0 = self.value(s0, t0, rv0)
        v1 = self.value(s1, t1, rv1)
        ds, dt = s1 - s0, _years(t0, min(t1, pos.expiry))
        dvol = (rv1 - rv0)  # the model shifts every leg's vol by the change in realised vol (skew is sticky-strike)
        parts = {"delta_pnl": g.delta * ds, "gamma_pnl": 0.5 * g.gamma * ds * ds, "vega_pnl": g.vega * dvol,
                 "theta_pnl": g.theta * dt}  # fmt: skip
        parts["residual_pnl"] = (v1 - v0) - sum(parts.values())
        for k, v in parts.items():
            pos.attribution[k] += v


def run_options(
    bars: pl.DataFrame, direction: pl.Series, cfg: OptionsConfig, capital: float, periods_per_year: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(trades, equity) of the options strategy on one underlying's bars (sorted; gap rows have a null close)."""
    ts = bars[TS].to_list()
    close = bars[CLOSE].cast(pl.Float64).fill_null(np.nan).to_numpy()
    rv = realised_vol(close, cfg.rv_window, periods_per_year)
    rv = pl.Series(rv).fill_nan(None).forward_fill().fill_null(0.0).to_numpy()
    want = np.r_[0, direction.fill_null(0).to_numpy()[:-1]].astype(int)  # acted on one bar later
    book = _Book(cfg, capital)
    eq: list[float] = []
    last_i = -1
    for i in range(len(ts)):
        s, now = close[i], ts[i]
        if not np.isfinite(s):  # a gap bar: nothing trades, the position is carried at its last mark
            eq.append(eq[-1] if eq else capital)
            continue
        if book.pos is not None and last_i >= 0:
            if book.pos.expiry <= now:  # expired since the last priced bar (a gap): settle at intrinsic
                settle_i = max(j for j in range(last_i, i) if np.isfinite(close[j]) and ts[j] <= book.pos.expiry)
                book.attribute(close[last_i], close[settle_i], ts[last_i], book.pos.expiry, rv[last_i],
                               rv[settle_i])  # fmt: skip
                book.close(close[settle_i], book.pos.expiry, rv[settle_i], "expiry", settle=True)
            else:
                book.attribute(close[last_i], s, ts[last_i], now, rv[last_i], rv[i])
        d = int(want[i])
        if book.pos is not None and book.pos.direction != d:
            book.close(s, now, rv[i], "signal")
        if book.pos is not None and (book.pos.expiry - now).days <= cfg.roll_days:
            book.close(s, now, rv[i], "roll")
        if book.pos is None and d != 0:
            book.open(d, s, now, rv[i], book.cash)
        eq.append(book.cash + book.value(s, now, rv[i]))
        last_i = i
    if book.pos is not None and last_i >= 0:
        book.close(close[last_i], ts[last_i], rv[last_i], "end")
        eq[-1] = book.cash
    equity = pl.DataFrame({TS: bars[TS], "equity": np.asarray(eq, dtype=float)})
    equity = equity.with_columns((pl.col("equity") / pl.col("equity").cum_max() - 1.0).alias("drawdown"))
    trades = pl.DataFrame(book.trades, schema=TRADE_SCHEMA) if book.trades else \
        pl.DataFrame(schema=TRADE_SCHEMA)  # fmt: skip
    return trades, equity


_DT = pl.Datetime("us", "UTC")
TRADE_SCHEMA = pl.Schema({  # type: ignore[arg-type]
    "entry_ts": _DT, "exit_ts": _DT, "direction": pl.String,
    "option": pl.String, "structure": pl.String, "strike": pl.Float64, "short_strike": pl.Float64,
    "expiry": _DT, "contracts": pl.Float64, "entry_value": pl.Float64,
    "exit_value": pl.Float64, "gross_pnl": pl.Float64, "costs": pl.Float64, "pnl": pl.Float64,
    "exit_reason": pl.String, "entry_delta": pl.Float64, "entry_gamma": pl.Float64, "entry_vega": pl.Float64,
    "entry_theta": pl.Float64, "delta_pnl": pl.Float64, "gamma_pnl": pl.Float64, "vega_pnl": pl.Float64,
    "theta_pnl": pl.Float64, "residual_pnl": pl.Float64,
})  # fmt: skip
