"""Run one strategy (a JSON spec or a discovery blueprint) over the lake's data, one book per market, and return the
tables the `backtests` asset writes.

Books: instruments are grouped by market (perp, spot, equity, index). A book shares one cash account across its
instruments and uses its market's cost profile from spec/costs.yaml; markets differ in timeframe, trading hours and
costs, so one grid across them would mis-annualise and mis-charge.

Execution paths: a JSON strategy whose exits are signals only runs through `engine.run_signals` (vectorbt semantics);
stops, targets and holding limits go through `brackets.bracket_orders` and `engine.run_orders`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from lake_assets import tables
from lake_assets.backtests.blueprint_signals import (
    PERIODS_PER_YEAR,
    BlueprintError,
    blueprint_entries,
    blueprint_signals,
    blueprint_size_type,
)
from lake_assets.backtests.brackets import bracket_orders
from lake_assets.backtests.costs import CostSpec, load_costs
from lake_assets.backtests.engine import SIGNAL_COLUMNS, BacktestResult, EngineConfig, run_orders, run_signals
from lake_assets.backtests.metrics import accounting_report, compute_metrics, regime_breakdown
from lake_assets.backtests.regimes import REGIME, RegimeSpec, label_regimes
from lake_assets.backtests.risk import RiskLimits, Sizing
from lake_assets.backtests.schema import (
    EQUITY_SCHEMA,
    FILLS_SCHEMA,
    ORDERS_SCHEMA,
    RISK_EVENTS_SCHEMA,
    STRATEGY,
    TRADES_SCHEMA,
    SizeType,
)
from lake_assets.backtests.strategies import NoDataError, json_key
from lake_assets.backtests.strategy_spec import StrategySpec, compile_signals, signal_reasons
from lake_assets.discovery.blueprints import Blueprint
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.tables import EQUITY as EQUITY_TABLE
from lake_assets.tables import METRICS_BY_REGIME, SIGNAL_REASONS
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    FUNDING_RATE,
    INSTRUMENT,
    TS,
    TS_DTYPE,
    Market,
    conform,
)

INIT_CASH = 100_000.0
BOOK = "book"
LONG_ENTRY, LONG_EXIT, SHORT_ENTRY, SHORT_EXIT = SIGNAL_COLUMNS
COST_PROFILE_OF_MARKET = {Market.PERP: "perp", Market.SPOT: "spot", Market.EQUITY: "equity", Market.INDEX: "equity"}
MARKET_ORDER = (Market.PERP, Market.SPOT, Market.EQUITY, Market.INDEX)


# --- reading the lake ---------------------------------------------------------------------------------------------


def instrument_funding(store: Lake, instruments: Sequence[str]) -> pl.DataFrame:
    cols = [TS, INSTRUMENT, FUNDING_RATE]
    frames = [f for i in instruments if (f := store.reader.instrument(tables.RAW_FUNDING, i, columns=cols)).height]
    if not frames:
        return pl.DataFrame(schema={TS: TS_DTYPE, INSTRUMENT: pl.String, FUNDING_RATE: pl.Float64})
    return pl.concat(frames).select(cols).unique([TS, INSTRUMENT]).sort(INSTRUMENT, TS)


def strategy_frame(store: Lake, spec: StrategySpec, instrument: str) -> pl.DataFrame:
    """Bars plus the feature columns the spec's rules name, joined on ts; empty when the lake has no bars."""
    bars = store.reader.instrument(tables.BARS, instrument)
    if bars.is_empty():
        return bars
    wanted = sorted(spec.required_columns() - set(bars.columns))
    if wanted:
        feats = store.reader.instrument(tables.FEATURES, instrument, columns=[TS, *wanted])
        missing = [c for c in wanted if c not in feats.columns]
        if missing:
            raise NoDataError(
                f"strategy {json_key(spec.name)}: instrument {instrument}: feature columns {missing} are not in "
                "features/features (materialize `features` first)"
            )
        bars = bars.join(feats.unique(TS, keep="last"), on=TS, how="left")
    return bars


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
    reasons: pl.DataFrame | None = None  # signal_reasons rows, for strategies that declare `reasons`

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


def books_by_market(instruments: Sequence[Instrument]) -> list[tuple[Market, list[Instrument]]]:
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
    until: datetime | None = None,
) -> list[BookRun]:
    """Backtest a JSON strategy on every applicable instrument with data, one shared-cash book per market; `until`
    cuts the history before that bar (the lookahead check's truncated runs)."""
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
        if until is not None and frame.height:
            frame = frame.filter(pl.col(TS) < until)
        if frame.height:
            frames[inst.id] = frame
    if not frames:
        raise NoDataError(
            f"strategy {key}: no cleaned bars in the lake for any applicable instrument "
            f"({', '.join(i.id for i in applicable)}); materialize `bars` first"
        )
    runs = []
    for market, members in books_by_market([i for i in applicable if i.id in frames]):
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
        reasons = (signal_reasons(signals, spec, params).with_columns(pl.lit(key).alias(STRATEGY))
                   if spec.reasons else None)  # fmt: skip
        runs.append(BookRun(key, "json", market.value, sorted(timeframes)[0], ids, bars, result, execution,
                            reasons=reasons))  # fmt: skip
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
    `events` and `bars` (its instrument's bars) spare a caller running many windows the re-reads."""
    costs = costs or load_costs()
    bp = blueprint
    inst = next((i for i in universe if i.id == bp.instrument), None)
    if inst is None:
        raise NoDataError(f"strategy {bp.blueprint_id}: instrument {bp.instrument} is not in spec/universe.yaml")
    if bars is None:
        bars = store.reader.instrument(tables.BARS, bp.instrument)
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
    why = [tag(r.reasons, r) for r in runs if r.reasons is not None]
    if why:
        tables["signal_reasons"] = conform(pl.concat(why), SIGNAL_REASONS.schema)
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


def metrics_by_regime(store: Lake, runs: Sequence[BookRun], spec: RegimeSpec) -> pl.DataFrame:
    """Each book's metrics per regime of its lead instrument (the book's first): bars, mean bar return, Sharpe,
    compounded return, trades entered and their PnL (`metrics.regime_breakdown`)."""
    parts = []
    for run in runs:
        lead = run.instruments[0]
        feats = store.reader.instrument(tables.FEATURES, lead)
        labels = label_regimes(feats, spec) if feats.height else pl.DataFrame(schema={TS: TS_DTYPE, REGIME: pl.String})
        table = regime_breakdown(run.result, labels.select(TS, REGIME), REGIME, run.periods_per_year)
        table = table.with_columns(pl.col(REGIME).fill_null(spec.unknown_label))
        parts.append(table.with_columns(pl.lit(run.strategy).alias(STRATEGY), pl.lit(run.book).alias(BOOK),
                                        pl.lit(lead).alias("lead_instrument")))  # fmt: skip
    if not parts:
        return pl.DataFrame(schema=METRICS_BY_REGIME.schema)
    return conform(pl.concat(parts, how="diagonal_relaxed"), METRICS_BY_REGIME.schema)
