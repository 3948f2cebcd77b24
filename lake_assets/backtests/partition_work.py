"""One strategy partition's backtest or walk-forward as a self-contained task (no Dagster), so the assets can hand
the partitions of a run to `process_map` and use every core.

A task carries only the lake root and the partition key; it loads the spec, blueprints, universe and cost model
itself (milliseconds) and returns the tables to write, or the reason there was nothing to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from lake_assets.backtests import runner
from lake_assets.backtests.costs import load_costs
from lake_assets.backtests.strategy_spec import StrategySpec, load_strategies
from lake_assets.discovery.blueprints import Blueprint, load_blueprints
from lake_assets.specs import universe
from lake_assets.storage.lake import Lake

__all__ = ["NoData", "StrategyTask", "backtest_partition", "resolve", "walkforward_partition"]


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
    kind, name = runner.parse_key(key)
    if kind == "json":
        if name not in specs:
            error = runner.spec_errors(specs).get(key)
            if error is not None:
                raise runner.NoDataError(f"strategy {key}: invalid spec, not run: {error}")
            raise runner.NoDataError(f"strategy {key}: spec/strategies/{name}.json does not exist (any more)")
        return specs[name]
    if name not in blueprints:
        raise runner.NoDataError(f"strategy {key}: not in discovery/strategy_blueprints/blueprints.jsonl (any more)")
    return blueprints[name]


def _strategy(store: Lake, key: str) -> StrategySpec | Blueprint:
    return resolve(key, load_strategies(), load_blueprints(store))


def backtest_partition(task: StrategyTask) -> dict[str, pl.DataFrame] | NoData:
    """Tables (trades, orders, fills, equity, risk_events, metrics) of one strategy's realistic backtest."""
    store = Lake(task.lake_root)
    instruments, costs = universe().instruments, load_costs()
    try:
        strategy = _strategy(store, task.key)
        runs = (
            runner.run_json_strategy(store, strategy, instruments, costs) if isinstance(strategy, StrategySpec)
            else runner.run_blueprint(store, strategy, instruments, costs)
        )  # fmt: skip
    except runner.NoDataError as exc:
        return NoData(str(exc))
    return runner.result_tables(runs, runner.content_hash(strategy))


def walkforward_partition(task: StrategyTask) -> tuple[pl.DataFrame, pl.DataFrame] | NoData:
    """(summary, folds) of one strategy's rolling walk-forward."""
    store = Lake(task.lake_root)
    instruments, costs = universe().instruments, load_costs()
    try:
        strategy = _strategy(store, task.key)
        return (
            runner.walkforward_json(store, strategy, instruments) if isinstance(strategy, StrategySpec)
            else runner.walkforward_blueprint(store, strategy, instruments, costs)
        )  # fmt: skip
    except runner.NoDataError as exc:
        return NoData(str(exc))
