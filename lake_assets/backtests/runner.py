"""Run one strategy (a JSON spec or a discovery blueprint) over the lake's data and return the tables the
`backtests` and `walkforward` assets write.

Books: instruments are grouped by market (perp, spot, equity, index). A book shares one cash account across its
instruments and uses its market's cost profile from spec/costs.yaml; markets differ in timeframe, trading hours and
costs, so one grid across them would mis-annualise and mis-charge.

Execution paths:
- a JSON strategy whose exits are signals only runs through `engine.run_signals` (vectorbt semantics);
- stops, targets and holding limits (JSON `stop_loss_pct`/`take_profit_pct`/`max_holding_bars`, blueprints' ATR
  brackets and time stop) are not part of the engine's signal path, so `bracket_orders` turns the signals into
  explicit orders for `engine.run_orders`: a market entry (good for its fill bar only), a resting STOP exit and a
  LIMIT take-profit priced from the entry bar's open (the entry's reference price, known when they become active),
  market exits for exit signals and time stops, and CANCELs for the bracket legs a trade no longer needs. The
  planner replays the engine's trigger rules (same OHLC tests, same order precedence) to know, bar by bar, which
  legs are live.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from lake_assets.backtests.blueprint_signals import (
    PERIODS_PER_YEAR,
    SIZE,
    STOP_DISTANCE,
    TAKE_PROFIT_DISTANCE,
    BlueprintError,
    blueprint_entries,
    blueprint_signals,
    blueprint_size_type,
)
from lake_assets.backtests.bracket_kernel import plan_brackets_nb
from lake_assets.backtests.costs import CostSpec, load_costs
from lake_assets.backtests.engine import SIGNAL_COLUMNS, BacktestResult, EngineConfig, run_orders, run_signals
from lake_assets.backtests.metrics import accounting_report, compute_metrics
from lake_assets.backtests.risk import RiskLimits, Sizing
from lake_assets.backtests.schema import (
    EQUITY_SCHEMA,
    FILLS_SCHEMA,
    ORDER_ID,
    ORDER_INPUT_SCHEMA,
    ORDERS_SCHEMA,
    RISK_EVENTS_SCHEMA,
    STRATEGY,
    TRADES_SCHEMA,
    Action,
    OrderType,
    Side,
    SizeType,
)
from lake_assets.backtests.strategy_spec import StrategySpec, compile_signals
from lake_assets.backtests.walkforward import return_metrics, walk_forward
from lake_assets.discovery.blueprints import Blueprint
from lake_assets.settings import spec_dir
from lake_assets.specs import Instrument, SpecError, read_yaml, validate_model
from lake_assets.stats.sharpe import deflated_sharpe_ratio, probabilistic_sharpe_ratio, return_moments, sharpe_ratio
from lake_assets.storage.lake import Lake
from lake_assets.tables import EQUITY as EQUITY_TABLE
from lake_assets.tables import SPEC_ERRORS as SPEC_ERRORS_TABLE
from lake_assets.tables import WALKFORWARD, WALKFORWARD_FOLDS
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INSTRUMENT,
    IS_GAP,
    LOW,
    MONTH,
    OPEN,
    SIDE,
    TS,
    TS_DTYPE,
    Market,
    conform,
)

INIT_CASH = 100_000.0
JSON_PREFIX = "json."
BLUEPRINT_PREFIX = "bp_"
BOOK = "book"
LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = SIGNAL_COLUMNS
COST_PROFILE_OF_MARKET = {Market.PERP: "perp", Market.SPOT: "spot", Market.EQUITY: "equity", Market.INDEX: "equity"}
MARKET_ORDER = (Market.PERP, Market.SPOT, Market.EQUITY, Market.INDEX)


class NoDataError(ValueError):
    """The lake holds nothing to backtest a strategy on; the message names the strategy and the instruments."""


# --- strategy keys ------------------------------------------------------------------------------------------------


def json_key(name: str) -> str:
    """Partition key of a JSON strategy (`json:<name>` is not allowed: keys may not contain `| , [ ]` or `:`)."""
    return f"{JSON_PREFIX}{name}"


def parse_key(key: str) -> tuple[str, str]:
    """('json', name) or ('blueprint', blueprint_id); anything else is an error naming the key."""
    if key.startswith(JSON_PREFIX) and len(key) > len(JSON_PREFIX):
        return "json", key[len(JSON_PREFIX) :]
    if key.startswith(BLUEPRINT_PREFIX):
        return "blueprint", key
    raise ValueError(f"strategy key {key!r}: expected 'json.<name>' or 'bp_<hex>'")


EVIDENCE_DIGITS = 10  # significant digits of a blueprint's evidence floats that count towards its content hash


def _rounded(value: Any) -> Any:
    """`value` (JSON data) with every float rounded to EVIDENCE_DIGITS significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{EVIDENCE_DIGITS}g}") if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def content_hash(obj: StrategySpec | Blueprint) -> str:
    """Hash of everything a backtest of this strategy depends on in its definition (evidence included).

    A blueprint is hashed from its definition, ids, name and spec hash exactly, and its evidence (statistics
    discovery measured, which no rule reads) with floats rounded to EVIDENCE_DIGITS significant digits: float
    noise in a re-estimate (1e-15) cannot give an unchanged strategy a new identity and re-run its backtest.
    """
    if isinstance(obj, StrategySpec):
        text = obj.model_dump_json()
    else:
        data = obj.model_dump(mode="json")
        data["evidence"] = _rounded(data["evidence"])
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Materialization metadata of each `backtests` / `walkforward` partition: the content hash of the strategy it was
# computed from. strategy_sensor compares it with the current hash to decide what needs a run.
STRATEGY_HASH = "strategy_hash"


