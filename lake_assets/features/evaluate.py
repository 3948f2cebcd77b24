"""Evaluate a feature catalog on one instrument's bars as numpy arrays, then assemble the typed output frame.

Every indicator/template has an array implementation (`compute`) that reads its inputs and shared intermediates
from `Arrays`; one without it falls back to evaluating its polars expression on a small frame of its inputs, so a
new catalogue entry works before it gets a fast path. Windowed requests are batched by a plan recorded once per
(catalog, available inputs) by running the catalog on zero-row inputs. Gap rows are nulled in place at the end
through the validity bitmap), and NaN becomes null when each column is handed to polars: `emit` receives every
feature's values as soon as they exist, so the bitmap pass reads them while they are still in cache.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import polars as pl
import pyarrow as pa

from lake_assets.features import kernels as K
from lake_assets.features.arrays import TS_US, Arrays, Labeled, Plan
from lake_assets.features.catalog import FeatureCatalog, FeatureDef
from lake_assets.features.indicators import INDICATORS
from lake_assets.features.templates import FEATURE_TEMPLATES
from lake_assets.vocabulary import TS

__all__ = ["PreparedColumn", "evaluate_catalog", "evaluation_plan", "output_series", "plan_for"]

Value = np.ndarray | Labeled
Emit = Callable[[FeatureDef, dict[str, Value]], None]
_NO_ROWS = np.empty(0, dtype=np.int64)

Releases = dict[int, list[tuple[object, ...]]]  # feature step -> intermediates read for the last time there
_PLANS: dict[int, tuple[FeatureCatalog, dict[frozenset[str], tuple[Plan, Releases]]]] = {}


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
    tmpl = FEATURE_TEMPLATES[f.impl]
    if tmpl.compute is None:
        return None
    run_tmpl = tmpl.compute
    return lambda a: {f.columns[0].name: run_tmpl(a, list(f.inputs), dict(f.params))}


def _fallback_inputs(f: FeatureDef) -> tuple[str, ...]:
    return tuple(INDICATORS[f.impl].input_columns(f.params) if f.kind == "indicator" else f.inputs)


def _fallback(f: FeatureDef, a: Arrays, catalog: FeatureCatalog, ts: pl.Series) -> dict[str, Value]:
    """Evaluate the feature's polars expression(s) on a frame of its inputs (NaN-coded floats, as in flight)."""
    names = _fallback_inputs(f)
    cols: list[pl.Series] = []
    for name in dict.fromkeys(names):
        if name == TS:
            cols.append(ts)
            continue
        dtype = catalog.column(name).dtype if catalog.has_column(name) else pl.Float64()
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
        return Labeled(codes.fill_null(np.nan).to_numpy(writable=True), labels)
    return np.ascontiguousarray(s.cast(pl.Float64).fill_null(np.nan).to_numpy(writable=True))


def evaluate_catalog(
    a: Arrays, catalog: FeatureCatalog, have: frozenset[str], ts: pl.Series | None = None, emit: Emit | None = None
) -> dict[str, Value]:
    """Column name -> value for every catalog feature whose bar inputs are available (dependency order).

    `emit(feature, values)` is called as each feature is computed.
    """
    out: dict[str, Value] = {}
    step = 0
    for level in catalog.levels:
        for f in level:
            if not _has_inputs(f, have):
                continue
            a.step = step
            impl = _array_impl(f)
            if ts is None:  # planning run on zero rows: a failure only loses batching, never the feature
                if impl is None:  # the fallback reads its inputs: record those reads
                    for name in _fallback_inputs(f):
                        if name != TS:
                            a.get(name)
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
            if emit is not None:
                emit(f, values)
            a.release()
            step += 1
    return out


def _empty(name: str) -> np.ndarray:
    return np.empty(0, dtype=np.int64 if name == TS_US else np.float64)


def plan_for(catalog: FeatureCatalog, have: frozenset[str]) -> Plan:
    """Windowed requests of the catalog for an instrument with these inputs (recorded once, then cached)."""
    return evaluation_plan(catalog, have)[0]


def evaluation_plan(catalog: FeatureCatalog, have: frozenset[str]) -> tuple[Plan, Releases]:
    """The plan, and when each intermediate is read for the last time (both recorded by one run on zero rows)."""
    held = _PLANS.get(id(catalog))
    if held is None or held[0] is not catalog:
        held = _PLANS[id(catalog)] = (catalog, {})
    plans = held[1]
    if have not in plans:
        recorder = Arrays(_empty, record=True)
        evaluate_catalog(recorder, catalog, have)
        releases: Releases = {}
        for key, step in recorder.last_use.items():
            releases.setdefault(step, []).append(key)
        plans[have] = ({k: set(v) for k, v in recorder.plan.items()}, releases)
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
    """A typed column from an in-flight value: rows from `start`, `gap_rows` (absolute, sorted) null.

    With `nan_to_null`, NaN and gap rows become null through an Arrow validity bitmap over the float buffer, which
    is wrapped as is (zero-copy; the value array must not be written to afterwards). Integer, boolean and label
    codes are converted by one kernel pass instead of a polars cast (a full pass with overflow checks of its own).
    """
    if not nan_to_null:
        arr = value.codes if isinstance(value, Labeled) else value
        s = pl.Series(name, arr[start:])
        return s if dtype == pl.Float64 else s.cast(dtype)
    return PreparedColumn(name, value, dtype, start=start, gap_rows=gap_rows).build()


