"""Data-quality checks in plain polars for what Great Expectations cannot see well in one pandas batch.

Per-instrument timestamp order, gap ratios on the bar grid, staleness, OHLC consistency with gaps excluded, and
exact polars dtypes (lost in the pandas conversion). Each returns a `CheckOutcome` that an asset check turns into an
AssetCheckResult: numbers in `metadata`, a one-line `description`, failing samples as a Markdown table.
Bounds come from `spec/expectations/thresholds.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import PrivateAttr, field_validator

from lake_assets.durations import parse_duration
from lake_assets.markdown import md_table
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, read_yaml, validate_model
from lake_assets.vocabulary import CLOSE, HIGH, INSTRUMENT, IS_GAP, LOW, OHLC_VIOLATION, OPEN, TIMEFRAMES, TS, TS_DTYPE

Metadata = dict[str, str | int | float]


@dataclass(frozen=True)
class CheckOutcome:
    """Result of one check: pass/fail, flat numbers for the UI, a sentence, and failing rows as Markdown."""

    passed: bool
    metadata: Metadata
    description: str
    samples_markdown: str = field(default="")


# --- thresholds -----------------------------------------------------------------------------------

def _known_timeframes(keys: dict[str, Any]) -> None:
    for tf in keys:
        if tf not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {tf!r}; expected one of {sorted(TIMEFRAMES)}")


class Thresholds(StrictModel):
    """Bounds for quality checks: max gap ratio per layer and timeframe, max staleness per base timeframe."""

    gap_ratio: dict[str, dict[str, float]]
    staleness: dict[str, timedelta]
    _source: str = PrivateAttr(default="thresholds.yaml")

    @field_validator("gap_ratio")
    @classmethod
    def _ratios(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for layer, by_tf in v.items():
            _known_timeframes(by_tf)
            for tf, ratio in by_tf.items():
                if not 0.0 <= ratio <= 1.0:
                    raise ValueError(f"{layer}.{tf}: a gap ratio is a share in [0, 1], got {ratio}")
        return v

    @field_validator("staleness", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        _known_timeframes(v)
        return {tf: parse_duration(d) for tf, d in v.items()}

    def max_gap_ratio(self, layer: str, timeframe: str) -> float:
        try:
            return self.gap_ratio[layer][timeframe]
        except KeyError:
            raise SpecError(self._source, f"gap_ratio.{layer}.{timeframe}", "no gap ratio bound declared") from None

    def max_staleness(self, timeframe: str) -> timedelta:
        try:
            return self.staleness[timeframe]
        except KeyError:
            raise SpecError(self._source, f"staleness.{timeframe}", "no staleness bound declared") from None


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Read and validate `spec/expectations/thresholds.yaml`; problems raise SpecError(file, key, problem)."""
    path = path or spec_dir() / "expectations" / "thresholds.yaml"
    if path.is_file():
        stat = path.stat()
        return _cached_thresholds(str(path), stat.st_mtime_ns, stat.st_size)
    return _load_thresholds(path)


@lru_cache(maxsize=8)
def _cached_thresholds(path: str, mtime_ns: int, size: int) -> Thresholds:
    return _load_thresholds(Path(path))


def _load_thresholds(path: Path) -> Thresholds:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(path, "<root>", "expected a mapping with `gap_ratio` and `staleness`")
    thresholds: Thresholds = validate_model(Thresholds, data, path)
    thresholds._source = str(path)
    return thresholds


# --- helpers --------------------------------------------------------------------------------------


