"""Discovery assets: phase-2 hypotheses per event type, candidates, bridge evaluation and strategy blueprints."""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets import tables
from lake_assets.asset_metadata import check_result, png_metadata
from lake_assets.automation import AUTOMATION
from lake_assets.discovery.blueprints import Blueprint, blueprints_path, validate_blueprints, write_blueprints_jsonl
from lake_assets.discovery.blueprints import strategy_blueprints as build_blueprints
from lake_assets.discovery.bridge import bridge_evaluation as evaluate_bridge
from lake_assets.discovery.candidates import phase2_candidates as build_candidates
from lake_assets.discovery.hypotheses import phase2_hypotheses as build_hypotheses
from lake_assets.discovery.hypotheses import trade_samples
from lake_assets.discovery.reporting import funnel_counts, top_candidates_markdown, volcano_png
from lake_assets.discovery.spec_model import load_discovery_spec
from lake_assets.events.assets import event_type_partitions
from lake_assets.markdown import md_table
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.storage.lake import Lake
from resources.lake import LakeResource, WarehouseResource

GROUP = "discovery"


def _code_version() -> str:
    return f"discovery-1-{load_discovery_spec().spec_hash}"


def all_bars(store: Lake) -> pl.DataFrame:
    return store.reader.table(tables.BARS).drop("month", strict=False)


def all_events(store: Lake) -> pl.DataFrame:
    return store.read_all("events", "event_registry").drop("event_type_right", strict=False)


BLUEPRINT_SCALARS = ("blueprint_id", "name", "event_type", "family", "instrument", "timeframe", "template",
                     "direction", "spec_hash")  # fmt: skip
BLUEPRINT_NESTED = ("state", "entry", "exits", "sizing", "costs", "evidence")  # stored as JSON text for SQL


BLUEPRINT_SCHEMA = tables.STRATEGY_BLUEPRINTS.schema  # the scalars, then the nested parts as JSON text


def blueprint_table(blueprints: list[Blueprint]) -> pl.DataFrame:
    """A flat, typed table of blueprints (nested parts as JSON), empty but typed when there are none."""
    rows = []
    for bp in blueprints:
        d = bp.model_dump(mode="json")
        rows.append({**{k: d[k] for k in BLUEPRINT_SCALARS}, **{k: json.dumps(d[k]) for k in BLUEPRINT_NESTED}})
    return pl.DataFrame(rows, schema=BLUEPRINT_SCHEMA)


