"""Blending indicator votes into one target direction per bar, and the engine's four signal columns from it.

Votes (+1/0/-1 per indicator, rules.py) become a target direction d in {-1, 0, +1}:

- weighted: score = sum(w_i v_i) / sum|w_i|; d = +1 at score >= threshold, -1 at score <= -threshold, else 0;
- vote: d = +1 when at least k indicators vote long (and fewer than k short), -1 likewise (k default: a majority);
- regime: weighted, with the weights of the bar's `vol_regime` label; a bar without a regime label is flat.

Signals: long_entry where d = +1, long_exit where d != +1, short_entry where d = -1, short_exit where d != -1; the
engine (`backtests.engine.run_signals`) fills them at the next bar's open with the same costs and risk as every
strategy. Gap bars never enter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from lake_assets.backtests.engine import LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT
from lake_assets.vocabulary import INSTRUMENT, IS_GAP, TS
from lake_assets.workbench.rules import vote_exprs

DIRECTION = "direction"
SCORE = "score"
REGIME = "vol_regime"


@dataclass(frozen=True)
class Blend:
    method: str  # weighted | vote | regime
    weights: tuple[float, ...]
    threshold: float
    k: int
    regime_weights: Mapping[str, tuple[float, ...]]


def vote_columns(n: int) -> list[str]:
    return [f"vote_{i}" for i in range(n)]


def add_votes(frame: pl.DataFrame, indicators: Sequence[tuple[str, Mapping[str, float]]]) -> pl.DataFrame:
    """`vote_<i>` columns (Int8) for one instrument's bars (sorted by ts)."""
    shared: dict[str, pl.Expr] = {}
    votes = [vote_exprs(name, params, frame.schema, shared).alias(c)
             for (name, params), c in zip(indicators, vote_columns(len(indicators)), strict=True)]  # fmt: skip
    return frame.with_columns([e.alias(k) for k, e in shared.items()]).with_columns(votes).drop(list(shared))


def _weighted(votes: list[pl.Expr], weights: Sequence[float]) -> pl.Expr:
    total = sum(abs(w) for w in weights) or 1.0
    out: pl.Expr = pl.lit(0.0)
    for v, w in zip(votes, weights, strict=True):
        out = out + v.cast(pl.Float64) * (w / total)
    return out


def blend(frame: pl.DataFrame, b: Blend) -> pl.DataFrame:
    """`score` and `direction` (Int8) from the vote columns."""
    votes = [pl.col(c) for c in vote_columns(len(b.weights))]
    if b.method == "vote":
        longs = pl.sum_horizontal([(v == 1).cast(pl.Int32) for v in votes])
        shorts = pl.sum_horizontal([(v == -1).cast(pl.Int32) for v in votes])
        score = (longs - shorts).cast(pl.Float64) / len(votes)
        direction = (pl.when((longs >= b.k) & (shorts < b.k)).then(1)
                     .when((shorts >= b.k) & (longs < b.k)).then(-1).otherwise(0))  # fmt: skip
        return frame.with_columns(score.alias(SCORE), direction.cast(pl.Int8).alias(DIRECTION))
    if b.method == "regime":
        score = pl.lit(None, pl.Float64)
        for label, ws in sorted(b.regime_weights.items()):
            score = pl.when(pl.col(REGIME) == label).then(_weighted(votes, ws)).otherwise(score)
    else:
        score = _weighted(votes, b.weights)
    direction = (pl.when(score >= b.threshold - 1e-12).then(1)
                 .when(score <= -b.threshold + 1e-12).then(-1).otherwise(0))  # fmt: skip
    return frame.with_columns(score.alias(SCORE), direction.fill_null(0).cast(pl.Int8).alias(DIRECTION))


def direction_signals(frame: pl.DataFrame) -> pl.DataFrame:
    """ts, instrument and the four signal columns from `direction`."""
    d = pl.col(DIRECTION)
    gap = pl.col(IS_GAP).fill_null(False) if IS_GAP in frame.columns else pl.lit(False)
    return frame.select(
        TS, INSTRUMENT,
        ((d == 1) & ~gap).alias(LONG_ENTRY), (d != 1).alias(LONG_EXIT),
        ((d == -1) & ~gap).alias(SHORT_ENTRY), (d != -1).alias(SHORT_EXIT),
    )  # fmt: skip