def _require(df: pl.DataFrame, *cols: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; has {df.columns}")


def _instrument_expr(df: pl.DataFrame) -> pl.Expr:
    """Group key: the instrument column, or one group when a frame has none."""
    return pl.col(INSTRUMENT) if INSTRUMENT in df.columns else pl.lit("<all>").alias(INSTRUMENT)


def _list_some(values: list[str], limit: int = 3) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


# --- checks ---------------------------------------------------------------------------------------


def timestamps_unique_increasing(df: pl.DataFrame, sample_rows: int = 5) -> CheckOutcome:
    """Per instrument, in frame order: no duplicate timestamps, every step strictly increasing, no null ts.

    duplicate_rows counts rows beyond the first per (instrument, ts); non_increasing_steps counts consecutive pairs
    (within an instrument) where ts does not increase, so an adjacent duplicate counts in both.
    """
    _require(df, TS)
    frame = df.select(_instrument_expr(df), pl.col(TS)).with_row_index("row")
    prev = pl.col(TS).shift(1).over(INSTRUMENT)
    flagged = frame.with_columns(
        previous_ts=prev,
        duplicate=pl.struct(INSTRUMENT, TS).is_duplicated() & pl.col(TS).is_not_null(),
        non_increasing=(pl.col(TS) <= prev).fill_null(False),
        null_ts=pl.col(TS).is_null(),
    )
    duplicate_rows = frame.height - frame.drop_nulls(TS).select(INSTRUMENT, TS).n_unique() - flagged["null_ts"].sum()
    duplicate_rows = max(int(duplicate_rows), 0) if frame.height else 0
    non_increasing = int(flagged["non_increasing"].sum())
    null_ts = int(flagged["null_ts"].sum())
    bad = flagged.filter(pl.col("duplicate") | pl.col("non_increasing") | pl.col("null_ts"))
    failing = sorted(bad[INSTRUMENT].unique().cast(pl.String).to_list())
    passed = duplicate_rows == 0 and non_increasing == 0 and null_ts == 0
    metadata: Metadata = {
        "rows": frame.height,
        "instruments": int(frame[INSTRUMENT].n_unique()) if frame.height else 0,
        "duplicate_rows": duplicate_rows,
        "non_increasing_steps": non_increasing,
        "null_timestamps": null_ts,
        "instruments_failing": len(failing),
    }
    if passed:
        description = f"timestamps unique and strictly increasing for {metadata['instruments']} instrument(s)"
    else:
        description = (
            f"{duplicate_rows} duplicate timestamp row(s), {non_increasing} non-increasing step(s), "
            f"{null_ts} null timestamp(s) in {_list_some(failing)}"
        )
    problem = (
        pl.when(pl.col("null_ts"))
        .then(pl.lit("null ts"))
        .when(pl.col("duplicate"))
        .then(pl.lit("duplicate"))
        .otherwise(pl.lit("goes back in time"))
    )
    samples = bad.head(sample_rows).select("row", INSTRUMENT, "previous_ts", TS, problem.alias("problem"))
    return CheckOutcome(passed, metadata, description, md_table(samples, n=None, empty="", null="null"))


def _gap_mask(df: pl.DataFrame) -> pl.Expr:
    return pl.col(IS_GAP).fill_null(True)  # unknown gap status counts as a gap


def gap_ratio(bars: pl.DataFrame, timeframe: str | None = None) -> float:
    """Share of missing bars: rows with is_gap (cleaned grid), or, without is_gap, grid slots between each
    instrument's first and last timestamp that have no row (raw data; needs `timeframe`). 0.0 for an empty frame."""
    missing, expected = _gap_counts(bars, timeframe)
    return missing / expected if expected else 0.0


def _gap_counts(df: pl.DataFrame, timeframe: str | None) -> tuple[int, int]:
    if df.is_empty():
        return 0, 0
    if IS_GAP in df.columns:
        return int(df.select(_gap_mask(df).sum()).item()), df.height
    step = _step(timeframe)
    _require(df, TS)
    per = (
        df.select(_instrument_expr(df), pl.col(TS).dt.truncate(step).alias(TS))
        .drop_nulls(TS)
        .group_by(INSTRUMENT)
        .agg(present=pl.col(TS).n_unique(), first=pl.col(TS).min(), last=pl.col(TS).max())
        .with_columns(expected=_steps(pl.col("last") - pl.col("first"), step) + 1)
    )
    expected = int(per["expected"].sum())
    return expected - int(per["present"].sum()), expected


def _steps(duration: pl.Expr, step: timedelta) -> pl.Expr:
    """Whole grid steps in a duration (polars has no Duration // Duration)."""
    return duration.dt.total_microseconds() // (step // timedelta(microseconds=1))


def _step(timeframe: str | None) -> timedelta:
    if timeframe is None:
        raise ValueError(f"frame has no `{IS_GAP}` column: pass the bar timeframe to measure gaps from timestamps")
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {sorted(TIMEFRAMES)}")
    return TIMEFRAMES[timeframe]


GAP_RUNS_SCHEMA = pl.Schema({INSTRUMENT: pl.String(), "gap_start": TS_DTYPE, "gap_end": TS_DTYPE, "bars": pl.Int64()})


def gap_runs(bars: pl.DataFrame, timeframe: str | None = None) -> pl.DataFrame:
    """Maximal runs of missing bars per instrument: instrument, gap_start, gap_end (first/last missing bar), bars."""
    if bars.is_empty():
        return pl.DataFrame(schema=GAP_RUNS_SCHEMA)
    _require(bars, TS)
    if IS_GAP in bars.columns:
        runs = (
            bars.select(_instrument_expr(bars), pl.col(TS), _gap_mask(bars).alias("gap"))
            .with_columns(run=pl.col("gap").rle_id().over(INSTRUMENT))
            .filter(pl.col("gap"))
            .group_by(INSTRUMENT, "run", maintain_order=True)
            .agg(gap_start=pl.col(TS).min(), gap_end=pl.col(TS).max(), bars=pl.len().cast(pl.Int64))
            .drop("run")
        )
    else:
        step = _step(timeframe)
        ts = pl.col(TS).dt.truncate(step)
        runs = (
            bars.select(_instrument_expr(bars), ts.alias(TS))
            .drop_nulls(TS)
            .unique()
            .sort(INSTRUMENT, TS)
            .with_columns(prev=pl.col(TS).shift(1).over(INSTRUMENT))
            .filter(pl.col(TS) - pl.col("prev") > step)
            .select(
                INSTRUMENT,
                gap_start=pl.col("prev") + step,
                gap_end=pl.col(TS) - step,
                bars=_steps(pl.col(TS) - pl.col("prev"), step) - 1,
            )
        )
    return runs.with_columns(pl.col(INSTRUMENT).cast(pl.String)).sort("bars", descending=True, maintain_order=True)


def gap_ratio_check(
    bars: pl.DataFrame, max_ratio: float, timeframe: str | None = None, sample_rows: int = 5
) -> CheckOutcome:
    """Fail when the share of missing bars exceeds `max_ratio`; samples are the longest gap runs."""
    if not 0.0 <= max_ratio <= 1.0:
        raise ValueError(f"max_ratio is a share in [0, 1], got {max_ratio}")
    missing, expected = _gap_counts(bars, timeframe)
    ratio = missing / expected if expected else 0.0
    runs = gap_runs(bars, timeframe)
    passed = ratio <= max_ratio
    metadata: Metadata = {
        "bars_expected": expected,
        "bars_missing": missing,
        "gap_ratio": round(ratio, 6),
        "max_gap_ratio": max_ratio,
        "gap_runs": runs.height,
        "longest_gap_bars": int(runs.select(pl.col("bars").max()).item() or 0),
    }
    verdict = "within" if passed else "exceeds"
    description = f"gap ratio {ratio:.2%} ({missing} of {expected} bars) {verdict} the bound {max_ratio:.2%}"
    return CheckOutcome(passed, metadata, description, md_table(runs.head(sample_rows), n=None, empty="", null="null"))


def staleness_check(latest_ts: datetime | None, now: datetime, max_age: timedelta) -> CheckOutcome:
    """Fail when the newest data is older than `max_age` at `now` (or there is none). Both times tz-aware."""
    for name, value in (("latest_ts", latest_ts), ("now", now)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    metadata: Metadata = {"now": now.isoformat(), "max_age_hours": round(max_age / timedelta(hours=1), 4)}
    if latest_ts is None:
        metadata["latest_ts"] = "none"
        return CheckOutcome(False, metadata, "no data: nothing has been ingested yet")
    age = now - latest_ts
    metadata |= {"latest_ts": latest_ts.isoformat(), "age_hours": round(age / timedelta(hours=1), 4)}
    passed = age <= max_age
    description = f"latest data at {latest_ts.isoformat()} is {_human(age)} old (bound {_human(max_age)})"
    if age < timedelta(0):
        description += "; it lies in the future"
    return CheckOutcome(passed, metadata, description)


def _human(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    sign = "-" if delta < timedelta(0) else ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{sign}{seconds / size:.1f}{unit}"
    return f"{sign}{seconds:.0f}s"


OHLC_RULES: dict[str, pl.Expr] = {
    "low_above_open": pl.col(LOW) > pl.col(OPEN),
    "low_above_close": pl.col(LOW) > pl.col(CLOSE),
    "high_below_open": pl.col(HIGH) < pl.col(OPEN),
    "high_below_close": pl.col(HIGH) < pl.col(CLOSE),
    "high_below_low": pl.col(HIGH) < pl.col(LOW),
}


def ohlc_consistency(df: pl.DataFrame, sample_rows: int = 5, exclude_flagged: bool = False) -> CheckOutcome:
    """low <= open, close <= high on every bar with all four prices; gap rows (is_gap) are excluded.

    With `exclude_flagged`, rows the cleaner marked in `ohlc_violation` are skipped too (their count is reported),
    which checks that the flag is complete rather than that the vendor was clean.
    """
    _require(df, OPEN, HIGH, LOW, CLOSE)
    checked = pl.all_horizontal(pl.col(c).is_not_null() & ~pl.col(c).is_nan() for c in (OPEN, HIGH, LOW, CLOSE))
    if IS_GAP in df.columns:
        checked = checked & ~pl.col(IS_GAP).fill_null(True)
    has_flag = OHLC_VIOLATION in df.columns
    flagged = pl.col(OHLC_VIOLATION).fill_null(False) if has_flag else pl.lit(False)
    scope = checked & ~flagged if exclude_flagged else checked
    frame = df.with_row_index("row").with_columns(
        _checked=scope, _flagged=checked & flagged, **{name: rule.fill_null(False) for name, rule in OHLC_RULES.items()}
    )
    frame = frame.with_columns(_violation=pl.col("_checked") & pl.any_horizontal(*OHLC_RULES))
    counts = frame.select(
        pl.col("_checked").sum().alias("checked_rows"),
        pl.col("_violation").sum().alias("violating_rows"),
        pl.col("_flagged").sum().alias("flagged_rows"),
        *[(pl.col("_checked") & pl.col(name)).sum().alias(name) for name in OHLC_RULES],
    ).row(0, named=True)
    violating = int(counts["violating_rows"])
    metadata: Metadata = {"rows": df.height, **{k: int(v) for k, v in counts.items()}}
    if not has_flag:
        metadata.pop("flagged_rows")
    passed = violating == 0
    scope_text = "non-gap" + (", unflagged" if exclude_flagged else "")
    if passed:
        description = f"OHLC consistent on all {counts['checked_rows']} {scope_text} bars"
    else:
        worst = sorted(OHLC_RULES, key=lambda n: -counts[n])
        rules = ", ".join(f"{n}={counts[n]}" for n in worst if counts[n])
        description = f"{violating} of {counts['checked_rows']} {scope_text} bars violate OHLC order ({rules})"
    cols = [c for c in ("row", TS, INSTRUMENT, OPEN, HIGH, LOW, CLOSE) if c in frame.columns]
    rule_names = pl.concat_str(
        [pl.when(pl.col(n)).then(pl.lit(n)) for n in OHLC_RULES], separator=", ", ignore_nulls=True
    ).alias("rules")
    samples = frame.filter(pl.col("_violation")).head(sample_rows).select(*cols, rule_names)
    return CheckOutcome(passed, metadata, description, md_table(samples, n=None, empty="", null="null"))


def schema_check(df: pl.DataFrame, schema: pl.Schema) -> CheckOutcome:
    """Exact polars column names, order and dtypes (the pandas conversion for GX cannot tell Datetime units/zones)."""
    missing = [c for c in schema if c not in df.schema]
    extra = [c for c in df.schema if c not in schema]
    common = [c for c in schema if c in df.schema]
    mismatched = [(c, str(schema[c]), str(df.schema[c])) for c in common if df.schema[c] != schema[c]]
    order_ok = [c for c in df.columns if c in schema] == common
    passed = not missing and not extra and not mismatched and order_ok
    metadata: Metadata = {
        "columns": df.width,
        "expected_columns": len(schema),
        "missing_columns": ", ".join(missing) or "none",
        "extra_columns": ", ".join(extra) or "none",
        "dtype_mismatches": len(mismatched),
        "column_order_ok": int(order_ok),
    }
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    if mismatched:
        problems.append("dtypes " + ", ".join(f"{c}: {got} (want {want})" for c, want, got in mismatched))
    if not order_ok:
        problems.append("column order differs from the schema")
    description = "schema matches" if passed else "; ".join(problems)
    table = pl.DataFrame(mismatched, schema=["column", "expected", "got"], orient="row")
    return CheckOutcome(passed, metadata, description, md_table(table, n=None, empty="", null="null"))
