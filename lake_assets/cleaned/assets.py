"""Cleaned layer: the regular bar grid (`bars`) and its hourly and daily resamples."""

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.asset_metadata import frame_metadata, png_metadata
from lake_assets.checks.expectations import run_expectations_by_partition
from lake_assets.checks.quality import (
    gap_ratio_check,
    load_thresholds,
    staleness_check,
    timestamps_unique_increasing,
)
from lake_assets.cleaned.bars import build_bars, dedupe, resample_bars
from lake_assets.cleaned.plots import price_and_gaps_png
from lake_assets.months import instrument_window, month_bounds, month_key, previous_month
from lake_assets.partitions import (
    bars_inputs_mapping,
    instrument_month_key,
    instrument_month_partitions,
    instrument_months,
    split_key,
)
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.specs import Instrument, spec_hash, universe
from lake_assets.storage.lake import Lake
from lake_assets.trades import trades_to_bars
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    CLOSE,
    INGESTED_AT,
    INSTRUMENT,
    IS_GAP,
    IS_OUTLIER,
    OHLC_VIOLATION,
    RAW_FUNDING_SCHEMA,
    RAW_OHLCV_SCHEMA,
    RAW_OPEN_INTEREST_SCHEMA,
    RAW_TRADES_SCHEMA,
    TIMEFRAMES,
    TS,
)
from resources.lake import LakeResource, WarehouseResource
from resources.market_data import MarketDataResource

GROUP = "cleaned"
CODE_VERSION = f"cleaned-1-{spec_hash('universe.yaml', 'expectations/cleaned.yaml', 'expectations/thresholds.yaml')}"
PREVIEW = [TS, INSTRUMENT, "open", "high", "low", "close", "volume", IS_GAP, "funding_rate", "basis_bps"]


def trading_day_rule(inst: Instrument) -> Callable[[date], bool] | None:
    """Daily equity/index grids hold exchange trading days only; crypto trades every day."""
    if inst.is_crypto:
        return None
    from lake_assets.calendars import holiday_dates

    holidays = set(holiday_dates(inst.calendar or "XNYS", inst.start, inst.end or date.today()))
    return lambda d: d.weekday() < 5 and d not in holidays


