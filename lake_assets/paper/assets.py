"""The `paper_trading` asset: the paper loop (spec/paper.yaml) over the lake's bars, run by `paper_sensor` whenever
a `bars` partition of the session's instruments is materialized. Thin: reads bars and funding with `store.reader`,
runs `PaperLoop` (which commits its audit tables atomically, table by table, cursor last), reports metadata (latest
positions, today's PnL, rejection counts, stage latencies) and checks."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from lake_assets import tables
from lake_assets.backtests.book_runs import instrument_funding
from lake_assets.backtests.costs import load_costs
from lake_assets.backtests.strategy_spec import load_strategy, strategies_dir
from lake_assets.features.catalog import load_feature_specs
from lake_assets.markdown import md_table
from lake_assets.paper.loop import PaperLoop
from lake_assets.paper.spec import load_paper_spec
from lake_assets.paper.store import LakePaperStore
from lake_assets.specs import spec_hash
from lake_assets.vocabulary import TS
from resources.gate import GateResource
from resources.lake import LakeResource, WarehouseResource


@dg.asset(
    group_name="paper",
    code_version=f"paper-1-{spec_hash('paper.yaml', 'trade_gate.yaml', 'strategies', 'costs.yaml')}",
    deps=[dg.AssetDep("bars", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("raw_funding", partition_mapping=dg.AllPartitionMapping())],  # fmt: skip
    kinds={"parquet", "polars", "numba"},
    resource_defs={"gate": GateResource()},
    check_specs=[
        dg.AssetCheckSpec("fills_once", asset="paper_trading", blocking=False,
                          description="no fill recorded twice (restarts resume from the cursor)"),
        dg.AssetCheckSpec("decisions_complete", asset="paper_trading", blocking=False,
                          description="one decision per bar and instrument up to the cursor"),
    ],
)  # fmt: skip
def paper_trading(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource, gate: GateResource
) -> Iterator[Any]:
    """Paper trading: every new bar -> features -> strategy decision with reasons -> gate -> risk -> simulated
    execution (the backtests' engine and cost model) -> audit tables (paper_signals, gate_decisions, risk_checks,
    paper_orders, paper_fills, paper_positions, paper_pnl, paper_telemetry)."""
    store = lake.lake()
    spec = load_paper_spec()
    strategy = load_strategy(strategies_dir() / f"{spec.strategy}.json")
    paper = LakePaperStore(store, spec.session)
    loop = PaperLoop(spec, strategy, load_costs(), gate.gate(), paper, load_feature_specs())
    bars = {i: store.reader.instrument(tables.BARS, i) for i in spec.instruments}
    funding = instrument_funding(store, list(spec.instruments)) if strategy.costs.include_funding else None
    summary = loop.run(bars, funding)
    context.log.info(f"paper {spec.session}: {summary.ticks} bars, {summary.entries} entries, "
                     f"{summary.rejections} rejections, {summary.new_fills} new fills")  # fmt: skip
    positions = paper.read("paper_positions")
    latest = positions.filter(pl.col(TS) == positions[TS].max()) if positions.height else positions
    pnl = paper.read("paper_pnl")
    checks = paper.read("risk_checks")
    fills = paper.read("paper_fills")
    signals = paper.read("paper_signals")
    warehouse.refresh()
    meta: dict[str, Any] = {
        "bars_processed": summary.ticks,
        "new_fills": summary.new_fills,
        "entries": summary.entries,
        "rejections": summary.rejections,
        "equity": float(pnl["equity"][-1]) if pnl.height else None,
        "today_pnl": float(pnl["day_pnl"][-1]) if pnl.height else None,
        "latest_positions": dg.MetadataValue.md(md_table(latest.select(TS, "instrument", "position"))
                                                if latest.height else "_none_"),  # fmt: skip
        "rejections_by_check": dg.MetadataValue.md(md_table(checks.group_by("check").len().sort("len", descending=True))
                                                   if checks.height else "_none_"),  # fmt: skip
        "stage_ms": dg.MetadataValue.json({k: round(v, 2) for k, v in summary.stage_ms.items()}),
    }
    yield dg.MaterializeResult(metadata={k: v for k, v in meta.items() if v is not None})
    once = fills.height == 0 or bool(fills["fill_id"].is_unique().all())
    yield dg.AssetCheckResult(check_name="fills_once", passed=once, metadata={"fills": fills.height})
    per_bar = signals.group_by(TS).len() if signals.height else signals
    complete = signals.height == 0 or bool((per_bar["len"] == len(spec.instruments)).all())
    yield dg.AssetCheckResult(check_name="decisions_complete", passed=complete, metadata={"decisions": signals.height})


paper_assets = [paper_trading]
paper_job = dg.define_asset_job("paper_trading_job", selection=[paper_trading])
