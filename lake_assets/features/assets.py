"""Feature layer assets: per-instrument features, window embeddings, cross-instrument context, market context.

Lookback reaches into earlier months (declared as a month-offset partition mapping on `bars`), never later ones.
"""

from datetime import timedelta
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.features.calendar import load_calendar_spec
from lake_assets.features.catalog import FeatureCatalog, load_feature_specs, required_lookback_bars
from lake_assets.features.context import benchmarks_from_universe, compute_context_features
from lake_assets.features.core import compute_features, nan_ratio_report, window_embeddings
from lake_assets.features.history import BarsHistory
from lake_assets.features.market_context import compute_market_context
from lake_assets.glue import check_result, frame_metadata, md_table
from lake_assets.partitions import (
    INSTRUMENT_DIM,
    MONTH_DIM,
    instrument_month_partitions,
    instrument_months,
    month_partitions,
)
from lake_assets.raw.ingest import month_bounds
from lake_assets.specs import Instrument, universe
from lake_assets.storage.warehouse import LakeTable, register_table
from lake_assets.vocabulary import INSTRUMENT, TS
from resources.lake import LakeResource, WarehouseResource

GROUP = "features"
AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
LOOKBACK_MONTHS = 2  # 5m warm-up (~30 days) in months; daily instruments read their whole (short) history

for _t in (
    LakeTable(GROUP, "features", 2),
    LakeTable(GROUP, "window_embeddings", 2),
    LakeTable(GROUP, "context_features", 1),
    LakeTable(GROUP, "market_context", 1),
):
    register_table(_t)


def _code_version() -> str:
    return f"features-1-{load_feature_specs().spec_hash}-{load_calendar_spec().spec_hash}"


def _bars_lookback_dep() -> dg.AssetDep:
    return dg.AssetDep(
        "bars",
        partition_mapping=dg.MultiPartitionMapping(
            {
                MONTH_DIM: dg.DimensionPartitionMapping(
                    MONTH_DIM, dg.TimeWindowPartitionMapping(start_offset=-LOOKBACK_MONTHS, end_offset=0)
                ),
                INSTRUMENT_DIM: dg.DimensionPartitionMapping(INSTRUMENT_DIM, dg.IdentityPartitionMapping()),
            }
        ),
    )


def features_for(bars: pl.DataFrame, catalog: FeatureCatalog, month: str) -> pl.DataFrame:
    return compute_features(bars, catalog, target_start=month_bounds(month)[0])


def lookahead_check(bars: pl.DataFrame, catalog: FeatureCatalog, month: str, full: pl.DataFrame) -> dict[str, Any]:
    """Recompute the first half of the month without the second half: the rows must be identical."""
    start, end = month_bounds(month)
    cut = start + (min(end, bars[TS].max() + timedelta(microseconds=1)) - start) / 2  # type: ignore[operator]
    truncated = compute_features(bars.filter(pl.col(TS) < cut), catalog, target_start=start)
    past_full = full.filter(pl.col(TS) < cut)
    same = truncated.equals(past_full, null_equal=True)
    diff_cols = [] if same else [c for c in full.columns if not truncated[c].equals(past_full[c], null_equal=True)]
    return {"identical": same, "rows_compared": truncated.height, "cut": cut.isoformat(), "differing": diff_cols[:10]}


