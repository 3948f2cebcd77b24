"""Evaluate a feature catalog on one instrument's bars as numpy arrays, then assemble the typed output frame.

Every indicator/template has an array implementation (`compute`) that reads its inputs and shared intermediates
from `Arrays`; one without it falls back to evaluating its polars expression on a small frame of its inputs, so a
new catalogue entry works before it gets a fast path. Windowed requests are batched by a plan recorded once per
(catalog, available inputs) by running the catalog on zero-row inputs. Gap rows are nulled in place at the end
(only a handful of rows), and NaN becomes null when each column is handed to polars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from lake_assets.features.arrays import TS_US, Arrays, Labeled, Plan
from lake_assets.features.catalog import FeatureCatalog, FeatureDef
from lake_assets.features.indicators import INDICATORS
from lake_assets.features.templates import TEMPLATES
from lake_assets.vocabulary import TS

__all__ = ["evaluate_catalog", "output_series", "plan_for"]

Value = np.ndarray | Labeled

_PLANS: dict[int, tuple[FeatureCatalog, dict[frozenset[str], Plan]]] = {}


def _has_inputs(f: FeatureDef, have: frozenset[str]) -> bool:
    return (f.bar_inputs - {TS}) <= have


def _array_impl(f: FeatureDef) -> Callable[[Arrays], dict[str, Value]] | None:
    if f.kind == "indicator":
        ind = INDICATORS[f.impl]
        if ind.compute is None:
            return None
        run_ind = ind.compute

        def indicator(a: Arrays) -> dict[str, Value]:
            out = run_ind(a, dict(f.params))
            return {c.name: out[c.output] for c in f.columns}

        return indicator
    tmpl = TEMPLATES[f.impl]
    if tmpl.compute is None:
        return None
    run_tmpl = tmpl.compute
    return lambda a: {f.columns[0].name: run_tmpl(a, list(f.inputs), dict(f.params))}


def _fallback(f: FeatureDef, a: Arrays, catalog: FeatureCatalog, ts: pl.Series) -> dict[str, Value]:
    """Evaluate the feature's polars expression(s) on a frame of its inputs (NaN-coded floats, as in flight)."""
    names = INDICATORS[f.impl].input_columns(f.params) if f.kind == "indicator" else f.inputs
    cols: list[pl.Series] = []
    for name in dict.fromkeys(names):
        if name == TS:
            cols.append(ts)
            continue
        dtype = catalog.column(name).dtype if name in catalog._by_column else pl.Float64()
        cols.append(output_series(name, a.get(name), dtype, nan_to_null=False))
    frame = pl.DataFrame(cols, height=ts.len()) if cols else pl.DataFrame(height=ts.len())
    built = f.build()
    if len(built) > 1:  # several outputs are fields of one struct-valued UDF: evaluate it once
        struct = next(iter(built.values())).meta.pop()[0].alias("__s")
        res = frame.select(struct).unnest("__s")
        series = {c.name: res[c.output] for c in f.columns}
    else:
        series = {name: s for name, s in zip(built, frame.select(list(built.values())), strict=True)}
    return {name: _value_of(s) for name, s in series.items()}


def _value_of(s: pl.Series) -> Value:
    if s.dtype == pl.String:
        labels = tuple(s.drop_nulls().unique(maintain_order=True).to_list())
        codes = s.replace_strict(labels, list(range(len(labels))), default=None, return_dtype=pl.Float64)
        return Labeled(codes.fill_null(np.nan).to_numpy(), labels)
    return np.ascontiguousarray(s.cast(pl.Float64).fill_null(np.nan).to_numpy())


def evaluate_catalog(
    a: Arrays, catalog: FeatureCatalog, have: frozenset[str], ts: pl.Series | None = None
) -> dict[str, Value]:
    """Column name -> value for every catalog feature whose bar inputs are available (dependency order)."""
    out: dict[str, Value] = {}
    for level in catalog.levels:
        for f in level:
            if not _has_inputs(f, have):
                continue
            impl = _array_impl(f)
            if ts is None:  # planning run on zero rows: a failure only loses batching, never the feature
                try:
                    values = impl(a) if impl is not None else {}
                except Exception:
                    values = {}
                values = {c.name: values.get(c.name, np.empty(0)) for c in f.columns}
            elif impl is not None:
                values = impl(a)
            else:
                values = _fallback(f, a, catalog, ts)
            for name, v in values.items():
                a.set(name, v)
                out[name] = v
    return out


def _empty(name: str) -> np.ndarray:
    return np.empty(0, dtype=np.int64 if name == TS_US else np.float64)


def plan_for(catalog: FeatureCatalog, have: frozenset[str]) -> Plan:
    """Windowed requests of the catalog for an instrument with these inputs (recorded once, then cached)."""
    held = _PLANS.get(id(catalog))
    if held is None or held[0] is not catalog:
        held = _PLANS[id(catalog)] = (catalog, {})
    plans = held[1]
    if have not in plans:
        recorder = Arrays(_empty, record=True)
        evaluate_catalog(recorder, catalog, have)
        plans[have] = {k: set(v) for k, v in recorder.plan.items()}
    return plans[have]


def output_series(
    name: str,
    value: Value,
    dtype: pl.DataType,
    *,
    start: int = 0,
    gap_rows: np.ndarray | None = None,
    nan_to_null: bool = True,
) -> pl.Series:
    """A typed column from an in-flight value: rows from `start`, `gap_rows` (absolute) set to null."""
    arr = value.codes if isinstance(value, Labeled) else value
    if gap_rows is not None and gap_rows.size:
        if not arr.flags.writeable:
            arr = arr.copy()
        arr[gap_rows] = np.nan  # in place: every reader of this array has run already
    arr = arr[start:]
    if isinstance(value, Labeled):
        idx = pl.Series(name, arr, nan_to_null=True).cast(pl.UInt32)
        return pl.Series(name, value.labels, dtype=pl.String).gather(idx).alias(name)
    s = pl.Series(name, arr, nan_to_null=nan_to_null)
    return s if dtype == pl.Float64 else s.cast(dtype)