def spec_errors(specs: Mapping[str, StrategySpec]) -> dict[str, SpecError]:
    """Partition key -> SpecError of every strategy file that failed to load (`load_strategies(...).errors`)."""
    return {json_key(name): err for name, err in getattr(specs, "errors", {}).items()}


def error_hash(err: SpecError) -> str:
    """The content hash of a strategy file that failed to load: of its error (file, key, problem), so a fix or a
    new error is a change the sensor acts on, and an unchanged bad file is not run again."""
    return hashlib.sha256(f"spec error\n{err}".encode()).hexdigest()[:16]


def record_spec_errors(store: Lake, specs: Mapping[str, StrategySpec]) -> pl.DataFrame:
    """Replace the lake table `quality/spec_errors` with the load errors of `specs` (none: the table is removed,
    its view is empty). The `backtests` asset is its one writer, on every run; returns the rows written."""
    now = datetime.now(UTC)
    rows = [
        {"file": err.file, "key": err.key, "problem": err.problem, "strategy": key, "seen_at": now}
        for key, err in spec_errors(specs).items()
    ]
    frame = conform(pl.DataFrame(rows, schema=SPEC_ERRORS_TABLE.schema), SPEC_ERRORS_TABLE.schema)
    store.write(frame if rows else pl.DataFrame(), SPEC_ERRORS_TABLE.group, SPEC_ERRORS_TABLE.name)
    return frame


def strategy_catalog(specs: Mapping[str, StrategySpec], blueprints: Sequence[Blueprint]) -> dict[str, str]:
    """Every strategy partition key -> content hash (JSON specs, then blueprints), sorted by key.

    A strategy file that failed to load (in `specs.errors`, see `load_strategies`) keeps its partition, hashed from
    its error, so its `backtests` partition can report the error as a failed `spec_valid` check.
    """
    out = {json_key(name): content_hash(spec) for name, spec in specs.items()}
    out.update({key: error_hash(err) for key, err in spec_errors(specs).items() if key not in out})
    out.update({bp.blueprint_id: content_hash(bp) for bp in blueprints})
    return dict(sorted(out.items()))


# --- reading the lake ---------------------------------------------------------------------------------------------


# Every strategy of a run reads its instruments' whole history (a JSON spec every instrument of its market, a
# blueprint its own): the last few instruments' bars are kept, keyed by their files' (path, mtime, size), so a
# rewritten partition is read afresh. Assets call `clear_bars_cache()` when their run ends.
_BARS_CACHE: OrderedDict[tuple[str, str], tuple[tuple[tuple[str, int, int], ...], pl.DataFrame]] = OrderedDict()
BARS_CACHE_SIZE = 8


def clear_bars_cache() -> None:
    _BARS_CACHE.clear()


def _file_stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:  # cleared since it was listed: `Lake.read` skips it too
        return (str(path), -1, -1)
    return (str(path), st.st_mtime_ns, st.st_size)


def instrument_bars(store: Lake, instrument: str) -> pl.DataFrame:
    dims = [d for d in store.partitions("cleaned", "bars") if d.get(INSTRUMENT) == instrument]
    signature = tuple(_file_stamp(store.partition_path("cleaned", "bars", d)) for d in dims)
    key = (str(store.root), instrument)
    held = _BARS_CACHE.get(key)
    if held is not None and held[0] == signature:
        _BARS_CACHE.move_to_end(key)
        return held[1]
    bars = store.read("cleaned", "bars", dims)
    if not bars.is_empty():
        bars = bars.drop(MONTH, strict=False).with_columns(pl.col(TS).cast(TS_DTYPE)).sort(TS)
    _BARS_CACHE[key] = (signature, bars)
    while len(_BARS_CACHE) > BARS_CACHE_SIZE:
        _BARS_CACHE.popitem(last=False)
    return bars


