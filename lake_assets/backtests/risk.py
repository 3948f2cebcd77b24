"""Risk layer inputs: position sizing rules and the limits the engine's allocator and kill switches enforce.

Sizing is expressed as (size_type, size, stop_distance) so that the engine resolves units at fill time against the
equity it has then; limits are applied deterministically per fill in order strategy -> instrument -> portfolio ->
new exposure per bar, and every resize/rejection is recorded with its reason (engine's `risk_events`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import polars as pl

from lake_assets.backtests.schema import SizeType


@dataclass(frozen=True)
class RiskLimits:
    """Exposure caps are multiples of current equity (gross notional / equity); None disables a rule."""

    max_leverage: float | None = 1.0  # portfolio gross exposure cap
    max_strategy_exposure: float | None = None
    max_instrument_exposure: float | None = None
    max_new_exposure_per_bar: float | None = None
    daily_loss_cap: float | None = None  # fraction of the day's starting equity
    cooldown_bars: int = 0  # after the daily cap trips, entries stay blocked at least this many bars
    max_stale_bars: int | None = None  # kill switch: an instrument held with this many consecutive NaN bars
    max_drawdown: float | None = None  # kill switch: equity below peak * (1 - max_drawdown)
    max_slippage_ratio: float | None = None  # kill switch: realised / expected slippage cost
    min_fills_for_slippage: int = 20
    flatten_on_kill: bool = True
    # what an exposure cap (strategy, instrument, leverage, new exposure) does to an order whose opening part exceeds
    # it: "resize" fills what fits (a RESIZED risk event); "reject" drops the whole opening part (a REJECTED event),
    # as backtesting.py cancels an order larger than its margin. The closing part of a reversal fills either way.
    on_cap: Literal["resize", "reject"] = "resize"

    def __post_init__(self) -> None:
        if self.on_cap not in ("resize", "reject"):
            raise ValueError(f"RiskLimits.on_cap must be 'resize' or 'reject', got {self.on_cap!r}")
        for name in ("max_leverage", "max_strategy_exposure", "max_instrument_exposure", "max_new_exposure_per_bar"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"RiskLimits.{name} must be > 0 or None, got {v!r}")
        for name in ("daily_loss_cap", "max_drawdown"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 1:
                raise ValueError(f"RiskLimits.{name} must be in (0, 1) or None, got {v!r}")
        if self.cooldown_bars < 0:
            raise ValueError("RiskLimits.cooldown_bars must be >= 0")

    @classmethod
    def disabled(cls) -> RiskLimits:
        return cls(max_leverage=None)


@dataclass(frozen=True)
class Sizing:
    """How an entry signal becomes a size: a constant or a per-bar expression over the bars/signals frame."""

    size_type: SizeType
    size: float | pl.Expr
    stop_distance: pl.Expr | None = None  # price distance to the protective stop (RISK_PERCENT)
    # whole units, as backtesting.py sizes orders: a fraction of equity becomes floor(fraction * equity / (price
    # adjusted for spread + commission per unit)), other sizes are floored
    whole_units: bool = False


def fixed_notional(amount: float) -> Sizing:
    """Trade a fixed quote amount per entry (+inf = all available cash, vectorbt's size=np.inf)."""
    if not amount > 0:
        raise ValueError(f"fixed_notional: amount must be > 0, got {amount!r}")
    return Sizing(SizeType.NOTIONAL, float(amount))


def fixed_units(units: float) -> Sizing:
    if not units > 0 or math.isinf(units):
        raise ValueError(f"fixed_units: units must be finite and > 0, got {units!r}")
    return Sizing(SizeType.SHARES, float(units))


def percent_equity(fraction: float, whole_units: bool = False) -> Sizing:
    """Commit `fraction` × equity at the fill, slippage and fees included (units = (fraction·equity − fixed fee) /
    (price·(1 ± slippage)·(1 + fee)), vectorbt's all-cash arithmetic): all-in (1.0) never borrows under a 1.0
    leverage cap. `whole_units`: backtesting.py's `buy(size=fraction)` units (see `Sizing.whole_units`)."""
    if not fraction > 0:
        raise ValueError(f"percent_equity: fraction must be > 0, got {fraction!r}")
    return Sizing(SizeType.EQUITY_PERCENT, float(fraction), whole_units=whole_units)


def risk_percent_atr(risk_fraction: float, atr: pl.Expr | str, atr_multiple: float = 2.0) -> Sizing:
    """Lose `risk_fraction` of equity if a stop `atr_multiple` × ATR away is hit: units = risk·equity / (k·ATR)."""
    if not 0 < risk_fraction < 1 or not atr_multiple > 0:
        raise ValueError("risk_percent_atr: risk_fraction in (0, 1) and atr_multiple > 0 required")
    expr = pl.col(atr) if isinstance(atr, str) else atr
    return Sizing(SizeType.RISK_PERCENT, float(risk_fraction), stop_distance=expr * atr_multiple)


def volatility_target(target_vol: float, realized_vol: pl.Expr | str, max_fraction: float = 1.0) -> Sizing:
    """Equity fraction = target / realised vol (same period units), capped; null vol -> no position (size 0)."""
    if not target_vol > 0 or not max_fraction > 0:
        raise ValueError("volatility_target: target_vol and max_fraction must be > 0")
    vol = pl.col(realized_vol) if isinstance(realized_vol, str) else realized_vol
    frac = (pl.lit(target_vol) / vol).clip(upper_bound=max_fraction).fill_nan(0.0).fill_null(0.0)
    return Sizing(SizeType.EQUITY_PERCENT, frac)


def kelly_fraction(win_rate: float, win_loss_ratio: float) -> float:
    """Full Kelly for a binary bet: p - (1 - p) / b (can be negative: no edge)."""
    if not 0 <= win_rate <= 1 or not win_loss_ratio > 0:
        raise ValueError("kelly_fraction: win_rate in [0, 1] and win_loss_ratio > 0 required")
    return win_rate - (1.0 - win_rate) / win_loss_ratio


def capped_kelly(win_rate: float, win_loss_ratio: float, multiplier: float = 0.5, cap: float = 0.25) -> Sizing:
    """Fractional Kelly clipped to [0, cap] of equity; raises when there is no edge (nothing to size)."""
    f = min(max(kelly_fraction(win_rate, win_loss_ratio) * multiplier, 0.0), cap)
    if f <= 0:
        raise ValueError(f"capped_kelly: no edge (kelly {kelly_fraction(win_rate, win_loss_ratio):.4f}); do not trade")
    return Sizing(SizeType.EQUITY_PERCENT, f)
