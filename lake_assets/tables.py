"""The data dictionary: every lake table declared once.

A `Table` names the table (= its lake directory = its warehouse view; the asset's own name when the table is the
asset's output), the asset that writes it, its partition dimensions in path order and its columns, each with a polars
dtype, a description and a unit. That one declaration drives

- the parquet location `lake/<group>/<name>/<dim>=<key>/.../part-0.parquet` (writers pass the same group and name
  to `Lake.write`; the warehouse globs and `check_lake` read them from here);
- the polars schema writers conform to (`vocabulary.BARS_SCHEMA = BARS.schema`, the backtest and walk-forward
  schemas, ...), and the tests that compare what the assets write with it;
- the warehouse view `<name>`, its `COMMENT ON VIEW` / `COMMENT ON COLUMN` and the typed empty view a table has
  before its first partition (`storage/warehouse.py`), plus alias views for the old short names;
- the asset's `dagster/column_schema` metadata (`asset_metadata.with_column_schema`).

Columns a spec generates (one per feature of spec/features, one flag per event type of spec/events) come from the
spec itself (`Table.dynamic`), reusing its descriptions. Units: prices are in the quote currency (USDT for crypto,
USD for equities); returns are log returns unless the name says otherwise; `bps` = 1e-4; a fraction is 0.05 for 5%.

**Sharpe convention.** Every Sharpe ratio in the lake is annualised: mean / std of the bar returns times sqrt(bars
per year of the book's timeframe: 5m 105,120 = 288 x 365, 1h 8,760, 1d 252 trading days). So `metrics.sharpe` and
`walkforward.oos_sharpe` of one strategy are comparable. The one exception says so in its name:
`phase2_candidates.sharpe_per_trade` (per trade, not annualised). PSR and DSR are probabilities computed from the
per-bar Sharpe, as their papers require.

This module imports nothing from qlake at load time (vocabulary.py derives its schemas from it), so names are
written out here; the spec-driven columns import their spec loaders on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Final

import polars as pl

TS_DTYPE: Final = pl.Datetime("us", "UTC")
UTC_TS: Final = "UTC timestamp"
PRICE_UNIT: Final = "quote currency per unit"
CASH_UNIT: Final = "quote currency"
SHARPE_UNIT: Final = "annualised Sharpe: x sqrt(bars per year: 5m 105,120, 1h 8,760, 1d 252)"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Any  # a polars dtype (class or instance)
    description: str
    unit: str = ""  # empty for identifiers, labels and flags

    @property
    def comment(self) -> str:
        return f"{self.description} [{self.unit}]" if self.unit else self.description

    def renamed(self, name: str, description: str | None = None) -> Column:
        return Column(name, self.dtype, description or self.description, self.unit)


@dataclass(frozen=True)
class Table:
    name: str  # lake directory = warehouse view name (= the asset's name when it is the asset's output)
    group: str  # lake group directory (the asset's Dagster group)
    asset: str  # the Dagster asset that writes it (comma-separated when several do)
    description: str
    partitions: tuple[Column, ...] = ()  # hive dimensions in path order (strings)
    columns: tuple[Column, ...] = ()
    dynamic: Callable[[], Sequence[Column]] | None = None  # columns generated from a spec, after `columns`
    patterns: tuple[tuple[str, str, str], ...] = ()  # (regex, description, unit) of spec-dependent extra columns
    aliases: tuple[str, ...] = ()  # older view names kept as alias views

    @property
    def depth(self) -> int:
        return len(self.partitions)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + tuple(self.dynamic() if self.dynamic else ())

    def resolved(self) -> Table:
        """This table with its spec-generated columns read now (a spec is read once, not per column looked up)."""
        return self if self.dynamic is None else replace(self, columns=self.all_columns, dynamic=None)

    @property
    def schema(self) -> pl.Schema:
        """The polars schema of the table's files (partition dimensions live in the path)."""
        return pl.Schema([(c.name, c.dtype) for c in self.all_columns])

    def schema_without(self, *names: str) -> pl.Schema:
        return pl.Schema([(c.name, c.dtype) for c in self.all_columns if c.name not in names])

    def column(self, name: str) -> Column | None:
        """The declared column (data column first, then partition dimension, then a spec-dependent pattern)."""
        for c in (*self.all_columns, *self.partitions):
            if c.name == name:
                return c
        for pattern, description, unit in self.patterns:
            m = re.fullmatch(pattern, name)
            if m:
                return Column(name, None, description.format(*m.groups()), unit)
        return None

    def comment(self, name: str) -> str:
        col = self.column(name)
        return col.comment if col is not None else f"column of {self.name} not in the data dictionary"

    @property
    def view_comment(self) -> str:
        dims = ", ".join(c.name for c in self.partitions) or "none"
        return f"{self.description} Asset: {self.asset}. Partitions: {dims}. Lake: lake/{self.group}/{self.name}/."


_SQL_TYPES: Final = {pl.String: "VARCHAR", pl.Float64: "DOUBLE", pl.Float32: "FLOAT", pl.Int64: "BIGINT",
                     pl.Int32: "INTEGER", pl.Int16: "SMALLINT", pl.Int8: "TINYINT", pl.UInt64: "UBIGINT",
                     pl.UInt32: "UINTEGER", pl.Boolean: "BOOLEAN", pl.Date: "DATE"}  # fmt: skip


def sql_type(dtype: Any) -> str:
    """The DuckDB type a polars dtype reads as (the warehouse's typed empty views, the Dagster column schema)."""
    dtype = pl.Schema([("x", dtype)])["x"]  # a dtype class becomes an instance
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.Array | pl.List):  # parquet stores a fixed-size array as a list: DuckDB reads a LIST
        return f"{sql_type(dtype.inner)}[]"
    return _SQL_TYPES.get(dtype.base_type(), "VARCHAR")  # type: ignore[call-overload]


def _c(name: str, dtype: Any, description: str, unit: str = "") -> Column:
    return Column(name, dtype, description, unit)


# --- shared columns and partition dimensions -------------------------------------------------------------------

INSTRUMENT_COL: Final = _c("instrument", pl.String, "instrument id from spec/universe.yaml (e.g. BTCUSDT-PERP)")
BAR_TS: Final = _c("ts", TS_DTYPE, "bar open time", UTC_TS)
VENDOR_COL: Final = _c("vendor", pl.String, "vendor the rows came from (spec/universe.yaml)")
INGESTED_AT_COL: Final = _c("ingested_at", TS_DTYPE, "when the row was fetched from the vendor", UTC_TS)
STRATEGY_COL: Final = _c("strategy", pl.String, "strategy key: json.<name> (spec/strategies), blueprint id bp_<hex> or "
                          "model.<variant> (a kept model)")
BOOK_COL: Final = _c("book", pl.String, "book: the market the strategy traded (perp, spot, equity, index)")
SPEC_HASH_COL: Final = _c("spec_hash", pl.String, "hash of the spec the row was computed from")

DIM_INSTRUMENT: Final = _c("instrument", pl.String, "partition key: instrument id")
DIM_MONTH: Final = _c("month", pl.String, "partition key: calendar month of ts, YYYY-MM (UTC)")
DIM_EVENT_TYPE: Final = _c("event_type", pl.String, "partition key: event type (spec/events)")
DIM_STRATEGY: Final = _c("strategy", pl.String, "partition key: strategy key")
INSTRUMENT_MONTH: Final = (DIM_INSTRUMENT, DIM_MONTH)

# --- raw ---------------------------------------------------------------------------------------------------------

_TOP_OF_BOOK: Final = (
    _c("bid", pl.Float64, "best bid at the bar close (vendors with top of book; null otherwise)", PRICE_UNIT),
    _c("ask", pl.Float64, "best ask at the bar close (vendors with top of book; null otherwise)", PRICE_UNIT),
    _c("bid_size", pl.Float64, "size resting at the best bid at the bar close", "base units"),
    _c("ask_size", pl.Float64, "size resting at the best ask at the bar close", "base units"),
)

RAW_OHLCV: Final = Table(
    "raw_ohlcv",
    "raw",
    "raw_ohlcv",
    "Vendor OHLCV bars as delivered, typed and row-validated.",
    INSTRUMENT_MONTH,
    (
        BAR_TS,
        INSTRUMENT_COL,
        _c("open", pl.Float64, "open price", PRICE_UNIT),
        _c("high", pl.Float64, "high price", PRICE_UNIT),
        _c("low", pl.Float64, "low price", PRICE_UNIT),
        _c("close", pl.Float64, "close price", PRICE_UNIT),
        _c("volume", pl.Float64, "traded volume", "base units (coins, contracts or shares)"),
        *_TOP_OF_BOOK,
        VENDOR_COL,
        INGESTED_AT_COL,
    ),
)
RAW_FUNDING: Final = Table(
    "raw_funding", "raw", "raw_funding", "Perpetual funding rates as delivered.", INSTRUMENT_MONTH,
    (
        _c("ts", TS_DTYPE, "funding time", UTC_TS),
        INSTRUMENT_COL,
        _c("funding_rate", pl.Float64, "funding rate paid by longs to shorts per funding interval",
           "fraction per 8h interval"),
        VENDOR_COL,
        INGESTED_AT_COL,
    ),
)  # fmt: skip
RAW_OPEN_INTEREST: Final = Table(
    "raw_open_interest",
    "raw",
    "raw_open_interest",
    "Perpetual open interest as delivered.",
    INSTRUMENT_MONTH,
    (
        _c("ts", TS_DTYPE, "observation time", UTC_TS),
        INSTRUMENT_COL,
        _c("open_interest", pl.Float64, "open interest", "base units"),
        VENDOR_COL,
        INGESTED_AT_COL,
    ),
)
RAW_TRADES: Final = Table(
    "raw_trades",
    "raw",
    "raw_trades",
    "Individual trades as delivered (trade files).",
    INSTRUMENT_MONTH,
    (
        _c("ts", TS_DTYPE, "trade time", UTC_TS),
        INSTRUMENT_COL,
        _c("price", pl.Float64, "trade price", PRICE_UNIT),
        _c("size", pl.Float64, "trade size", "base units"),
        _c("side", pl.String, "aggressor side: buy | sell | null (unknown)"),
        _c("trade_id", pl.String, "vendor trade id"),
        VENDOR_COL,
        INGESTED_AT_COL,
    ),
)

