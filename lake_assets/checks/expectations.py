"""Great Expectations suites declared in `spec/expectations/<layer>.yaml`, run on polars frames in asset checks.

A suite file maps an asset name to a list of `{expectation, kwargs, severity, notes}`. Files are validated when
loaded (expectation names against GX's registry, kwargs by building the GX expectation, columns and row conditions
against the asset's canonical schema), so a typo fails as a SpecError naming file, key and problem instead of
surfacing as a confusing check failure.

Spec files are data. A `row_condition` is parsed by qlake's own grammar (`row_conditions.py`: columns, literals,
comparisons, and/or/not, `is [not] null`) and compiled to a polars expression; GX never sees it (GX would hand it
to pandas `DataFrame.query`, which evaluates Python). Rows are selected with polars and each condition's
expectations are validated on just those rows, with the pandas index of the whole frame kept.

Great Expectations costs ~4 s to import, so it is imported lazily and one ephemeral context is kept per process.
Results come back as plain dataclasses (no GX or Dagster types) with failing samples and a Markdown table.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, RootModel, field_validator

from lake_assets.checks.row_conditions import ConditionError, RowCondition, parse_condition
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, read_yaml, validate_model
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    INSTRUMENT,
    RAW_FUNDING_SCHEMA,
    RAW_OHLCV_SCHEMA,
    RAW_OPEN_INTEREST_SCHEMA,
    RAW_TRADES_SCHEMA,
    TS,
)

Severity = Literal["error", "warn"]

# Canonical schemas of the assets whose suites live here; used to check column names and row conditions at load.
# Assets not listed (later layers) are validated for expectation names and kwargs only.
ASSET_SCHEMAS: dict[str, pl.Schema] = {
    "raw_ohlcv": RAW_OHLCV_SCHEMA,
    "raw_funding": RAW_FUNDING_SCHEMA,
    "raw_open_interest": RAW_OPEN_INTEREST_SCHEMA,
    "raw_trades": RAW_TRADES_SCHEMA,
    "bars": BARS_SCHEMA,
    "bars_1h": BARS_SCHEMA,
    "bars_1d": BARS_SCHEMA,
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NOT_SUITES = frozenset({"thresholds"})  # other files in spec/expectations/
# GX expectation fields qlake sets itself (severity is ours, meta carries the index) or that would change results.
_RESERVED_KWARGS = frozenset(
    {"severity", "meta", "id", "notes", "description", "result_format", "catch_exceptions", "rendered_content"}
    | {"batch_id", "windows"}
)
# Expectations that run a query (SQL) written in their kwargs: spec values are data, never code.
_QUERY_EXPECTATIONS = frozenset({"unexpected_rows_expectation", "expect_query_results_to_match_comparison"})
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list",)
_INDEX_KEY = "qlake_index"
_LOCK = threading.Lock()


# --- Great Expectations, lazily -----------------------------------------------------------------


def _gx() -> Any:
    """Import great_expectations with analytics off and its loggers quiet; Python caches the module after."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return gx


@lru_cache(maxsize=1)
def expectation_names() -> frozenset[str]:
    """Names (snake_case) of every expectation class registered with Great Expectations."""
    _gx()
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    return frozenset(list_registered_expectation_implementations())


@dataclass
class _GxRuntime:
    context: Any
    datasource: Any
    batch_definitions: dict[str, Any]


@lru_cache(maxsize=2)
def _runtime(pid: int) -> _GxRuntime:
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.config.analytics_enabled = False
    datasource = context.data_sources.add_pandas("qlake")
    return _GxRuntime(context, datasource, {})


def gx_context() -> Any:
    """This process's ephemeral GX context (created on first use, ~4 s for the import); call it to warm up."""
    return _runtime(os.getpid()).context


