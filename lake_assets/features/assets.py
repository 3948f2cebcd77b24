"""Feature layer assets: per-instrument features, window embeddings, cross-instrument context, market context.

Lookback reaches into earlier months, never later ones: each instrument-month (and each month of context) declares the
`bars` partitions its warm-up reads (`partitions.lookback_mapping`), so a corrected month re-runs exactly the months
whose warm-up includes it.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets import tables
from lake_assets.asset_metadata import frame_metadata
from lake_assets.features.calendar import load_calendar_spec
from lake_assets.features.catalog import FeatureCatalog, load_feature_specs, required_lookback_bars
from lake_assets.features.compute import compute_features, nan_ratio_report, window_embeddings
from lake_assets.features.context import (
    benchmarks_from_universe,
    compute_context_features,
    own_underlying_benchmark,
)
from lake_assets.features.market_context import compute_market_context
from lake_assets.markdown import md_table
from lake_assets.months import month_bounds
from lake_assets.partitions import (
    instrument_month_key,
    instrument_month_partitions,
    instrument_months,
    lookback_mapping,
    month_context_mapping,
    month_instruments,
    month_partitions,
)
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.specs import universe
from lake_assets.vocabulary import INSTRUMENT, TIMEFRAMES, TS
from resources.lake import LakeResource, WarehouseResource

GROUP = "features"
# warm-up bars a month's features read before it, per base timeframe (spec windows given as durations differ in bars)
FEATURE_LOOKBACK = {tf: required_lookback_bars(load_feature_specs(), tf) for tf in TIMEFRAMES}
EMBEDDING_LOOKBACK = 64
PREVIEW = [TS, INSTRUMENT, "ret_1", "rv_48", "vol_regime", "funding_z", "carry_state", "rsi_14", "basis_bps"]


def _code_version() -> str:
    return f"features-1-{load_feature_specs().spec_hash}-{load_calendar_spec().spec_hash}"


def features_for(bars: pl.DataFrame, catalog: FeatureCatalog, month: str) -> pl.DataFrame:
    """`catalog` is the instrument's timeframe's (`FeatureCatalog.for_timeframe`)."""
    return compute_features(bars, catalog, target_start=month_bounds(month)[0], timeframe=catalog.timeframe)


def lookahead_check(bars: pl.DataFrame, catalog: FeatureCatalog, month: str, full: pl.DataFrame) -> dict[str, Any]:
    """Recompute the first half of the month without the second half: the rows must be identical."""
    start, end = month_bounds(month)
    cut = start + (min(end, bars[TS].max() + timedelta(microseconds=1)) - start) / 2  # type: ignore[operator]
    truncated = compute_features(bars.filter(pl.col(TS) < cut), catalog, target_start=start,
                                 timeframe=catalog.timeframe)  # fmt: skip
    past_full = full.filter(pl.col(TS) < cut)
    same = truncated.equals(past_full, null_equal=True)
    diff_cols = [] if same else [c for c in full.columns if not truncated[c].equals(past_full[c], null_equal=True)]
    return {"identical": same, "rows_compared": truncated.height, "cut": cut.isoformat(), "differing": diff_cols[:10]}


@partitioned_asset(
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    code_version=_code_version(),
    deps=[dg.AssetDep("bars", partition_mapping=lookback_mapping(FEATURE_LOOKBACK))],
    kinds={"parquet", "polars"},
    checks=[
        ("no_lookahead", True, "features of a window are identical when later data is removed (judged on each "
                               "instrument's last month of the run)"),
        ("nan_ratio", True, "null share of each feature (outside warm-up and gaps) within spec bounds"),
    ],
)  # fmt: skip
def features(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """Vol regime, carry, funding persistence, microstructure, positioning, basis, TA catalogue and calendar."""
    store = lake.lake()
    spec = load_feature_specs()
    publisher = PartitionPublisher(context, store, GROUP, "features")
    pairs = instrument_months(context)
    last_month = {inst: max(m for i, m in pairs if i == inst) for inst, _ in pairs}
    for inst_id, month in pairs:
        inst = universe().get(inst_id)
        catalog = spec.for_timeframe(inst.base_timeframe)  # durations in the instrument's bars
        lookback = required_lookback_bars(catalog)
        bars = store.reader.with_warmup(tables.BARS, inst, month, lookback)
        out = features_for(bars, catalog, month) if bars.height else pl.DataFrame()
        verdicts = []
        if month == last_month[inst_id] and out.height > 10:
            look = lookahead_check(bars, catalog, month, out)
            verdicts.append(Verdict("no_lookahead", look["identical"], {k: str(v) for k, v in look.items()}))
        else:
            verdicts.append(Verdict("no_lookahead", True, {"judged": False}, "judged on the run's last month"))
        if out.height:
            full_warmup = bars.height - out.height >= lookback  # else the frame starts at the instrument's start
            nan = nan_ratio_report(out, catalog, warmup_rows=0 if full_warmup else None)
            bad = nan.filter(~pl.col("ok"))
            verdicts.append(Verdict("nan_ratio", bad.height == 0, {"violations": bad.height},
                                    samples=md_table(bad.head(10)) if bad.height else ""))  # fmt: skip
        else:
            verdicts.append(Verdict("nan_ratio", True, {"violations": 0}, "no rows"))
        meta = frame_metadata(out, PREVIEW)
        meta["feature_columns"] = dg.MetadataValue.int(len(catalog.columns))
        meta["spec_hash"] = dg.MetadataValue.text(catalog.spec_hash)
        meta["warmup_bars"] = dg.MetadataValue.int(lookback)
        publisher.audit(instrument_month_key(inst_id, month), out, {INSTRUMENT: inst_id, "month": month}, verdicts,
                        meta)  # fmt: skip
    warehouse.refresh()
    yield from publisher.finish()


@partitioned_asset(
    name="window_embeddings",
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    code_version="embeddings-1",
    deps=[dg.AssetDep("bars", partition_mapping=lookback_mapping(EMBEDDING_LOOKBACK))],
    kinds={"parquet", "numpy"},
    checks=[
        ("one_row_per_bar", True, "an embedding row for every bar, none on gap bars"),
    ],
)  # fmt: skip
def window_embeddings_asset(
    context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """Normalised returns of the last 32 and 64 bars as array columns, for similarity search and models."""
    store = lake.lake()
    publisher = PartitionPublisher(context, store, GROUP, "window_embeddings")
    for inst_id, month in instrument_months(context):
        inst = universe().get(inst_id)
        bars = store.reader.with_warmup(tables.BARS, inst, month, EMBEDDING_LOOKBACK)
        start = month_bounds(month)[0]
        out = window_embeddings(bars, (32, 64), target_start=start) if bars.height else pl.DataFrame()
        target = bars.filter(pl.col(TS) >= start) if bars.height else bars
        mismatched = abs(out.height - target.height)
        on_gaps = 0
        if out.height:
            gap_ts = target.filter(pl.col("is_gap")).select(TS)
            on_gaps = out.join(gap_ts, on=TS).filter(pl.col("emb_32").is_not_null()).height
        verdict = Verdict("one_row_per_bar", mismatched == 0 and on_gaps == 0,
                          {"row_mismatch": mismatched, "embeddings_on_gap_bars": on_gaps})  # fmt: skip
        publisher.audit(instrument_month_key(inst_id, month), out, {INSTRUMENT: inst_id, "month": month}, [verdict],
                        {"dagster/row_count": dg.MetadataValue.int(out.height)})  # fmt: skip
    warehouse.refresh()
    yield from publisher.finish()


@partitioned_asset(
    group_name=GROUP,
    partitions_def=month_partitions,
    code_version=_code_version(),
    deps=[dg.AssetDep("bars", partition_mapping=month_context_mapping(FEATURE_LOOKBACK))],
    kinds={"parquet", "polars"},
    checks=[
        ("bounded", True, "correlations in [-1, 1]; one row per instrument bar"),
    ],
)  # fmt: skip
def context_features(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """Rolling correlation and beta to each instrument's benchmark, dispersion, correlation breakdown."""
    store = lake.lake()
    catalog = load_feature_specs()
    benchmarks = benchmarks_from_universe(universe())
    publisher = PartitionPublisher(context, store, GROUP, "context_features")
    for month in context.partition_keys:
        by_inst = {
            i.id: store.reader.with_warmup(tables.BARS, i, month, required_lookback_bars(catalog, i.base_timeframe))
            for i in month_instruments(universe(), month)
        }
        by_inst = {k: v for k, v in by_inst.items() if v.height}
        out = (
            compute_context_features(by_inst, benchmarks, catalog, target_start=month_bounds(month)[0],
                                     own_underlying=own_underlying_benchmark(universe()))
            if by_inst else pl.DataFrame()
        )  # fmt: skip
        out_of_range = out.filter(pl.col("corr_bench").abs() > 1 + 1e-9).height if out.height else 0
        dupes = out.height - out.unique([INSTRUMENT, TS]).height if out.height else 0
        verdict = Verdict("bounded", out_of_range == 0 and dupes == 0,
                          {"out_of_range": out_of_range, "duplicate_rows": dupes})  # fmt: skip
        meta = frame_metadata(out) if out.height else {"dagster/row_count": dg.MetadataValue.int(0)}
        publisher.audit(month, out, {"month": month}, [verdict], meta)
    warehouse.refresh()
    yield from publisher.finish()