# --- cleaned -----------------------------------------------------------------------------------------------------

_BAR_COLUMNS: Final = (
    BAR_TS,
    INSTRUMENT_COL,
    _c("open", pl.Float64, "open price (null on a gap bar)", PRICE_UNIT),
    _c("high", pl.Float64, "high price (null on a gap bar)", PRICE_UNIT),
    _c("low", pl.Float64, "low price (null on a gap bar)", PRICE_UNIT),
    _c("close", pl.Float64, "close price (null on a gap bar)", PRICE_UNIT),
    _c("volume", pl.Float64, "traded volume", "base units"),
    _c("trade_count", pl.Int64, "trades in the bar (from trade files; null without them)", "count"),
    _c("buy_volume", pl.Float64, "buyer-initiated volume (from trade files)", "base units"),
    _c("sell_volume", pl.Float64, "seller-initiated volume (from trade files)", "base units"),
    _c("ret", pl.Float64, "close-to-close return from the previous bar", "log return"),
    _c("is_gap", pl.Boolean, "no vendor bar at this grid time: OHLCV are null"),
    _c("is_outlier", pl.Boolean, "move far beyond the recent median absolute return (kept, flagged)"),
    _c("ohlc_violation", pl.Boolean, "high/low inconsistent with open/close (kept, flagged)"),
    _c("funding_rate", pl.Float64, "latest funding rate at or before the bar (as-of join)", "fraction per 8h interval"),
    _c("open_interest", pl.Float64, "latest open interest at or before the bar (as-of join)", "base units"),
    _c("spot_close", pl.Float64, "close of the perp's spot leg at the same bar", PRICE_UNIT),
    _c("basis_bps", pl.Float64, "perp premium over spot: (close / spot_close - 1) x 1e4", "bps"),
    *_TOP_OF_BOOK,
)
BARS: Final = Table(
    "bars", "cleaned", "bars",
    "Regular bar grid at each instrument's base timeframe: de-duplicated, gaps as null rows, outliers flagged, "
    "funding and open interest joined as-of, perp basis.",
    INSTRUMENT_MONTH, _BAR_COLUMNS,
)  # fmt: skip
BARS_1H: Final = Table("bars_1h", "cleaned", "bars_1h", "bars resampled to 1h (a bar is a gap only if all its base "
                       "bars are).", INSTRUMENT_MONTH, _BAR_COLUMNS)  # fmt: skip
BARS_1D: Final = Table("bars_1d", "cleaned", "bars_1d", "bars resampled to 1d (a bar is a gap only if all its base "
                       "bars are).", INSTRUMENT_MONTH, _BAR_COLUMNS)  # fmt: skip

# --- quality -----------------------------------------------------------------------------------------------------

QUARANTINE: Final = Table(
    "quarantine",
    "quality",
    "raw_ohlcv, raw_funding, raw_open_interest, raw_trades",
    "Rows that failed row-level validation, kept with their reason instead of being dropped (written by the raw "
    "assets; empty when nothing was rejected).",
    (_c("asset", pl.String, "partition key: the asset that rejected the rows"), DIM_INSTRUMENT, DIM_MONTH),
    (
        _c("asset", pl.String, "the asset that rejected the row (raw_ohlcv, raw_funding, ...)"),
        INSTRUMENT_COL,
        _c("source", pl.String, "where the row came from: file path or vendor name"),
        _c("line", pl.Int64, "1-based line number in the source file; null when not line-based", "line number"),
        _c("reason", pl.String, "why the row was rejected"),
        _c("record", pl.String, "the offending record as text (JSON for typed rows)"),
        _c("quarantined_at", TS_DTYPE, "when the row was quarantined", UTC_TS),
    ),
)
CHECK_FAILURES: Final = Table(
    "check_failures", "quality", "any partitioned asset",
    "Partitions held back because they failed a blocking check (write-audit-publish): one row per failed check; "
    "removed when the partition passes again. Empty when every partition is published.",
    (_c("asset", pl.String, "partition key: the asset whose partition was held back"),
     _c("partition_dir", pl.String, "partition key: the partition as a path component (readable key + hash)")),
    (
        _c("asset", pl.String, "the asset whose partition was held back"),
        _c("partition", pl.String, "its Dagster partition key ('' for an unpartitioned asset)"),
        _c("check_name", pl.String, "the blocking check that failed"),
        _c("summary", pl.String, "what failed, in one line"),
        _c("failing_samples", pl.String, "a Markdown table of failing rows (may be empty)"),
        _c("published_version_kept", pl.Boolean, "an earlier good version is still published (else none is)"),
        _c("run_id", pl.String, "the Dagster run that tried to publish it"),
        _c("failed_at", TS_DTYPE, "when the check failed", UTC_TS),
    ),
)  # fmt: skip

LAKE_RETENTION: Final = Table(
    "lake_retention", "maintenance", "lake_retention",
    "What the latest retention run removed (spec/retention.yaml): orphan temp files of dead writers and vendor "
    "deliveries beyond the versions kept, one row each. Rewritten by every lake_retention run.", (),
    (
        _c("action", pl.String, "removed_temp_file or pruned_delivery"),
        _c("path", pl.String, "the file removed"),
        _c("bytes", pl.Int64, "its size", "bytes"),
        _c("reason", pl.String, "why (the rule of spec/retention.yaml, and whether the disk guard triggered)"),
        _c("at", TS_DTYPE, "when the run removed it", UTC_TS),
    ),
)  # fmt: skip

SPEC_ERRORS: Final = Table(
    "spec_errors", "quality", "backtests",
    "Strategy files in spec/strategies that failed to load (invalid JSON, an invalid spec, a rule that does not "
    "compile, over a limit), one row each: skipped, while every other strategy runs. Rewritten by every backtests "
    "run from the folder as it is then; empty when every file loads.", (),
    (
        _c("file", pl.String, "the strategy file"),
        _c("key", pl.String, "where in it: a dotted field (entry_rules.long.0), line/column, or <file> / <root>"),
        _c("problem", pl.String, "what is wrong (a rule error shows the rule with a caret under the position)"),
        _c("strategy", pl.String, "the strategy partition key the file stands under (json.<file stem>)"),
        _c("seen_at", TS_DTYPE, "when the backtests run that wrote the row loaded the folder", UTC_TS),
    ),
)  # fmt: skip

# --- features ----------------------------------------------------------------------------------------------------

# template / indicator -> (what it computes, unit); the spec's own description wins when it has one
_FEATURE_KINDS: Final[dict[str, tuple[str, str]]] = {
    "weekday": ("ISO weekday of the bar's UTC open, Monday=1 .. Sunday=7", "weekday number"),
    "hour": ("hour of the bar's UTC open", "hour 0..23"),
    "month_end": ("the bar opens on the last calendar day of its month", ""),
    "holiday": ("the bar's UTC date is a full-day exchange closure", ""),
    "identity": ("copy of {inputs}", ""),
    "scale": ("{inputs} x {factor}", ""),
    "zscore": ("z-score of {inputs} over the last {n} bars", "standard deviations"),
    "signed_run_length": ("signed number of bars {inputs} kept its sign (capped at {cap})", "bars"),
    "extreme_flag": ("{inputs} is extreme: |z| >= {z} or |level| >= {abs}", ""),
    "carry_state": (
        "carry regime from {inputs}: pos_extreme | pos | neutral (|rate| < {neutral_band}) | neg | neg_extreme",
        "label",
    ),
    "log_change": ("log change of {inputs} over {n} bars", "log ratio"),
    "ratio_to_rolling_sum": ("first / rolling {n}-bar sum of the second of ({inputs})", "ratio"),
    "liquidation_proxy": ("open interest flushed on a volume spike, signed +1 long / -1 short liquidations", "bps"),
    "body_ratio": ("candle body |close - open| relative to ATR", "multiples of ATR"),
    "range_ratio": ("bar range high - low relative to ATR", "multiples of ATR"),
    "upper_wick": ("upper wick as a share of the bar range", "fraction"),
    "lower_wick": ("lower wick as a share of the bar range", "fraction"),
    "amihud": (
        "Amihud illiquidity: mean |return| per million of quote volume over {n} bars",
        "log return per 1e6 quote currency",
    ),
    "roll_spread": ("Roll (1984) effective spread from return autocovariance over {n} bars", "bps"),
    "spread_bps": ("quoted spread (ask - bid) / mid", "bps"),
    "imbalance": ("imbalance (a - b) / (a + b) of {inputs} over {n} bars", "fraction in [-1, 1]"),
    "log_return": ("log close-to-close return over {n} bars; null if either end is a gap", "log return"),
    "realized_vol": (
        "realised volatility sqrt(n x mean(ret_1^2)) over the last {n} bars",
        "log return, not annualised",
    ),
    "parkinson_vol": ("Parkinson high-low range volatility over {n} bars", "log return, not annualised"),
    "pct_rank": ("percentile rank of {inputs} over the last {n} bars", "fraction [0, 1]"),
    "regime3": ("three-state regime of {inputs} (cut at {low} / {high})", "label"),
    "rolling_cv": ("coefficient of variation of {inputs} over {n} bars", "ratio"),
    "trend_state": ("trend label up | down | chop from {inputs} (ADX >= {adx_min} is a trend)", "label"),
    "SMA": ("simple moving average of {col} over {n} bars", PRICE_UNIT),
    "EMA": ("exponential moving average of {col}, span {n} bars", PRICE_UNIT),
    "RSI": ("Wilder's RSI of {col} over {n} bars", "index 0..100"),
    "MACD": ("MACD ({fast}/{slow}/{signal}) of {col}", PRICE_UNIT),
    "BBANDS": ("Bollinger bands ({n} bars, k={k}) of {col}", PRICE_UNIT),
    "ATR": ("Wilder's average true range over {n} bars", PRICE_UNIT),
    "STOCH": ("fast stochastic %K over {k} bars / its {d}-bar SMA %D", "index 0..100"),
    "ADX": ("Wilder's average directional index over {n} bars", "index 0..100"),
    "CCI": ("commodity channel index over {n} bars", "index"),
    "OBV": ("on-balance volume: signed volume summed over {n} bars", "base units"),
    "MFI": ("money flow index over {n} bars", "index 0..100"),
    "WILLR": ("Williams %R over {n} bars", "index -100..0"),
    "ROC": ("rate of change of {col} over {n} bars", "percent"),
    "DONCHIAN": ("Donchian channel over the last {n} bars", PRICE_UNIT),
    "KELTNER": ("Keltner channel EMA({n}) +- {k} x ATR({n})", PRICE_UNIT),
}
_OUTPUT_UNITS: Final = {"pctb": "fraction of the band (0 = lower, 1 = upper)", "width": "fraction of mid",
                        "hist": PRICE_UNIT}  # fmt: skip