def _batch_definition(layer: str, asset: str) -> Any:
    runtime = _runtime(os.getpid())
    name = f"{layer}.{asset}"
    if name not in runtime.batch_definitions:
        data_asset = runtime.datasource.add_dataframe_asset(name)
        runtime.batch_definitions[name] = data_asset.add_batch_definition_whole_dataframe("whole")
    return runtime.batch_definitions[name]


def _release_batches() -> None:
    """GX's execution engine keeps the last batch of every asset (the whole pandas copy of a run's range: ~200 MB
    after the crypto history load, for as long as the process lives); results are read already, so drop them."""
    manager = _runtime(os.getpid()).datasource.get_execution_engine().batch_manager
    manager.batch_data_cache.clear()
    manager.reset_batch_cache()


# --- suite files ----------------------------------------------------------------------------------


class ExpectationSpec(StrictModel):
    """One declared expectation: a GX expectation name, its kwargs, and how bad a failure is."""

    expectation: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "error"
    notes: str | None = None

    @field_validator("expectation")
    @classmethod
    def _registered(cls, v: str) -> str:
        known = expectation_names()
        if v not in known:
            close = difflib.get_close_matches(v, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see great_expectations.expectations"
            raise ValueError(f"unknown expectation {v!r} (not in Great Expectations' registry){hint}")
        if v in _QUERY_EXPECTATIONS:
            raise ValueError(f"{v} runs a query written in the spec; suites are data (use column expectations)")
        return v

    @field_validator("kwargs")
    @classmethod
    def _not_reserved(cls, v: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(v) & _RESERVED_KWARGS)
        if reserved:
            raise ValueError(f"{reserved} cannot be set in kwargs (severity and notes go next to `kwargs`)")
        return v

    @field_validator("kwargs")
    @classmethod
    def _own_row_conditions(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "condition_parser" in v:
            raise ValueError("condition_parser cannot be set: row conditions use qlake's own grammar (no parser)")
        if "row_condition" in v and not isinstance(v["row_condition"], str):
            raise ValueError(f"row_condition must be a string, got {_brief(v['row_condition'])}")
        return v

    @property
    def row_condition(self) -> str | None:
        """The declared row condition (qlake's grammar), applied by qlake before GX sees the rows."""
        cond = self.kwargs.get("row_condition")
        return cond if isinstance(cond, str) else None

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this expectation looks at, in declaration order; () for table-level expectations."""
        if self.expectation.startswith("expect_table_"):
            return ()
        cols = [self.kwargs[k] for k in _COLUMN_KWARGS if isinstance(self.kwargs.get(k), str)]
        for k in _COLUMN_LIST_KWARGS:
            value = self.kwargs.get(k)
            if isinstance(value, list | tuple):
                cols.extend(c for c in value if isinstance(c, str))
        return tuple(cols)

    def gx_kwargs(self) -> dict[str, Any]:
        """The kwargs GX gets: never the row condition (qlake filters the rows itself; see the module doc)."""
        return {k: v for k, v in self.kwargs.items() if k not in ("row_condition", "condition_parser")}

    def to_gx(self, index: int) -> Any:
        """The GX expectation object; `index` travels in `meta` to match results back to specs."""
        from great_expectations.expectations.registry import get_expectation_impl

        cls = get_expectation_impl(self.expectation)
        return cls(**self.gx_kwargs(), meta={_INDEX_KEY: index})


class SuiteFile(RootModel[dict[str, list[ExpectationSpec]]]):
    """A whole `spec/expectations/<layer>.yaml`: asset name -> expectations."""

def suite_path(layer: str) -> Path:
    if not _NAME.fullmatch(layer) or layer in _NOT_SUITES:
        raise ValueError(f"invalid expectation layer {layer!r}: expected a layer name like 'raw' or 'cleaned'")
    return spec_dir() / "expectations" / f"{layer}.yaml"


def load_suite_file(path: Path) -> dict[str, list[ExpectationSpec]]:
    """Read and fully validate one suite file; any problem raises SpecError(file, key, problem)."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise SpecError(path, "<root>", "expected a non-empty mapping of asset name -> list of expectations")
    for asset, specs in data.items():
        if not isinstance(asset, str) or not _NAME.fullmatch(asset):
            raise SpecError(path, str(asset), "asset names are lower_snake_case identifiers")
        if not isinstance(specs, list) or not specs:
            raise SpecError(path, asset, f"expected a non-empty list of expectations (got {_brief(specs)})")
    suites: dict[str, list[ExpectationSpec]] = validate_model(SuiteFile, data, path).root
    for asset, specs in suites.items():
        for i, spec in enumerate(specs):
            _check_spec(path, f"{asset}.{i}", spec, ASSET_SCHEMAS.get(asset))
    return suites


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_spec(path: Path, key: str, spec: ExpectationSpec, schema: pl.Schema | None) -> None:
    try:
        spec.to_gx(0)
    except ValueError as exc:  # GX expectations are pydantic(v1) models: ValidationError is a ValueError
        errors = getattr(exc, "errors", None)
        if callable(errors) and errors():
            err = errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ())) or "<kwargs>"
            raise SpecError(path, f"{key}.kwargs.{loc}", f"{err.get('msg')} for {spec.expectation}") from exc
        raise SpecError(path, f"{key}.kwargs", f"{exc} for {spec.expectation}") from exc
    if schema is None:
        _row_condition(path, key, spec, None)
        return
    for kw in _COLUMN_KWARGS:
        col = spec.kwargs.get(kw)
        if isinstance(col, str) and col not in schema:
            raise SpecError(path, f"{key}.kwargs.{kw}", _unknown_column(col, schema))
    for kw in _COLUMN_LIST_KWARGS:
        for j, col in enumerate(spec.kwargs.get(kw) or ()):
            if col not in schema:
                raise SpecError(path, f"{key}.kwargs.{kw}.{j}", _unknown_column(col, schema))
    _row_condition(path, key, spec, schema)