@partitioned_asset(
    group_name=GROUP,
    partitions_def=month_partitions,
    code_version=f"market-context-1-{load_calendar_spec().spec_hash}",
    automation_condition=dg.AutomationCondition.on_missing(),
    kinds={"parquet", "polars"},
    checks=[
        ("complete_grid", True, "one row per 5m bar of the month, every bar in a known session"),
    ],
)  # fmt: skip
def market_context(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """Session (Asia/Europe/US), session open/close, funding timestamps, calendar flags, macro windows (5m grid)."""
    store = lake.lake()
    spec = load_calendar_spec()
    publisher = PartitionPublisher(context, store, GROUP, "market_context")
    for month in context.partition_keys:
        start, end = month_bounds(month)
        out = compute_market_context((start, end), spec, bar_period=timedelta(minutes=5))
        expected = int((end - start) / timedelta(minutes=5))
        unknown = out.filter(~pl.col("session").is_in(["asia", "europe", "us"])).height
        verdict = Verdict("complete_grid", out.height == expected and not unknown,
                          {"rows": out.height, "expected": expected, "without_session": unknown})  # fmt: skip
        publisher.audit(month, out, {"month": month}, [verdict], frame_metadata(out))
    warehouse.refresh()
    yield from publisher.finish()


feature_assets = [features, window_embeddings_asset, context_features, market_context]