class PreparedColumn:
    """A column's buffers, made by the kernel passes over its value while that value is still in cache; `build`
    wraps them as a polars column later (once: a column several features emit is built for the first and shared).

    The two halves run apart because they compete for the cache in opposite ways: the passes want the value just
    computed, the Python/Arrow/polars object construction wants its own code and objects hot, which a kernel
    streaming megabytes evicts. Building every column in one loop at the end costs a third of building each one
    between kernels.
    """

    __slots__ = ("_built", "_data", "_dtype", "_kind", "_labels", "_name", "_nulls", "_size", "_validity")

    def __init__(
        self,
        name: str,
        value: Value,
        dtype: pl.DataType,
        *,
        start: int = 0,
        gap_rows: np.ndarray | None = None,
        lead: int = 0,
    ):
        """`lead`: rows (absolute, like `gap_rows`) before the feature's full window, null."""
        arr = np.ascontiguousarray(value.codes if isinstance(value, Labeled) else value, dtype=np.float64)
        gaps = _NO_ROWS if gap_rows is None else gap_rows
        if start:  # warm-up rows are dropped before any pass: a month partition's warm-up is as long as the month
            arr = arr[start:]
            gaps = gaps[gaps.searchsorted(start) :] - start
        bits, nulls = K.validity_bitmap(arr, gaps, max(0, lead - start))
        self._name, self._dtype, self._size = name, dtype, arr.shape[0]
        self._validity, self._nulls = (bits if nulls else None), nulls
        self._labels: tuple[str, ...] | None = None
        self._kind: pa.DataType | None = None  # None: the float buffer through polars' cast (see `build`)
        data: np.ndarray = arr
        if isinstance(value, Labeled):
            table = _inline_views(value.labels)
            if table is not None:  # every label fits a view inline: no string buffer, no gather
                data, self._kind = K.label_views(arr, table), pa.string_view()
            else:
                self._labels = value.labels
                data, self._kind = _exact_codes(arr, pl.UInt32())
        elif dtype == pl.Float64:
            self._kind = pa.float64()
        elif dtype == pl.Boolean:
            data, self._kind = K.truth_bitmap(arr), pa.bool_()
        elif dtype in _INTS:
            data, self._kind = _exact_codes(arr, dtype)
        self._data = data
        self._built: pl.Series | None = None

    def build(self) -> pl.Series:
        if self._built is None:
            self._built = self._wrap()
        return self._built

    def _wrap(self) -> pl.Series:
        validity = None if self._validity is None else pa.py_buffer(self._validity)
        if self._kind is None:  # fractional / out of range / a type without a fast path: polars' cast decides
            floats = pa.Array.from_buffers(
                pa.float64(), self._size, [validity, pa.py_buffer(self._data)], null_count=self._nulls
            )
            s = pl.Series(self._name, floats).cast(pl.UInt32() if self._labels is not None else self._dtype)
        else:
            arrow = pa.Array.from_buffers(
                self._kind, self._size, [validity, pa.py_buffer(self._data)], null_count=self._nulls
            )
            s = pl.Series(self._name, arrow)
        if self._labels is not None:
            labels = pl.Series(self._name, self._labels, dtype=pl.String)
            return labels.gather(s).alias(self._name)
        return s


@lru_cache(maxsize=64)
def _inline_views(labels: tuple[str, ...]) -> np.ndarray | None:
    """Arrow string-view structs of the labels (int32 length, then the UTF-8 bytes zero-padded to 12), one row of
    two uint64 words per label; None when a label is longer than a view holds inline (12 bytes)."""
    table = np.zeros((max(len(labels), 1), 2), dtype=np.uint64)
    for i, label in enumerate(labels):
        raw = label.encode()
        if len(raw) > 12:
            return None
        table[i] = np.frombuffer(len(raw).to_bytes(4, "little") + raw.ljust(12, b"\0"), dtype=np.uint64)
    return table


_INTS: dict[pl.DataType, tuple[pa.DataType, type[np.integer], float, float]] = {
    pl.Int8(): (pa.int8(), np.int8, -128.0, 127.0),
    pl.Int16(): (pa.int16(), np.int16, -32768.0, 32767.0),
    pl.Int32(): (pa.int32(), np.int32, -2147483648.0, 2147483647.0),
    pl.UInt8(): (pa.uint8(), np.uint8, 0.0, 255.0),
    pl.UInt32(): (pa.uint32(), np.uint32, 0.0, 4294967295.0),
}


def _exact_codes(arr: np.ndarray, dtype: pl.DataType) -> tuple[np.ndarray, pa.DataType | None]:
    """`arr`'s values as `dtype` integers by one kernel pass; (arr, None) when one is fractional or out of range."""
    kind, np_type, lo, hi = _INTS[dtype]
    ints = np.empty(arr.shape[0], dtype=np_type)
    if not K.exact_ints(arr, ints, lo, hi):
        return arr, None
    return ints, kind