_FEATURE_UNITS: Final = {"funding_level": "fraction per 8h interval", "funding_carry_ann": "fraction per year",
                         "basis_bps": "bps"}  # fmt: skip


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _feature_column(feature: Any, col: Any) -> Column:
    """One catalogue column documented from its spec entry (description, family, lookback, point in time)."""
    phrase, unit = _FEATURE_KINDS.get(feature.impl, (feature.impl, ""))
    params = _Params({k: v for k, v in feature.params.items()}, inputs=", ".join(feature.inputs))
    text = feature.description or phrase.format_map(params)
    output = col.output if col.output not in ("value", col.name) else ""
    if output and not feature.description:
        text += f" ({output})"
    unit = _FEATURE_UNITS.get(col.name) or _OUTPUT_UNITS.get(output) or unit
    if isinstance(col.dtype, pl.Boolean) or col.dtype == pl.Boolean:
        unit = ""
    known = "bar open" if feature.pit == "bar_open" else "bar close"
    args = ", ".join(f"{k}={v}" for k, v in feature.params.items() if k != "col")
    impl = f"{feature.impl}({args})" if args else feature.impl
    detail = f"{feature.family}, {feature.kind} {impl}, lookback {feature.lookback} bars, known at {known}"
    return Column(col.name, col.dtype, f"{text} ({detail})", unit)


@cache
def _feature_columns_cached(spec_hash: str) -> tuple[Column, ...]:
    from lake_assets.features.catalog import load_feature_specs

    catalog = load_feature_specs()
    return tuple(_feature_column(f, c) for f in catalog.features for c in f.columns)


def feature_columns() -> tuple[Column, ...]:
    """The catalogue's columns (spec/features), in the order features are written."""
    from lake_assets.features.catalog import load_feature_specs

    return _feature_columns_cached(load_feature_specs().spec_hash)


FEATURES: Final = Table(
    "features", "features", "features",
    "Per-instrument features from the spec/features catalogue: returns and volatility, carry and positioning, "
    "microstructure, basis, TA indicators, calendar. One row per bar; warm-up rows before the month are not written.",
    INSTRUMENT_MONTH,
    (BAR_TS, INSTRUMENT_COL, _c("is_gap", pl.Boolean, "the bar is a gap in bars (features are null)")),
    dynamic=feature_columns,
)  # fmt: skip
WINDOW_EMBEDDINGS: Final = Table(
    "window_embeddings", "features", "window_embeddings",
    "Normalised return windows per bar for similarity search and models.", INSTRUMENT_MONTH,
    (
        BAR_TS,
        INSTRUMENT_COL,
        _c("emb_32", pl.Array(pl.Float64, 32), "1-bar log returns of the last 32 bars (oldest first) divided by "
           "their RMS; null on gap bars and while fewer than half the window exists", "unitless (RMS-normalised)"),
        _c("emb_64", pl.Array(pl.Float64, 64), "as emb_32 over the last 64 bars", "unitless (RMS-normalised)"),
    ),
)  # fmt: skip
CONTEXT_FEATURES: Final = Table(
    "context_features", "features", "context_features",
    "Cross-instrument context per instrument and bar: correlation and beta to the instrument's benchmark, peer "
    "dispersion, correlation breakdown.", (DIM_MONTH,),
    (
        BAR_TS,
        INSTRUMENT_COL,
        _c("corr_bench", pl.Float64, "rolling correlation of 1-bar log returns with the benchmark (short window, "
           "spec/features context.corr_window)", "correlation [-1, 1]"),
        _c("beta_bench", pl.Float64, "rolling beta of the returns to the benchmark (short window)", "beta"),
        _c("corr_bench_long", pl.Float64, "rolling correlation with the benchmark over the long window",
           "correlation [-1, 1]"),
        _c("dispersion", pl.Float64, "cross-sectional std of dispersion_horizon-bar log returns across the peer group",
           "log return"),
        _c("corr_breakdown", pl.Boolean, "the short correlation fell by breakdown_drop below a usually high long one"),
    ),
)  # fmt: skip
MARKET_CONTEXT: Final = Table(
    "market_context", "features", "market_context",
    "Market calendar on the 5m grid: trading session, session open/close, funding times, calendar flags, macro "
    "release windows (spec/calendar.yaml).", (DIM_MONTH,),
    (
        BAR_TS,
        _c("session", pl.String, "trading session of the bar: asia | europe | us"),
        _c("session_open", pl.Boolean, "first bar of a session"),
        _c("session_close", pl.Boolean, "last bar of a session"),
        _c("is_funding_ts", pl.Boolean, "a perpetual funding time falls in the bar"),
        _c("macro_window", pl.String, "name of the macro release window the bar is in (null outside)"),
        _c("weekday", pl.Int8, "ISO weekday of the bar's UTC open, Monday=1 .. Sunday=7", "weekday number"),
        _c("hour", pl.Int8, "hour of the bar's UTC open", "hour 0..23"),
        _c("is_month_end", pl.Boolean, "the bar opens on the last calendar day of its month"),
        _c("is_holiday", pl.Boolean, "the bar's date is a full-day exchange holiday"),
    ),
)  # fmt: skip

# --- events ------------------------------------------------------------------------------------------------------

STATE_COLUMNS: Final = ("vol_regime", "carry_state", "session", "trend_state")
_STATE_DOCS: Final = {
    "vol_regime": "volatility regime at the event bar (low | mid | high, from features.vol_rank)",
    "carry_state": "carry regime at the event bar (from features.carry_state)",
    "session": "trading session at the event bar (from market_context.session)",
    "trend_state": "trend regime at the event bar (up | down | chop, from features.trend_state)",
}
EVENT_REGISTRY: Final = Table(
    "event_registry", "events", "event_registry",
    "One row per detected event (spec/events): type, family, direction, severity and the state snapshot at the "
    "detection bar. An event at ts is known at that bar's close.", (DIM_EVENT_TYPE,),
    (
        _c("event_id", pl.String, "stable event id (hash of type, instrument and ts)"),
        _c("event_type", pl.String, "event type (spec/events file name)"),
        _c("family", pl.String, "event family (one of the ten canonical families)"),
        INSTRUMENT_COL,
        _c("ts", TS_DTYPE, "open time of the detection bar (the event is known at its close)", UTC_TS),
        _c("direction", pl.String, "expected direction: long | short | both | neutral"),
        _c("severity", pl.Float64, "how strongly the condition fired (detector-specific scale)", "detector units"),
        *(_c(s, pl.String, _STATE_DOCS[s]) for s in STATE_COLUMNS),
    ),
    aliases=("events",),
)  # fmt: skip
EVENT_APPLICABILITY: Final = Table(
    "event_applicability", "events", "event_registry",
    "Whether each event type can fire on each instrument (the columns it needs exist), and the bars it was run on.",
    (DIM_EVENT_TYPE,),
    (
        INSTRUMENT_COL,
        _c("event_type", pl.String, "event type"),
        _c("applicable", pl.Boolean, "the instrument has every column the event type needs"),
        _c("reason", pl.String, "why not applicable; null when applicable"),
        _c("n_bars", pl.Int64, "non-gap bars of the instrument: the denominator of prevalence", "bars"),
    ),
)  # fmt: skip


def event_flag_columns() -> tuple[Column, ...]:
    from lake_assets.events.spec_model import event_specs

    catalog = event_specs()
    out = []
    for s in (catalog.get(n) for n in catalog.names):
        about = f"{s.family}: {s.description}" if s.description else s.family
        out.append(Column(s.name, pl.Boolean, f"{s.name} fired at this bar ({about})"))
    return tuple(out)


EVENT_FLAGS: Final = Table(
    "event_flags",
    "events",
    "event_flags",
    "Wide boolean table on the bar grid: one column per event type, true where it fired.",
    (DIM_INSTRUMENT,),
    (BAR_TS, INSTRUMENT_COL),
    dynamic=event_flag_columns,
)

# --- discovery ---------------------------------------------------------------------------------------------------

