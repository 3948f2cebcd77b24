"""The feature catalog as polars plans: the reference the numpy/numba fast path (`compute.py`) is tested against, and
the anchors `benchmarks/bench_features.py` measures it by."""

from __future__ import annotations

import polars as pl

from lake_assets.features.arrays import min_count
from lake_assets.features.catalog import FeatureCatalog
from lake_assets.features.compute import available_inputs, bar_arrays
from lake_assets.features.evaluate import evaluate_catalog, plan_for
from lake_assets.vocabulary import CLOSE, INSTRUMENT, IS_GAP, TS

__all__ = ["expression_features", "rolling_primitives"]


def expression_features(bars: pl.DataFrame, catalog: FeatureCatalog) -> pl.DataFrame:
    """Every catalog column for one instrument's bars, evaluated as one lazy polars plan of the features'
    `FeatureDef.build()` expressions, level by level.

    Same rows and null semantics as `compute_features` (NaN and gap bars null; inputs the instrument lacks give
    all-null columns). Each feature is computed on its own (its rolling statistics are numba kernels applied as
    polars UDFs): no intermediates shared across features and no fused kernel lanes, which is what the fast path
    adds.
    """
    have = available_inputs(bars, None)
    floats = [
        pl.col(c).cast(pl.Float64).fill_null(float("nan"))
        for c in bars.columns
        if c not in (TS, INSTRUMENT) and bars.schema[c].is_numeric()
    ]
    gap = (pl.col(IS_GAP).fill_null(False) | pl.col(CLOSE).is_null()).alias("__gap")
    lf = bars.lazy().with_columns(*floats, gap)
    computed: set[str] = set()
    for li, level in enumerate(catalog.levels):
        exprs, unnest = [], []
        for fi, f in enumerate(level):
            if not (f.bar_inputs - {TS}) <= have:
                continue
            built = f.build()
            if len(built) > 1:
                hidden = f"__s{li}_{fi}"
                exprs.append(next(iter(built.values())).meta.pop()[0].alias(hidden))
                unnest += [pl.col(hidden).struct.field(c.output).alias(c.name) for c in f.columns]
            else:
                exprs += [e.alias(name) for name, e in built.items()]
            computed.update(built)
        lf = lf.with_columns(exprs) if exprs else lf
        lf = lf.with_columns(unnest) if unnest else lf
    out = []
    for f in catalog.features:
        for c in f.columns:
            if c.name not in computed:
                out.append(pl.lit(None, dtype=c.dtype).alias(c.name))
                continue
            e = pl.col(c.name).fill_nan(None) if c.dtype == pl.Float64 else pl.col(c.name)
            if f.span > 1:  # null until the feature's full window has elapsed
                e = pl.when(pl.int_range(pl.len()) < f.span - 1).then(pl.lit(None, dtype=c.dtype)).otherwise(e)
            if f.pit != "bar_open":
                e = pl.when(pl.col("__gap")).then(pl.lit(None, dtype=c.dtype)).otherwise(e)
            out.append(e.alias(c.name))
    return lf.select(out).collect()


def rolling_primitives(bars: pl.DataFrame, catalog: FeatureCatalog) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Polars' own rolling mean/sum/std/min/max/rank and EWM over every (input, window) pair the catalog's
    evaluation plan asks for, and a frame of those inputs (bar columns, derived series, features; NaN as null).

    Selecting the expressions from the frame is the part of a feature set's work polars does natively: the anchor
    of `benchmarks/bench_features.py`. Values equal the kernels' except where polars' rolling_rank needs a full
    window (qlake's percentile rank, like every kernel, needs half of one). Each expression is named
    `<operation>|<input>|<parameters>` (roll: window,mean flag; std: window,ddof; max/min: window; ewm: alpha,min
    observations; rank: window).
    """
    have = available_inputs(bars)
    arrays = bar_arrays(bars)
    evaluate_catalog(arrays, catalog, have, bars[TS])  # no releases: every input (bar, derived, feature) stays held
    exprs: list[pl.Expr] = []
    names: set[str] = set()

    def col(name: str) -> pl.Expr:
        names.add(name)
        return pl.col(name)

    for (op, name), params in plan_for(catalog, have).items():
        for p in sorted(params, key=str):
            if op == "std":  # one plan entry for every input: p = (input, window, ddof)
                src, n = str(p[0]), int(p[1])
                e = col(src).rolling_std(n, min_samples=min_count(n), ddof=int(p[2]))
                label = f"{n},{int(p[2])}"
            else:
                src, label = name, ",".join(str(v) for v in p)
                if op in ("roll", "max", "min"):  # p = (window,) or (window, mean flag)
                    n = int(p[0])
                    fn = f"rolling_{op}" if op != "roll" else "rolling_mean" if p[1] else "rolling_sum"
                    e = getattr(col(src), fn)(n, min_samples=min_count(n))
                elif op == "ewm":
                    e = col(src).ewm_mean(alpha=float(p[0]), adjust=False, min_samples=int(p[1]), ignore_nulls=True)
                else:
                    raise ValueError(f"rolling_primitives: no polars form for plan operation {op!r} ({name})")
            exprs.append(e.alias(f"{op}|{src}|{label}"))
    for f in catalog.features:
        if f.kind == "template" and f.impl == "pct_rank":
            n = int(f.params["n"])
            rank = col(f.inputs[0]).rolling_rank(n, method="max", min_samples=min_count(n))
            count = col(f.inputs[0]).is_not_null().cast(pl.Int32).rolling_sum(n)
            exprs.append((rank / count).alias(f"rank|{f.inputs[0]}|{n}"))
    frame = pl.DataFrame({c: pl.Series(c, arrays.x(c)).fill_nan(None) for c in sorted(names)})
    return frame, exprs
