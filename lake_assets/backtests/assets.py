"""Backtest assets: `backtests` and `walkforward`, one dynamic `strategy` partition per JSON spec and blueprint.

Thin: each strategy partition is one `partition_work` task (walk-forward tasks are spread over the cores with
`process_map`); the returned tables are written partitioned by strategy, and metrics, plots and the
accounting-identity checks are reported. Each partition's materialization records the content hash of the strategy
it ran (metadata `strategy_hash`, as the tables' `spec_hash` column): strategy_sensor re-runs a partition only when
that hash is not the current one.
"""

from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.backtests import runner
from lake_assets.backtests.partition_work import NoData, StrategyTask, backtest_partition, walkforward_partition
from lake_assets.backtests.strategy_spec import load_strategies
from lake_assets.discovery.blueprints import load_blueprints
from lake_assets.glue import check_result, md_table, png_metadata
from lake_assets.parallel import process_map
from lake_assets.reports.plots import drawdowns_png, equity_curves_png
from lake_assets.specs import spec_hash
from lake_assets.storage.lake import Lake
from resources.lake import LakeResource, WarehouseResource

GROUP = "backtests"
STRATEGY_DIM = "strategy"
strategy_partitions = dg.DynamicPartitionsDefinition(name="strategy")
AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
TABLES = ("trades", "orders", "fills", "equity", "risk_events", "metrics")

UPSTREAM_PARTITIONED = ("bars", "features", "raw_funding", "event_registry")
METRIC_PREVIEW = ("strategy", "book", "instruments", "execution", "total_return", "sharpe", "max_drawdown",
                  "n_trades", "win_rate", "fees_paid", "funding_paid", "identity_ok")  # fmt: skip


def _code_version(kind: str) -> str:
    return f"{kind}-1-{spec_hash('costs.yaml', 'strategies', 'walkforward.yaml')}"


def _clear(store: Lake, key: str, tables: tuple[str, ...]) -> None:
    for t in tables:
        store.write(pl.DataFrame(), GROUP, t, {STRATEGY_DIM: key})


def _catalog(store: Lake) -> dict[str, str]:
    """Every strategy key -> its current content hash (what a partition without output tables ran with)."""
    return runner.strategy_catalog(load_strategies(), list(load_blueprints(store).values()))


def _record_hash(context: AssetExecutionContext, key: str, table: pl.DataFrame | None, catalog: dict[str, str]) -> None:
    """Record on `key`'s materialization the hash of the strategy it ran: the one its output table carries, else
    (nothing to trade) the current one; a strategy that vanished before its run records none."""
    hashes = table["spec_hash"].drop_nulls().unique() if table is not None and "spec_hash" in table.columns else None
    h = hashes[0] if hashes is not None and hashes.len() == 1 else catalog.get(key)
    if h:
        context.add_asset_metadata({runner.STRATEGY_HASH: h}, partition_key=key)