_BPS_PER_TRADE: Final = "bps per trade"
_HYPOTHESIS_COLUMNS: Final = (
    _c("family", pl.String, "event family"),
    _c("event_type", pl.String, "event type"),
    INSTRUMENT_COL,
    _c("timeframe", pl.String, "bar timeframe of the instrument (5m, 1d, ...)"),
    _c("instrument_class", pl.String, "crypto | equity (selects the cost model)"),
    _c("horizon", pl.Int64, "holding period after entry", "bars"),
    _c("template", pl.String, "rule template (continuation, reversal, ...)"),
    _c("verb", pl.String, "continuation | reversal: whether the trade follows or fades the event"),
    _c("state_col", pl.String, "state column conditioned on ('all' = unconditional)"),
    _c("state_value", pl.String, "value of state_col conditioned on ('all' = unconditional)"),
    _c("n", pl.Int64, "non-overlapping trades in the discovery window", "count"),
    _c("mean_bps", pl.Float64, "mean forward return in the template's direction, before costs", _BPS_PER_TRADE),
    _c("median_bps", pl.Float64, "median forward return", _BPS_PER_TRADE),
    _c("std_bps", pl.Float64, "standard deviation of the forward returns", _BPS_PER_TRADE),
    _c("hit_rate", pl.Float64, "share of trades with a positive return", "fraction"),
    _c("skew", pl.Float64, "skewness of the returns (biased estimator)", "unitless"),
    _c("kurtosis", pl.Float64, "Pearson kurtosis of the returns (normal = 3)", "unitless"),
    _c("first_half_mean_bps", pl.Float64, "mean return of the first half of the trades in time", _BPS_PER_TRADE),
    _c("second_half_mean_bps", pl.Float64, "mean return of the second half of the trades", _BPS_PER_TRADE),
    _c("first_entry_ts", TS_DTYPE, "first trade entry", UTC_TS),
    _c("last_entry_ts", TS_DTYPE, "last trade entry", UTC_TS),
    _c("round_trip_cost_bps", pl.Float64, "round-trip cost of the instrument class (spec/gates.yaml)",
       _BPS_PER_TRADE),
    _c("se_bps", pl.Float64, "standard error of mean_bps: Newey-West over the trades in time order (hac_lags), "
       "divided by its fixed-b mean", _BPS_PER_TRADE),
    _c("t_stat", pl.Float64, "mean_bps / se_bps (null when se is 0)", "t statistic"),
    _c("se_iid_bps", pl.Float64, "iid standard error std_bps / sqrt(n), for comparison", _BPS_PER_TRADE),
    _c("hac_lags", pl.Int64, "Newey-West bandwidth ceil(1.3 sqrt(n)) (0: iid standard error)", "trades"),
    _c("t_df", pl.Float64, "equivalent degrees of freedom of se_bps, 3n / (2 hac_lags) (n - 1 if iid); p-values "
       "use the exact fixed-b null instead", "count"),
    _c("baseline_n", pl.Int64, "valid random entries (same instrument, time of day, direction, horizon)", "count"),
    _c("baseline_mean_bps", pl.Float64, "mean return of the random entries in the template's direction",
       _BPS_PER_TRADE),
    _c("excess_vs_baseline_bps", pl.Float64, "mean_bps minus baseline_mean_bps", _BPS_PER_TRADE),
    _c("after_cost_bps", pl.Float64, "mean_bps minus the round-trip cost", _BPS_PER_TRADE),
    _c("after_cost_conservative_bps", pl.Float64, "mean_bps minus the conservative multiple of the cost",
       _BPS_PER_TRADE),
    _c("sign_first_half", pl.Int8, "sign of first_half_mean_bps", "-1 | 0 | 1"),
    _c("sign_second_half", pl.Int8, "sign of second_half_mean_bps", "-1 | 0 | 1"),
    _c("hypothesis_id", pl.String, "event_type|instrument|h<horizon>|template|state_col=state_value"),
    SPEC_HASH_COL,
)  # fmt: skip
_CANDIDATE_COLUMNS: Final = (
    _c("global_effect_bps", pl.Float64, "shrinkage: pooled effect of the cell (timeframe x horizon x template)",
       _BPS_PER_TRADE),
    _c("family_raw_bps", pl.Float64, "shrinkage: the family's raw pooled effect", _BPS_PER_TRADE),
    _c("family_shrunk_bps", pl.Float64, "shrinkage: the family's effect shrunk towards the cell", _BPS_PER_TRADE),
    _c("family_weight", pl.Float64, "shrinkage: weight of the family's own data tau^2 / (tau^2 + se^2)",
       "fraction [0, 1]"),
    _c("event_raw_bps", pl.Float64, "shrinkage: the event type's raw pooled effect", _BPS_PER_TRADE),
    _c("event_shrunk_bps", pl.Float64, "shrinkage: the event's effect shrunk towards its family", _BPS_PER_TRADE),
    _c("event_weight", pl.Float64, "shrinkage: weight of the event's own data", "fraction [0, 1]"),
    _c("raw_effect_bps", pl.Float64, "the hypothesis' raw effect (mean_bps)", _BPS_PER_TRADE),
    _c("shrunk_effect_bps", pl.Float64, "the hypothesis' effect shrunk towards its event", _BPS_PER_TRADE),
    _c("state_weight", pl.Float64, "shrinkage: weight of the state's own data", "fraction [0, 1]"),
    _c("t_shrunk", pl.Float64, "shrunk effect / raw standard error", "t statistic"),
    _c("p_value", pl.Float64, "one-sided p-value of t_shrunk (null: untested, n below the minimum)", "probability"),
    _c("q_value", pl.Float64, "FDR-adjusted p-value: the smallest level at which the spec's FDR procedure "
       "(bb: two-stage across groups) rejects the row", "probability"),
    _c("group_pvalue", pl.Float64, "Simes p-value of the row's FDR group (bb only)", "probability"),
    _c("group_q_value", pl.Float64, "BH-adjusted group p-value across the FDR groups (bb only)", "probability"),
    _c("fdr_groups_tested", pl.Int64, "FDR groups with at least one tested row (bb only)", "count"),
    _c("fdr_method", pl.String, "FDR procedure: bb (Benjamini-Bogomolov two-stage) | bh | by (per group)"),
    _c("max_q_value", pl.Float64, "gate threshold: largest q-value allowed (spec/gates.yaml)", "probability"),
    _c("min_after_cost_bps", pl.Float64, "gate threshold: smallest shrunk after-cost effect", _BPS_PER_TRADE),
    _c("min_state_weight", pl.Float64, "gate threshold: smallest state weight for a conditional row",
       "fraction [0, 1]"),
    _c("require_stable_sign", pl.Boolean, "gate setting: both halves must agree in sign"),
    _c("max_spa_pvalue", pl.Float64, "gate threshold: largest SPA p-value allowed", "probability"),
    _c("require_stepm", pl.Boolean, "gate setting: StepM must find the row superior"),
    _c("shrunk_after_cost_bps", pl.Float64, "shrunk effect minus the round-trip cost", _BPS_PER_TRADE),
    _c("shrunk_after_cost_conservative_bps", pl.Float64, "shrunk effect minus the conservative cost",
       _BPS_PER_TRADE),
    _c("gate_sample", pl.Boolean, "gate passed: enough trades and testable"),
    _c("gate_fdr", pl.Boolean, "gate passed: q_value <= max_q_value"),
    _c("gate_economic", pl.Boolean, "gate passed: shrunk after-cost effect >= min_after_cost_bps"),
    _c("gate_conservative", pl.Boolean, "gate passed: positive after the conservative cost"),
    _c("gate_stability", pl.Boolean, "gate passed: stable sign across halves (when required)"),
    _c("gate_state_information", pl.Boolean, "gate passed: the state condition carries information"),
    _c("gate_spa", pl.Boolean, "gate passed: SPA p-value of the set that passed the gates above <= max_spa_pvalue"),
    _c("gate_stepm", pl.Boolean, "gate passed: StepM superior (when required)"),
    _c("snooping_evaluated", pl.Boolean, "SPA / StepM were run (false: no trade samples given; gates not applied)"),
    _c("failed_gates", pl.String, "comma-separated names of the gates that failed"),
    _c("fail_reasons", pl.String, "why each failed gate failed"),
    _c("promotion_track", pl.String, "standard (all gates) | fallback_only | null"),
    _c("promoted", pl.Boolean, "passed every gate: becomes a blueprint if the bridge passes"),
    _c("sharpe_per_trade", pl.Float64, "after-cost Sharpe per trade (after_cost mean / std), NOT annualised",
       "Sharpe per trade"),
    _c("dsr", pl.Float64, "deflated Sharpe ratio of sharpe_per_trade against all tested hypotheses",
       "probability"),
    _c("dsr_n_trials", pl.Int32, "trials the DSR deflates for: every hypothesis tested in the discovery run",
       "count"),
    _c("dsr_trial_sr_variance", pl.Float64, "robust variance of the trials' per-trade Sharpe", "Sharpe^2 per trade"),
    _c("spa_pvalue", pl.Float64, "Hansen SPA p-value (consistent) of the promoted set", "probability"),
    _c("spa_pvalue_lower", pl.Float64, "Hansen SPA p-value, lower bound", "probability"),
    _c("spa_pvalue_upper", pl.Float64, "Hansen SPA p-value, upper bound", "probability"),
    _c("stepm_superior", pl.Boolean, "Romano-Wolf StepM finds the model superior to zero"),
    _c("snooping_n_models", pl.Int64, "models in the SPA / StepM test", "count"),
)  # fmt: skip
_BRIDGE_COLUMNS: Final = (
    _c("holdout_n", pl.Int64, "trades in the holdout window", "count"),
    _c("holdout_mean_bps", pl.Float64, "mean holdout return before costs", _BPS_PER_TRADE),
    _c("holdout_std_bps", pl.Float64, "std of the holdout returns", _BPS_PER_TRADE),
    _c("holdout_hit_rate", pl.Float64, "share of positive holdout trades", "fraction"),
    _c("holdout_first_ts", TS_DTYPE, "first holdout entry", UTC_TS),
    _c("holdout_last_ts", TS_DTYPE, "last holdout entry", UTC_TS),
    _c("holdout_after_cost_bps", pl.Float64, "holdout mean after 1x the round-trip cost", _BPS_PER_TRADE),
    _c("cost_stress_multipliers", pl.List(pl.Float64), "cost multiples of the stress curve", "multiple of cost"),
    _c("cost_stress_curve_bps", pl.List(pl.Float64), "holdout after-cost mean at each stress multiple",
       _BPS_PER_TRADE),
    _c("holdout_sign_agrees", pl.Boolean, "holdout mean has the sign of the shrunk discovery effect"),
    _c("bridge_pass", pl.Boolean, "every bridge check passed: the candidate becomes a blueprint"),
    _c("bridge_status", pl.String, "pass | fail | insufficient_holdout"),
    _c("bridge_fail_reasons", pl.String, "why each failed bridge check failed"),
)  # fmt: skip
_STRESS_PATTERN: Final = (
    r"holdout_after_cost_bps_x(\d+(?:_\d+)?)", "holdout mean after {0} x the round-trip cost (_ = decimal point)",
    _BPS_PER_TRADE,
)  # fmt: skip