@partitioned_asset(
    group_name=GROUP,
    partitions_def=event_type_partitions,
    code_version=_code_version(),
    deps=["event_registry", dg.AssetDep("bars", partition_mapping=dg.AllPartitionMapping())],
    kinds={"parquet", "polars"},
    checks=[
        ("statistics_sane", True, "n >= 0, hit rate in [0, 1], entries after the lag, spec hash present"),
    ],
)  # fmt: skip
def phase2_hypotheses(
    context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """Per (instrument, horizon, rule template, state): n, mean/median bps, t (non-overlapping entries), hit rate,
    after-cost expectancy (normal and conservative costs) and the sign in each half, from entries after the lag."""
    store = lake.lake()
    spec = load_discovery_spec()
    bars = all_bars(store)
    publisher = PartitionPublisher(context, store, GROUP, "phase2_hypotheses")
    for event_type in context.partition_keys:
        events = store.read("events", "event_registry", [{"event_type": event_type}])
        out = build_hypotheses(events, bars, spec) if events.height and bars.height else pl.DataFrame()
        meta = {"dagster/row_count": dg.MetadataValue.int(out.height), "events": dg.MetadataValue.int(events.height),
                "spec_hash": dg.MetadataValue.text(spec.spec_hash)}  # fmt: skip
        publisher.audit(event_type, out, {"event_type": event_type}, [_hypotheses_check(out, spec.spec_hash)], meta)
    warehouse.refresh()
    yield from publisher.finish()


def _hypotheses_check(data: pl.DataFrame, spec_hash: str) -> Verdict:
    if data.is_empty():
        return Verdict("statistics_sane", True, {"rows": 0})
    bad = data.filter(
        (pl.col("n") < 0) | ~pl.col("hit_rate").is_between(0, 1) | (pl.col("spec_hash") != spec_hash)
        | (pl.col("std_bps") < 0)
    )  # fmt: skip
    return Verdict("statistics_sane", bad.height == 0, {"rows": data.height, "violations": bad.height},
                   samples=md_table(bad.head(5)) if bad.height else "")  # fmt: skip


@dg.asset(
    group_name=GROUP,
    code_version=_code_version(),
    deps=["phase2_hypotheses"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec("q_values_valid", asset="phase2_candidates", blocking=True,
                          description="q in [0, 1] and monotone in p within each FDR group"),
    ],
)  # fmt: skip
def phase2_candidates(lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Hierarchical shrinkage (family -> event -> state), BH-FDR by family/event/verb/horizon, gates, promotion
    track, SPA/StepM across the promoted set and the Deflated Sharpe Ratio of each candidate."""
    store = lake.lake()
    spec = load_discovery_spec()
    hypotheses = store.read_all(GROUP, "phase2_hypotheses").drop("event_type_right", strict=False)
    samples = trade_samples(all_events(store), all_bars(store), spec)
    candidates = build_candidates(hypotheses, spec, samples=samples.filter(pl.col("window") == "discovery"))
    store.write(candidates, GROUP, "phase2_candidates")
    warehouse.refresh()
    funnel = funnel_counts(candidates)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": candidates.height,
            "hypotheses_tested": int(candidates.height),
            "promoted": int(candidates["promoted"].sum()),
            "funnel": dg.MetadataValue.md(md_table(funnel, n=20)),
            "top_candidates": dg.MetadataValue.md(top_candidates_markdown(candidates, 15)),
            "volcano": png_metadata(volcano_png(candidates)),
            "spec_hash": spec.spec_hash,
        },
        check_results=[_q_check(candidates, list(spec.families.fdr.group_by))],
    )


def _q_check(candidates: pl.DataFrame, group: list[str]) -> dg.AssetCheckResult:
    tested = candidates.filter(pl.col("q_value").is_not_null())
    out_of_range = tested.filter((pl.col("q_value") < 0) | (pl.col("q_value") > 1) | (pl.col("q_value") < pl.col(
        "p_value") - 1e-12)).height  # fmt: skip
    group = [c for c in group if c in tested.columns]
    non_monotone = 0
    if group and tested.height:
        ordered = tested.sort([*group, "p_value"])
        non_monotone = ordered.filter(pl.col("q_value").diff().over(group) < -1e-12).height
    return check_result(
        "q_values_valid", out_of_range == 0 and non_monotone == 0,
        {"tested": tested.height, "out_of_range_or_below_p": out_of_range, "non_monotone": non_monotone},
    )  # fmt: skip


@dg.asset(
    group_name=GROUP,
    code_version=_code_version(),
    deps=["phase2_candidates"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "stress_monotone",
            asset="bridge_evaluation",
            blocking=True,
            description="holdout expectancy never rises as costs are stressed",
        )
    ],
)
def bridge_evaluation(lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Promoted candidates re-estimated on the holdout window: sign agreement, holdout after-cost expectancy and the
    cost-stress curve (1x, 1.5x, 2x, 3x). Failures are marked, not deleted."""
    store = lake.lake()
    candidates = store.read_all(GROUP, "phase2_candidates")
    bridge = evaluate_bridge(candidates, all_events(store), all_bars(store))
    store.write(bridge, GROUP, "bridge_evaluation")
    warehouse.refresh()
    passed = int(bridge["bridge_pass"].sum()) if bridge.height else 0
    rising = (
        bridge.filter(pl.col("cost_stress_curve_bps").list.diff().list.max() > 1e-9).height
        if bridge.height and "cost_stress_curve_bps" in bridge.columns
        else 0
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": bridge.height,
            "bridge_pass": passed,
            "preview": dg.MetadataValue.md(md_table(bridge.head(15)) if bridge.height else "_no promoted candidates_"),
        },
        check_results=[check_result("stress_monotone", rising == 0, {"rows": bridge.height, "violations": rising})],
    )


@dg.asset(
    group_name=GROUP,
    code_version=_code_version(),
    deps=["bridge_evaluation"],
    automation_condition=AUTOMATION,
    kinds={"parquet", "json"},
    check_specs=[dg.AssetCheckSpec("blueprint_schema", asset="strategy_blueprints", blocking=True)],
)
def strategy_blueprints(lake: LakeResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One blueprint per surviving candidate (deterministic id), also written as blueprints.jsonl."""
    store = lake.lake()
    spec = load_discovery_spec()
    bridge = store.read_all(GROUP, "bridge_evaluation")
    blueprints = build_blueprints(bridge, spec) if bridge.height else []
    problems: list[str] = []
    try:
        validate_blueprints(blueprints, spec)
    except ValueError as exc:
        problems.append(str(exc))
    path = write_blueprints_jsonl(blueprints, blueprints_path(store))
    path.chmod(0o644)  # a research artifact others read, not a secret
    table = pl.DataFrame([bp.model_dump(mode="json") for bp in blueprints]) if blueprints else pl.DataFrame()
    store.write(table, GROUP, "strategy_blueprints")
    warehouse.refresh()
    preview = (
        table.select("blueprint_id", "event_type", "instrument", "template", "direction") if table.height else table
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(blueprints),
            "jsonl": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(md_table(preview, n=20) if table.height else "_no blueprints_"),
            "spec_hash": spec.spec_hash,
        },
        check_results=[check_result("blueprint_schema", not problems, {"problems": "; ".join(problems) or "none"})],
    )


discovery_assets = [phase2_hypotheses, phase2_candidates, bridge_evaluation, strategy_blueprints]
