"""Dynamic transaction-cost model: spread + volatility + liquidity + participation impact, from spec/costs.yaml.

The per-bar inputs (half-spread, sigma, ADV) are computed here point-in-time (shifted one bar); the size-dependent
parts (liquidity, participation impact) are applied by the engine at fill time, when the fill size is known.
The half-spread is the real one where the bars carry top of book (`bid`/`ask`: the quote at the previous bar's close,
the book a fill at the bar's open meets), else the `spread_bps` feature column, else the profile's default.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import Field, model_validator

from lake_assets.settings import spec_dir
from lake_assets.specs import StrictModel, load_spec_file
from lake_assets.vocabulary import ASK, BID, CLOSE, INSTRUMENT, TS, VOLUME

SPREAD_BPS = "spread_bps"  # feature column (top-of-book spread), null where no book data
HALF_SPREAD = "half_spread"
SIGMA = "sigma"
ADV_NOTIONAL = "adv_notional"


class CostProfile(StrictModel):

    maker_fee_bps: float = Field(default=0.0, ge=0)
    taker_fee_bps: float = Field(default=0.0, ge=0)
    fixed_fee: float = Field(default=0.0, ge=0)
    fixed_slippage_bps: float = Field(default=0.0, ge=0)
    default_spread_bps: float = Field(default=0.0, ge=0)
    vol_k: float = Field(default=0.0, ge=0)
    vol_window: int = Field(default=48, ge=2)
    liquidity_k: float = Field(default=0.0, ge=0)
    adv_window: int = Field(default=288, ge=1)
    impact_k: float = Field(default=0.0, ge=0)
    participation_rate: float | None = Field(default=None, gt=0, le=1)


class CostSpec(StrictModel):

    default_profile: str
    profiles: dict[str, CostProfile]

    @model_validator(mode="after")
    def _default_exists(self) -> CostSpec:
        if self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not one of {sorted(self.profiles)}")
        return self

    def profile(self, name: str | None = None) -> CostProfile:
        return self.profiles[name or self.default_profile]


def load_costs(path: Path | None = None) -> CostSpec:
    """Read and validate spec/costs.yaml; any problem is a SpecError naming file, key and problem."""
    return load_spec_file(CostSpec, path or spec_dir() / "costs.yaml", "`default_profile` and `profiles`")


def cost_inputs(bars: pl.DataFrame, profile: CostProfile) -> pl.DataFrame:
    """Per (ts, instrument): half-spread (fraction), sigma (per-bar log-return std) and ADV notional, all PIT."""
    has_spread = SPREAD_BPS in bars.columns
    default_half = profile.default_spread_bps / 2e4
    half = (
        pl.col(SPREAD_BPS).cast(pl.Float64).truediv(2e4).fill_null(default_half).fill_nan(default_half)
        if has_spread
        else pl.lit(default_half, dtype=pl.Float64)
    )
    if BID in bars.columns and ASK in bars.columns:
        quoted = ((pl.col(ASK) - pl.col(BID)) / (pl.col(ASK) + pl.col(BID))).cast(pl.Float64).shift(1).over(INSTRUMENT)
        half = pl.when(quoted.is_finite() & (quoted >= 0)).then(quoted).otherwise(half)
    logret = (pl.col(CLOSE) / pl.col(CLOSE).shift(1)).log().over(INSTRUMENT)
    return (
        bars.sort(INSTRUMENT, TS)
        .with_columns(_lr=logret)
        .select(
            TS,
            INSTRUMENT,
            half.alias(HALF_SPREAD),
            pl.col("_lr")
            .rolling_std(profile.vol_window, min_samples=max(2, profile.vol_window // 2))
            .shift(1)
            .over(INSTRUMENT)
            .alias(SIGMA),
            (pl.col(CLOSE) * pl.col(VOLUME))
            .rolling_mean(profile.adv_window, min_samples=1)
            .shift(1)
            .over(INSTRUMENT)
            .alias(ADV_NOTIONAL),
        )
    )