def _row_condition(path: Path, key: str, spec: ExpectationSpec, schema: pl.Schema | None) -> RowCondition | None:
    """The spec's parsed row condition (columns checked against `schema`, any lower_snake_case name if None)."""
    if spec.row_condition is None:
        return None
    try:
        return parse_condition(spec.row_condition, schema)
    except ConditionError as exc:
        raise SpecError(path, f"{key}.kwargs.row_condition", str(exc)) from exc


def _unknown_column(col: object, schema: pl.Schema) -> str:
    return f"unknown column {col!r}; the asset's columns are {list(schema)}"


@lru_cache(maxsize=32)
def _cached_suites(path: str, mtime_ns: int, size: int) -> dict[str, tuple[ExpectationSpec, ...]]:
    return {asset: tuple(specs) for asset, specs in load_suite_file(Path(path)).items()}


def load_suites(layer: str) -> dict[str, list[ExpectationSpec]]:
    """The validated suites of `spec/expectations/<layer>.yaml`, re-read when the file changes."""
    path = suite_path(layer)
    if not path.is_file():
        raise SpecError(path, "<file>", f"file not found: no expectation suites for layer {layer!r}")
    stat = path.stat()
    cached = _cached_suites(str(path), stat.st_mtime_ns, stat.st_size)
    return {asset: list(specs) for asset, specs in cached.items()}


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation, with numbers and a few failing values/rows for the UI."""

    expectation: str
    columns: tuple[str, ...]
    success: bool
    severity: Severity
    unexpected_count: int | None = None  # None for table-level expectations (schema, row count, ...)
    unexpected_percent: float | None = None  # of the rows the expectation evaluated (non-null, row_condition)
    element_count: int | None = None
    observed_value: Any = None
    sample_values: tuple[Any, ...] = ()
    sample_rows: tuple[dict[str, Any], ...] = ()
    kwargs: Mapping[str, Any] | None = None
    exception: str | None = None
    notes: str | None = None

    @property
    def blocking(self) -> bool:
        return not self.success and self.severity == "error"


@dataclass(frozen=True)
class SuiteResult:
    """A suite run on one frame; `success` is False only when an error-severity expectation failed."""

    asset: str
    layer: str
    success: bool
    evaluated_rows: int
    results: tuple[ExpectationResult, ...]

    @property
    def errors(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if r.blocking)

    @property
    def warnings(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success and r.severity == "warn")

    def result(self, expectation: str, *columns: str) -> ExpectationResult:
        """The (first) result for an expectation on exactly these columns; KeyError if none."""
        for r in self.results:
            if r.expectation == expectation and (not columns or r.columns == columns):
                return r
        raise KeyError(f"no result for {expectation} on {columns} in the {self.layer}.{self.asset} suite")

    def to_metadata(self) -> dict[str, str | int | float]:
        """Flat numbers for Dagster check metadata (the Markdown table goes alongside)."""
        meta: dict[str, str | int | float] = {
            "suite": f"{self.layer}.{self.asset}",
            "evaluated_rows": self.evaluated_rows,
            "expectations": len(self.results),
            "failed_errors": len(self.errors),
            "failed_warnings": len(self.warnings),
        }
        for r in (*self.errors, *self.warnings):
            key = f"unexpected:{_short_name(r.expectation)}({','.join(r.columns)})"
            meta[key] = r.unexpected_count if r.unexpected_count is not None else _cell(r.exception or "failed")
        return meta

    def to_markdown(self, max_rows: int = 5) -> str:
        """A compact table: one line per expectation, then failing sample rows per failed expectation."""
        failed = [r for r in self.results if not r.success]
        status = "passed" if self.success else "FAILED"
        lines = [
            f"**{self.layer}.{self.asset}** {status}: {len(self.results) - len(failed)}/{len(self.results)} "
            f"expectations met ({len(self.errors)} error, {len(self.warnings)} warn failures) "
            f"on {self.evaluated_rows:,} rows",
            "",
            "| | severity | expectation | column(s) | args | unexpected | % | observed / sample values |",
            "|---|---|---|---|---|---:|---:|---|",
        ]
        for r in self.results:
            mark = "ok" if r.success else ("**FAIL**" if r.severity == "error" else "warn")
            pct = "" if r.unexpected_percent is None else f"{r.unexpected_percent:.3g}"
            count = "" if r.unexpected_count is None else f"{r.unexpected_count:,}"
            if r.exception:
                seen = f"error: {r.exception}"
            elif r.sample_values:
                seen = ", ".join(_fmt(v) for v in r.sample_values)
            elif r.observed_value is not None and (not r.success or len(_fmt(r.observed_value)) <= 40):
                seen = _fmt(r.observed_value)
            else:
                seen = ""
            cells = [mark, r.severity, _short_name(r.expectation), ", ".join(r.columns), _args(r), count, pct, seen]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        for r in failed:
            if not r.sample_rows:
                continue
            lines += ["", f"Failing rows, {_short_name(r.expectation)} ({', '.join(r.columns)}):", ""]
            lines += _rows_table(r.sample_rows[:max_rows])
        return "\n".join(lines)


def _short_name(expectation: str) -> str:
    return expectation.removeprefix("expect_")


def _args(r: ExpectationResult) -> str:
    skip = {*_COLUMN_KWARGS, "condition_parser"}
    if r.columns:  # column lists of table-level expectations (the schema) stay in args
        skip.update(_COLUMN_LIST_KWARGS)
    return ", ".join(f"{k}={_fmt_arg(v)}" for k, v in (r.kwargs or {}).items() if k not in skip)


def _fmt_arg(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) > 6:
        return f"[{len(value)} items: {_fmt(value[0])} .. {_fmt(value[-1])}]"
    return _fmt(value)


def _rows_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cell(_fmt(row.get(c))) for c in cols) + " |" for row in rows]
    return out


def _cell(text: str) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _plain(value: Any) -> Any:
    """GX/numpy/pandas values as plain Python (NaN/NaT -> None, numpy scalars -> Python, Timestamps -> datetime)."""
    to_py = getattr(value, "to_pydatetime", None)  # pandas Timestamp (a datetime subclass) and NaT
    if callable(to_py):
        try:
            converted = to_py()
        except (ValueError, TypeError):
            return None
        return None if converted is None or str(value) == "NaT" else converted
    if value is None or isinstance(value, str | bool | int | date | time | timedelta):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _plain(item())
        except (ValueError, TypeError):
            return str(value)
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


# --- running ---------------------------------------------------------------------------------------


# Each extra validation costs GX ~0.07 s of fixed overhead, so below this many rows a condition's expectations get the
# whole frame's columns rather than a copy of just theirs (bars suite: break-even near 50k rows)
NARROW_FROM_ROWS = 50_000


@dataclass(frozen=True)
class _Group:
    condition: str | None  # the row condition (qlake's grammar) selecting the rows; None = every row
    columns: list[str] | None  # the frame columns the group's expectations need; None = all
    indices: list[int]  # the expectations' positions in the suite


def _validation_groups(specs: Sequence[ExpectationSpec], columns: Sequence[str], rows: int) -> list[_Group]:
    """Expectations batched by `row_condition`, each batch validated on the rows its condition selects.

    On a large frame each batch also gets just the columns its expectations name (GX computes every metric over
    every column of its batch); table-level expectations always see every column. The pandas index is kept, so
    unexpected rows are still reported by their position in the asset's frame.
    """
    by_condition: dict[str | None, list[int]] = {}
    for i, spec in enumerate(specs):
        by_condition.setdefault(spec.row_condition, []).append(i)
    groups: list[_Group] = []
    for cond, indices in by_condition.items():
        whole = rows < NARROW_FROM_ROWS or any(not specs[i].columns for i in indices)
        wanted = {c for i in indices for c in specs[i].columns}
        groups.append(_Group(cond, None if whole else [c for c in columns if c in wanted], indices))
    return groups


@dataclass(frozen=True)
class _Unvalidated:
    """Stands in for a GX result when qlake could not select a group's rows (the message goes to `exception`)."""

    exception_info: dict[str, Any]
    success: bool = False
    result: dict[str, Any] | None = None