@dg.asset(
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=_code_version(),
    deps=[_bars_lookback_dep()],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec("no_lookahead", asset="features", blocking=True,
                          description="features of a window are identical when later data is removed"),
        dg.AssetCheckSpec("nan_ratio", asset="features", blocking=True,
                          description="null share of each feature (outside warm-up and gaps) within spec bounds"),
    ],
)  # fmt: skip
def features(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Vol regime, carry, funding persistence, microstructure, positioning, basis, TA catalogue and calendar."""
    store = lake.lake()
    history = BarsHistory(store)
    catalog = load_feature_specs()
    lookback = required_lookback_bars(catalog)
    previews, lookahead, rows, nan_reports = [], [], [], []
    n_rows = 0
    time_range: list[object] = []
    pairs = instrument_months(context)
    last_month = {inst: max(m for i, m in pairs if i == inst) for inst, _ in pairs}
    for inst_id, month in pairs:
        inst = universe().get(inst_id)
        bars = history.read(inst, month, lookback)
        out = features_for(bars, catalog, month) if bars.height else pl.DataFrame()
        store.write(out, GROUP, "features", {INSTRUMENT: inst_id, "month": month})
        if out.height:  # keep a preview, not the whole run's features, in memory (a head() would share buffers)
            previews.append(pl.DataFrame(out.head(3).to_dicts(), schema=out.schema))
            n_rows += out.height
            time_range += [out[TS].min(), out[TS].max()]
            full_warmup = bars.height - out.height >= lookback  # else the frame starts at the instrument's start
            nan_reports.append(nan_ratio_report(out, catalog, warmup_rows=0 if full_warmup else None))
        rows.append({"instrument": inst_id, "month": month, "rows": out.height})
        if month == last_month[inst_id] and out.height > 10:
            lookahead.append({"instrument": inst_id, "month": month, **lookahead_check(bars, catalog, month, out)})
    warehouse.refresh()
    preview = pl.concat(previews, how="diagonal_relaxed") if previews else pl.DataFrame()
    nan = pl.concat(nan_reports) if nan_reports else pl.DataFrame({"ok": []}, schema={"ok": pl.Boolean})
    bad_nan = nan.filter(~pl.col("ok"))
    look_ok = all(r["identical"] for r in lookahead)
    meta = frame_metadata(preview, [TS, INSTRUMENT, "ret_1", "rv_48", "vol_regime", "funding_z", "carry_state",
                                    "rsi_14", "basis_bps"]) if preview.height else {}  # fmt: skip
    meta["dagster/row_count"] = dg.MetadataValue.int(n_rows)
    if time_range:
        meta["time_range"] = dg.MetadataValue.text(f"{min(time_range)} .. {max(time_range)}")  # type: ignore[type-var]
    meta["feature_columns"] = dg.MetadataValue.int(len(catalog.columns))
    meta["partitions"] = dg.MetadataValue.md(md_table(pl.DataFrame(rows), n=60))
    meta["spec_hash"] = dg.MetadataValue.text(catalog.spec_hash)
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            check_result("no_lookahead", look_ok, {"checks": md_table(pl.DataFrame(lookahead).drop("differing"))
                                                   if lookahead else "_nothing to check_"}),
            check_result("nan_ratio", bad_nan.height == 0, {"violations": bad_nan.height,
                                                            "worst": md_table(bad_nan.head(10))}),
        ],
    )  # fmt: skip


@dg.asset(
    name="window_embeddings",
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version="embeddings-1",
    deps=[_bars_lookback_dep()],
    automation_condition=AUTOMATION,
    kinds={"parquet", "numpy"},
    check_specs=[
        dg.AssetCheckSpec(
            "one_row_per_bar",
            asset="window_embeddings",
            blocking=True,
            description="an embedding row for every bar, none on gap bars",
        )
    ],
)
def window_embeddings_asset(
    context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Normalised returns of the last 32 and 64 bars as array columns, for similarity search and models."""
    store = lake.lake()
    history = BarsHistory(store)
    total, mismatched, on_gaps = 0, 0, 0
    for inst_id, month in instrument_months(context):
        inst = universe().get(inst_id)
        bars = history.read(inst, month, 64)
        start = month_bounds(month)[0]
        out = window_embeddings(bars, (32, 64), target_start=start) if bars.height else pl.DataFrame()
        store.write(out, GROUP, "window_embeddings", {INSTRUMENT: inst_id, "month": month})
        total += out.height
        target = bars.filter(pl.col(TS) >= start) if bars.height else bars
        mismatched += abs(out.height - target.height)
        if out.height:
            gap_ts = target.filter(pl.col("is_gap")).select(TS)
            on_gaps += out.join(gap_ts, on=TS).filter(pl.col("emb_32").is_not_null()).height
    warehouse.refresh()
    return dg.MaterializeResult(
        metadata={"dagster/row_count": total},
        check_results=[check_result("one_row_per_bar", mismatched == 0 and on_gaps == 0,
                                    {"row_mismatch": mismatched, "embeddings_on_gap_bars": on_gaps})],
    )  # fmt: skip


def _month_instruments(month: str) -> list[Instrument]:
    start, end = month_bounds(month)
    return [
        i for i in universe().instruments
        if i.start < end.date() and (i.end is None or i.end >= start.date())
    ]  # fmt: skip


@dg.asset(
    group_name=GROUP,
    partitions_def=month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=_code_version(),
    deps=[dg.AssetDep("bars", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(MONTH_DIM))],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars"},
    check_specs=[dg.AssetCheckSpec("bounded", asset="context_features", blocking=True,
                                   description="correlations in [-1, 1]; one row per instrument bar")],
)  # fmt: skip
def context_features(
    context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Rolling correlation and beta to each instrument's benchmark, dispersion, correlation breakdown."""
    store = lake.lake()
    catalog = load_feature_specs()
    lookback = required_lookback_bars(catalog)
    benchmarks = benchmarks_from_universe(universe())
    history = BarsHistory(store)
    frames = []
    for month in context.partition_keys:
        insts = _month_instruments(month)
        by_inst = {i.id: history.read(i, month, lookback) for i in insts}
        by_inst = {k: v for k, v in by_inst.items() if v.height}
        out = (
            compute_context_features(by_inst, benchmarks, catalog, target_start=month_bounds(month)[0])
            if by_inst else pl.DataFrame()
        )  # fmt: skip
        store.write(out, GROUP, "context_features", {"month": month})
        if out.height:
            frames.append(out)
    warehouse.refresh()
    data = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame({"corr_bench": []})
    out_of_range = data.filter(pl.col("corr_bench").abs() > 1 + 1e-9).height if data.height else 0
    dupes = data.height - data.unique([INSTRUMENT, TS]).height if data.height else 0
    return dg.MaterializeResult(
        metadata=frame_metadata(data) if data.height else {"dagster/row_count": 0},
        check_results=[check_result("bounded", out_of_range == 0 and dupes == 0,
                                    {"out_of_range": out_of_range, "duplicate_rows": dupes})],
    )  # fmt: skip


@dg.asset(
    group_name=GROUP,
    partitions_def=month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=f"market-context-1-{load_calendar_spec().spec_hash}",
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "complete_grid",
            asset="market_context",
            blocking=True,
            description="one row per 5m bar of the month, every bar in a known session",
        )
    ],
)
def market_context(
    context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Session (Asia/Europe/US), session open/close, funding timestamps, calendar flags, macro windows (5m grid)."""
    store = lake.lake()
    spec = load_calendar_spec()
    total, problems = 0, []
    out = pl.DataFrame()
    for month in context.partition_keys:
        start, end = month_bounds(month)
        out = compute_market_context((start, end), spec, bar_period=timedelta(minutes=5))
        store.write(out, GROUP, "market_context", {"month": month})
        total += out.height
        expected = int((end - start) / timedelta(minutes=5))
        unknown = out.filter(~pl.col("session").is_in(["asia", "europe", "us"])).height
        if out.height != expected or unknown:
            problems.append(f"{month}: {out.height} rows (expected {expected}), {unknown} without a session")
    warehouse.refresh()
    meta = frame_metadata(out) if out.height else {}
    meta["dagster/row_count"] = dg.MetadataValue.int(total)
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[check_result("complete_grid", not problems, {"problems": "; ".join(problems) or "none"})],
    )


feature_assets = [features, window_embeddings_asset, context_features, market_context]