def instrument_features(store: Lake, instrument: str, columns: Sequence[str]) -> pl.DataFrame:
    dims = [d for d in store.partitions("features", "features") if d.get(INSTRUMENT) == instrument]
    feats = store.read("features", "features", dims, columns=[TS, *columns])  # a few of ~100 columns
    if feats.is_empty():
        return feats
    keep = [c for c in columns if c in feats.columns]
    return feats.select(pl.col(TS).cast(TS_DTYPE), *keep).unique(TS, keep="last")


def instrument_funding(store: Lake, instruments: Sequence[str]) -> pl.DataFrame:
    dims = [d for d in store.partitions("raw", "raw_funding") if d.get(INSTRUMENT) in set(instruments)]
    f = store.read("raw", "raw_funding", dims)
    if f.is_empty():
        return pl.DataFrame(schema={TS: TS_DTYPE, INSTRUMENT: pl.String, FUNDING_RATE: pl.Float64})
    return f.select(pl.col(TS).cast(TS_DTYPE), INSTRUMENT, FUNDING_RATE).unique([TS, INSTRUMENT]).sort(INSTRUMENT, TS)


def strategy_frame(store: Lake, spec: StrategySpec, instrument: str) -> pl.DataFrame:
    """Bars plus the feature columns the spec's rules name, joined on ts; empty when the lake has no bars."""
    bars = instrument_bars(store, instrument)
    if bars.is_empty():
        return bars
    wanted = sorted(spec.required_columns() - set(bars.columns))
    if wanted:
        feats = instrument_features(store, instrument, wanted)
        missing = [c for c in wanted if c not in feats.columns]
        if missing:
            raise NoDataError(
                f"strategy {json_key(spec.name)}: instrument {instrument}: feature columns {missing} are not in "
                "features/features (materialize `features` first)"
            )
        bars = bars.join(feats, on=TS, how="left")
    return bars


# --- the bracket-order planner ------------------------------------------------------------------------------------


def _codes_to_strings(name: str, enum: type[Side] | type[Action] | type[OrderType]) -> pl.Expr:
    """Integer codes (schema.py's `code`; -1 = null) -> the enum's string values."""
    return pl.col(name).replace_strict([m.code for m in enum], [m.value for m in enum], default=None,
                                       return_dtype=pl.String)  # fmt: skip


# built once: constructing them costs about as much as planning a few hundred bars
_DECODE_CODES = {
    SIDE: _codes_to_strings(SIDE, Side),
    "action": _codes_to_strings("action", Action),
    "order_type": _codes_to_strings("order_type", OrderType),
}


def bracket_orders(
    frame: pl.DataFrame,
    *,
    strategy: str,
    size_type: SizeType,
    size: float | None = None,
    stop_frac: float | None = None,
    target_frac: float | None = None,
    max_hold_bars: int | None = None,
    allow_reverse: bool = True,
    allow_short: bool = True,
    first_order_id: int = 0,
) -> pl.DataFrame:
    """Explicit orders (ORDER_INPUT_SCHEMA) for one instrument's frame holding the four signal columns.

    Bracket distances are `stop_frac`/`target_frac` of the entry price plus the optional per-entry columns
    `stop_distance`/`take_profit_distance` (price units, known at the signal bar); `size` column overrides `size`.
    The bar-by-bar replay is compiled (`bracket_kernel.plan_brackets_nb`); here columns go in and records come out,
    each way in one polars pass (the planner also runs on short walk-forward windows, where overhead counts).
    """
    f = frame.sort(TS)
    n = f.height
    inst = str(f[INSTRUMENT][0])

    def floats(col: str) -> pl.Expr:  # NaN for null; all NaN ("not given") for an absent optional column
        return pl.col(col).cast(pl.Float64).fill_null(np.nan) if col in f.columns else pl.lit(np.nan, pl.Float64)

    x = f.select(
        *(floats(col).alias(col) for col in (OPEN, HIGH, LOW, CLOSE, SIZE, STOP_DISTANCE, TAKE_PROFIT_DISTANCE)),
        *(pl.col(col).fill_null(False) for col in SIGNAL_COLUMNS),
        (pl.col(IS_GAP).fill_null(False) if IS_GAP in f.columns else pl.lit(False)).alias(IS_GAP),
    )
    o, h, lo, c, size_col, stop_col, tp_col = (
        x[col].to_numpy() for col in (OPEN, HIGH, LOW, CLOSE, SIZE, STOP_DISTANCE, TAKE_PROFIT_DISTANCE)
    )
    le, lx, se, sx = (x[col].to_numpy().astype(np.bool_) for col in SIGNAL_COLUMNS)
    valid = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & ~x[IS_GAP].to_numpy()
    size_ = np.nan if size is None else float(size)
    max_hold = np.nan if max_hold_bars is None else float(max_hold_bars)
    cap = n // 2 + 64  # a first guess: the kernel counts past it, and a rerun with the exact count fills the rest
    while True:
        bar, ref = np.empty(cap, np.int64), np.empty(cap, np.int64)
        side, action, otype = (np.empty(cap, np.int8) for _ in range(3))
        size_out, stop_dist, stop_px, limit_px = (np.full(cap, np.nan) for _ in range(4))
        k, bad_bar = plan_brackets_nb(
            o, h, lo, valid, le, lx, se, sx, size_col, stop_col, tp_col, size_, float(stop_frac or 0.0),
            float(target_frac or 0.0), max_hold, bool(allow_reverse), bool(allow_short),
            size_type == SizeType.RISK_PERCENT, bar, side, action, otype, size_out, stop_dist, stop_px, limit_px, ref,
        )  # fmt: skip
        if bad_bar >= 0:
            raise ValueError(f"strategy {strategy}: RISK_PERCENT sizing needs a stop (stop_loss_pct or ATR stop)")
        if k <= cap:
            break
        cap = k
    rec = pl.DataFrame(
        {
            TS: f[TS].gather(bar[:k]),
            SIDE: side[:k],
            "action": action[:k],
            "order_type": otype[:k],
            SIZE: size_out[:k],
            "limit_price": limit_px[:k],
            "stop_price": stop_px[:k],
            "stop_distance": stop_dist[:k],
            "ref_order_id": ref[:k],
        }
    )
    entry = pl.col("action") == Action.ENTRY.code
    columns = {
        ORDER_ID: pl.int_range(first_order_id, first_order_id + k, dtype=pl.Int64),
        INSTRUMENT: pl.lit(inst, pl.String),
        STRATEGY: pl.lit(strategy, pl.String),
        **_DECODE_CODES,
        "size_type": pl.when(entry).then(pl.lit(size_type.value, pl.String)),
        "time_in_force_bars": pl.when(entry).then(pl.lit(1, pl.Int64)),
        "ref_order_id": pl.when(pl.col("ref_order_id") >= 0).then(pl.col("ref_order_id") + first_order_id),
        **{col: pl.col(col).fill_nan(None) for col in (SIZE, "limit_price", "stop_price", "stop_distance")},
    }
    return rec.select(
        columns.get(name, pl.col(name)).cast(dtype).alias(name) for name, dtype in ORDER_INPUT_SCHEMA.items()
    )