def _row_mask(df: pl.DataFrame, path: Path, key: str, spec: ExpectationSpec, schema: pl.Schema | None) -> Any:
    """The rows of `df` the spec's row condition selects, as a numpy bool array (nulls are not selected)."""
    condition = _row_condition(path, key, spec, schema)
    assert condition is not None
    mask = df.select(condition.expr(df.schema).alias("row_condition")).to_series()
    if mask.dtype != pl.Boolean:
        raise pl.exceptions.InvalidOperationError(f"row_condition {condition.text!r} is {mask.dtype}, not a boolean")
    return mask.to_numpy()


def _validate(
    df: pl.DataFrame, asset: str, layer: str, result_format: dict[str, Any]
) -> tuple[list[ExpectationSpec], dict[int, Any]]:
    """GX results of the asset's suite on `df`, by the expectation's index in the suite."""
    suites = load_suites(layer)
    path = suite_path(layer)
    if asset not in suites:
        raise SpecError(path, asset, f"no expectation suite for asset {asset!r}; have {sorted(suites)}")
    specs = suites[asset]
    gx = _gx()
    pdf = df.to_pandas()
    by_index: dict[int, Any] = {}
    with _LOCK:
        try:
            for n, group in enumerate(_validation_groups(specs, list(pdf.columns), len(pdf))):
                frame = pdf if group.columns is None else pdf[group.columns]
                if group.condition is not None:
                    first = group.indices[0]
                    try:
                        mask = _row_mask(df, path, f"{asset}.{first}", specs[first], ASSET_SCHEMAS.get(asset))
                    except pl.exceptions.PolarsError as exc:  # a column missing from this frame, a wrong type
                        info = {"raised_exception": True, "exception_message": f"row_condition: {exc}"}
                        by_index.update({i: _Unvalidated(info) for i in group.indices})
                        continue
                    frame = frame[mask]  # boolean selection keeps the index: rows keep their position in df
                expectations = [specs[i].to_gx(i) for i in group.indices]
                suite = gx.ExpectationSuite(name=f"{layer}.{asset}.{n}", expectations=expectations)
                batch = _batch_definition(layer, asset).get_batch(batch_parameters={"dataframe": frame})
                validation = batch.validate(suite, result_format=result_format)
                for r in validation.results:
                    meta = r.expectation_config.meta or {}
                    by_index[int(meta[_INDEX_KEY])] = r
        finally:
            _release_batches()
    return specs, by_index


