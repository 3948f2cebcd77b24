"""Cleaned layer: the regular bar grid (`bars`) and its hourly and daily resamples."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.checks.quality import (
    CheckOutcome,
    gap_ratio_check,
    load_thresholds,
    staleness_check,
    timestamps_unique_increasing,
)
from lake_assets.cleaned.bars import build_bars, dedupe, resample_bars
from lake_assets.cleaned.plots import price_and_gaps_png
from lake_assets.cleaned.trades_to_bars import trades_to_bars
from lake_assets.glue import check_result, expectations_check, frame_metadata, md_table, png_metadata
from lake_assets.partitions import instrument_month_partitions, instrument_months
from lake_assets.raw.assets import instrument_window
from lake_assets.raw.ingest import month_bounds, month_key, previous_month
from lake_assets.specs import Instrument, spec_hash, universe
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    CLOSE,
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
AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
PREVIEW = [TS, INSTRUMENT, "open", "high", "low", "close", "volume", IS_GAP, "funding_rate", "basis_bps"]


def trading_day_rule(inst: Instrument) -> Callable[[date], bool] | None:
    """Daily equity/index grids hold exchange trading days only; crypto trades every day."""
    if inst.is_crypto:
        return None
    from lake_assets.features.calendar import holiday_dates

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
    trades = store.read("raw", "raw_trades", [dims], RAW_TRADES_SCHEMA)
    trade_bars = trades_to_bars(trades, inst.base_timeframe) if trades.height else None
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
    counts = {
        "instrument": inst.id,
        "month": month,
        "bars": bars.height,
        "gaps": int(bars[IS_GAP].sum()),
        "duplicates_removed": n_dupes,
        "outliers": int(bars[IS_OUTLIER].sum()),
        "ohlc_violations": int(bars[OHLC_VIOLATION].sum()),
    }
    return bars, counts


def _as_of(market_data: MarketDataResource) -> datetime:
    return market_data.as_of_time() or datetime.now(UTC)


@dg.asset(
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=CODE_VERSION,
    deps=["raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "expectations", asset="bars", blocking=True, description="GX suite spec/expectations/cleaned"
        ),
        dg.AssetCheckSpec("unique_increasing_ts", asset="bars", blocking=True),
        dg.AssetCheckSpec("gap_ratio", asset="bars", blocking=True, description="gap ratio within thresholds.yaml"),
        dg.AssetCheckSpec("staleness", asset="bars", description="latest bar of open months is recent"),
    ],
)
def bars(
    context: AssetExecutionContext,
    lake: LakeResource,
    market_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Regular grid at the base timeframe: sorted, de-duplicated, gaps as null rows with is_gap, outliers and OHLC
    violations flagged, funding and OI joined as-of backward, perp/spot basis in bps."""
    store = lake.lake()
    as_of = _as_of(market_data)
    frames, rows = [], []
    for inst_id, month in instrument_months(context):
        inst = universe().get(inst_id)
        df, counts = bars_for_partition(store, inst, month, as_of)
        store.write(df, GROUP, "bars", {INSTRUMENT: inst_id, "month": month})
        frames.append(df)
        rows.append(counts)
    warehouse.refresh()
    data = pl.concat(frames) if frames else pl.DataFrame(schema=BARS_SCHEMA)
    return dg.MaterializeResult(
        metadata=_bars_metadata(data, rows, plot=True),
        check_results=_bars_checks(data, "bars", as_of),
    )


def _bars_metadata(data: pl.DataFrame, rows: list[dict[str, Any]], plot: bool) -> dict[str, Any]:
    meta = frame_metadata(data, PREVIEW)
    gap_ratio: float = data.select(pl.col(IS_GAP).cast(pl.Float64).mean()).item() if data.height else 0.0
    meta["gap_ratio"] = dg.MetadataValue.float(round(gap_ratio, 6))
    meta["partitions"] = dg.MetadataValue.md(md_table(pl.DataFrame(rows), n=60))
    if plot and data.height:
        meta["price_and_gaps"] = png_metadata(price_and_gaps_png(data))
    return meta


def _bars_checks(data: pl.DataFrame, asset: str, as_of: datetime) -> list[dg.AssetCheckResult]:
    results = [expectations_check(data, asset, "cleaned")]
    results.append(_outcome("unique_increasing_ts", timestamps_unique_increasing(data)))
    if asset == "bars":
        results.append(_gap_ratio(data))
        stale = _staleness(data, as_of)
        results.append(check_result("staleness", stale[0], stale[1], warn_only=True))
    return results


