"""The feature catalog as plain polars expressions: the reference for the numpy/numba fast path (`core.py`)."""

from __future__ import annotations

import polars as pl

from lake_assets.features.arrays import Arrays, min_count
from lake_assets.features.catalog import FeatureCatalog
from lake_assets.features.core import _loader, available_inputs
from lake_assets.features.evaluate import evaluate_catalog, plan_for
from lake_assets.vocabulary import CLOSE, INSTRUMENT, IS_GAP, TS

__all__ = ["expression_features", "rolling_primitives"]


def expression_features(bars: pl.DataFrame, catalog: FeatureCatalog) -> pl.DataFrame:
    """Every catalog column for one instrument's bars, evaluated as one lazy polars plan of the features'
    `FeatureDef.build()` expressions, level by level.

    Same rows and null semantics as `compute_features` (NaN and gap bars null; inputs the instrument lacks give
    all-null columns). It is what a polars user would write from the specs, so it is the reference the array path
    is tested against and the anchor `benchmarks/bench_features.py` measures it by.
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
    arrays = Arrays(_loader(bars), loadable=frozenset(bars.columns))
    evaluate_catalog(arrays, catalog, have, bars["ts"])  # every input (bar column, derived series, feature) held
    exprs: list[pl.Expr] = []
    names: set[str] = set()

    def col(name: str) -> pl.Expr:
        names.add(name)
        return pl.col(name)

    for (op, name), params in plan_for(catalog, have).items():
        for p in sorted(params, key=str):
            if op == "roll":
                n = int(p[0])
                e = (
                    col(name).rolling_mean(n, min_samples=min_count(n))
                    if p[1]
                    else col(name).rolling_sum(n, min_samples=min_count(n))
                )
            elif op == "std":
                name_, n, ddof = str(p[0]), int(p[1]), int(p[2])
                e = col(name_).rolling_std(n, min_samples=min_count(n), ddof=ddof)
            elif op in ("max", "min"):
                n = int(p[0])
                e = getattr(col(name), f"rolling_{op}")(n, min_samples=min_count(n))
            elif op == "ewm":
                e = col(name).ewm_mean(alpha=float(p[0]), adjust=False, min_samples=int(p[1]), ignore_nulls=True)
            else:
                raise ValueError(f"rolling_primitives: no polars form for plan operation {op!r} ({name})")
            label = ",".join(str(v) for v in p) if op != "std" else f"{n},{ddof}"
            exprs.append(e.alias(f"{op}|{name_ if op == 'std' else name}|{label}"))
    for f in catalog.features:
        if f.kind == "template" and f.impl == "pct_rank":
            n = int(f.params["n"])
            rank = col(f.inputs[0]).rolling_rank(n, method="max", min_samples=min_count(n))
            count = col(f.inputs[0]).is_not_null().cast(pl.Int32).rolling_sum(n)
            exprs.append((rank / count).alias(f"rank|{f.inputs[0]}|{n}"))
    frame = pl.DataFrame({c: pl.Series(c, arrays.x(c)).fill_nan(None) for c in sorted(names)})
    return frame, exprs