# --- books and runs -----------------------------------------------------------------------------------------------


@dataclass
class BookRun:
    """One book's backtest: the engine result plus what the tables and checks need."""

    strategy: str
    kind: str  # json | blueprint
    book: str  # market
    timeframe: str
    instruments: list[str]
    bars: pl.DataFrame
    result: BacktestResult
    execution: str  # signals | orders
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def periods_per_year(self) -> float:
        return PERIODS_PER_YEAR.get(self.timeframe, 252.0)

    def metrics(self) -> dict[str, Any]:
        m = compute_metrics(self.result, self.periods_per_year)
        acc = accounting_report(self.result, self.bars)
        status = self.result.orders["status"].value_counts() if self.result.orders.height else None
        counts = dict(status.iter_rows()) if status is not None else {}
        return {
            STRATEGY: self.strategy,
            "kind": self.kind,
            BOOK: self.book,
            "timeframe": self.timeframe,
            "instruments": ",".join(self.instruments),
            "execution": self.execution,
            "start": self.result.equity[TS].min(),
            "end": self.result.equity[TS].max(),
            "n_bars": self.result.equity.height,
            "init_cash": self.result.init_cash,
            **m,
            "n_orders": self.result.orders.height,
            "n_fills": self.result.fills.height,
            "n_orders_rejected": int(counts.get("REJECTED", 0)),
            "n_risk_events": self.result.risk_events.height,
            "identity_ok": acc["ok"],
            "final_identity_abs_error": acc["final_identity_abs_error"],
            "max_abs_error_cash_plus_positions": acc["max_abs_error_cash_plus_positions"],
            **self.extra,
        }


def cost_config(costs: CostSpec, market: Market, max_leverage: float) -> EngineConfig:
    name = COST_PROFILE_OF_MARKET.get(market, costs.default_profile)
    profile = costs.profiles.get(name) or costs.profile()
    return EngineConfig.from_costs(profile, init_cash=INIT_CASH, risk=RiskLimits(max_leverage=max_leverage))


def _books(instruments: Sequence[Instrument]) -> list[tuple[Market, list[Instrument]]]:
    out = []
    for m in MARKET_ORDER:
        members = [i for i in instruments if i.market == m]
        if members:
            out.append((m, members))
    return out


def book_size(spec: StrategySpec, n_instruments: int) -> float:
    """Per-instrument size in a shared-cash book: equity fractions (EQUITY_PERCENT, RISK_PERCENT) are the strategy's
    total allocation, split equally across the book's instruments; units and notionals are per position as given."""
    if spec.sizing.size_type in (SizeType.EQUITY_PERCENT, SizeType.RISK_PERCENT):
        return spec.sizing.size / max(1, n_instruments)
    return spec.sizing.size


