"""Cross-instrument context: correlation and beta to a benchmark, dispersion, correlation breakdown.

Inputs are each instrument's bars (warm-up prefix included); outputs are per instrument x bar. Returns are 1-bar log
returns with gaps missing; instruments are aligned to their benchmark on `ts`, so a benchmark gap only removes that
pair from the window. Dispersion is the cross-sectional standard deviation of `dispersion_horizon`-bar log returns
across the instruments that share a benchmark (the peer group), so 5m crypto and daily equities never mix.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from lake_assets.features import kernels as K
from lake_assets.features.catalog import FeatureCatalog
from lake_assets.features.compute import infer_timeframe
from lake_assets.features.indicators import min_count
from lake_assets.specs import Universe
from lake_assets.vocabulary import CLOSE, INSTRUMENT, IS_GAP, TS

__all__ = ["CONTEXT_COLUMNS", "benchmarks_from_universe", "compute_context_features", "own_underlying_benchmark"]

CONTEXT_COLUMNS = ("corr_bench", "beta_bench", "corr_bench_long", "dispersion", "corr_breakdown")


def benchmarks_from_universe(universe: Universe) -> dict[str, str]:
    """instrument id -> benchmark id (`Universe.benchmark_for`); instruments without one are left out."""
    out: dict[str, str] = {}
    for inst in universe.instruments:
        bench = universe.benchmark_for(inst)
        if bench is not None:
            out[inst.id] = bench
    return out


def own_underlying_benchmark(universe: Universe) -> frozenset[str]:
    """Instruments whose benchmark is their own underlying: the benchmark itself and its spot/perp leg. Their
    correlation to it is ~1 by construction, so correlation, beta and breakdown are null for them."""
    out = set()
    for inst in universe.instruments:
        bench = universe.benchmark_for(inst)
        if bench is None:
            continue
        legs = {bench, *(i.spot for i in universe.instruments if i.id == bench and i.spot)}
        if inst.id in legs or inst.spot in legs:
            out.add(inst.id)
    return frozenset(out)


def _returns(bars: pl.DataFrame, horizon: int) -> pl.DataFrame:
    close = pl.col(CLOSE).cast(pl.Float64)
    if IS_GAP in bars.columns:
        close = pl.when(pl.col(IS_GAP).fill_null(False)).then(None).otherwise(close)
    return bars.select(
        pl.col(TS),
        (close / close.shift(1)).log().fill_nan(None).alias("r"),
        (close / close.shift(horizon)).log().fill_nan(None).alias("rh"),
        close.is_null().alias("gap"),
    )


def _np(s: pl.Series) -> np.ndarray:
    return np.ascontiguousarray(s.cast(pl.Float64).fill_null(np.nan).to_numpy(writable=True))


def compute_context_features(
    bars_by_instrument: dict[str, pl.DataFrame],
    benchmarks: dict[str, str],
    catalog: FeatureCatalog,
    *,
    target_start: datetime | None = None,
    own_underlying: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """corr_bench, beta_bench (short window), corr_bench_long, dispersion and corr_breakdown per instrument x bar.

    `benchmarks` maps instrument -> benchmark instrument (see `benchmarks_from_universe`); an instrument without a
    benchmark, or whose benchmark bars are not given, gets null correlation/beta/breakdown, and so does an instrument
    that is its own benchmark or in `own_underlying` (`own_underlying_benchmark`): its correlation to its own
    underlying is ~1 by construction and carries nothing (a beta shift or breakdown cannot happen). Correlations are
    null until their full window of paired returns has elapsed (window + 1 bars), as pandas' rolling(n).corr has it.
    Rows with ts < target_start are warm-up and are dropped from the output.
    """
    # windows in bars of each instrument's timeframe (daily equities and 5m crypto never share a peer group)
    params = {
        inst: catalog.for_timeframe(infer_timeframe(df, catalog.timeframe)).context
        for inst, df in bars_by_instrument.items()
    }
    rets = {inst: _returns(df.sort(TS), params[inst].dispersion_horizon) for inst, df in bars_by_instrument.items()}
    frames: list[pl.DataFrame] = []
    for inst, r in rets.items():
        p = params[inst]
        bench = benchmarks.get(inst)
        cols: dict[str, np.ndarray] = {}
        own = inst == bench or inst in own_underlying
        if bench is not None and bench in rets and not own:
            joined = r.join(rets[bench].select(TS, pl.col("r").alias("rb")), on=TS, how="left")
            x, y = _np(joined["r"]), _np(joined["rb"])
            n, nl = p.corr_window, p.long_corr_window
            corr, beta = K.rolling_corr_beta(x, y, n, min_count(n))
            corr_long = K.rolling_corr(x, y, nl, min_count(nl))
            corr[:n], beta[:n], corr_long[:nl] = np.nan, np.nan, np.nan  # full windows (returns start at row 1)
            cols = {"corr_bench": corr, "beta_bench": beta, "corr_bench_long": corr_long}
        else:
            nan = np.full(r.height, np.nan)
            cols = {"corr_bench": nan, "beta_bench": nan, "corr_bench_long": nan}
        frames.append(
            r.select(TS, "rh", "gap").with_columns(
                pl.lit(inst).alias(INSTRUMENT),
                pl.lit(bench, pl.String).alias("__peer"),
                *[pl.Series(k, v).fill_nan(None) for k, v in cols.items()],
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                TS: pl.Datetime("us", "UTC"),
                INSTRUMENT: pl.String,
                **dict.fromkeys(CONTEXT_COLUMNS[:-1], pl.Float64),
                "corr_breakdown": pl.Boolean,
            }
        )
    long = pl.concat(frames, how="vertical")
    p = catalog.context  # thresholds are the same at every timeframe
    disp = (
        long.filter(pl.col("__peer").is_not_null())
        .group_by("__peer", TS)
        .agg(pl.when(pl.col("rh").count() >= 2).then(pl.col("rh").std()).alias("dispersion"))
    )
    out = long.join(disp, on=["__peer", TS], how="left").with_columns(
        pl.when(pl.col("corr_bench").is_null() | pl.col("corr_bench_long").is_null())
        .then(pl.lit(None, pl.Boolean))
        .otherwise(
            (pl.col("corr_bench_long") >= p.breakdown_min_long_corr)
            & (pl.col("corr_bench_long") - pl.col("corr_bench") >= p.breakdown_drop)
        )
        .alias("corr_breakdown")
    )
    gap = pl.col("gap")
    out = out.select(
        pl.col(TS),
        pl.col(INSTRUMENT),
        *[pl.when(gap).then(None).otherwise(pl.col(c)).alias(c) for c in CONTEXT_COLUMNS],
    ).sort(INSTRUMENT, TS)
    if target_start is not None:
        out = out.filter(pl.col(TS) >= pl.lit(target_start).cast(out.schema[TS]))
    return out