def run_expectations(df: pl.DataFrame, asset: str, layer: str, sample_rows: int = 5) -> SuiteResult:
    """Run the asset's suite from `spec/expectations/<layer>.yaml` on `df` with Great Expectations.

    The frame is converted to pandas (row positions are kept, so failing rows are sampled from `df` itself).
    Empty frames succeed: every column-map expectation has nothing to reject.
    """
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": max(sample_rows, 1)}
    specs, by_index = _validate(df, asset, layer, result_format)
    results = tuple(_to_result(spec, by_index.get(i), df, sample_rows) for i, spec in enumerate(specs))
    success = not any(r.blocking for r in results)
    return SuiteResult(asset=asset, layer=layer, success=success, evaluated_rows=df.height, results=results)


def run_expectations_by_partition(
    parts: Sequence[tuple[str, pl.DataFrame]], asset: str, layer: str, sample_rows: int = 5
) -> dict[str, SuiteResult]:
    """The suite run once over every partition of a run (GX's fixed cost is per validation, ~0.07 s a group), each
    partition judged on its own rows: a row-level expectation fails a partition only if one of that partition's rows
    is unexpected, and its counts and samples are that partition's. Table-level expectations (columns, types) judge
    the shared schema, so their result is every partition's."""
    if not parts:
        return {}
    frames = [f for _, f in parts]
    df = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    specs, by_index = _validate(df, asset, layer, {"result_format": "COMPLETE"})
    out: dict[str, SuiteResult] = {}
    lo = 0
    for key, frame in parts:
        hi = lo + frame.height
        results = tuple(
            _partition_result(spec, by_index.get(i), df, lo, hi, sample_rows) for i, spec in enumerate(specs)
        )
        success = not any(r.blocking for r in results)
        out[key] = SuiteResult(asset=asset, layer=layer, success=success, evaluated_rows=frame.height, results=results)
        lo = hi
    return out