PHASE2_HYPOTHESES: Final = Table(
    "phase2_hypotheses", "discovery", "phase2_hypotheses",
    "Forward-return statistics after each event, per instrument x horizon x rule template x state, on the "
    "discovery window (returns in bps per trade, in the template's direction).", (DIM_EVENT_TYPE,),
    _HYPOTHESIS_COLUMNS, aliases=("hypotheses",),
)  # fmt: skip
PHASE2_CANDIDATES: Final = Table(
    "phase2_candidates", "discovery", "phase2_candidates",
    "Hypotheses after hierarchical shrinkage, one-sided p-values, grouped FDR, gates, DSR and SPA/StepM; "
    "promoted rows go to the bridge.", (), _HYPOTHESIS_COLUMNS + _CANDIDATE_COLUMNS, aliases=("candidates",),
)  # fmt: skip
BRIDGE_EVALUATION: Final = Table(
    "bridge_evaluation", "discovery", "bridge_evaluation",
    "Promoted candidates re-measured on the holdout window with cost stress; bridge_pass rows become blueprints.", (),
    _HYPOTHESIS_COLUMNS + _CANDIDATE_COLUMNS + _BRIDGE_COLUMNS, patterns=(_STRESS_PATTERN,),
)  # fmt: skip
STRATEGY_BLUEPRINTS: Final = Table(
    "strategy_blueprints", "discovery", "strategy_blueprints",
    "Executable strategy blueprints from the candidates that passed the bridge (nested parts as JSON text; the "
    "source of truth is blueprints.jsonl).", (),
    (
        _c("blueprint_id", pl.String, "bp_<hash of the definition>: the strategy partition key"),
        _c("name", pl.String, "readable name"),
        _c("event_type", pl.String, "event type it trades"),
        _c("family", pl.String, "event family"),
        INSTRUMENT_COL,
        _c("timeframe", pl.String, "bar timeframe"),
        _c("template", pl.String, "rule template"),
        _c("direction", pl.String, "with_event | against_event"),
        SPEC_HASH_COL,
        _c("state", pl.String, "state condition {column, value} as JSON (null: unconditional)"),
        _c("entry", pl.String, "entry rule as JSON (lag_bars after detection, price)"),
        _c("exits", pl.String, "exit rules as JSON (time stop in bars, stop loss / take profit in ATR multiples)"),
        _c("sizing", pl.String, "sizing as JSON (method, target annual vol as a fraction, max leverage, risk)"),
        _c("costs", pl.String, "cost assumptions as JSON (fee, spread, slippage and round trip in bps)"),
        _c("evidence", pl.String, "discovery and holdout statistics as JSON (bps per trade, q-value, ...)"),
    ),
    aliases=("blueprints",),
)  # fmt: skip

# --- backtests ---------------------------------------------------------------------------------------------------

_BT_DIMS: Final = (DIM_STRATEGY,)
ORDERS: Final = Table(
    "orders", "backtests", "backtests", "Every order the backtest engine saw, with its outcome.", _BT_DIMS,
    (
        _c("order_id", pl.Int64, "order id within the strategy's run"),
        _c("ts", TS_DTYPE, "submission bar (the signal is known at its close)", UTC_TS),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("side", pl.String, "BUY | SELL"),
        _c("action", pl.String, "ENTRY | EXIT | MODIFY | CANCEL"),
        _c("order_type", pl.String, "MARKET | LIMIT | STOP | STOP_LIMIT"),
        _c("size_type", pl.String, "unit of size: SHARES | CONTRACTS | NOTIONAL | RISK_PERCENT | EQUITY_PERCENT"),
        _c("size", pl.Float64, "size as submitted", "size_type units"),
        _c("limit_price", pl.Float64, "limit price", PRICE_UNIT),
        _c("stop_price", pl.Float64, "stop trigger price", PRICE_UNIT),
        _c("requested_units", pl.Float64, "units requested, resolved at the first fill attempt", "base units"),
        _c("filled_units", pl.Float64, "units filled", "base units"),
        _c("avg_fill_price", pl.Float64, "average fill price", PRICE_UNIT),
        _c("status", pl.String, "NEW | FILLED | PARTIALLY_FILLED | REJECTED | CANCELLED | EXPIRED"),
        _c("reason", pl.String, "why rejected / resized / cancelled / expired; null when filled as asked"),
        _c("last_update_ts", TS_DTYPE, "bar of the order's last state change", UTC_TS),
        BOOK_COL,
    ),
)  # fmt: skip
FILLS: Final = Table(
    "fills",
    "backtests",
    "backtests",
    "Every fill, with fees and slippage.",
    _BT_DIMS,
    (
        _c("fill_id", pl.Int64, "fill id within the strategy's run"),
        _c("order_id", pl.Int64, "the order filled"),
        _c("ts", TS_DTYPE, "bar of the fill", UTC_TS),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("side", pl.String, "BUY | SELL"),
        _c("price", pl.Float64, "fill price including spread and slippage", PRICE_UNIT),
        _c("size", pl.Float64, "units filled (positive)", "base units"),
        _c("fee", pl.Float64, "fee paid", CASH_UNIT),
        _c("slippage_cost", pl.Float64, "(fill price - reference price) x units, a cost is positive", CASH_UNIT),
        _c("expected_slippage_cost", pl.Float64, "slippage the cost model expected", CASH_UNIT),
        _c("liquidity", pl.String, "TAKER | MAKER"),
        BOOK_COL,
    ),
)
TRADES: Final = Table(
    "trades",
    "backtests",
    "backtests",
    "Round-trip trades (entry to exit) with gross and net PnL.",
    _BT_DIMS,
    (
        _c("trade_id", pl.Int64, "trade id within the strategy's run"),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("direction", pl.String, "LONG | SHORT"),
        _c("entry_ts", TS_DTYPE, "entry bar", UTC_TS),
        _c("exit_ts", TS_DTYPE, "exit bar (null while open)", UTC_TS),
        _c("entry_bar", pl.Int64, "row of the entry bar in the run's bar clock", "bar index"),
        _c("exit_bar", pl.Int64, "row of the exit bar", "bar index"),
        _c("entry_price", pl.Float64, "average entry price", PRICE_UNIT),
        _c("exit_price", pl.Float64, "average exit price (last close for an open trade)", PRICE_UNIT),
        _c("size", pl.Float64, "units held", "base units"),
        _c("gross_pnl", pl.Float64, "PnL before fees and funding", CASH_UNIT),
        _c("fees", pl.Float64, "fees of the trade's fills", CASH_UNIT),
        _c("funding", pl.Float64, "funding paid while open (negative: received)", CASH_UNIT),
        _c("pnl", pl.Float64, "gross_pnl - fees - funding", CASH_UNIT),
        _c("return", pl.Float64, "pnl / entry notional", "fraction"),
        _c("status", pl.String, "CLOSED | OPEN (marked at the last valid close)"),
        BOOK_COL,
    ),
)
RISK_EVENTS: Final = Table(
    "risk_events", "backtests", "backtests", "Orders the risk allocator rejected or resized, and kill switches.",
    _BT_DIMS,
    (
        _c("ts", TS_DTYPE, "bar of the event", UTC_TS),
        _c("order_id", pl.Int64, "the order concerned; null for portfolio-level events (kill switches)"),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("event", pl.String, "REJECTED | RESIZED | KILL_SWITCH | DAILY_LOSS_CAP | ..."),
        _c("reason", pl.String, "the rule that fired"),
        _c("requested_units", pl.Float64, "units the order asked for", "base units"),
        _c("allowed_units", pl.Float64, "units the risk rules allowed", "base units"),
        BOOK_COL,
    ),
)  # fmt: skip
EQUITY: Final = Table(
    "equity",
    "backtests",
    "backtests",
    "Equity curve per strategy and book, one row per bar.",
    _BT_DIMS,
    (
        _c("ts", TS_DTYPE, "bar", UTC_TS),
        _c("cash", pl.Float64, "cash after the bar's fills and funding", CASH_UNIT),
        _c("positions_value", pl.Float64, "marked value of the open positions", CASH_UNIT),
        _c("equity", pl.Float64, "cash + positions_value (initial 100,000)", CASH_UNIT),
        _c("gross_exposure", pl.Float64, "sum of |position value|", CASH_UNIT),
        _c("fees_cum", pl.Float64, "fees paid so far", CASH_UNIT),
        _c("funding_cum", pl.Float64, "funding paid so far", CASH_UNIT),
        _c("drawdown", pl.Float64, "equity / running peak - 1 (<= 0)", "fraction"),
        STRATEGY_COL,
        BOOK_COL,
    ),
    aliases=("equity_curves",),
)
METRICS: Final = Table(
    "metrics", "backtests", "backtests",
    "One row per strategy and book: realistic backtest performance (spec/costs.yaml, risk caps, funding) and the "
    "accounting-identity check. The backtests asset's summary table.", _BT_DIMS,
    (
        STRATEGY_COL,
        _c("kind", pl.String, "json | blueprint | model"),
        BOOK_COL,
        _c("timeframe", pl.String, "bar timeframe of the book (sets the annualisation)"),
        _c("instruments", pl.String, "comma-separated instruments of the book"),
        _c("execution", pl.String, "signals | orders: how the strategy reached the engine"),
        _c("start", TS_DTYPE, "first bar", UTC_TS),
        _c("end", TS_DTYPE, "last bar", UTC_TS),
        _c("n_bars", pl.Int64, "bars in the equity curve", "bars"),
        _c("init_cash", pl.Float64, "initial cash", CASH_UNIT),
        _c("total_return", pl.Float64, "final equity / initial - 1", "fraction"),
        _c("cagr", pl.Float64, "compound annual growth rate", "fraction per year"),
        _c("sharpe", pl.Float64, "Sharpe ratio of the bar returns of equity", SHARPE_UNIT),
        _c("sortino", pl.Float64, "Sortino ratio of the bar returns (downside deviation), annualised as sharpe",
           "annualised Sortino"),
        _c("max_drawdown", pl.Float64, "largest fall from a running peak (positive)", "fraction"),
        _c("calmar", pl.Float64, "cagr / max_drawdown", "ratio"),
        _c("n_trades", pl.Float64, "closed trades", "count"),
        _c("win_rate", pl.Float64, "share of closed trades with pnl > 0", "fraction"),
        _c("profit_factor", pl.Float64, "gross wins / gross losses of closed trades", "ratio"),
        _c("avg_trade", pl.Float64, "mean pnl of closed trades", CASH_UNIT),
        _c("exposure", pl.Float64, "share of bars with a position", "fraction"),
        _c("turnover", pl.Float64, "traded notional / mean equity per year", "multiple per year"),
        _c("fees_paid", pl.Float64, "total fees", CASH_UNIT),
        _c("funding_paid", pl.Float64, "total funding paid (negative: received)", CASH_UNIT),
        _c("final_equity", pl.Float64, "equity at the last bar", CASH_UNIT),
        _c("n_orders", pl.Int64, "orders", "count"),
        _c("n_fills", pl.Int64, "fills", "count"),
        _c("n_orders_rejected", pl.Int64, "orders rejected", "count"),
        _c("n_risk_events", pl.Int64, "risk events", "count"),
        _c("identity_ok", pl.Boolean, "accounting identities hold (final equity and cash + positions, tolerance "
           "1e-9 of initial cash)"),
        _c("final_identity_abs_error", pl.Float64, "|initial + sum gross pnl - fees - funding - final equity|",
           CASH_UNIT),
        _c("max_abs_error_cash_plus_positions", pl.Float64, "max over bars of |cash + positions - equity| rebuilt "
           "from the fills", CASH_UNIT),
        _c("n_events", pl.Int64, "blueprints: events of the blueprint's type (null for JSON strategies)", "count"),
        _c("n_event_entries", pl.Int64, "blueprints: events that led to an entry", "count"),
        _c("event_type", pl.String, "blueprints: the event type traded"),
        SPEC_HASH_COL.renamed("spec_hash", "content hash of the strategy definition the row was computed from"),
    ),
    aliases=("backtest_metrics", "backtests"),
)  # fmt: skip
METRICS_BY_REGIME: Final = Table(
    "metrics_by_regime", "backtests", "backtests",
    "One row per strategy, book and regime (spec/regimes.yaml: trend/chop x low/mid/high volatility of the book's "
    "lead instrument): the equity's bar returns and the trades entered in that regime.", _BT_DIMS,
    (
        STRATEGY_COL,
        BOOK_COL,
        _c("lead_instrument", pl.String, "the instrument whose regime labels the book's bars (its first)"),
        _c("regime", pl.String, "<trend|chop>_<low|mid|high>, or unknown (inputs not yet known)"),
        _c("bars", pl.UInt32, "bars in the regime", "bars"),
        _c("mean_return", pl.Float64, "mean bar return of equity in the regime", "fraction per bar"),
        _c("sharpe", pl.Float64, "Sharpe ratio of the regime's bar returns", SHARPE_UNIT),
        _c("total_return", pl.Float64, "compounded return over the regime's bars", "fraction"),
        _c("n_trades", pl.UInt32, "trades entered in the regime", "count"),
        _c("trade_pnl", pl.Float64, "PnL of the trades entered in the regime", CASH_UNIT),
    ),
)  # fmt: skip
SIGNAL_REASONS: Final = Table(
    "signal_reasons", "backtests", "backtests",
    "Why each signal of a strategy that declares `reasons` fired: one row per signal bar, side, action and condition "
    "(a top-level `and` term of the side's rules) with its value and threshold at that bar.", _BT_DIMS,
    (
        _c("ts", TS_DTYPE, "signal bar (known at its close)", UTC_TS),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("side", pl.String, "long | short"),
        _c("action", pl.String, "entry | exit"),
        _c("rule", pl.String, "the rule: entry_rules|exit_rules.<side>.<index> in the strategy file"),
        _c("condition", pl.String, "the condition's text in the rule"),
        _c("fired", pl.Boolean, "the condition held at the bar"),
        _c("value", pl.Float64, "the comparison's left side at the bar (null for a non-comparison)", "column units"),
        _c("op", pl.String, "comparison operator (>, <, crosses above, ...); null for a non-comparison"),
        _c("threshold", pl.Float64, "the comparison's right side at the bar (parameter, constant or column)",
           "column units"),
        BOOK_COL,
    ),
)  # fmt: skip
_OOS: Final = "out-of-sample (test windows stitched)"
WALKFORWARD: Final = Table(
    "walkforward", "backtests", "walkforward",
    "Rolling walk-forward per strategy and book: out-of-sample metrics over the stitched test windows, PBO (CSCV), "
    "PSR/DSR and PSI drift.", _BT_DIMS,
    (
        STRATEGY_COL,
        _c("kind", pl.String, "json | blueprint | model"),
        BOOK_COL,
        _c("applicable", pl.Boolean, "walk-forward could run (else see reason)"),
        _c("reason", pl.String, "why not applicable, or how it was evaluated"),
        _c("mode", pl.String, "rolling | expanding (re-optimised per fold) | rolling-fixed-rule (blueprints)"),
        _c("n_bars", pl.Int64, "bars available", "bars"),
        _c("train_bars", pl.Int64, "train window", "bars"),
        _c("test_bars", pl.Int64, "test window", "bars"),
        _c("n_folds", pl.Int64, "folds", "count"),
        _c("oos_sharpe", pl.Float64, f"Sharpe ratio {_OOS}, annualised like metrics.sharpe", SHARPE_UNIT),
        _c("oos_total_return", pl.Float64, f"compounded return {_OOS}", "fraction"),
        _c("oos_max_drawdown", pl.Float64, f"max drawdown {_OOS}", "fraction"),
        _c("oos_hit_rate", pl.Float64, "share of non-zero test bars with a positive return", "fraction"),
        _c("oos_exposure", pl.Float64, "share of test bars with a non-zero return", "fraction"),
        _c("pbo", pl.Float64, "probability of backtest overfitting (CSCV); null for fixed rules", "probability"),
        _c("psr", pl.Float64, "probabilistic Sharpe ratio P(true Sharpe > 0), from the per-bar Sharpe",
           "probability"),
        _c("dsr", pl.Float64, "deflated Sharpe ratio for dsr_n_trials trials, from the per-bar Sharpe", "probability"),
        _c("dsr_n_trials", pl.Float64, "trials the DSR deflates for", "count"),
        _c("max_psi", pl.Float64, "worst population stability index of features between train and test", "PSI"),
        SPEC_HASH_COL.renamed("spec_hash", "content hash of the strategy definition"),
    ),
)  # fmt: skip
WALKFORWARD_FOLDS: Final = Table(
    "walkforward_folds", "backtests", "walkforward", "One row per walk-forward fold: windows, chosen parameters, "
    "in-sample score and out-of-sample metrics.", _BT_DIMS,
    (
        STRATEGY_COL,
        BOOK_COL,
        _c("fold", pl.Int64, "fold number from 0"),
        _c("train_start", TS_DTYPE, "train window start", UTC_TS),
        _c("train_end", TS_DTYPE, "train window end (exclusive)", UTC_TS),
        _c("test_start", TS_DTYPE, "test window start", UTC_TS),
        _c("test_end", TS_DTYPE, "test window end (exclusive; null: end of data)", UTC_TS),
        _c("params", pl.String, "chosen parameters as JSON (blueprints: the fixed definition)"),
        _c("method", pl.String, "how the parameters were chosen: grid | optuna (TPE) | fixed (blueprints)"),
        _c("n_trials", pl.Int64, "parameter sets tried in-sample", "count"),
        _c("is_score", pl.Float64, "in-sample objective of the chosen parameters: their Sharpe on the train window",
           SHARPE_UNIT),
        _c("oos_sharpe", pl.Float64, "Sharpe ratio on the test window", SHARPE_UNIT),
        _c("oos_total_return", pl.Float64, "compounded return on the test window", "fraction"),
        _c("oos_max_drawdown", pl.Float64, "max drawdown on the test window", "fraction"),
        _c("oos_hit_rate", pl.Float64, "share of non-zero test bars with a positive return", "fraction"),
        _c("oos_exposure", pl.Float64, "share of test bars with a non-zero return", "fraction"),
        _c("oos_n_bars", pl.Float64, "test bars with a finite return", "bars"),
        _c("max_psi", pl.Float64, "worst population stability index of features, train vs test", "PSI"),
        _c("in_discovery_window", pl.Boolean, "the test window overlaps the sample discovery used (blueprints)"),
    ),
)  # fmt: skip

