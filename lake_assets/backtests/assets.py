"""Backtest assets: `backtests` and `walkforward`, one dynamic `strategy` partition per JSON spec and blueprint.

Thin: each strategy partition is one `partition_work` task (walk-forward tasks are spread over the cores with
`process_map`); the returned tables are written partitioned by strategy, and metrics, plots and the
accounting-identity checks are reported. Each partition's materialization records the content hash of the strategy
it ran (metadata `strategy_hash`, as the tables' `spec_hash` column): strategy_sensor re-runs a partition only when
that hash is not the current one.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.automation import AUTOMATION
from lake_assets.backtests import strategies
from lake_assets.backtests.partition_work import (
    LOOKAHEAD,
    NoData,
    StrategyTask,
    backtest_partition,
    release_lakes,
    walkforward_partition,
)
from lake_assets.backtests.strategy_spec import load_strategies
from lake_assets.discovery.blueprints import load_blueprints
from lake_assets.markdown import md_table
from lake_assets.parallel import process_map
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.specs import spec_hash
from lake_assets.storage.lake import Lake
from resources.lake import LakeResource, WarehouseResource

GROUP = "backtests"
STRATEGY_DIM = "strategy"
strategy_partitions = dg.DynamicPartitionsDefinition(name="strategy")

UPSTREAM_PARTITIONED = ("bars", "features", "raw_funding", "event_registry")
METRIC_PREVIEW = ("strategy", "book", "instruments", "execution", "total_return", "sharpe", "max_drawdown",
                  "n_trades", "win_rate", "fees_paid", "funding_paid", "identity_ok")  # fmt: skip


def _code_version(kind: str) -> str:
    return f"{kind}-1-{spec_hash('costs.yaml', 'strategies', 'walkforward.yaml', 'regimes.yaml')}"


def _catalog(store: Lake) -> dict[str, str]:
    """Every strategy key -> its current content hash (what a partition without output tables ran with)."""
    from lake_assets.backtests.model_eval import kept_models

    return strategies.strategy_catalog(load_strategies(), list(load_blueprints(store).values()), kept_models(store))


def _strategy_hash(key: str, table: pl.DataFrame | None, catalog: dict[str, str]) -> str | None:
    """The hash of the strategy a partition ran, for its materialization: the one its output table carries, else
    (nothing to trade) the current one; a strategy that vanished before its run has none."""
    hashes = table["spec_hash"].drop_nulls().unique() if table is not None and "spec_hash" in table.columns else None
    return str(hashes[0]) if hashes is not None and hashes.len() == 1 else catalog.get(key)


@partitioned_asset(
    group_name=GROUP,
    partitions_def=strategy_partitions,
    code_version=_code_version("backtests"),
    deps=[
        # every strategy reads all of its instruments' history: each partition depends on all upstream partitions
        *(dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in UPSTREAM_PARTITIONED),
        "strategy_blueprints",
    ],
    kinds={"parquet", "polars", "numba"},
    checks=[
        ("accounting_identity", True, "final equity = initial + sum trade PnL - fees - funding; cash + positions = "
                                      "equity at every bar (recomputed from the fills)"),
        ("has_data", True, "the strategy had bars (and events) to trade: no silent zero-return runs"),
        ("has_trades", False, "warns when a strategy never traded"),
        ("no_lookahead", True, "re-run on its history cut at 70%: the same orders and fills before the cut (a "
                               "strategy whose decisions read later bars changes its past)"),
    ],
)  # fmt: skip
def backtests(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """Realistic backtests (spec/costs.yaml cost model, risk caps, funding for perps) of each strategy partition:
    trades, orders, fills, equity, risk events and one metrics row per book (market)."""
    store = lake.lake()
    keys = list(context.partition_keys)
    # in this process, one strategy at a time (its tables are written, then dropped): a worker process saved ~10%
    # here (its start-up and the pickled tables eat the rest) but held another ~0.7 GB; walk-forward, which is
    # compute-bound, does use the workers
    catalog = _catalog(store)
    # the one writer of quality/spec_errors; a bad file's partition fails `has_data`, naming file, key and problem
    strategies.record_spec_errors(store, load_strategies())
    publisher = PartitionPublisher(context, store, GROUP, "backtests")
    identity_cols = ["book", "final_equity", "final_identity_abs_error", "max_abs_error_cash_plus_positions",
                     "identity_ok"]  # fmt: skip
    try:
        for key in keys:
            outcome = backtest_partition(StrategyTask(str(store.root), key))
            meta: dict[str, Any] = {strategies.STRATEGY_HASH: _strategy_hash(key, None, catalog)}
            if isinstance(outcome, NoData):
                context.log.error(outcome.message)
                verdicts = [Verdict("has_data", False, {"reason": outcome.message}, outcome.message),
                            Verdict("accounting_identity", True, {"books_checked": 0}, "nothing to check"),
                            Verdict("no_lookahead", True, {"judged": False}, "nothing to check")]  # fmt: skip
                publisher.audit(key, None, {STRATEGY_DIM: key}, verdicts, {k: v for k, v in meta.items() if v})
                continue
            look = outcome.pop(LOOKAHEAD, None)  # a report, not a table
            m = outcome["metrics"]
            broken = m.filter(~pl.col("identity_ok"))
            no_trades = m.filter(pl.col("n_trades") == 0)
            verdicts = [
                Verdict("has_data", True, {"books": m.height}),
                Verdict("accounting_identity", broken.height == 0 and m.height > 0,
                        {"books_checked": m.height, "books_failing": broken.height},
                        samples=md_table(broken.select(identity_cols)) if broken.height else ""),
                Verdict("has_trades", no_trades.height == 0, {"books_without_trades": no_trades.height,
                        "books": ", ".join(no_trades["book"].cast(pl.String).to_list()) or "none"}),
                Verdict("no_lookahead", bool(look["identical"][0]), look.row(0, named=True))
                if look is not None else
                Verdict("no_lookahead", True, {"judged": False}, "model strategies trade out-of-sample predictions "
                                                                 "of purged walk-forward folds"),
            ]  # fmt: skip
            meta[strategies.STRATEGY_HASH] = _strategy_hash(key, m, catalog)
            meta["dagster/row_count"] = dg.MetadataValue.int(m.height)
            meta["metrics"] = dg.MetadataValue.md(md_table(m.select([c for c in METRIC_PREVIEW if c in m.columns])))
            publisher.audit(key, None, {STRATEGY_DIM: key}, verdicts, {k: v for k, v in meta.items() if v},
                            tables=dict(outcome.items()))  # fmt: skip
            del outcome
    finally:
        release_lakes()  # the strategies' shared instrument bars, held for this run only
    warehouse.refresh()
    yield from publisher.finish()


@partitioned_asset(
    group_name=GROUP,
    partitions_def=strategy_partitions,
    code_version=_code_version("walkforward"),
    deps=["backtests"],
    kinds={"parquet", "optuna"},
    checks=[
        ("statistics_valid", True, "PBO, PSR and DSR in [0, 1]; test windows after their train windows, disjoint; "
                                   "the strategy had data"),
    ],
)  # fmt: skip
def walkforward(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """Rolling walk-forward per strategy and book: in-sample re-optimisation (JSON strategies with parameters) or
    the fixed rule per fold (blueprints), OOS metrics, PBO (CSCV), PSR/DSR and PSI drift."""
    store = lake.lake()
    keys = list(context.partition_keys)
    catalog = _catalog(store)
    try:
        outcomes = process_map(walkforward_partition, [StrategyTask(str(store.root), k) for k in keys])
    finally:
        release_lakes()
    publisher = PartitionPublisher(context, store, GROUP, "walkforward")
    preview = ("book", "applicable", "n_folds", "oos_sharpe", "oos_total_return", "pbo", "dsr", "max_psi", "reason")
    for key, outcome in zip(keys, outcomes, strict=True):
        dims = {STRATEGY_DIM: key}
        if isinstance(outcome, NoData):
            context.log.error(outcome.message)
            h = _strategy_hash(key, None, catalog)
            publisher.audit(key, None, dims, [Verdict("statistics_valid", False, {"reason": outcome.message},
                                                      outcome.message)],
                            {strategies.STRATEGY_HASH: h} if h else {})  # fmt: skip
            continue
        summary, folds = outcome
        bad_stats = summary.filter(
            pl.any_horizontal([(pl.col(c) < 0) | (pl.col(c) > 1) for c in ("pbo", "psr", "dsr")]).fill_null(False)
        )
        bad_folds = folds.filter(
            (pl.col("test_start") < pl.col("train_end"))
            | (pl.col("test_start") < pl.col("test_end").shift(1).over("strategy", "book")).fill_null(False)
        )
        verdict = Verdict("statistics_valid", bad_stats.height == 0 and bad_folds.height == 0,
                          {"rows_out_of_range": bad_stats.height, "overlapping_folds": bad_folds.height})  # fmt: skip
        meta: dict[str, Any] = {"dagster/row_count": dg.MetadataValue.int(summary.height), "folds": folds.height,
                                "summary": dg.MetadataValue.md(md_table(summary.select(preview)))}  # fmt: skip
        h = _strategy_hash(key, summary, catalog)
        if h:
            meta[strategies.STRATEGY_HASH] = h
        publisher.audit(key, summary, dims, [verdict], meta, tables={"walkforward_folds": folds})
    warehouse.refresh()
    yield from publisher.finish()


@dg.asset(
    group_name="models",
    code_version=f"model-leaderboard-1-{spec_hash('models')}",
    deps=["model_runs"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "vectorbt", "numba"},
    check_specs=[dg.AssetCheckSpec("scores_valid", asset="model_leaderboard", blocking=True,
                                   description="every score at most 1 (a negative Sharpe scores below 0.4 x BA); "
                                               "kept exactly when score >= keep_min_score")],
)  # fmt: skip
def model_leaderboard(lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every model variant's best model backtested on its OOS folds (vectorbt screen, qlake's engine with realistic
    costs) and ranked by 0.4 x balanced accuracy + 0.6 x min(Sharpe / 3, 1); models scoring >= 0.6 are kept and
    become `strategy` partitions model.<variant>."""
    from lake_assets.asset_metadata import check_result, png_metadata
    from lake_assets.backtests import model_eval
    from lake_assets.models.spec_model import model_spec

    store = lake.lake()
    spec = model_spec().leaderboard
    runs = store.read_all("models", "model_runs")
    rows = []
    for run in runs.iter_rows(named=True) if runs.height else []:
        preds = model_eval.model_predictions(store, run["variant"])
        rows.append(model_eval.evaluate_variant(store, run, preds, spec))
    board = model_eval.leaderboard(rows)
    store.write(board, "models", "model_leaderboard")
    warehouse.refresh()
    scores = board["score"].drop_nulls()
    bad = int((scores > 1).sum()) + board.filter(
        pl.col("kept") != (pl.col("score").fill_null(0) >= spec.keep_min_score)).height  # fmt: skip
    shown = board.select("rank", "variant", "balanced_accuracy", "fast_sharpe", "sharpe", "score", "kept")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": board.height,
            "kept": int(board["kept"].sum()) if board.height else 0,
            "leaderboard": dg.MetadataValue.md(md_table(shown, n=40) if board.height else "_no model runs_"),
            "plot": png_metadata(model_eval.leaderboard_plot(board, spec.keep_min_score)),
        },
        check_results=[check_result("scores_valid", bad == 0, {"violations": bad, "rows": board.height})],
    )


backtest_assets = [backtests, walkforward, model_leaderboard]
