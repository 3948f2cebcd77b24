"""Raw layer: vendor data as delivered, typed, row-validated; rejected rows go to quarantine with a reason."""

from datetime import datetime
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.checks.quality import timestamps_unique_increasing
from lake_assets.glue import check_result, expectations_check, frame_metadata, md_table
from lake_assets.partitions import instrument_month_partitions, instrument_months
from lake_assets.raw.ingest import RAW_ASSET, month_bounds, validate_raw
from lake_assets.specs import Instrument, spec_hash, universe
from lake_assets.storage.quarantine import quarantine_rows, write_quarantine
from lake_assets.vocabulary import INSTRUMENT, QUARANTINE_SCHEMA, RAW_SCHEMAS, DataKind, conform
from resources.lake import LakeResource, WarehouseResource
from resources.market_data import MarketDataResource

GROUP = "raw"
LAYER_CODE_VERSION = "raw-1"


def instrument_window(inst: Instrument, month: str) -> tuple[datetime, datetime] | None:
    """The part of a month inside the instrument's [start, end] span, or None."""
    lo, hi = inst.life_window(*month_bounds(month))
    return (lo, hi) if lo < hi else None


def _fetch(
    kind: DataKind, inst: Instrument, window: tuple[datetime, datetime], market_data: MarketDataResource
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """Vendor rows plus parser-level quarantine and per-file counts (trade files only)."""
    vendor = market_data.vendor_for(inst)
    if kind == DataKind.TRADES and inst.vendor == "trade_files":
        scan = vendor.scan(inst.id, *window)  # type: ignore[attr-defined]
        return scan.trades, scan.quarantine, list(scan.files)
    return vendor.fetch(inst, window[0], window[1], kind), pl.DataFrame(schema=QUARANTINE_SCHEMA), []


def _ordering(data: pl.DataFrame) -> dg.AssetCheckResult:
    """Raw data is kept as delivered, so duplicate or out-of-order timestamps warn here and are fixed in `bars`."""
    outcome = timestamps_unique_increasing(data)
    meta: dict[str, Any] = dict(outcome.metadata)
    if outcome.samples_markdown:
        meta["samples"] = dg.MetadataValue.md(outcome.samples_markdown)
    return check_result("ordering", outcome.passed, meta, warn_only=True, description=outcome.description)


def build_raw_asset(kind: DataKind) -> dg.AssetsDefinition:
    name = RAW_ASSET[kind]
    schema = RAW_SCHEMAS[kind]

    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=instrument_month_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=f"{LAYER_CODE_VERSION}-{spec_hash('universe.yaml', 'expectations/raw.yaml')}",
        kinds={"parquet", "polars"},
        description=f"Vendor {kind.value} rows as delivered, typed, with vendor and ingested_at.",
        check_specs=[
            dg.AssetCheckSpec(
                "expectations", asset=name, blocking=True, description="Great Expectations suite spec/expectations/raw"
            ),
            dg.AssetCheckSpec("ordering", asset=name, description="unique, increasing timestamps per instrument"),
        ],
    )
    def _raw(
        context: AssetExecutionContext,
        lake: LakeResource,
        market_data: MarketDataResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        store = lake.lake()
        accepted: list[pl.DataFrame] = []
        rows: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        for inst_id, month in instrument_months(context):
            inst = universe().get(inst_id)
            window = instrument_window(inst, month)
            file_counts: list[dict[str, Any]] = []
            if window is None:
                raw, parse_q = pl.DataFrame(schema=schema), pl.DataFrame(schema=QUARANTINE_SCHEMA)
            else:
                raw, parse_q, file_counts = _fetch(kind, inst, window, market_data)
            batch = validate_raw(conform(raw, schema), kind)
            rejected = quarantine_rows(
                batch.rejected.drop("reason"),
                asset=name,
                instrument=inst_id,
                source=inst.vendor,
                reason=pl.lit(batch.rejected["reason"]) if batch.rejected.height else "",
            )
            store.write(batch.accepted, GROUP, name, {INSTRUMENT: inst_id, "month": month})
            write_quarantine(store, pl.concat([parse_q, rejected]), asset=name, instrument=inst_id, month=month)
            accepted.append(batch.accepted)
            files.extend(file_counts)
            rows.append({"instrument": inst_id, "month": month, **batch.counts, "parser_quarantined": parse_q.height})
            context.log.debug(f"{name} {inst_id} {month}: {batch.counts}")
        warehouse.refresh()
        data = pl.concat(accepted) if accepted else pl.DataFrame(schema=schema)
        counts = pl.DataFrame(rows)
        meta = frame_metadata(data)
        meta["partitions"] = dg.MetadataValue.md(md_table(counts, n=50))
        n_quarantined = int(counts.select(pl.sum_horizontal(pl.col("quarantined", "parser_quarantined")).sum()).item())
        meta["quarantined_rows"] = dg.MetadataValue.int(n_quarantined)
        if files:
            meta["trade_files"] = dg.MetadataValue.md(md_table(pl.DataFrame(files), n=50))
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[expectations_check(data, name, "raw"), _ordering(data)],
        )

    return _raw


raw_assets = [build_raw_asset(kind) for kind in DataKind]