# --- workbench --------------------------------------------------------------------------------------------------

RUN_HISTORY: Final = Table(
    "run_history", "workbench", "workbench_run",
    "One row per research workbench run (`qlake run`, the workbench_run job): its config, inputs and key metrics; "
    "the run's files are in <data root>/runs/<run_id>/ (lake_assets/workbench/run.py).",
    (_c("run", pl.String, "the run id: <name>-<hash of config and inputs>"),),
    (
        _c("run_id", pl.String, "the run id: <name>-<hash of config and inputs>"),
        _c("name", pl.String, "the RunConfig's name"),
        _c("mode", pl.String, "equities | options"),
        INSTRUMENT_COL.renamed("instruments", "instrument ids, comma-separated"),
        _c("start", pl.Date, "first day of the run's window"),
        _c("end", pl.Date, "last day of the run's window"),
        _c("timeframe", pl.String, "bar timeframe of the run"),
        _c("blend", pl.String, "blend method: weighted | vote | regime"),
        _c("indicators", pl.String, "catalogue indicators blended, comma-separated"),
        _c("tuned", pl.Boolean, "auto-tuned"),
        _c("tune_method", pl.String, "grid | random | tpe (null when not tuned)"),
        _c("n_trials", pl.Int64, "tuning trials tried (feasible or not)", "count"),
        _c("total_return", pl.Float64, "compounded return over the whole window", "fraction"),
        _c("sharpe", pl.Float64, "Sharpe ratio over the whole window", SHARPE_UNIT),
        _c("max_drawdown", pl.Float64, "maximum drawdown", "fraction"),
        _c("n_trades", pl.Float64, "closed trades", "count"),
        _c("exposure", pl.Float64, "share of bars with a position", "fraction"),
        _c("final_equity", pl.Float64, "equity at the end", CASH_UNIT),
        _c("oos_sharpe", pl.Float64, "tuned runs: Sharpe on the test window after the training window",
           SHARPE_UNIT),
        _c("dsr", pl.Float64, "tuned runs: deflated Sharpe ratio of the chosen trial for n_trials trials",
           "probability"),
        _c("config_hash", pl.String, "hash of the canonical config"),
        _c("inputs_hash", pl.String, "hash of the spec and data hashes the run read (inputs.json)"),
    ),
)  # fmt: skip
STRATEGY_STATUS: Final = Table(
    "strategy_status", "workbench", "qlake strategies",
    "Every strategy source (JSON spec, blueprint, workbench run) with its last backtest, whether that backtest is "
    "stale (its recorded hash differs from the strategy's current content hash) and its validation error. "
    "Rewritten by `qlake strategies` (lake_assets/workbench/status.py).", (),
    (
        _c("strategy", pl.String, "strategy key: json.<name>, bp_<hex> or run.<run_id>"),
        _c("source", pl.String, "json | blueprint | workbench"),
        _c("current_hash", pl.String, "content hash of the strategy now (of its error when it does not load)"),
        _c("backtest_hash", pl.String, "hash recorded by its last backtest (null: never backtested)"),
        _c("last_backtest", TS_DTYPE, "when its last backtest was written", UTC_TS),
        _c("status", pl.String, "current | stale | never run | invalid"),
        _c("sharpe", pl.Float64, "Sharpe of its last backtest (first book)", SHARPE_UNIT),
        _c("total_return", pl.Float64, "total return of its last backtest (first book)", "fraction"),
        _c("error", pl.String, "validation error (file: key: problem), null when valid"),
    ),
)  # fmt: skip