def _has_brackets(spec: StrategySpec) -> bool:
    ex = spec.exit_rules
    return bool(ex.stop_loss_pct or ex.take_profit_pct or ex.max_holding_bars)


def run_json_strategy(
    store: Lake,
    spec: StrategySpec,
    universe: Sequence[Instrument],
    costs: CostSpec | None = None,
    params: Mapping[str, Any] | None = None,
) -> list[BookRun]:
    """Backtest a JSON strategy on every applicable instrument with data, one shared-cash book per market."""
    costs = costs or load_costs()
    key = json_key(spec.name)
    applicable = [i for i in universe if spec.applies_to(i.market)]
    if spec.timeframe is not None:
        applicable = [i for i in applicable if i.base_timeframe == spec.timeframe]
    if not applicable:
        raise NoDataError(f"strategy {key}: no instrument in spec/universe.yaml matches markets {list(spec.markets)}")
    frames: dict[str, pl.DataFrame] = {}
    for inst in applicable:
        frame = strategy_frame(store, spec, inst.id)
        if frame.height:
            frames[inst.id] = frame
    if not frames:
        raise NoDataError(
            f"strategy {key}: no cleaned bars in the lake for any applicable instrument "
            f"({', '.join(i.id for i in applicable)}); materialize `bars` first"
        )
    runs = []
    for market, members in _books([i for i in applicable if i.id in frames]):
        ids = [i.id for i in members]
        timeframes = {i.base_timeframe for i in members}
        frame = pl.concat([frames[i] for i in ids], how="diagonal_relaxed")
        signals = compile_signals(frame, spec, params).with_columns(pl.lit(key).alias(STRATEGY))
        bars = signals.select([c for c in BARS_SCHEMA.names() if c in signals.columns])
        config = cost_config(costs, market, spec.sizing.max_leverage)
        size = book_size(spec, len(ids))
        funding = instrument_funding(store, ids) if spec.costs.include_funding and market == Market.PERP else None
        if _has_brackets(spec):
            ex = spec.exit_rules
            parts = signals.partition_by(INSTRUMENT, maintain_order=True)
            orders = pl.concat(
                [
                    bracket_orders(
                        part,
                        strategy=key,
                        size_type=spec.sizing.size_type,
                        size=size,
                        stop_frac=ex.stop_loss_pct / 100 if ex.stop_loss_pct else None,
                        target_frac=ex.take_profit_pct / 100 if ex.take_profit_pct else None,
                        max_hold_bars=ex.max_holding_bars,
                        first_order_id=k * 10_000_000,
                    )
                    for k, part in enumerate(parts)
                ]
            )
            result = _run_orders(bars, orders, config, funding)
            execution = "orders"
        else:
            sizing = Sizing(spec.sizing.size_type, size)
            result = run_signals(bars, signals.select(TS, INSTRUMENT, STRATEGY, *SIGNAL_COLUMNS), config,
                                 sizing=sizing, funding=funding)  # fmt: skip
            execution = "signals"
        runs.append(BookRun(key, "json", market.value, sorted(timeframes)[0], ids, bars, result, execution))
    return runs


def _run_orders(
    bars: pl.DataFrame, orders: pl.DataFrame, config: EngineConfig, funding: pl.DataFrame | None
) -> BacktestResult:
    if orders.is_empty():  # no entries at all: every bar is still marked (a flat equity curve is the honest result)
        flat = bars.select(TS, INSTRUMENT, *[pl.lit(False).alias(c) for c in SIGNAL_COLUMNS])
        return run_signals(bars, flat, config, sizing=Sizing(SizeType.EQUITY_PERCENT, 1.0), funding=funding)
    return run_orders(bars, orders, config, funding=funding)


