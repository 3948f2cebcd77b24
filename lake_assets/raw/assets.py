"""Raw layer: vendor data as delivered, typed, row-validated; rejected rows go to quarantine with a reason."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.checks.expectations import run_expectations_by_partition
from lake_assets.checks.quality import timestamps_unique_increasing
from lake_assets.glue import frame_metadata, md_table
from lake_assets.partitions import instrument_month_key, instrument_month_partitions, instrument_months, split_key
from lake_assets.publish import PartitionPublisher, Verdict, partition_checks
from lake_assets.raw.ingest import RAW_ASSET, month_bounds, validate_raw
from lake_assets.specs import Instrument, spec_hash, universe
from lake_assets.storage.quarantine import quarantine_rows, write_quarantine
from lake_assets.vocabulary import INSTRUMENT, QUARANTINE_SCHEMA, RAW_SCHEMAS, DataKind, conform
from resources.lake import LakeResource, WarehouseResource
from resources.market_data import MarketDataResource

GROUP = "raw"
LAYER_CODE_VERSION = "raw-1"
# Raw partitions have no upstream in the graph: automation asks for the ones that are missing (a new instrument's
# history, a month that began), never re-fetches what exists; refreshes come from the schedule and landing sensor.
RAW_AUTOMATION = dg.AutomationCondition.on_missing()


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
        from lake_assets.raw.vendors.trade_files import life_span

        # life: lines outside the instrument's life are quarantined in its first/last month, never lost
        scan = vendor.scan(inst.id, *window, life=life_span(inst))  # type: ignore[attr-defined]
        return scan.trades, scan.quarantine, list(scan.files)
    return vendor.fetch(inst, window[0], window[1], kind), pl.DataFrame(schema=QUARANTINE_SCHEMA), []


def build_raw_asset(kind: DataKind) -> dg.AssetsDefinition:
    name = RAW_ASSET[kind]
    schema = RAW_SCHEMAS[kind]

    @dg.asset(
        name=name,
        group_name=GROUP,
        partitions_def=instrument_month_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=f"{LAYER_CODE_VERSION}-{spec_hash('universe.yaml', 'expectations/raw.yaml')}",
        automation_condition=RAW_AUTOMATION,
        kinds={"parquet", "polars"},
        description=f"Vendor {kind.value} rows as delivered, typed, with vendor and ingested_at.",
        check_specs=partition_checks(name, [
            ("expectations", True, "Great Expectations suite spec/expectations/raw"),
            ("ordering", False, "unique, increasing timestamps per instrument"),
        ], instrument_month_partitions),
    )  # fmt: skip
    def _raw(
        context: AssetExecutionContext,
        lake: LakeResource,
        market_data: MarketDataResource,
        warehouse: WarehouseResource,
    ) -> Iterator[Any]:
        store = lake.lake()
        staged: list[tuple[str, pl.DataFrame, dict[str, Any]]] = []
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
            write_quarantine(store, pl.concat([parse_q, rejected]), asset=name, instrument=inst_id, month=month)
            counts = {**batch.counts, "parser_quarantined": parse_q.height}
            meta = frame_metadata(batch.accepted)
            meta["quarantined_rows"] = dg.MetadataValue.int(counts["quarantined"] + parse_q.height)
            meta["counts"] = dg.MetadataValue.json(counts)
            if file_counts:
                meta["trade_files"] = dg.MetadataValue.md(md_table(pl.DataFrame(file_counts), n=50))
            staged.append((instrument_month_key(inst_id, month), batch.accepted, meta))
            context.log.debug(f"{name} {inst_id} {month}: {counts}")
        suites = run_expectations_by_partition([(k, f) for k, f, _ in staged], name, "raw")
        publisher = PartitionPublisher(context, store, GROUP, name)
        for key, frame, meta in staged:
            inst_id, month = split_key(key)
            verdicts = [Verdict.of_suite(suites[key]), Verdict.of("ordering", timestamps_unique_increasing(frame))]
            publisher.audit(key, frame, {INSTRUMENT: inst_id, "month": month}, verdicts, meta)
        warehouse.refresh()
        yield from publisher.finish()

    return _raw


raw_assets = [build_raw_asset(kind) for kind in DataKind]