# --- paper trading -----------------------------------------------------------------------------------------------

DIM_SESSION: Final = _c("session", pl.String, "partition key: paper-trading session (spec/paper.yaml `session`)")
_PAPER: Final = (DIM_SESSION,)
_PT = "paper"
PAPER_SIGNALS: Final = Table(
    "paper_signals", _PT, "paper_trading",
    "The paper loop's decision log (its state): per bar and instrument the strategy's signal flags after the gate "
    "and risk, the decision, the entry's reasons and why an entry was rejected.", _PAPER,
    (
        _c("ts", TS_DTYPE, "bar (decided at its close)", UTC_TS),
        INSTRUMENT_COL,
        _c("long_entry", pl.Boolean, "enter long (after gate and risk)"),
        _c("long_exit", pl.Boolean, "exit long"),
        _c("short_entry", pl.Boolean, "enter short (after gate and risk)"),
        _c("short_exit", pl.Boolean, "exit short"),
        _c("size", pl.Float64, "entry size as a fraction of equity (null: the strategy's sizing)", "fraction"),
        _c("decision", pl.String, "long | short | rejected | none"),
        _c("reasons", pl.String, "JSON list of the entry's conditions: condition, fired, value, op, threshold"),
        _c("rejected_by", pl.String, "data | gate | risk (null unless rejected)"),
        _c("reject_reason", pl.String, "why the entry was rejected"),
    ),
)  # fmt: skip
GATE_DECISIONS: Final = Table(
    "gate_decisions", _PT, "paper_trading",
    "Every trade-gate call (spec/trade_gate.yaml): the prompt, the raw response, the parsed decision, confidence, "
    "latency and error; a failed or malformed answer is a rejection (fail closed).", _PAPER,
    (
        _c("ts", TS_DTYPE, "bar of the entry asked about", UTC_TS),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("side", pl.String, "long | short"),
        _c("gate", pl.String, "none | threshold | llm"),
        _c("allowed", pl.Boolean, "the entry may go on to risk"),
        _c("decision", pl.String, "take | skip | error"),
        _c("confidence", pl.Float64, "the gate's confidence / probability (null when it gave none)", "probability"),
        _c("reason", pl.String, "why allowed or rejected"),
        _c("rationale", pl.String, "the model's rationale (llm gate)"),
        _c("prompt", pl.String, "the prompt sent (llm gate)"),
        _c("raw_response", pl.String, "the raw HTTP body received (llm gate)"),
        _c("latency_ms", pl.Float64, "wall time of the call, retries included", "ms"),
        _c("error", pl.String, "timeout, HTTP status, malformed answer, ... (null on success)"),
        _c("attempts", pl.Int64, "HTTP attempts", "count"),
    ),
)  # fmt: skip
RISK_CHECKS: Final = Table(
    "risk_checks", _PT, "paper_trading",
    "Every failed pre-trade check of the paper loop: data (missing/gap/previous bar, stale, features), reduce-only, "
    "gate, daily loss cap, cooldown after a loss, open-position cap; with the action taken and the reason.", _PAPER,
    (
        _c("ts", TS_DTYPE, "bar", UTC_TS),
        INSTRUMENT_COL,
        STRATEGY_COL,
        _c("check", pl.String, "the check that failed"),
        _c("passed", pl.Boolean, "always false: only failures are recorded"),
        _c("action", pl.String, "block_entries (data) | reject_entry"),
        _c("reason", pl.String, "why"),
    ),
)  # fmt: skip
PAPER_ORDERS: Final = Table("paper_orders", _PT, "paper_trading", "The paper loop's orders (the backtests' engine; "
                            "same columns as orders), latest status per order.", _PAPER,
                            tuple(c for c in ORDERS.columns if c.name != "book"))  # fmt: skip
PAPER_FILLS: Final = Table("paper_fills", _PT, "paper_trading", "The paper loop's fills, appended once each (keyed "
                           "by fill_id: a restart never records a fill twice).", _PAPER,
                           tuple(c for c in FILLS.columns if c.name != "book"))  # fmt: skip
PAPER_POSITIONS: Final = Table(
    "paper_positions", _PT, "paper_trading", "Position per instrument after every bar the loop processed.", _PAPER,
    (_c("ts", TS_DTYPE, "bar", UTC_TS), INSTRUMENT_COL,
     _c("position", pl.Float64, "signed units held after the bar's fills", "base units")),
)  # fmt: skip
PAPER_PNL: Final = Table(
    "paper_pnl", _PT, "paper_trading", "The paper book's equity after every bar, and the day's PnL so far.", _PAPER,
    (*(c for c in EQUITY.columns if c.name not in ("strategy", "book")),
     _c("day_pnl", pl.Float64, "equity - the UTC day's first equity", CASH_UNIT)),
)  # fmt: skip
PAPER_TELEMETRY: Final = Table(
    "paper_telemetry", _PT, "paper_trading", "Per bar processed: latency per stage (features, decision and execution "
    "amortised over the run's bars; gate and risk measured per bar) and success / failure / rejection counts.",
    _PAPER,
    (
        _c("ts", TS_DTYPE, "bar", UTC_TS),
        _c("instruments", pl.Int64, "instruments of the session", "count"),
        *(_c(f"{s}_ms", pl.Float64, f"{s} stage latency for the bar", "ms")
          for s in ("features", "decision", "gate", "risk", "execution")),
        _c("ok", pl.Int64, "instruments whose data checks passed", "count"),
        _c("failed", pl.Int64, "failed checks (data, gate errors)", "count"),
        _c("rejected", pl.Int64, "entries rejected (gate, risk)", "count"),
    ),
)  # fmt: skip
PAPER_STATE: Final = Table(
    "paper_state", _PT, "paper_trading", "The session's cursor: the last bar committed, the session start, "
    "instruments in reduce-only mode (written last in a commit; a restart continues after the cursor).", _PAPER,
    (
        _c("session_start", TS_DTYPE, "first bar of the session", UTC_TS),
        _c("cursor", TS_DTYPE, "last bar committed", UTC_TS),
        STRATEGY_COL,
        _c("reduce_only", pl.String, "JSON: instrument -> reduce-only until (ISO time)"),
        _c("updated_at", TS_DTYPE, "when the commit was written", UTC_TS),
    ),
)  # fmt: skip
PAPER_TABLES: Final = (PAPER_SIGNALS, GATE_DECISIONS, RISK_CHECKS, PAPER_ORDERS, PAPER_FILLS, PAPER_POSITIONS,
                       PAPER_PNL, PAPER_TELEMETRY, PAPER_STATE)  # fmt: skip


# --- models ------------------------------------------------------------------------------------------------------

_FWD: Final = "LOOKS FORWARD (a label, never a feature): "
DIM_TRAINING_SET: Final = _c("training_set", pl.String, "partition key: <frequency>.<label scheme> (e.g. 5m.B1)")
DIM_VARIANT: Final = _c("variant", pl.String, "partition key: model variant <frequency>.<label>.<family>")
VARIANT_COL: Final = _c("variant", pl.String, "model variant <frequency>.<label>.<family> (spec/models)")
_FREQ_COL: Final = _c("frequency", pl.String, "bar frequency of the row: 5m (bars) | 1h (bars_1h) | 1d (bars_1d)")
LABELS: Final = Table(
    "labels", "models", "labels",
    "Labels per bar and frequency (spec/models): the only columns of the lake that look forward. Only the training "
    "sets read them.", INSTRUMENT_MONTH,
    (
        BAR_TS,
        INSTRUMENT_COL,
        _FREQ_COL,
        _c("horizon_bars", pl.Int32, "label horizon h: the label window is (ts, ts + h bars]", "bars"),
        _c("label_end_ts", TS_DTYPE, _FWD + "open of the bar whose close ends the label window (null: no label)",
           UTC_TS),
        _c("y_b1", pl.Int8, _FWD + "B1: 1 if the close h bars later is above this bar's close, else 0; null when "
           "the window holds a gap or lies beyond the data"),
        _c("y_t3", pl.Int8, _FWD + "T3: +1 if the close h bars later is more than x% above (spec t3_threshold_pct, "
           "0.2), -1 if more than x% below, 0 within +-x% inclusive; null as y_b1"),
        _c("y_r", pl.Float64, _FWD + "R: 100 x log(close h bars later / close); null as y_b1", "log return in %"),
    ),
)  # fmt: skip


def _training_feature_columns() -> tuple[Column, ...]:
    return tuple(Column(c.name, pl.Float32, c.description + " (as float32: flags 0/1, categories as the rank of "
                        "the value among the column's sorted values)", c.unit) for c in feature_columns())  # fmt: skip