def run_blueprint(
    store: Lake,
    blueprint: Blueprint,
    universe: Sequence[Instrument],
    costs: CostSpec | None = None,
    *,
    events: pl.DataFrame | None = None,
    window: tuple[Any, Any] | None = None,
    bars: pl.DataFrame | None = None,
) -> list[BookRun]:
    """Backtest a blueprint on its instrument: event entries after the lag, ATR brackets, time stop, its sizing.

    `window` = (start, end) restricts entries to [start, end) and cuts the bars at `end` (walk-forward folds);
    `events` and `bars` (its instrument's `instrument_bars`) spare a caller running many windows the re-reads."""
    costs = costs or load_costs()
    bp = blueprint
    inst = next((i for i in universe if i.id == bp.instrument), None)
    if inst is None:
        raise NoDataError(f"strategy {bp.blueprint_id}: instrument {bp.instrument} is not in spec/universe.yaml")
    if bars is None:
        bars = instrument_bars(store, bp.instrument)
    if bars.is_empty():
        raise NoDataError(
            f"strategy {bp.blueprint_id}: instrument {bp.instrument}: no cleaned bars in the lake "
            f"(cleaned/bars/instrument={bp.instrument})"
        )
    if events is None:
        part = store.read("events", "event_registry", [{"event_type": bp.event_type}])
        events = part.drop("event_type_right", strict=False)
    if events.is_empty() or events.filter(pl.col(INSTRUMENT) == bp.instrument).is_empty():
        raise NoDataError(
            f"strategy {bp.blueprint_id}: instrument {bp.instrument}: no {bp.event_type} events in "
            f"events/event_registry (materialize `event_registry` first)"
        )
    try:
        entries = blueprint_entries(bp, events, bars)
        signals = blueprint_signals(bp, events, bars)
    except BlueprintError as exc:
        raise NoDataError(str(exc)) from exc
    if window is not None:
        start, end = window
        in_window = (pl.col(TS) >= start) & ((pl.col(TS) < end) if end is not None else pl.lit(True))
        signals = signals.with_columns(
            pl.when(in_window).then(pl.col(c)).otherwise(False).alias(c) for c in (LONG_ENTRY, SHORT_ENTRY)
        )
        if end is not None:
            signals = signals.filter(pl.col(TS) < end)
    key = bp.blueprint_id
    signals = signals.with_columns(pl.lit(key).alias(STRATEGY))
    orders = bracket_orders(
        signals, strategy=key, size_type=blueprint_size_type(bp), max_hold_bars=bp.exits.time_stop_bars,
        allow_reverse=False,
    )  # fmt: skip
    config = cost_config(costs, inst.market, bp.sizing.max_leverage)
    bar_frame = signals.select([c for c in BARS_SCHEMA.names() if c in signals.columns])
    funding = instrument_funding(store, [inst.id]) if inst.market == Market.PERP else None
    result = _run_orders(bar_frame, orders, config, funding)
    extra = {
        "n_events": entries.height,
        "n_event_entries": int(entries["traded"].sum()) if entries.height else 0,
        "event_type": bp.event_type,
    }
    return [BookRun(key, "blueprint", inst.market.value, inst.base_timeframe, [inst.id], bar_frame, result, "orders",
                    extra)]  # fmt: skip


# --- tables -------------------------------------------------------------------------------------------------------

METRICS_EXTRA = ("n_events", "n_event_entries", "event_type")


def result_tables(runs: Sequence[BookRun], spec_hash: str) -> dict[str, pl.DataFrame]:
    """trades, orders, fills, equity, risk_events and metrics (one row per book) of one strategy, `book` tagged."""

    def tag(df: pl.DataFrame, run: BookRun) -> pl.DataFrame:
        return df.with_columns(pl.lit(run.book).alias(BOOK))

    tables: dict[str, pl.DataFrame] = {}
    for name, schema in (("trades", TRADES_SCHEMA), ("orders", ORDERS_SCHEMA), ("fills", FILLS_SCHEMA),
                         ("risk_events", RISK_EVENTS_SCHEMA)):  # fmt: skip
        parts = [tag(getattr(r.result, name), r) for r in runs]
        tables[name] = pl.concat(parts) if parts else pl.DataFrame(schema={**dict(schema), BOOK: pl.String})
    eq = [r.result.equity.with_columns(pl.lit(r.strategy).alias(STRATEGY), pl.lit(r.book).alias(BOOK)) for r in runs]
    tables["equity"] = pl.concat(eq) if eq else pl.DataFrame(schema={**dict(EQUITY_SCHEMA), STRATEGY: pl.String})
    rows = []
    for r in runs:
        m = r.metrics()
        m.update({k: m.get(k) for k in METRICS_EXTRA})
        m["spec_hash"] = spec_hash
        rows.append(m)
    metrics = pl.DataFrame(rows, infer_schema_length=None)
    tables["metrics"] = metrics.with_columns(
        pl.col("n_events").cast(pl.Int64),
        pl.col("n_event_entries").cast(pl.Int64),
        pl.col("event_type").cast(pl.String),
    )
    return tables


EQUITY_VIEW_SCHEMA = EQUITY_TABLE.schema


# --- walk-forward -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkForwardSizes:
    train_bars: int
    test_bars: int
    n_bars: int


def choose_sizes(n_bars: int, folds: int = 4, train_multiple: int = 2, min_test: int = 50) -> WalkForwardSizes | None:
    """Rolling windows from the data length: `folds` test windows after a train window `train_multiple` times as
    long; None when the test window would be shorter than `min_test` bars."""
    test = n_bars // (folds + train_multiple)
    if test < min_test:
        return None
    return WalkForwardSizes(train_multiple * test, test, n_bars)


