"""The regime classifier (spec/regimes.yaml): trend/chop x low/mid/high volatility from existing features, a label
per bar, and a strategy's metrics per regime (`metrics.regime_breakdown`, the `metrics_by_regime` table).

Labels are point-in-time: they read feature columns of the bar itself (known at its close), never later ones.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import Field, model_validator

from lake_assets.settings import spec_dir
from lake_assets.specs import StrictModel, load_spec_file
from lake_assets.vocabulary import INSTRUMENT, TS

REGIME = "regime"


class TrendAxis(StrictModel):
    column: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    min: float


class VolatilityAxis(StrictModel):
    column: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> VolatilityAxis:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class RegimeSpec(StrictModel):
    trend: TrendAxis
    volatility: VolatilityAxis
    unknown_label: str = Field(default="unknown", min_length=1, max_length=32)

    @property
    def columns(self) -> tuple[str, str]:
        return self.trend.column, self.volatility.column

    @property
    def labels(self) -> tuple[str, ...]:
        return (*(f"{t}_{v}" for t in ("trend", "chop") for v in ("low", "mid", "high")), self.unknown_label)

    def expr(self) -> pl.Expr:
        """The label of each bar as a polars expression over the two feature columns."""
        t, v = pl.col(self.trend.column).cast(pl.Float64), pl.col(self.volatility.column).cast(pl.Float64)
        trend = pl.when(t >= self.trend.min).then(pl.lit("trend")).otherwise(pl.lit("chop"))
        vol = (
            pl.when(v < self.volatility.low).then(pl.lit("low"))
            .when(v < self.volatility.high).then(pl.lit("mid"))
            .otherwise(pl.lit("high"))
        )  # fmt: skip
        known = t.is_not_null() & t.is_not_nan() & v.is_not_null() & v.is_not_nan()
        return pl.when(known).then(pl.concat_str(trend, pl.lit("_"), vol)).otherwise(pl.lit(self.unknown_label))


def load_regimes(path: Path | None = None) -> RegimeSpec:
    """Read and validate spec/regimes.yaml; a problem is a SpecError naming file, key and problem."""
    return load_spec_file(RegimeSpec, path or spec_dir() / "regimes.yaml", "`trend` and `volatility`")


def label_regimes(features: pl.DataFrame, spec: RegimeSpec) -> pl.DataFrame:
    """ts (+ instrument when present) and `regime` for every row of a features frame; a frame without the
    classifier's columns labels every bar unknown."""
    keys = [c for c in (TS, INSTRUMENT) if c in features.columns]
    if not all(c in features.columns for c in spec.columns):
        return features.select(*keys, pl.lit(spec.unknown_label).alias(REGIME))
    return features.select(*keys, spec.expr().alias(REGIME))
