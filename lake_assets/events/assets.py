"""Event registry assets: one partition per event type from spec/events, and the wide `event_flags` table."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets import tables
from lake_assets.asset_metadata import check_result, frame_metadata
from lake_assets.automation import AUTOMATION
from lake_assets.events.inputs import instrument_event_frame
from lake_assets.events.registry import EVENT_REGISTRY_SCHEMA, detect_events, event_flags, prevalence_report
from lake_assets.events.spec_model import EventCatalog, event_specs
from lake_assets.markdown import md_table
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.specs import universe
from lake_assets.vocabulary import INSTRUMENT, IS_GAP, TS
from resources.lake import LakeResource, WarehouseResource

GROUP = "events"
PREVALENCE_TIMEFRAME = "5m"
SPEC_VERSION = "spec_version"  # metadata: the version of the spec entry a partition was written from
PREVIEW = ["event_id", "event_type", "family", INSTRUMENT, TS, "direction", "severity", "vol_regime", "carry_state",
           "session"]  # fmt: skip
event_type_partitions = dg.StaticPartitionsDefinition(event_specs().names)


def _lookahead(
    frame: pl.DataFrame, catalog: EventCatalog, types: list[str], events: pl.DataFrame, timeframe: str
) -> set[str]:
    """Detect again on the first 80% of the history: the event types whose events before the cut differ."""
    ts = frame[TS]
    cut = ts[int(len(ts) * 0.8)]
    truncated, _ = detect_events(frame.filter(pl.col(TS) < cut), [catalog.get(t) for t in types],
                                 timeframe=timeframe)  # fmt: skip
    before = events.filter(pl.col(TS) < cut)
    differing = set()
    for t in types:
        a = truncated.filter(pl.col("event_type") == t).sort("event_id")
        b = before.filter(pl.col("event_type") == t).sort("event_id")
        if not a.equals(b, null_equal=True):
            differing.add(t)
    return differing


@partitioned_asset(
    group_name=GROUP,
    partitions_def=event_type_partitions,
    code_version="events-2",  # each partition's spec version is its own (spec_version metadata, spec_sensor)
    deps=[dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping())
          for a in ("bars", "features", "context_features", "market_context")],
    kinds={"parquet", "polars"},
    checks=[
        ("prevalence", True, "events per 1,000 bars within the event spec's bounds, per 5m instrument"),
        ("no_lookahead", True, "events before a cut are identical when the data after it is removed"),
        ("on_grid_not_in_gaps", True, "every event sits on a bar of the grid that is not a gap"),
        ("spec_current", False, "written from the event type's current spec (spec_sensor fails it when the spec "
                                "changes and re-runs the partition)"),
    ],
)  # fmt: skip
def event_registry(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """One row per detected event: id, type, family, instrument, ts (bar completing the condition), direction,
    severity and the state snapshot (vol regime, carry state, session, trend state) at that bar."""
    store = lake.lake()
    catalog = event_specs()
    types = list(context.partition_keys)
    specs = [catalog.get(t) for t in types]
    events_all, app_all, lookahead_failed, off_grid_types = [], [], set(), set()
    context_features = store.reader.table(tables.CONTEXT_FEATURES)
    for inst in universe().instruments:
        frame = instrument_event_frame(store, inst, context_features)
        if frame.is_empty():
            continue
        events, applicability = detect_events(frame, specs, inst.id, inst.base_timeframe)
        events_all.append(events)
        app_all.append(applicability)
        grid = frame.filter(~pl.col(IS_GAP)).select(TS)
        off_grid_types |= set(events.join(grid, on=TS, how="anti")["event_type"].to_list())
        if events.height:
            lookahead_failed |= _lookahead(frame, catalog, types, events, inst.base_timeframe)
    events = pl.concat(events_all) if events_all else pl.DataFrame(schema=EVENT_REGISTRY_SCHEMA)
    applicability = pl.concat(app_all) if app_all else pl.DataFrame()
    # prevalence bounds (and cooldowns) are declared for 5m bars; daily instruments are reported, not judged
    five_minute = {i.id for i in universe().instruments if i.base_timeframe == PREVALENCE_TIMEFRAME}
    judged = applicability.filter(pl.col(INSTRUMENT).is_in(five_minute)) if applicability.height else applicability
    n_bars = dict(judged.group_by(INSTRUMENT).agg(pl.col("n_bars").first()).iter_rows()) if judged.height else {}
    prevalence = prevalence_report(events.filter(pl.col(INSTRUMENT).is_in(five_minute)), n_bars, specs, judged)
    publisher = PartitionPublisher(context, store, GROUP, "event_registry")
    for t in types:
        mine = events.filter(pl.col("event_type") == t).sort(INSTRUMENT, TS)
        app = applicability.filter(pl.col("event_type") == t) if applicability.height else applicability
        prev = prevalence.filter(pl.col("event_type") == t)
        failing = prev.filter(~pl.col("passed"))
        verdicts = [
            Verdict("prevalence", failing.height == 0, {"failing_instruments": failing.height},
                    samples=md_table(failing) if failing.height else ""),
            Verdict("no_lookahead", t not in lookahead_failed, {"identical": t not in lookahead_failed}),
            Verdict("on_grid_not_in_gaps", t not in off_grid_types, {"off_grid_or_in_gaps": t in off_grid_types}),
            Verdict("spec_current", True, {"spec_version": catalog.entry_hash(t)}),
        ]  # fmt: skip
        meta = frame_metadata(mine, PREVIEW)
        meta["by_instrument"] = dg.MetadataValue.md(md_table(prev, n=20) if prev.height else "_no 5m instruments_")
        not_applicable = app.filter(~pl.col("applicable")) if app.height else app
        meta["not_applicable"] = dg.MetadataValue.md(md_table(not_applicable.select(INSTRUMENT, "reason"), n=30)
                                                      if not_applicable.height else "_none_")  # fmt: skip
        meta["spec_hash"] = dg.MetadataValue.text(catalog.spec_hash)
        meta[SPEC_VERSION] = dg.MetadataValue.text(catalog.entry_hash(t))
        if publisher.audit(t, mine, {"event_type": t}, verdicts, meta) and app.height:
            store.write(app, GROUP, "event_applicability", {"event_type": t})
    warehouse.refresh()
    yield from publisher.finish()


@dg.asset(
    name="event_flags",
    group_name=GROUP,
    code_version=f"event-flags-1-{event_specs().spec_hash}",
    deps=["event_registry", "bars"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "agrees_with_registry",
            asset="event_flags",
            blocking=True,
            description="each type's flag count equals its registry row count",
        )
    ],
)
def event_flags_asset(lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Wide view of the registry: one boolean column per event type, one row per instrument bar."""
    store = lake.lake()
    names = event_specs().names
    events = store.read_all(GROUP, "event_registry")
    total, flagged = 0, dict.fromkeys(names, 0)
    for inst in universe().instruments:
        bars = store.reader.instrument(tables.BARS, inst.id, columns=[TS, INSTRUMENT], hold=False)
        bars_ts = bars.select(TS, INSTRUMENT) if bars.height else pl.DataFrame()
        inst_events = events.filter(pl.col(INSTRUMENT) == inst.id) if events.height else events
        flags = event_flags(inst_events, bars_ts, names) if bars_ts.height else pl.DataFrame()
        store.write(flags, GROUP, "event_flags", {INSTRUMENT: inst.id})
        total += flags.height
        for name in names if flags.height else []:
            flagged[name] += int(flags[name].sum())
    warehouse.refresh()
    registry = dict(events.group_by("event_type").len().iter_rows()) if events.height else {}
    mismatched = [n for n in names if flagged[n] != registry.get(n, 0)]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": total, "event_types": len(names)},
        check_results=[check_result("agrees_with_registry", not mismatched,
                                    {"mismatched_types": ", ".join(mismatched) or "none"})],
    )  # fmt: skip


event_assets = [event_registry, event_flags_asset]