WF_SUMMARY_SCHEMA = WALKFORWARD.schema
WF_FOLDS_SCHEMA = WALKFORWARD_FOLDS.schema
# Sharpe columns of the walk-forward tables, annualised like `metrics.sharpe` (the convention in lake_assets/tables.py);
# walkforward.py computes them per bar, as PSR/DSR need. is_score is the in-sample objective: the (default) Sharpe.
ANNUALISED_WF_COLUMNS = ("oos_sharpe", "is_score")


def annualise_sharpe(value: Any, timeframe: str) -> float | None:
    """A per-bar Sharpe ratio scaled by sqrt(bars per year of `timeframe`), as `BookRun.metrics` annualises."""
    x = _finite_or_none(value)
    return None if x is None else x * math.sqrt(PERIODS_PER_YEAR.get(timeframe, 252.0))


def _annualised_folds(folds: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    scale = math.sqrt(PERIODS_PER_YEAR.get(timeframe, 252.0))
    return folds.with_columns(pl.col(c).cast(pl.Float64) * scale for c in ANNUALISED_WF_COLUMNS if c in folds.columns)


def _summary_row(strategy: str, kind: str, book: str, spec_hash: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(WF_SUMMARY_SCHEMA.names())
    row.update({STRATEGY: strategy, "kind": kind, BOOK: book, "spec_hash": spec_hash, "applicable": True})
    row.update({k: v for k, v in values.items() if k in row})
    return row


def _finite_or_none(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class WalkForwardProtocol(BaseModel):
    """spec/walkforward.yaml: split sizing and the in-sample search budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    folds: int = Field(default=4, ge=2)
    train_multiple: int = Field(default=2, ge=1)
    min_test_bars: int = Field(default=50, ge=10)
    n_trials: int = Field(default=8, ge=1)
    max_grid: int = Field(default=16, ge=1)
    max_pbo_configs: int = Field(default=8, ge=2)
    pbo_splits: int = Field(default=8, ge=2)
    seed: int = 0


def load_walkforward_protocol(path: Path | None = None) -> WalkForwardProtocol:
    path = path or spec_dir() / "walkforward.yaml"
    if not path.exists():
        return WalkForwardProtocol()
    protocol: WalkForwardProtocol = validate_model(WalkForwardProtocol, read_yaml(path) or {}, path)
    return protocol


def walkforward_json(
    store: Lake,
    spec: StrategySpec,
    universe: Sequence[Instrument],
    protocol: WalkForwardProtocol | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Walk-forward per book: rolling train/test sized from the data, re-optimised in-sample (light kernel with the
    spec's own costs), OOS metrics, PBO (CSCV), PSR/DSR and PSI drift. Returns (summary rows, fold rows)."""
    p = protocol or load_walkforward_protocol()
    key = json_key(spec.name)
    h = content_hash(spec)
    applicable = [i for i in universe if spec.applies_to(i.market)]
    frames = {i.id: f for i in applicable if (f := strategy_frame(store, spec, i.id)).height}
    if not frames:
        raise NoDataError(f"strategy {key}: no cleaned bars in the lake for any applicable instrument "
                          f"({', '.join(i.id for i in applicable)})")  # fmt: skip
    summary, folds = [], []
    for market, members in _books([i for i in applicable if i.id in frames]):
        frame = pl.concat([frames[i.id] for i in members], how="diagonal_relaxed")
        n = frame[TS].n_unique()
        sizes = choose_sizes(n, p.folds, p.train_multiple, p.min_test_bars)
        if not spec.parameters:
            summary.append(_summary_row(key, "json", market.value, h, applicable=False, n_bars=n,
                                        reason="no parameters to re-optimise"))  # fmt: skip
            continue
        if sizes is None:
            summary.append(_summary_row(key, "json", market.value, h, applicable=False, n_bars=n,
                                        reason=f"{n} bars are too few for {p.folds} rolling folds"))  # fmt: skip
            continue
        wf = walk_forward(
            frame, spec, train_bars=sizes.train_bars, test_bars=sizes.test_bars, mode="rolling", seed=p.seed,
            n_trials=p.n_trials, max_grid=p.max_grid, max_pbo_configs=p.max_pbo_configs, pbo_splits=p.pbo_splits,
        )  # fmt: skip
        timeframe = sorted({i.base_timeframe for i in members})[0]  # as the book's backtest annualises
        ff = _annualised_folds(wf.folds_frame(), timeframe)
        s = wf.summary()
        s["oos_sharpe"] = annualise_sharpe(s.get("oos_sharpe"), timeframe)
        summary.append(
            _summary_row(
                key, "json", market.value, h, mode=wf.mode, n_bars=n, train_bars=sizes.train_bars,
                test_bars=sizes.test_bars, n_folds=len(wf.folds),
                **{k: _finite_or_none(s.get(k)) for k in ("oos_sharpe", "oos_total_return", "oos_max_drawdown",
                                                          "oos_hit_rate", "oos_exposure", "pbo", "psr", "dsr",
                                                          "dsr_n_trials")},
                max_psi=_finite_or_none(ff["max_psi"].max()) if "max_psi" in ff.columns else None,
            )
        )  # fmt: skip
        folds.append(
            ff.with_columns(
                pl.lit(market.value).alias(BOOK),
                pl.lit(key).alias(STRATEGY),
                pl.lit(False).alias("in_discovery_window"),
            )  # fmt: skip
        )
    return _typed(summary, WF_SUMMARY_SCHEMA), _typed_frames(folds, WF_FOLDS_SCHEMA)


def walkforward_blueprint(
    store: Lake, blueprint: Blueprint, universe: Sequence[Instrument], costs: CostSpec | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A blueprint is a fixed rule: nothing to re-optimise, so each rolling test window is traded with the rule as
    is (entries inside the window only, indicators warmed up on the bars before it) and judged out-of-sample.
    Folds overlapping discovery's sample are flagged. PBO needs several configurations: not applicable."""
    bp = blueprint
    h = content_hash(bp)
    bars = instrument_bars(store, bp.instrument)
    if bars.is_empty():
        raise NoDataError(f"strategy {bp.blueprint_id}: instrument {bp.instrument}: no cleaned bars in the lake")
    inst = next(i for i in universe if i.id == bp.instrument)
    events = store.read("events", "event_registry", [{"event_type": bp.event_type}]).drop("event_type_right",
                                                                                        strict=False)  # fmt: skip
    n = bars.height
    sizes = choose_sizes(n)
    if sizes is None:
        row = _summary_row(bp.blueprint_id, "blueprint", inst.market.value, h, applicable=False, n_bars=n,
                           reason=f"{n} bars are too few for 4 rolling folds")  # fmt: skip
        return _typed([row], WF_SUMMARY_SCHEMA), _typed_frames([], WF_FOLDS_SCHEMA)
    ts = bars[TS]
    last_disc = bp.evidence.discovery_last_entry
    fold_rows, oos = [], []
    k = 0
    start = sizes.train_bars
    while start + sizes.test_bars <= n:
        s0, s1 = ts[start], (ts[start + sizes.test_bars] if start + sizes.test_bars < n else None)
        [run] = run_blueprint(store, bp, universe, costs, events=events, window=(s0, s1), bars=bars)
        eq = run.result.equity.filter(pl.col(TS) >= s0)["equity"].to_numpy()
        before = run.result.equity.filter(pl.col(TS) < s0)["equity"]
        base = float(before[-1]) if before.len() else run.result.init_cash
        r = np.diff(np.r_[base, eq]) / np.r_[base, eq][:-1]
        oos.append(r)
        m = return_metrics(r)
        fold_rows.append({
            STRATEGY: bp.blueprint_id, BOOK: inst.market.value, "fold": k, "train_start": ts[start - sizes.train_bars],
            "train_end": s0, "test_start": s0, "test_end": s1, "params": json.dumps(bp.definition(), sort_keys=True),
            "method": "fixed", "n_trials": 1, "is_score": None, **{f"oos_{a}": v for a, v in m.items()},
            "oos_sharpe": annualise_sharpe(m["sharpe"], inst.base_timeframe),  # replaces the per-bar value
            "max_psi": None,
            "in_discovery_window": last_disc is not None and s0 <= _utc(last_disc),
        })  # fmt: skip
        k += 1
        start += sizes.test_bars
    stitched = np.concatenate(oos)
    m = return_metrics(stitched)
    n_obs, skew, kurt = return_moments(stitched)
    sr = sharpe_ratio(stitched)
    ok = n_obs >= 2 and math.isfinite(sr)
    row = _summary_row(
        bp.blueprint_id, "blueprint", inst.market.value, h, mode="rolling-fixed-rule", n_bars=n,
        train_bars=sizes.train_bars, test_bars=sizes.test_bars, n_folds=k,
        **{f"oos_{a}": _finite_or_none(v) for a, v in m.items() if a != "sharpe"},
        oos_sharpe=annualise_sharpe(m["sharpe"], inst.base_timeframe),
        psr=probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt) if ok else None,
        dsr=deflated_sharpe_ratio(sr, n_obs, skew, kurt, 1, 0.0) if ok else None, dsr_n_trials=1.0,
        reason="fixed rule: evaluated per fold without re-optimisation; PBO needs several configurations",
    )  # fmt: skip
    return _typed([row], WF_SUMMARY_SCHEMA), _typed(fold_rows, WF_FOLDS_SCHEMA)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _typed(rows: list[dict[str, Any]], schema: pl.Schema) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame([{k: r.get(k) for k in schema.names()} for r in rows], schema=schema)


def _typed_frames(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema=schema)
    out = pl.concat(frames, how="diagonal_relaxed")
    return out.select([(pl.col(k) if k in out.columns else pl.lit(None)).cast(t).alias(k) for k, t in schema.items()])
