"""Per-instrument feature computation: bars (target window + warm-up prefix) -> one feature row per target bar.

The catalog is evaluated on numpy arrays (`evaluate.py`): float columns carry NaN for "missing" so kernels and
arithmetic agree on one marker, shared intermediates are computed once and windows of the same input are fused into
one kernel pass. As soon as a feature is computed, its target rows (from `target_start`) get their validity bitmap:
NaN and (for non-calendar features) gap bars become null over the unchanged float buffer; the polars columns are
built from those buffers after the evaluation (see `PreparedColumn`).
A feature whose bar inputs the instrument lacks (no funding, no OI, no spot leg, no trades, no top-of-book) is
emitted as a typed all-null column, never computed from placeholders. Every computation is causal, so rows for a
window do not change when later bars are appended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from lake_assets.features import kernels as K
from lake_assets.features.arrays import TS_US, Arrays, Plan
from lake_assets.features.catalog import (
    ASK,
    ASK_SIZE,
    BAR_COLUMNS,
    BID,
    BID_SIZE,
    TAKER_FEE_BPS,
    FeatureCatalog,
    FeatureDef,
    required_lookback_bars,
)
from lake_assets.features.evaluate import (
    PreparedColumn,
    Releases,
    Value,
    evaluate_catalog,
    evaluation_plan,
)
from lake_assets.vocabulary import (
    BASIS_BPS,
    BUY_VOLUME,
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INSTRUMENT,
    IS_GAP,
    LOW,
    OPEN,
    OPEN_INTEREST,
    SELL_VOLUME,
    SPOT_CLOSE,
    TIMEFRAMES,
    TRADE_COUNT,
    TS,
    VOLUME,
)

__all__ = [
    "available_inputs",
    "bar_arrays",
    "compute_features",
    "infer_timeframe",
    "nan_ratio_report",
    "required_lookback_bars",
    "window_embeddings",
]

# Data kinds an instrument may "have", as accepted by `instrument_has`, and the bar columns each one fills.
DATA_GROUPS: dict[str, tuple[str, ...]] = {
    "ohlcv": (OPEN, HIGH, LOW, CLOSE, VOLUME),
    "funding": (FUNDING_RATE,),
    "open_interest": (OPEN_INTEREST,),
    "trades": (BUY_VOLUME, SELL_VOLUME, TRADE_COUNT),
    "spot": (SPOT_CLOSE, BASIS_BPS),
    "top_of_book": (BID, ASK, BID_SIZE, ASK_SIZE),
    "fees": (TAKER_FEE_BPS,),
}
_ALWAYS = frozenset({TS, OPEN, HIGH, LOW, CLOSE, VOLUME})


def available_inputs(bars: pl.DataFrame, instrument_has: Iterable[str] | None = None) -> frozenset[str]:
    """Bar columns the instrument really has.

    `instrument_has` names data kinds (keys of DATA_GROUPS) or bar columns; OHLCV is always assumed. Without it,
    a column counts as available when it is present and not entirely null in `bars`.
    """
    present = set(bars.columns)
    if instrument_has is None:
        nulls = bars.null_count().row(0, named=True) if bars.height else {}
        have = {c for c in present & BAR_COLUMNS if bars.height and nulls.get(c, 0) < bars.height}
        return frozenset(have | (_ALWAYS & present))
    wanted: set[str] = set()
    for item in instrument_has:
        if item in DATA_GROUPS:
            wanted.update(DATA_GROUPS[item])
        elif item in BAR_COLUMNS:
            wanted.add(item)
        else:
            raise ValueError(f"instrument_has: unknown data kind or bar column {item!r}; kinds: {sorted(DATA_GROUPS)}")
    return frozenset((wanted | _ALWAYS) & present)


def _single_value(s: pl.Series) -> bool:
    """n_unique() <= 1 (null counting as a value), without hashing every row (~5x cheaper)."""
    if s.len() == 0 or s.null_count() == s.len():
        return True
    return s.null_count() == 0 and bool((s == s[0]).all())


def _check_bars(bars: pl.DataFrame) -> None:
    missing = [c for c in (TS, OPEN, HIGH, LOW, CLOSE, VOLUME) if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack required column(s) {missing}")
    if INSTRUMENT in bars.columns and not _single_value(bars[INSTRUMENT]):
        raise ValueError("compute_features takes one instrument's bars; got several instruments")
    ts = bars[TS]
    if ts.dtype.is_temporal() and ts.null_count() == 0:
        phys = _physical(ts)
        ordered = bool(np.all(phys[1:] > phys[:-1]))  # sorted with unique timestamps <=> strictly increasing
    else:
        ordered = not (bars.height > 1 and not ts.is_sorted() or ts.n_unique() != bars.height)
    if not ordered:
        raise ValueError("bars must be sorted by ts with unique timestamps")


def _physical(ts: pl.Series, *, writable: bool = False) -> np.ndarray:
    """A temporal column's stored integers (an aware datetime's are UTC epoch ticks). A cast to Int64 reinterprets
    the buffer (~2 us); `to_physical` costs ~25 us per call."""
    return ts.cast(pl.Int64).to_numpy(writable=writable)


def _gap_mask(bars: pl.DataFrame) -> pl.Expr:
    if IS_GAP in bars.columns:
        return pl.col(IS_GAP).fill_null(False) | pl.col(CLOSE).is_null()
    return pl.col(CLOSE).is_null()


def _loader(bars: pl.DataFrame) -> Callable[[str], np.ndarray]:
    """Bar columns as float64 arrays (null -> NaN), plus the UTC epoch-microsecond clock for calendar features."""

    present = set(bars.columns)  # (DataFrame.schema / .columns build a new object per call: ~12 us for a schema)

    def load(name: str) -> np.ndarray:
        if name == TS_US:
            dtype = bars[TS].dtype
            if isinstance(dtype, pl.Datetime) and dtype.time_unit == "us" and dtype.time_zone is not None:
                return _physical(bars[TS], writable=True)  # an aware datetime is stored as UTC epoch
            wall = pl.col(TS).dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.cast_time_unit("us")
            return bars.select(wall.to_physical()).to_series().to_numpy(writable=True)
        if name not in present:
            raise ValueError(f"bars lack input column {name!r}")
        s = bars[name]
        if s.dtype != pl.Float64:
            s = s.cast(pl.Float64)
        if s.null_count():  # NaN written through the Arrow validity bitmap (polars' null conversion is ~3x slower)
            arr = s.to_arrow()
            validity, data = arr.buffers()[:2]
            values = np.frombuffer(data, dtype=np.float64, count=arr.offset + len(arr))[arr.offset :]
            return K.nan_where_null(values, np.frombuffer(validity, dtype=np.uint8), arr.offset)
        # writable: numba compiles every kernel once per readonly/writable mix of its arguments (~1 s each)
        return np.ascontiguousarray(s.to_numpy(writable=True), dtype=np.float64)

    return load


def bar_arrays(bars: pl.DataFrame, plan: Plan | None = None, releases: Releases | None = None) -> Arrays:
    """The `Arrays` an evaluation of the catalog on these bars reads from (bar columns and the calendar clock).

    Without `releases` every intermediate stays held after the evaluation (what `reference.rolling_primitives`
    reads its inputs from)."""
    return Arrays(_loader(bars), plan=plan, releases=releases, loadable=frozenset(bars.columns) | {TS_US})


def _null_column(name: str, dtype: pl.DataType, height: int) -> pl.Series:
    """A typed all-null column: one null repeated by index (~4 us), where `pl.repeat(None, ...)` costs ~45 us and
    fills a buffer (a spot or equity instrument, without funding, OI or a spot leg, has ~18 such columns)."""
    return pl.Series(name, [None], dtype=dtype).new_from_index(0, height)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _start_row(bars: pl.DataFrame, target_start: datetime | None) -> int:
    """Rows with ts < target_start (bars are sorted: `_check_bars`). An aware start against an aware us/ns column is
    an instant: a binary search of the stored UTC epoch ticks; anything else goes through polars' cast (naive
    starts, dates, ms columns)."""
    if target_start is None:
        return 0
    ts = bars[TS]
    dtype = ts.dtype
    if (
        target_start.tzinfo is not None
        and isinstance(dtype, pl.Datetime)
        and dtype.time_zone is not None
        and dtype.time_unit in ("us", "ns")
        and ts.null_count() == 0
    ):
        ticks = (target_start - _EPOCH) // timedelta(microseconds=1) * (1000 if dtype.time_unit == "ns" else 1)
        return int(np.searchsorted(_physical(ts), ticks, side="left"))
    before = pl.col(TS) < pl.lit(target_start).cast(dtype)
    return int(bars.select(before.sum()).item())


_TICKS_TO_US = {"ns": (1, 1000), "us": (1, 1), "ms": (1000, 1)}  # us = ticks * mul // div
_TIMEFRAME_OF_US = {d // timedelta(microseconds=1): tf for tf, d in TIMEFRAMES.items()}


def infer_timeframe(bars: pl.DataFrame, default: str) -> str:
    """The bar timeframe of sorted bars: the most common spacing of their first 256 timestamps when it is a known
    timeframe (daily bars that skip weekends still space 1d apart mostly), else `default`."""
    ts = bars[TS]
    if bars.height < 3 or not isinstance(ts.dtype, pl.Datetime) or ts.null_count():
        return default
    steps, counts = np.unique(np.diff(_physical(ts)[:256]), return_counts=True)  # stored ticks: no copy
    mul, div = _TICKS_TO_US[ts.dtype.time_unit]
    step = int(steps[np.argmax(counts)]) * mul // div
    return _TIMEFRAME_OF_US.get(step, default)


def compute_features(
    bars: pl.DataFrame,
    catalog: FeatureCatalog,
    *,
    instrument_has: set[str] | None = None,
    target_start: datetime | None = None,
    timeframe: str | None = None,
) -> pl.DataFrame:
    """Features for one instrument's bars (BARS_SCHEMA, sorted by ts).

    Pass the target window PLUS `required_lookback_bars(catalog, timeframe)` bars before it and `target_start`:
    only rows with ts >= target_start come back. Output: ts, instrument, is_gap, then every catalog column in catalog
    order. Spec windows given as durations are bars of `timeframe` (the instrument's base timeframe; inferred from
    the bar spacing when not given).
    """
    _check_bars(bars)
    catalog = catalog.for_timeframe(timeframe or infer_timeframe(bars, catalog.timeframe))
    have = available_inputs(bars, instrument_has)
    gap = bars.select(_gap_mask(bars)).to_series()
    start = _start_row(bars, target_start)
    height = bars.height - start
    gap_rows = np.flatnonzero(gap.to_numpy())
    columns: dict[str, PreparedColumn] = {}  # built after the evaluation, in one loop (see PreparedColumn)
    # one column per in-flight array: a value several features emit (a Bollinger mid is its SMA) is converted once
    converted: dict[tuple[int, bool, int, pl.DataType], tuple[Value, PreparedColumn]] = {}

    def emit(f: FeatureDef, values: dict[str, Value]) -> None:
        mask = None if f.pit == "bar_open" else gap_rows
        lead = f.span - 1 if f.span - 1 > start else 0  # rows before the full window: null (where history starts)
        for c in f.columns:
            value = values[c.name]
            key = (id(value), mask is None, lead, c.dtype)
            if key not in converted:  # the entry holds the value, so its id stays unique
                prepared = PreparedColumn(c.name, value, c.dtype, start=start, gap_rows=mask, lead=lead)
                converted[key] = (value, prepared)
            columns[c.name] = converted[key][1]

    plan, releases = evaluation_plan(catalog, have)
    arrays = bar_arrays(bars, plan, releases)
    evaluate_catalog(arrays, catalog, have, bars[TS], emit)
    out: list[pl.Series] = [bars[TS].slice(start)]
    if INSTRUMENT in bars.columns:
        out.append(bars[INSTRUMENT].slice(start))
    else:
        out.append(_null_column(INSTRUMENT, pl.String(), height))
    out.append(gap.slice(start).alias(IS_GAP))
    for f in catalog.features:
        for c in f.columns:
            made = columns.get(c.name)
            if made is None:
                out.append(_null_column(c.name, c.dtype, height))
                continue
            s = made.build()
            out.append(s if s.name == c.name else s.alias(c.name))
    return pl.DataFrame(out)


def window_embeddings(
    bars: pl.DataFrame, sizes: Sequence[int] = (32, 64), *, target_start: datetime | None = None
) -> pl.DataFrame:
    """Normalised 1-bar log returns of the last n bars as Array(Float64, n) columns `emb_<n>` (oldest first).

    Each window is divided by its own RMS return (scale-free shape); gap returns stay null inside the array. A row is
    null while fewer than n bars exist, when the bar itself is a gap, or when under half the window is present.
    """
    _check_bars(bars)
    close = bars[CLOSE].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    gap = bars.select(_gap_mask(bars)).to_series().to_numpy()
    r = np.full(close.shape[0], np.nan)
    if close.shape[0] > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            r[1:] = np.log(close[1:] / close[:-1])
    cols: list[pl.Series] = [
        bars[TS],
        bars[INSTRUMENT] if INSTRUMENT in bars.columns else pl.Series(INSTRUMENT, [None] * bars.height, pl.String),
    ]
    for n in sizes:
        if n < 2:
            raise ValueError(f"embedding size must be >= 2, got {n}")
        rows = close.shape[0]
        emb = np.full((rows, n), np.nan)
        valid = np.zeros(rows, dtype=bool)
        if rows >= n:
            win = np.lib.stride_tricks.sliding_window_view(r, n)  # row j = returns of bars j .. j+n-1
            present = (~np.isnan(win)).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                rms = np.sqrt(np.nansum(win * win, axis=1) / np.maximum(present, 1))
                norm = win / rms[:, None]
            ok = (present >= (n + 1) // 2) & (rms > 0)
            emb[n - 1 :] = norm
            valid[n - 1 :] = ok
        valid &= ~gap
        flat = pl.Series(emb.reshape(-1)).fill_nan(None)
        arr = flat.reshape((rows, n)).alias(f"emb_{n}")
        cols.append(pl.select(pl.when(pl.Series(valid)).then(arr).otherwise(None).alias(f"emb_{n}")).to_series())
    df = pl.DataFrame(cols)
    if target_start is not None:
        df = df.filter(pl.col(TS) >= pl.lit(target_start).cast(df.schema[TS]))
    return df


def nan_ratio_report(
    features: pl.DataFrame, catalog: FeatureCatalog, *, warmup_rows: int | None = None
) -> pl.DataFrame:
    """Per instrument x feature: null share outside warm-up and gap bars, against the spec's `max_nan_ratio`.

    `warmup_rows=None` skips each feature's own lookback from the start of every instrument's rows (right for a frame
    that starts at the beginning of history); pass 0 when the frame was computed with a full warm-up prefix.
    A column that is null throughout for an instrument (the instrument lacks its inputs) is `applicable=False`.
    Counts come from Arrow null counts of the in-scope rows, one filter per distinct warm-up length.
    """
    cols = [c for c in catalog.columns if c in features.columns]
    groups: dict[Any, pl.DataFrame] = {}
    if features.height:
        by_inst = INSTRUMENT in features.columns
        groups = features.partition_by(INSTRUMENT, maintain_order=True, as_dict=True) if by_inst else {("",): features}
    by_lookback: dict[int, list[str]] = {}
    for c in cols:
        lb = catalog.feature_of(c).lookback if warmup_rows is None else warmup_rows
        by_lookback.setdefault(lb, []).append(c)
    records = []
    for key, frame in groups.items():
        inst = key[0]
        gap = frame[IS_GAP].fill_null(False) if IS_GAP in frame.columns else pl.repeat(False, frame.height, eager=True)
        present = frame.select(cols).null_count().row(0, named=True) if cols else {}
        row = pl.int_range(frame.height, eager=True)
        counts: dict[str, tuple[int, int]] = {}
        for lb, names in by_lookback.items():
            in_scope = ~gap & (row >= lb)
            scoped = frame.select(names).filter(in_scope)
            null_counts = scoped.null_count().row(0, named=True)
            counts.update({c: (scoped.height, int(null_counts[c])) for c in names})
        for c in cols:
            rows, nulls = counts[c]
            applicable = frame.height > 0 and int(present[c]) < frame.height
            ratio = nulls / rows if rows else None
            bound = catalog.column(c).max_nan_ratio
            ok = (not applicable) or ratio is None or ratio <= bound
            records.append((inst, c, catalog.feature_of(c).family, rows, nulls, ratio, bound, applicable, ok))
    schema = {
        INSTRUMENT: pl.String,
        "feature": pl.String,
        "family": pl.String,
        "rows": pl.Int64,
        "null_rows": pl.Int64,
        "nan_ratio": pl.Float64,
        "max_nan_ratio": pl.Float64,
        "applicable": pl.Boolean,
        "ok": pl.Boolean,
    }
    return pl.DataFrame(records, schema=schema, orient="row").sort(INSTRUMENT, "feature")