def combine_suites(parts: Sequence[SuiteResult], sample_rows: int = 5) -> SuiteResult:
    """One suite result from the results of consecutive slices of one frame (a partition validated in slices to
    bound memory): row-level counts add up, samples come from the first failing slices, and an expectation fails
    when it failed in any slice."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    results = []
    for i, r0 in enumerate(first.results):
        rs = [p.results[i] for p in parts]
        counts = [r.unexpected_count for r in rs]
        count = None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
        elements = [r.element_count for r in rs]
        n = None if any(e is None for e in elements) else sum(e for e in elements if e is not None)
        failed = [r for r in rs if not r.success]
        results.append(ExpectationResult(
            expectation=r0.expectation, columns=r0.columns, severity=r0.severity, kwargs=r0.kwargs, notes=r0.notes,
            success=not failed, unexpected_count=count, element_count=n,
            unexpected_percent=(100.0 * count / n) if count is not None and n else (0.0 if count == 0 else None),
            observed_value=(failed[0] if failed else r0).observed_value,
            sample_values=tuple(v for r in failed for v in r.sample_values)[:sample_rows],
            sample_rows=tuple(row for r in failed for row in r.sample_rows)[:sample_rows],
            exception=next((r.exception for r in rs if r.exception), None),
        ))  # fmt: skip
    rows = sum(p.evaluated_rows for p in parts)
    success = not any(r.blocking for r in results)
    return SuiteResult(
        asset=first.asset, layer=first.layer, success=success, evaluated_rows=rows, results=tuple(results)
    )


def _partition_result(
    spec: ExpectationSpec, gx_result: Any, df: pl.DataFrame, lo: int, hi: int, sample_rows: int
) -> ExpectationResult:
    """One partition's share (rows lo..hi of the validated frame) of a whole-run GX result."""
    whole = _to_result(spec, gx_result, df, sample_rows)
    res: dict[str, Any] = dict(gx_result.result or {}) if gx_result is not None else {}
    index = res.get("unexpected_index_list")
    if whole.exception or index is None or not all(isinstance(i, int | float) for i in index[:1]):
        return whole  # table-level (or failed) expectation: the run's verdict is the partition's
    mine = [int(i) for i in index if lo <= int(i) < hi]
    values = res.get("unexpected_list") or []
    aligned = len(values) == len(index)  # multi-column expectations list their values differently
    mine_values = [values[j] for j, i in enumerate(index) if lo <= int(i) < hi][:sample_rows] if aligned else []
    rows: tuple[dict[str, Any], ...] = ()
    if mine:
        cols = list(dict.fromkeys(c for c in (TS, INSTRUMENT, *spec.columns) if c in df.columns))
        rows = tuple(df.select(cols)[mine[:sample_rows]].to_dicts())
    height = hi - lo
    return ExpectationResult(
        expectation=whole.expectation,
        columns=whole.columns,
        severity=whole.severity,
        kwargs=whole.kwargs,
        notes=whole.notes,
        success=not mine,
        unexpected_count=len(mine),
        unexpected_percent=(100.0 * len(mine) / height) if height else 0.0,
        element_count=height,
        observed_value=None,
        sample_values=tuple(_plain(v) for v in mine_values),
        sample_rows=rows,
    )