def _gap_ratio(data: pl.DataFrame) -> dg.AssetCheckResult:
    """Each instrument on its own grid and bound; the check fails if any instrument exceeds its bound."""
    thresholds = load_thresholds()
    rows = []
    for inst_id in data[INSTRUMENT].unique(maintain_order=True).to_list():
        tf = universe().get(inst_id).base_timeframe
        bound = thresholds.max_gap_ratio("cleaned", tf)
        outcome = gap_ratio_check(data.filter(pl.col(INSTRUMENT) == inst_id), bound, tf)
        rows.append({"instrument": inst_id, "passed": outcome.passed, **outcome.metadata})
    table = pl.DataFrame(rows) if rows else pl.DataFrame({"instrument": []})
    passed = bool(table["passed"].all()) if rows else True
    worst: float = table.select(pl.col("gap_ratio").cast(pl.Float64).max()).item() if rows else 0.0  # type: ignore[assignment]
    return check_result("gap_ratio", passed, {"worst_gap_ratio": worst, "by_instrument": md_table(table, n=60)})


def _outcome(name: str, outcome: CheckOutcome, warn_only: bool = False) -> dg.AssetCheckResult:
    meta: dict[str, Any] = dict(outcome.metadata)
    if outcome.samples_markdown:
        meta["samples"] = dg.MetadataValue.md(outcome.samples_markdown)
    return check_result(name, outcome.passed, meta, warn_only=warn_only, description=outcome.description)


def _staleness(data: pl.DataFrame, as_of: datetime) -> tuple[bool, dict[str, Any]]:
    """Only instruments still live (no end date) whose latest month is open can be stale."""
    passed, details = True, []
    for inst_id in data[INSTRUMENT].unique().to_list() if data.height else []:
        inst = universe().get(inst_id)
        latest: datetime | None = data.filter(pl.col(INSTRUMENT) == inst_id).drop_nulls(CLOSE)[TS].max()  # type: ignore[assignment]
        if inst.end is not None or latest is None or month_bounds(month_key(latest))[1] <= as_of:
            continue  # a closed history or a closed month (its gaps count in gap_ratio): staleness does not apply
        outcome = staleness_check(
            latest + TIMEFRAMES[inst.base_timeframe], as_of, load_thresholds().max_staleness(inst.base_timeframe)
        )
        passed &= outcome.passed
        details.append({"instrument": inst_id, "latest": str(latest), "passed": outcome.passed})
    return passed, {"instruments": md_table(pl.DataFrame(details)) if details else "_none live_"}


def _resampled(name: str, timeframe: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=instrument_month_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=CODE_VERSION,
        deps=["bars"],
        automation_condition=AUTOMATION,
        kinds={"parquet", "polars"},
        description=f"`bars` resampled to {timeframe}; a coarse bar is a gap only if all its base bars are.",
        check_specs=[
            dg.AssetCheckSpec("expectations", asset=name, blocking=True),
            dg.AssetCheckSpec("unique_increasing_ts", asset=name, blocking=True),
        ],
    )
    def _asset(
        context: AssetExecutionContext,
        lake: LakeResource,
        market_data: MarketDataResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        store = lake.lake()
        frames, rows = [], []
        for inst_id, month in instrument_months(context):
            inst = universe().get(inst_id)
            base = store.read(GROUP, "bars", [{INSTRUMENT: inst_id, "month": month}], BARS_SCHEMA)
            if TIMEFRAMES[inst.base_timeframe] > TIMEFRAMES[timeframe]:
                out = pl.DataFrame(schema=BARS_SCHEMA)  # no finer view of coarser data
            elif inst.base_timeframe == timeframe:
                out = base
            else:
                out = resample_bars(base, timeframe)
            store.write(out, GROUP, name, {INSTRUMENT: inst_id, "month": month})
            frames.append(out)
            rows.append({"instrument": inst_id, "month": month, "bars": out.height})
        warehouse.refresh()
        data = pl.concat(frames) if frames else pl.DataFrame(schema=BARS_SCHEMA)
        return dg.MaterializeResult(
            metadata=_bars_metadata(data, rows, plot=False),
            check_results=_bars_checks(data, name, _as_of(market_data)),
        )

    return _asset


bars_1h = _resampled("bars_1h", "1h")
bars_1d = _resampled("bars_1d", "1d")
cleaned_assets = [bars, bars_1h, bars_1d]
