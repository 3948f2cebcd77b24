"""One strategy partition's backtest or walk-forward as a self-contained task (no Dagster), so the assets can hand
the partitions of a run to `process_map` and use every core.

A task carries only the lake root and the partition key; it loads the spec, blueprints, universe and cost model
itself (milliseconds) and returns the tables to write, or the reason there was nothing to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from lake_assets.backtests import book_runs, model_eval, model_strategies, strategies, walkforward_runs
from lake_assets.backtests.costs import CostSpec, load_costs
from lake_assets.backtests.lookahead import LookaheadReport, strategy_lookahead
from lake_assets.backtests.regimes import load_regimes
from lake_assets.backtests.strategies import NoDataError
from lake_assets.backtests.strategy_spec import StrategySpec, load_strategies
from lake_assets.discovery.blueprints import Blueprint, load_blueprints
from lake_assets.specs import Instrument, universe
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import TS

__all__ = ["NoData", "StrategyTask", "backtest_partition", "release_lakes", "resolve", "task_lake",
           "walkforward_partition"]


@dataclass(frozen=True)
class StrategyTask:
    lake_root: str
    key: str


@dataclass(frozen=True)
class NoData:
    """The strategy had nothing to trade (or vanished); `message` names the strategy and what is missing."""

    message: str


def resolve(key: str, specs: dict[str, StrategySpec], blueprints: dict[str, Blueprint]) -> StrategySpec | Blueprint:
    """The strategy behind a partition key; a vanished one is a NoDataError naming the key and where it was looked
    for."""
    kind, name = strategies.parse_key(key)
    if kind == "json":
        if name not in specs:
            error = strategies.spec_errors(specs).get(key)
            if error is not None:
                raise NoDataError(f"strategy {key}: invalid spec, not run: {error}")
            raise NoDataError(f"strategy {key}: spec/strategies/{name}.json does not exist (any more)")
        return specs[name]
    if name not in blueprints:
        raise NoDataError(f"strategy {key}: not in discovery/strategy_blueprints/blueprints.jsonl (any more)")
    return blueprints[name]


def task_lake(root: str) -> Lake:
    """The lake of this process's tasks: one `Lake` (and so one reader, holding the bars the strategies share) per root
    while a run lasts; `release_lakes()` drops it when the run ends."""
    lake = _LAKES.get(root)
    if lake is None:
        _LAKES.clear()
        lake = _LAKES[root] = Lake(root)
    return lake


def release_lakes() -> None:
    _LAKES.clear()


_LAKES: dict[str, Lake] = {}


def _strategy(store: Lake, key: str) -> StrategySpec | Blueprint:
    return resolve(key, load_strategies(), load_blueprints(store))


def _kept_model(store: Lake, key: str) -> str:
    """The content hash of a model strategy the leaderboard keeps; NoDataError naming the key otherwise."""
    h = model_eval.kept_models(store).get(key)
    if h is None:
        raise NoDataError(f"strategy {key}: not kept by models/model_leaderboard (any more)")
    return h


def backtest_partition(task: StrategyTask) -> dict[str, pl.DataFrame] | NoData:
    """Tables (trades, orders, fills, equity, risk_events, metrics, metrics_by_regime; signal_reasons for strategies
    that declare reasons) of one strategy's realistic backtest."""
    store = task_lake(task.lake_root)
    instruments, costs = universe().instruments, load_costs()
    if strategies.parse_key(task.key)[0] == "model":
        try:
            h = _kept_model(store, task.key)
            return book_runs.result_tables(model_strategies.run_model_strategy(store, task.key, instruments, costs), h)
        except NoDataError as exc:
            return NoData(str(exc))
    try:
        strategy = _strategy(store, task.key)
        runs = (
            book_runs.run_json_strategy(store, strategy, instruments, costs) if isinstance(strategy, StrategySpec)
            else book_runs.run_blueprint(store, strategy, instruments, costs)
        )  # fmt: skip
    except NoDataError as exc:
        return NoData(str(exc))
    out = book_runs.result_tables(runs, strategies.content_hash(strategy))
    out["metrics_by_regime"] = book_runs.metrics_by_regime(store, runs, load_regimes())
    out[LOOKAHEAD] = pl.DataFrame([lookahead_of(store, strategy, instruments, costs, runs).metadata()])
    return out


LOOKAHEAD = "lookahead"  # the outcome's one-row report of the truncation check (not a lake table)
LOOKAHEAD_CUTS = (0.7,)  # where the history is cut: the run is repeated once per cut


def lookahead_of(
    store: Lake,
    strategy: StrategySpec | Blueprint,
    instruments: Sequence[Instrument],
    costs: CostSpec,
    runs: list[book_runs.BookRun],
) -> LookaheadReport:
    """The strategy re-run on its history cut at LOOKAHEAD_CUTS: the same orders and fills before each cut."""
    full = {r.book: (r.result.orders, r.result.fills) for r in runs}
    times = pl.concat([r.bars.select(TS) for r in runs])[TS]

    def rerun(cut: datetime | None) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
        try:
            if isinstance(strategy, StrategySpec):
                again = book_runs.run_json_strategy(store, strategy, instruments, costs, until=cut)
            else:
                again = book_runs.run_blueprint(store, strategy, instruments, costs, window=(times.min(), cut))
        except NoDataError:
            return {}
        return {r.book: (r.result.orders, r.result.fills) for r in again}

    return strategy_lookahead(rerun, full, times, LOOKAHEAD_CUTS)


def walkforward_partition(task: StrategyTask) -> tuple[pl.DataFrame, pl.DataFrame] | NoData:
    """(summary, folds) of one strategy's rolling walk-forward."""
    store = task_lake(task.lake_root)
    instruments, costs = universe().instruments, load_costs()
    if strategies.parse_key(task.key)[0] == "model":
        try:
            h = _kept_model(store, task.key)
            return model_strategies.walkforward_model(store, task.key, instruments, h, costs)
        except NoDataError as exc:
            return NoData(str(exc))
    try:
        strategy = _strategy(store, task.key)
        return (
            walkforward_runs.walkforward_json(store, strategy, instruments) if isinstance(strategy, StrategySpec)
            else walkforward_runs.walkforward_blueprint(store, strategy, instruments, costs)
        )  # fmt: skip
    except NoDataError as exc:
        return NoData(str(exc))