def _to_result(spec: ExpectationSpec, gx_result: Any, df: pl.DataFrame, sample_rows: int) -> ExpectationResult:
    base: dict[str, Any] = {
        "expectation": spec.expectation,
        "columns": spec.columns,
        "severity": spec.severity,
        "kwargs": dict(spec.kwargs),
        "notes": spec.notes,
    }
    if gx_result is None:
        return ExpectationResult(success=False, exception="Great Expectations returned no result", **base)
    res: dict[str, Any] = dict(gx_result.result or {})
    exception = _exception_message(gx_result.exception_info)
    count = res.get("unexpected_count")
    pct = res.get("unexpected_percent")
    indices = [int(i) for i in (res.get("partial_unexpected_index_list") or [])][:sample_rows]
    rows: tuple[dict[str, Any], ...] = ()
    if indices and df.height:
        cols = list(dict.fromkeys(c for c in (TS, INSTRUMENT, *spec.columns) if c in df.columns))
        picked = df.select(cols)[[i for i in indices if 0 <= i < df.height]]
        rows = tuple(picked.to_dicts())
    observed = res.get("observed_value")
    return ExpectationResult(
        success=bool(gx_result.success) and exception is None,
        unexpected_count=None if count is None else int(count),
        unexpected_percent=None if pct is None else float(pct),
        element_count=None if res.get("element_count") is None else int(res["element_count"]),
        observed_value=_plain(observed),
        sample_values=tuple(_plain(v) for v in (res.get("partial_unexpected_list") or [])[:sample_rows]),
        sample_rows=rows,
        exception=exception,
        **base,
    )


def _exception_message(info: Any) -> str | None:
    """GX reports exceptions either flat or keyed by metric; return the first message, if any."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for value in info.values():
        msg = _exception_message(value)
        if msg:
            return msg
    return None