TRAINING_SETS: Final = Table(
    "training_sets", "models", "training_sets",
    "Features and labels joined point in time per frequency x label scheme, after the row-exclusion rules "
    "(gap rows, warm-up rows, labels whose window crosses a gap), most recent rows per instrument.",
    (DIM_TRAINING_SET,),
    (
        BAR_TS,
        INSTRUMENT_COL,
        _c("label", pl.Float64, _FWD + "the label of the set's scheme (y_b1, y_t3 or y_r of labels)"),
        _c("label_end_ts", TS_DTYPE, _FWD + "end of the row's label window (purging uses it)", UTC_TS),
        _c("emb", pl.Array(pl.Float32, 32), "window embedding at the row's frequency: RMS-normalised 1-bar log "
           "returns of the last 32 bars (as window_embeddings.emb_32), null entries as 0", "unitless"),
    ),
    dynamic=_training_feature_columns,
)  # fmt: skip
MODEL_RUNS: Final = Table(
    "model_runs", "models", "model_runs",
    "One row per model variant: its Optuna study, the best trial's parameters and out-of-sample metrics, and where "
    "the best model is stored.", (DIM_VARIANT,),
    (
        VARIANT_COL,
        _FREQ_COL,
        _c("label_scheme", pl.String, "B1 | T3 | R"),
        _c("family", pl.String, "model family (module of lake_assets/models/families)"),
        _c("study_name", pl.String, "Optuna study name in the study storage"),
        _c("n_trials", pl.Int64, "finished trials in the study (complete + pruned)", "count"),
        _c("n_pruned", pl.Int64, "trials the median pruner stopped", "count"),
        _c("best_trial", pl.Int64, "number of the best trial"),
        _c("best_value", pl.Float64, "best objective: mean fold log loss (B1, T3) or RMSE in % (R)", "loss"),
        _c("best_params", pl.String, "the best trial's parameters as JSON"),
        _c("oos_balanced_accuracy", pl.Float64, "balanced accuracy of the best model on the OOS folds (R: of the "
           "sign)", "fraction"),
        _c("oos_log_loss", pl.Float64, "log loss on the OOS folds (B1, T3)", "nats"),
        _c("oos_rmse", pl.Float64, "RMSE on the OOS folds (R)", "log return in %"),
        _c("oos_auc", pl.Float64, "ROC AUC on the OOS folds (B1; T3: macro one-vs-rest; R: null)", "fraction"),
        _c("oos_rows", pl.Int64, "OOS predictions", "rows"),
        _c("model_path", pl.String, "best model refit on every row (LightGBM text format or JSON), under the data "
           "root"),
        _c("spec_version", pl.String, "hash of the spec parts the variant reads"),
        _c("training_version", pl.String, "fingerprint of the training set the study ran on"),
    ),
)  # fmt: skip
MODEL_FOLDS: Final = Table(
    "model_folds", "models", "model_runs", "Per-fold metrics of each variant's best trial (purged walk-forward).",
    (DIM_VARIANT,),
    (
        VARIANT_COL,
        _c("fold", pl.Int64, "fold number from 0"),
        _c("train_rows", pl.Int64, "training rows after purge and embargo", "rows"),
        _c("purged_rows", pl.Int64, "rows before the test block dropped because their label window reaches it",
           "rows"),
        _c("test_rows", pl.Int64, "test rows", "rows"),
        _c("test_start", TS_DTYPE, "test block start", UTC_TS),
        _c("test_end", TS_DTYPE, "test block end (exclusive)", UTC_TS),
        _c("balanced_accuracy", pl.Float64, "balanced accuracy on the test block", "fraction"),
        _c("log_loss", pl.Float64, "log loss (B1, T3)", "nats"),
        _c("rmse", pl.Float64, "RMSE (R)", "log return in %"),
        _c("auc", pl.Float64, "ROC AUC (B1; T3 macro one-vs-rest)", "fraction"),
    ),
)  # fmt: skip
MODEL_TRIALS: Final = Table(
    "model_trials", "models", "model_runs", "Every trial of every variant's study: state, value, parameters.",
    (DIM_VARIANT,),
    (
        VARIANT_COL,
        _c("trial", pl.Int64, "trial number in the study"),
        _c("state", pl.String, "COMPLETE | PRUNED | FAIL | RUNNING"),
        _c("value", pl.Float64, "objective (mean fold loss) of a complete trial", "loss"),
        _c("last_step", pl.Int64, "last fold reported (pruned trials stop early)"),
        _c("params", pl.String, "parameters as JSON"),
        _c("seconds", pl.Float64, "wall time", "seconds"),
    ),
)  # fmt: skip
MODEL_IMPORTANCES: Final = Table(
    "model_importances", "models", "model_runs", "Feature importances of each variant's best model (LightGBM: "
    "gain; linear: |standardised coefficient|).", (DIM_VARIANT,),
    (VARIANT_COL, _c("feature", pl.String, "input column"), _c("importance", pl.Float64, "importance", "")),
)  # fmt: skip
MODEL_PREDICTIONS: Final = Table(
    "model_predictions", "models", "model_runs", "Out-of-sample predictions of each variant's best model on its "
    "test blocks, and the position each implies (the model's signal).", (DIM_VARIANT,),
    (
        BAR_TS,
        INSTRUMENT_COL,
        VARIANT_COL,
        _c("fold", pl.Int64, "fold whose test block holds the row"),
        _c("label", pl.Float64, _FWD + "the realised label"),
        _c("prediction", pl.Float64, "P(up) (B1), expected class (T3) or predicted log return in % (R)", ""),
        _c("position", pl.Int8, "signal: +1 long, -1 short, 0 flat, known at the bar's close"),
    ),
)  # fmt: skip
MODEL_LEADERBOARD: Final = Table(
    "model_leaderboard", "models", "model_leaderboard", "Every model variant ranked by score = 0.4 x OOS balanced "
    "accuracy + 0.6 x min(realistic OOS Sharpe / 3, 1) (spec/models leaderboard); kept models become strategies "
    "model.<variant>.", (),
    (
        _c("rank", pl.Int64, "rank by score (1 = best)"),
        VARIANT_COL,
        _FREQ_COL,
        _c("label_scheme", pl.String, "B1 | T3 | R"),
        _c("family", pl.String, "model family"),
        _c("balanced_accuracy", pl.Float64, "OOS balanced accuracy", "fraction"),
        _c("fast_sharpe", pl.Float64, "OOS Sharpe of the vectorbt screen (0.01% slippage, no fee)", SHARPE_UNIT),
        _c("sharpe", pl.Float64, "OOS Sharpe of qlake's engine (0.04% fee + 0.05% slippage, funding for perps)",
           SHARPE_UNIT),
        _c("total_return", pl.Float64, "OOS compounded return, realistic", "fraction"),
        _c("n_trades", pl.Int64, "OOS trades, realistic", "count"),
        _c("score", pl.Float64, "0.4 x balanced_accuracy + 0.6 x min(sharpe / 3, 1)", "score"),
        _c("kept", pl.Boolean, "score >= keep_min_score (0.6): the model becomes strategy model.<variant>"),
        _c("strategy", pl.String, "strategy partition key of a kept model (model.<variant>)"),
        _c("n_trials", pl.Int64, "trials of the variant's study", "count"),
        _c("model_path", pl.String, "the best model's file"),
        _c("spec_hash", pl.String, "content hash of the model strategy (variant, its run and its predictions)"),
    ),
)  # fmt: skip

# --- the dictionary ----------------------------------------------------------------------------------------------

TABLES: Final[tuple[Table, ...]] = (
    RAW_OHLCV, RAW_FUNDING, RAW_OPEN_INTEREST, RAW_TRADES,
    BARS, BARS_1H, BARS_1D,
    QUARANTINE, CHECK_FAILURES, SPEC_ERRORS, LAKE_RETENTION,
    FEATURES, WINDOW_EMBEDDINGS, CONTEXT_FEATURES, MARKET_CONTEXT,
    EVENT_REGISTRY, EVENT_APPLICABILITY, EVENT_FLAGS,
    PHASE2_HYPOTHESES, PHASE2_CANDIDATES, BRIDGE_EVALUATION, STRATEGY_BLUEPRINTS,
    TRADES, ORDERS, FILLS, RISK_EVENTS, EQUITY, METRICS, METRICS_BY_REGIME, SIGNAL_REASONS,
    WALKFORWARD, WALKFORWARD_FOLDS,
    RUN_HISTORY, STRATEGY_STATUS,
    *PAPER_TABLES,
    LABELS, TRAINING_SETS, MODEL_RUNS, MODEL_FOLDS, MODEL_TRIALS, MODEL_IMPORTANCES, MODEL_PREDICTIONS,
    MODEL_LEADERBOARD,
)  # fmt: skip
BY_NAME: Final[dict[str, Table]] = {t.name: t for t in TABLES}
# the table an asset's column schema describes when it writes several (or one under another name)
ASSET_TABLE: Final[dict[str, str]] = {
    **{t.asset: t.name for t in TABLES if t.asset == t.name},
    "backtests": "metrics",
    "paper_trading": "paper_pnl",
}


def table(name: str) -> Table:
    return BY_NAME[name]


def tables_of_asset(asset: str) -> list[Table]:
    return [t for t in TABLES if asset in (a.strip() for a in t.asset.split(","))]


def aliases() -> Iterator[tuple[str, Table]]:
    for t in TABLES:
        for a in t.aliases:
            yield a, t


def column_doc(name: str, prefer: Sequence[str] = ()) -> Column | None:
    """A column by name from the first table that declares it statically (for views that combine tables): the
    tables (or alias views) named in `prefer` first, in that order."""
    first = [BY_NAME.get(n) or next((t for a, t in aliases() if a == n), None) for n in prefer]
    for t in dict.fromkeys([*(t for t in first if t is not None), *TABLES]):
        col = replace(t, dynamic=None).column(name)
        if col is not None and col not in t.partitions:
            return col
    return None


@dataclass(frozen=True)
class SchemaMismatch:
    table: str
    missing: list[str] = field(default_factory=list)  # declared, not written
    undeclared: list[str] = field(default_factory=list)  # written, not declared
    wrong_type: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (declared, written)

    def __bool__(self) -> bool:
        return bool(self.missing or self.undeclared or self.wrong_type)


def compare_schema(t: Table, written: pl.Schema | dict[str, Any]) -> SchemaMismatch:
    """What a written file's schema differs from the declaration in (spec-dependent pattern columns are allowed)."""
    t = t.resolved()
    declared = t.schema
    got = dict(written)
    missing = [n for n in declared if n not in got]
    undeclared = [n for n in got if n not in declared and t.column(n) is None]
    wrong = {n: (str(declared[n]), str(got[n])) for n in declared if n in got and declared[n] != got[n]}
    return SchemaMismatch(t.name, missing, undeclared, wrong)


def check_lake(root: Path) -> list[tuple[Path, SchemaMismatch]]:
    """Every file under a lake root (`$QLAKE_DATA_ROOT/lake`) whose columns or types differ from its declaration."""
    out = []
    for t in TABLES:
        resolved = t.resolved()
        for f in sorted((root / t.group / t.name).rglob("part-0.parquet")):
            mismatch = compare_schema(resolved, pl.read_parquet_schema(f))
            if mismatch:
                out.append((f, mismatch))
    return out
