"""Raw layer: vendor data as delivered, typed, row-validated; rejected rows go to quarantine with a reason."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets.asset_metadata import frame_metadata
from lake_assets.checks.expectations import SuiteResult, combine_suites, run_expectations, run_expectations_by_partition
from lake_assets.checks.quality import timestamps_unique_increasing
from lake_assets.markdown import md_table
from lake_assets.months import instrument_window
from lake_assets.partitions import instrument_month_key, instrument_month_partitions, instrument_months, split_key
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.raw.ingest import RAW_ASSET, REFETCH_TAG, RawBatch, delivery_for_run, validate_raw
from lake_assets.specs import Instrument, spec_hash, universe
from lake_assets.storage.lake import Lake
from lake_assets.storage.quarantine import quarantine_rows, write_quarantine
from lake_assets.vocabulary import (
    INSTRUMENT,
    MONTH,
    QUARANTINE_SCHEMA,
    RAW_SCHEMAS,
    RAW_TRADES_SCHEMA,
    TS,
    DataKind,
    conform,
)
from resources.lake import LakeResource, WarehouseResource
from resources.market_data import MarketDataResource

GROUP = "raw"
LAYER_CODE_VERSION = "raw-1"
# Raw partitions have no upstream in the graph: automation asks for the ones that are missing (a new instrument's
# history, a month that began), never re-fetches what exists; refreshes come from the schedule and landing sensor.
RAW_AUTOMATION = dg.AutomationCondition.on_missing()


def _streams_trades(kind: DataKind, inst: Instrument) -> bool:
    """Trades from dumps are streamed to the lake, never held whole (see `stream_trades_partition`)."""
    return kind == DataKind.TRADES and inst.vendor == "trade_files"


STREAM_SLICE_ROWS = 500_000  # a streamed partition is validated and checked this many rows at a time
# A run's fetched partitions are judged by GX together (its cost is per validation), at most this many bytes at a time
STAGED_BYTES = 48 * 2**20  # GX holds ~10x its input at its peak (pandas metrics): ~0.5 GB


@dataclass
class StreamedPartition:
    """A trade-files month written in slices to a staged file: what audit and metadata need, never the whole month."""

    staged: Path
    rows: int
    quarantine: pl.DataFrame
    counts: dict[str, int]
    suite: SuiteResult
    ordering: Verdict
    head: pl.DataFrame
    time_range: str | None


def _validated_slices(path: Path) -> Iterator[RawBatch]:
    """The trades file in slices of STREAM_SLICE_ROWS, each row-validated (at least one, possibly empty, slice)."""
    lazy = pl.scan_parquet(path)
    total = lazy.select(pl.len()).collect().item()
    for offset in range(0, max(total, 1), STREAM_SLICE_ROWS):
        yield validate_raw(conform(lazy.slice(offset, STREAM_SLICE_ROWS).collect(), RAW_TRADES_SCHEMA), DataKind.TRADES)


def _without_rejected(store: Lake, staged: Path, name: str, dims: dict[str, str]) -> Path:
    """A new staged file holding the accepted rows of `staged` only, slice by slice; `staged` is removed."""
    import pyarrow.parquet as pq

    kept = store.staging_path(GROUP, name, dims)
    writer: pq.ParquetWriter | None = None
    try:
        for batch in _validated_slices(staged):
            table = batch.accepted.to_arrow()
            writer = writer or pq.ParquetWriter(kept, table.schema, compression="lz4", write_statistics=True)
            writer.write_table(table)
    except BaseException:
        kept.unlink(missing_ok=True)
        raise
    finally:
        if writer is not None:
            writer.close()
        staged.unlink(missing_ok=True)
    return kept


def stream_trades_partition(store: Lake, scan: Any, name: str, dims: dict[str, str]) -> StreamedPartition:
    """Trades of one month from a trade-files scan, with bounded memory: the scan writes them sorted to the staged
    partition file; each slice of it is row-validated (rejects to quarantine) and judged by the GX suite and the
    ordering check, and the slices' verdicts are combined (row counts add up; the ordering check sees each slice
    boundary; uniqueness is judged within slices, the scan having removed duplicate trade ids across every file of
    the instrument already). Only when a row was rejected is the file rewritten without it. Nothing is published."""
    staged = store.staging_path(GROUP, name, dims)
    try:
        scan.write_trades(staged)
        suites, orderings, rejected, head = [], [], [], pl.DataFrame(schema=RAW_TRADES_SCHEMA)
        counts = {"delivered": 0, "accepted": 0, "quarantined": 0}
        previous: pl.DataFrame | None = None
        first_ts = last_ts = None
        for batch in _validated_slices(staged):
            counts = {k: counts[k] + int(batch.counts.get(k, 0)) for k in counts}
            if batch.rejected.height:
                rejected.append(batch.rejected)
            part = batch.accepted
            suites.append(run_expectations(part, name, "raw"))
            # ordering across the slice boundary too: the previous slice's last row leads this one
            joined = pl.concat([previous, part]) if previous is not None and part.height else part
            orderings.append(timestamps_unique_increasing(joined))
            if part.height:
                previous = part.tail(1)
                first_ts = first_ts if first_ts is not None else part[TS][0]
                last_ts = part[TS][-1]
                if head.is_empty():
                    head = part.head(10)
            del batch, part
        if rejected:
            staged = _without_rejected(store, staged, name, dims)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    ordering_ok = all(o.passed for o in orderings)
    numbers: dict[str, Any] = {}
    for o in orderings:
        for k, v in o.metadata.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "instruments":
                numbers[k] = numbers.get(k, 0) + v
    samples = next((o.samples_markdown for o in orderings if o.samples_markdown), "")
    text = None if ordering_ok else "duplicate or out-of-order timestamps"
    ordering = Verdict("ordering", ordering_ok, numbers, text, samples)
    quarantine = pl.concat(rejected) if rejected else pl.DataFrame()
    span = f"{first_ts} .. {last_ts}" if first_ts is not None else None
    return StreamedPartition(staged, counts["accepted"], quarantine, counts, combine_suites(suites), ordering, head,
                             span)  # fmt: skip


def build_raw_asset(kind: DataKind) -> dg.AssetsDefinition:
    name = RAW_ASSET[kind]
    schema = RAW_SCHEMAS[kind]

    @partitioned_asset(
        name=name,
        group_name=GROUP,
        partitions_def=instrument_month_partitions,
        code_version=f"{LAYER_CODE_VERSION}-{spec_hash('universe.yaml', 'expectations/raw.yaml')}",
        automation_condition=RAW_AUTOMATION,
        kinds={"parquet", "polars"},
        description=f"Vendor {kind.value} rows as delivered, typed, with vendor and ingested_at.",
        checks=[
            ("expectations", True, "Great Expectations suite spec/expectations/raw"),
            ("ordering", False, "unique, increasing timestamps per instrument"),
        ],
    )  # fmt: skip
    def _raw(
        context: AssetExecutionContext,
        lake: LakeResource,
        market_data: MarketDataResource,
        warehouse: WarehouseResource,
    ) -> Iterator[Any]:
        store = lake.lake()
        publisher = PartitionPublisher(context, store, GROUP, name)
        staged: list[tuple[str, pl.DataFrame, dict[str, Any]]] = []

        def judge_and_publish() -> None:  # GX once over the staged partitions (its cost is per validation)
            suites = run_expectations_by_partition([(k, f) for k, f, _ in staged], name, "raw")
            for key, frame, meta in staged:
                inst_id, month = split_key(key)
                verdicts = [Verdict.of_suite(suites[key]), Verdict.of("ordering", timestamps_unique_increasing(frame))]
                publisher.audit(key, frame, {INSTRUMENT: inst_id, "month": month}, verdicts, meta)
            staged.clear()

        deliveries: dict[str, dict[str, Any]] = {}
        refetch = market_data.refetch_closed_months or context.run.tags.get(REFETCH_TAG) == "true"
        for inst_id, month in instrument_months(context):
            inst = universe().get(inst_id)
            window = instrument_window(inst, month)
            if window is None:
                raw = pl.DataFrame(schema=schema)
            elif _streams_trades(kind, inst):  # streamed, audited and published on its own
                from lake_assets.vendors.trade_files import life_span

                # life: lines outside the instrument's life are quarantined in its first/last month, never lost
                scan = market_data.vendor_for(inst).scan(inst.id, *window, life=life_span(inst))  # type: ignore[attr-defined]
                _publish_streamed(publisher, store, name, inst_id, month, scan, scan.quarantine, list(scan.files))
                continue
            else:
                raw, delivery, fetched = delivery_for_run(
                    store, market_data.vendor_for(inst), inst, month, window, kind,
                    vendor_clock=market_data.as_of_time(), refetch_closed=refetch,
                )  # fmt: skip
                deliveries[instrument_month_key(inst_id, month)] = {
                    "delivery": delivery.ingested_at.isoformat(), "closed": delivery.closed, "fetched": fetched,
                    "deliveries_kept": len(store.deliveries(GROUP, name, {INSTRUMENT: inst_id, MONTH: month})),
                }  # fmt: skip
            batch = validate_raw(conform(raw, schema), kind)
            rejected = quarantine_rows(
                batch.rejected.drop("reason"),
                asset=name,
                instrument=inst_id,
                source=inst.vendor,
                reason=pl.lit(batch.rejected["reason"]) if batch.rejected.height else "",
            )
            write_quarantine(store, rejected, asset=name, instrument=inst_id, month=month)
            counts = batch.counts
            meta = frame_metadata(batch.accepted)
            meta["quarantined_rows"] = dg.MetadataValue.int(counts["quarantined"])
            meta["counts"] = dg.MetadataValue.json(counts)
            key = instrument_month_key(inst_id, month)
            if key in deliveries:  # which delivery this partition holds (its rows' ingested_at), and if it is new
                meta["delivery"] = dg.MetadataValue.json(deliveries[key])
            staged.append((key, batch.accepted, meta))
            context.log.debug(f"{name} {inst_id} {month}: {counts}")
            if sum(f.estimated_size() for _, f, _ in staged) > STAGED_BYTES:
                judge_and_publish()
        judge_and_publish()
        warehouse.refresh()
        yield from publisher.finish()

    return _raw


def _publish_streamed(
    publisher: PartitionPublisher,
    store: Lake,
    name: str,
    inst_id: str,
    month: str,
    scan: Any,
    parse_q: pl.DataFrame,
    file_counts: list[dict[str, Any]],
) -> None:
    dims = {INSTRUMENT: inst_id, "month": month}
    part = stream_trades_partition(store, scan, name, dims)
    rejected = (
        quarantine_rows(part.quarantine.drop("reason"), asset=name, instrument=inst_id, source="trade_files",
                        reason=pl.lit(part.quarantine["reason"]))
        if part.quarantine.height else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )  # fmt: skip
    write_quarantine(store, pl.concat([parse_q, rejected]), asset=name, instrument=inst_id, month=month)
    counts = {**part.counts, "parser_quarantined": parse_q.height}
    meta = frame_metadata(part.head)
    meta["dagster/row_count"] = dg.MetadataValue.int(part.rows)
    if part.time_range:
        meta["time_range"] = dg.MetadataValue.text(part.time_range)
    meta["quarantined_rows"] = dg.MetadataValue.int(counts["quarantined"] + parse_q.height)
    meta["counts"] = dg.MetadataValue.json(counts)
    meta["streamed_in_slices_of"] = dg.MetadataValue.int(STREAM_SLICE_ROWS)
    if file_counts:
        meta["trade_files"] = dg.MetadataValue.md(md_table(pl.DataFrame(file_counts), n=50))
    verdicts = [Verdict.of_suite(part.suite), part.ordering]
    publisher.audit(instrument_month_key(inst_id, month), None, dims, verdicts, meta, staged=part.staged)


raw_assets = [build_raw_asset(kind) for kind in DataKind]