@dg.asset(
    group_name=GROUP,
    partitions_def=strategy_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=_code_version("backtests"),
    deps=[
        # every strategy reads all of its instruments' history: each partition depends on all upstream partitions
        *(dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in UPSTREAM_PARTITIONED),
        "strategy_blueprints",
    ],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars", "numba"},
    check_specs=[
        dg.AssetCheckSpec("accounting_identity", asset="backtests", blocking=True,
                          description="final equity = initial + sum trade PnL - fees - funding; cash + positions = "
                                      "equity at every bar (recomputed from the fills)"),
        dg.AssetCheckSpec("has_data", asset="backtests", blocking=True,
                          description="every strategy had bars (and events) to trade: no silent zero-return runs"),
        dg.AssetCheckSpec("has_trades", asset="backtests", blocking=False,
                          description="warns when a strategy never traded"),
    ],
)  # fmt: skip
def backtests(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Realistic backtests (spec/costs.yaml cost model, risk caps, funding for perps) of each strategy partition:
    trades, orders, fills, equity, risk events and one metrics row per book (market)."""
    store = lake.lake()
    keys = list(context.partition_keys)
    # in this process, one strategy at a time (its tables are written, then dropped): a worker process saved ~10%
    # here (its start-up and the pickled tables eat the rest) but held another ~0.7 GB; walk-forward, which is
    # compute-bound, does use the workers
    metrics, failures = [], {}
    catalog = _catalog(store)
    try:
        for key in keys:
            outcome = backtest_partition(StrategyTask(str(store.root), key))
            if isinstance(outcome, NoData):
                failures[key] = outcome.message
                context.log.error(outcome.message)
                _clear(store, key, TABLES)
                _record_hash(context, key, None, catalog)
                continue
            for name, df in outcome.items():
                store.write(df, GROUP, name, {STRATEGY_DIM: key})
            metrics.append(outcome["metrics"])
            _record_hash(context, key, outcome["metrics"], catalog)
            del outcome
    finally:
        runner.clear_bars_cache()  # the strategies' shared instrument bars, held for this run only
    warehouse.refresh()
    m = pl.concat(metrics, how="diagonal_relaxed") if metrics else pl.DataFrame()
    meta: dict[str, Any] = {
        "dagster/row_count": m.height,
        "strategies": len(context.partition_keys),
        "metrics": dg.MetadataValue.md(
            md_table(m.select([c for c in METRIC_PREVIEW if c in m.columns]), n=40) if m.height else "_no backtests_"
        ),  # fmt: skip
    }
    top = m.sort("sharpe", descending=True, nulls_last=True).select("strategy", "book").head(8) if m.height else m
    equity = (
        store.read(GROUP, "equity", [{STRATEGY_DIM: k} for k in top["strategy"].unique(maintain_order=True)])
        if top.height else pl.DataFrame()
    )  # fmt: skip
    if equity.height:
        shown = equity.join(top, on=["strategy", "book"], how="inner")
        meta["equity_curves"] = png_metadata(equity_curves_png(shown))
        meta["drawdowns"] = png_metadata(drawdowns_png(shown))
    identity_cols = ["strategy", "book", "final_equity", "final_identity_abs_error",
                     "max_abs_error_cash_plus_positions", "identity_ok"]  # fmt: skip
    broken = m.filter(~pl.col("identity_ok")) if m.height else m
    no_trades = m.filter(pl.col("n_trades") == 0) if m.height else m
    failure_md = "\n".join(f"- {msg}" for msg in failures.values()) or "none"
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            check_result("accounting_identity", broken.height == 0 and m.height > 0,
                         {"books_checked": m.height, "books_failing": broken.height,
                          "details": md_table((broken if broken.height else m).select(identity_cols), n=40)
                          if m.height else "_no books_"}),
            check_result("has_data", not failures, {"failures": f"\n{failure_md}" if failures else "none",
                                                    "strategies_without_data": len(failures)}),
            check_result("has_trades", no_trades.height == 0,
                         {"books_without_trades": no_trades.height,
                          "books": ", ".join(f"{r['strategy']}[{r['book']}]" for r in no_trades.iter_rows(named=True))
                          or "none"}, warn_only=True),
        ],
    )  # fmt: skip


@dg.asset(
    group_name=GROUP,
    partitions_def=strategy_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=_code_version("walkforward"),
    deps=["backtests"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "optuna"},
    check_specs=[
        dg.AssetCheckSpec("statistics_valid", asset="walkforward", blocking=True,
                          description="PBO, PSR and DSR in [0, 1]; test windows after their train windows, disjoint"),
    ],
)  # fmt: skip
def walkforward(
    context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Rolling walk-forward per strategy and book: in-sample re-optimisation (JSON strategies with parameters) or
    the fixed rule per fold (blueprints), OOS metrics, PBO (CSCV), PSR/DSR and PSI drift."""
    store = lake.lake()
    keys = list(context.partition_keys)
    catalog = _catalog(store)
    try:
        outcomes = process_map(walkforward_partition, [StrategyTask(str(store.root), k) for k in keys])
    finally:
        runner.clear_bars_cache()
    summaries, fold_tables, failures = [], [], {}
    for key, outcome in zip(keys, outcomes, strict=True):
        if isinstance(outcome, NoData):
            failures[key] = outcome.message
            context.log.error(outcome.message)
            _clear(store, key, ("walkforward", "walkforward_folds"))
            _record_hash(context, key, None, catalog)
            continue
        summary, folds = outcome
        _record_hash(context, key, summary, catalog)
        store.write(summary, GROUP, "walkforward", {STRATEGY_DIM: key})
        store.write(folds, GROUP, "walkforward_folds", {STRATEGY_DIM: key})
        summaries.append(summary)
        fold_tables.append(folds)
    warehouse.refresh()
    s = pl.concat(summaries) if summaries else pl.DataFrame(schema=runner.WF_SUMMARY_SCHEMA)
    f = pl.concat(fold_tables) if fold_tables else pl.DataFrame(schema=runner.WF_FOLDS_SCHEMA)
    bad_stats = s.filter(
        pl.any_horizontal([(pl.col(c) < 0) | (pl.col(c) > 1) for c in ("pbo", "psr", "dsr")]).fill_null(False)
    )
    bad_folds = f.filter(
        (pl.col("test_start") < pl.col("train_end"))
        | (pl.col("test_start") < pl.col("test_end").shift(1).over("strategy", "book")).fill_null(False)
    )
    preview = ("strategy", "book", "applicable", "n_folds", "oos_sharpe", "oos_total_return", "pbo", "dsr", "max_psi",
               "reason")  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": s.height,
            "summary": dg.MetadataValue.md(md_table(s.select(preview), n=40) if s.height else "_none_"),
            "folds": f.height,
            "failures": dg.MetadataValue.md("\n".join(f"- {v}" for v in failures.values()) or "none"),
        },
        check_results=[
            check_result("statistics_valid", bad_stats.height == 0 and bad_folds.height == 0 and not failures,
                         {"rows_out_of_range": bad_stats.height, "overlapping_folds": bad_folds.height,
                          "strategies_without_data": len(failures)}),
        ],
    )  # fmt: skip


backtest_assets = [backtests, walkforward]