def bars_for_partition(
    store: Lake, inst: Instrument, month: str, as_of: datetime
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read the raw partitions one bar partition needs and build it; also returns counts for metadata."""
    window = instrument_window(inst, month)
    if window is None:
        return pl.DataFrame(schema=BARS_SCHEMA), {"instrument": inst.id, "month": month, "bars": 0}
    dims = {INSTRUMENT: inst.id, "month": month}
    prev = {INSTRUMENT: inst.id, "month": previous_month(month)}
    ohlcv, n_dupes = dedupe(store.read("raw", "raw_ohlcv", [dims], RAW_OHLCV_SCHEMA))
    funding = store.read("raw", "raw_funding", [prev, dims], RAW_FUNDING_SCHEMA)
    oi = store.read("raw", "raw_open_interest", [prev, dims], RAW_OPEN_INTEREST_SCHEMA)
    spot = None
    if inst.spot:
        spot, _ = dedupe(store.read("raw", "raw_ohlcv", [{INSTRUMENT: inst.spot, "month": month}], RAW_OHLCV_SCHEMA))
    # raw_trades can hold tens of millions of rows a month: bars are built from a lazy scan, in slices of whole bars
    trades_path = store.partition_path("raw", "raw_trades", dims)
    trade_bars = None
    if trades_path.is_file():
        trade_bars = trades_to_bars(store.scan(trades_path).select(RAW_TRADES_SCHEMA.names()), inst.base_timeframe)
        trade_bars = trade_bars if trade_bars.height else None
    start, end = window
    step = TIMEFRAMES[inst.base_timeframe]
    if end > as_of:  # an open month: the grid ends at the last delivered bar, the future is not a gap
        last: datetime | None = ohlcv[TS].max()  # type: ignore[assignment]
        end = last + step if last is not None else start
    bars = build_bars(
        ohlcv,
        instrument=inst.id,
        timeframe=inst.base_timeframe,
        start=start,
        end=end,
        funding=funding,
        open_interest=oi,
        spot=spot,
        trade_bars=trade_bars,
        is_trading_day=trading_day_rule(inst),
    )
    used = [("raw_ohlcv", inst.id, ohlcv), ("raw_funding", inst.id, funding), ("raw_open_interest", inst.id, oi)]
    if spot is not None and inst.spot:
        used.append(("raw_ohlcv", inst.spot, spot))
    counts = {
        "instrument": inst.id,
        "month": month,
        RAW_DELIVERIES: raw_deliveries(used),
        "bars": bars.height,
        "gaps": int(bars[IS_GAP].sum()),
        "duplicates_removed": n_dupes,
        "outliers": int(bars[IS_OUTLIER].sum()),
        "ohlc_violations": int(bars[OHLC_VIOLATION].sum()),
    }
    return bars, counts


RAW_DELIVERIES = "raw_deliveries"


def raw_deliveries(used: list[tuple[str, str, pl.DataFrame]]) -> dict[str, str]:
    """Which delivery of each raw partition a bars partition was built from: `asset/instrument|month` -> the
    delivery's `ingested_at` (every row of one delivery carries it; `Lake.deliveries` lists them)."""
    out: dict[str, str] = {}
    for asset, inst_id, frame in used:
        if frame.is_empty() or INGESTED_AT not in frame.columns:
            continue
        months = frame.group_by(pl.col(TS).dt.strftime("%Y-%m").alias("m")).agg(pl.col(INGESTED_AT).max())
        for m, at in months.sort("m").iter_rows():
            if at is not None:
                out[f"{asset}/{inst_id}|{m}"] = at.isoformat()
    return out


def _as_of(market_data: MarketDataResource) -> datetime:
    return market_data.as_of_time() or datetime.now(UTC)


@partitioned_asset(
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    code_version=CODE_VERSION,
    deps=[dg.AssetDep(k, partition_mapping=bars_inputs_mapping(k))
          for k in ("raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades")],
    kinds={"parquet", "polars"},
    checks=[
        ("expectations", True, "GX suite spec/expectations/cleaned"),
        ("unique_increasing_ts", True, "unique, increasing timestamps"),
        ("gap_ratio", True, "gap ratio within thresholds.yaml"),
        ("staleness", False, "latest bar of an open month is recent"),
    ],
)  # fmt: skip
def bars(
    context: AssetExecutionContext,
    lake: LakeResource,
    market_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> Iterator[Any]:
    """Regular grid at the base timeframe: sorted, de-duplicated, gaps as null rows with is_gap, outliers and OHLC
    violations flagged, funding and OI joined as-of backward, perp/spot basis in bps."""
    store = lake.lake()
    as_of = _as_of(market_data)
    staged = []
    for inst_id, month in instrument_months(context):
        df, counts = bars_for_partition(store, universe().get(inst_id), month, as_of)
        staged.append((instrument_month_key(inst_id, month), df, counts))
    yield from _publish(context, store, "bars", staged, as_of)
    warehouse.refresh()


def _publish(
    context: AssetExecutionContext,
    store: Lake,
    asset: str,
    staged: list[tuple[str, pl.DataFrame, dict[str, Any]]],
    as_of: datetime,
) -> Iterator[Any]:
    """Audit each staged partition (the GX suite runs once over all of them, judged per partition), publish the
    ones that pass, and report every partition's own metadata and checks."""
    suites = run_expectations_by_partition([(k, f) for k, f, _ in staged], asset, "cleaned")
    publisher = PartitionPublisher(context, store, GROUP, asset)
    for key, df, counts in staged:
        inst_id, month = split_key(key)
        verdicts = [Verdict.of_suite(suites[key]), Verdict.of("unique_increasing_ts", timestamps_unique_increasing(df))]
        if asset == "bars":
            verdicts += [_gap_ratio(df, inst_id), _staleness(df, universe().get(inst_id), as_of)]
        publisher.audit(key, df, {INSTRUMENT: inst_id, "month": month}, verdicts, _bars_metadata(df, counts, asset))
    yield from publisher.finish()


def _bars_metadata(data: pl.DataFrame, counts: dict[str, Any], asset: str) -> dict[str, Any]:
    meta = frame_metadata(data, PREVIEW)
    gap_ratio: float = data.select(pl.col(IS_GAP).cast(pl.Float64).mean()).item() if data.height else 0.0
    meta["gap_ratio"] = dg.MetadataValue.float(round(gap_ratio, 6))
    meta["counts"] = dg.MetadataValue.json(
        {k: v for k, v in counts.items() if k not in ("instrument", "month", RAW_DELIVERIES)}
    )
    if counts.get(RAW_DELIVERIES):  # the raw deliveries it was built from (point-in-time raw)
        meta[RAW_DELIVERIES] = dg.MetadataValue.json(counts[RAW_DELIVERIES])
    if asset == "bars" and data.height:
        meta["price_and_gaps"] = png_metadata(price_and_gaps_png(data))
    return meta


def _gap_ratio(data: pl.DataFrame, inst_id: str) -> Verdict:
    """The partition's gap share on its instrument's grid, against that timeframe's bound."""
    tf = universe().get(inst_id).base_timeframe
    bound = load_thresholds().max_gap_ratio("cleaned", tf)
    return Verdict.of("gap_ratio", gap_ratio_check(data, bound, tf))


def _staleness(data: pl.DataFrame, inst: Instrument, as_of: datetime) -> Verdict:
    """Only a live instrument's open month can be stale: closed months' gaps count in gap_ratio instead."""
    latest: datetime | None = data.drop_nulls(CLOSE)[TS].max() if data.height else None  # type: ignore[assignment]
    if inst.end is not None or latest is None or month_bounds(month_key(latest))[1] <= as_of:
        return Verdict("staleness", True, {"applies": False}, "closed month or closed history: not judged")
    outcome = staleness_check(
        latest + TIMEFRAMES[inst.base_timeframe], as_of, load_thresholds().max_staleness(inst.base_timeframe)
    )
    return Verdict.of("staleness", outcome)


def _resampled(name: str, timeframe: str) -> dg.AssetsDefinition:
    @partitioned_asset(
        name=name,
        group_name=GROUP,
        partitions_def=instrument_month_partitions,
        code_version=CODE_VERSION,
        deps=["bars"],
        kinds={"parquet", "polars"},
        description=f"`bars` resampled to {timeframe}; a coarse bar is a gap only if all its base bars are.",
        checks=[
            ("expectations", True, "GX suite spec/expectations/cleaned"),
            ("unique_increasing_ts", True, "unique, increasing timestamps"),
        ],
    )  # fmt: skip
    def _asset(
        context: AssetExecutionContext,
        lake: LakeResource,
        market_data: MarketDataResource,
        warehouse: WarehouseResource,
    ) -> Iterator[Any]:
        store = lake.lake()
        staged = []
        for inst_id, month in instrument_months(context):
            inst = universe().get(inst_id)
            base = store.read(GROUP, "bars", [{INSTRUMENT: inst_id, "month": month}], BARS_SCHEMA)
            if TIMEFRAMES[inst.base_timeframe] > TIMEFRAMES[timeframe]:
                out = pl.DataFrame(schema=BARS_SCHEMA)  # no finer view of coarser data
            elif inst.base_timeframe == timeframe:
                out = base
            else:
                out = resample_bars(base, timeframe)
            staged.append((instrument_month_key(inst_id, month), out, {"bars": out.height}))
        yield from _publish(context, store, name, staged, _as_of(market_data))
        warehouse.refresh()

    return _asset


bars_1h = _resampled("bars_1h", "1h")
bars_1d = _resampled("bars_1d", "1d")
cleaned_assets = [bars, bars_1h, bars_1d]
