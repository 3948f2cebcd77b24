"""Bridge (holdout + cost stress), blueprints (deterministic ids, atomic JSONL, validation), gates and reports."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from discovery_synth import CLASSES, EventKind, simulate

from lake_assets import tables
from lake_assets.discovery.blueprints import (
    Blueprint,
    read_blueprints_jsonl,
    strategy_blueprints,
    validate_blueprints,
    write_blueprints_jsonl,
)
from lake_assets.discovery.bridge import bridge_evaluation, stress_column
from lake_assets.discovery.candidates import phase2_candidates
from lake_assets.discovery.hypotheses import aggregate_hypotheses, trade_samples
from lake_assets.discovery.reporting import funnel_counts, top_candidates_markdown, volcano_png
from lake_assets.discovery.spec_model import GATES_FILE, SpecHashMismatchError, load_discovery_spec

KINDS = [
    EventKind("PERSIST", "fam_a", "mixed", 0.012, effect_bps=45.0, effect_bars=12),
    EventKind("FADES", "fam_b", "mixed", 0.012, effect_bps=45.0, effect_bars=12, effect_until=0.6),
    EventKind("NOISE", "fam_b", "mixed", 0.012),
]


@pytest.fixture(scope="module")
def pipeline(spec):
    bars, events = simulate(21, KINDS, n_bars=15_000)
    samples = trade_samples(events, bars, spec, CLASSES)
    hyp = aggregate_hypotheses(samples.filter(pl.col("window") == "discovery"), spec)
    cands = phase2_candidates(hyp, spec, samples=samples)
    bridge = bridge_evaluation(cands, events, bars, spec, CLASSES)
    return bars, events, samples, cands, bridge


def test_discovery_tables_match_the_data_dictionary(pipeline, spec) -> None:
    _, _, samples, cands, bridge = pipeline
    hyp = aggregate_hypotheses(samples.filter(pl.col("window") == "discovery"), spec)
    assert not tables.compare_schema(tables.PHASE2_HYPOTHESES, hyp.schema)
    assert not tables.compare_schema(tables.PHASE2_CANDIDATES, cands.schema)
    assert not tables.compare_schema(tables.BRIDGE_EVALUATION, bridge.schema)  # stress columns: documented pattern
    stress = [c for c in bridge.columns if c.startswith("holdout_after_cost_bps_x")]
    assert stress and all("x the round-trip cost" in tables.BRIDGE_EVALUATION.comment(c) for c in stress)


def test_holdout_is_disjoint_from_discovery(pipeline) -> None:
    _, _, samples, _, _ = pipeline
    disc = samples.filter(pl.col("window") == "discovery")
    hold = samples.filter(pl.col("window") == "holdout")
    for inst in ("AAA", "BBB"):
        assert (
            disc.filter(pl.col("instrument") == inst)["exit_ts"].max()
            < hold.filter(pl.col("instrument") == inst)["entry_ts"].min()
        )
    assert hold.height > 0.2 * samples.height


def test_bridge_marks_failures_and_stresses_costs(pipeline, spec) -> None:
    _, _, _, cands, bridge = pipeline
    promoted = cands.filter(pl.col("promoted"))
    assert bridge.height == promoted.height > 0  # every promoted candidate evaluated, none deleted
    assert set(bridge["hypothesis_id"]) == set(promoted["hypothesis_id"])
    rt = spec.gates.costs["crypto"].round_trip_bps
    for m in spec.defaults.bridge.cost_stress_multipliers:
        np.testing.assert_allclose(bridge[stress_column(m)], bridge["holdout_mean_bps"] - m * rt)
    curve = np.array(bridge["cost_stress_curve_bps"].to_list())
    assert (np.diff(curve, axis=1) < 0).all()  # more cost, less expectancy
    persist = bridge.filter((pl.col("event_type") == "PERSIST") & (pl.col("state_col") == "all"))
    fades = bridge.filter((pl.col("event_type") == "FADES") & (pl.col("state_col") == "all"))
    assert persist.height > 0 and persist["bridge_pass"].all()
    assert fades.height > 0 and not fades["bridge_pass"].any()
    assert fades["bridge_fail_reasons"].str.contains("holdout_after_cost").all()
    assert (fades["bridge_status"] == "fail").all()


def test_snooping_and_dsr_reported_for_promoted(pipeline) -> None:
    _, _, _, cands, _ = pipeline
    p = cands.filter(pl.col("promoted"))
    assert p["spa_pvalue"].is_not_null().all() and p["spa_pvalue"].max() < 0.05
    assert p["stepm_superior"].any()
    assert p["dsr"].is_between(0.0, 1.0).all()
    assert cands.filter(~pl.col("promoted"))["spa_pvalue"].is_null().all()
    assert cands.filter(pl.col("promotion_track").is_null())["dsr"].is_null().all()


def test_blueprints_roundtrip_deterministic(pipeline, spec, tmp_path) -> None:
    _, _, _, _, bridge = pipeline
    bps = strategy_blueprints(bridge, spec)
    assert len(bps) == int(bridge["bridge_pass"].sum()) > 0
    assert [b.blueprint_id for b in bps] == [b.blueprint_id for b in strategy_blueprints(bridge, spec)]
    assert len({b.blueprint_id for b in bps}) == len(bps)
    bp = bps[0]
    assert bp.entry.lag_bars >= 1 and bp.exits.time_stop_bars in (3, 12, 48)
    assert bp.spec_hash == spec.spec_hash and bp.evidence.q_value <= 0.05
    assert set(bp.evidence.cost_stress_bps) == {"1x", "1.5x", "2x", "3x"}
    path = write_blueprints_jsonl(bps, tmp_path / "out" / "blueprints.jsonl")
    assert [p.name for p in path.parent.iterdir()] == ["blueprints.jsonl"]  # no temp file left behind
    assert read_blueprints_jsonl(path) == bps
    validate_blueprints(bps, spec)
    # the id is the hash of the definition: editing a rule without a new id is rejected
    data = json.loads(bp.model_dump_json())
    data["exits"]["stop_loss_atr"] = 9.0
    with pytest.raises(ValueError, match="does not match its definition"):
        Blueprint.model_validate(data)
    (tmp_path / "bad.jsonl").write_text(bp.model_dump_json() + "\n" + json.dumps(data) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: line 2"):
        read_blueprints_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="duplicate blueprint id"):
        validate_blueprints([bp, bp], spec)


def test_atomic_write_keeps_old_file_on_failure(pipeline, spec, tmp_path) -> None:
    bps = strategy_blueprints(pipeline[4], spec)
    path = write_blueprints_jsonl(bps, tmp_path / "blueprints.jsonl")
    before = path.read_bytes()

    def broken():
        yield bps[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_blueprints_jsonl(broken(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["blueprints.jsonl"]


def test_consumers_refuse_a_stale_spec_hash(pipeline, spec_copy) -> None:
    bars, events, _, cands, bridge = pipeline
    changed = load_discovery_spec(spec_copy({GATES_FILE: {"defaults.min_after_cost_bps": 5.0}}))
    with pytest.raises(SpecHashMismatchError, match="re-materialize phase2_candidates"):
        bridge_evaluation(cands, events, bars, changed, CLASSES)
    with pytest.raises(SpecHashMismatchError, match="bridge_evaluation"):
        strategy_blueprints(bridge, changed)
    with pytest.raises(SpecHashMismatchError, match="phase2_hypotheses"):
        phase2_candidates(cands.select(pl.exclude("spec_hash")).with_columns(spec_hash=pl.lit("0" * 16)), changed)


def test_gates_reasons_tracks_and_overrides(pipeline, spec_copy) -> None:
    _, _, samples, cands, _ = pipeline
    for r in cands.filter(pl.col("promotion_track").is_null() | ~pl.col("promoted")).head(200).iter_rows(named=True):
        failed = r["failed_gates"].split(",")
        assert len(failed) >= 1 and set(failed) <= {"sample", "fdr", "economic", "conservative", "stability",
                                                    "state_information"}  # fmt: skip
        assert all(r["fail_reasons"].count(g + ":") == 1 for g in failed)
    assert (cands.filter(pl.col("promoted"))["fail_reasons"] == "").all()
    fb = cands.filter(pl.col("promotion_track") == "fallback_only")
    assert (fb["gate_fdr"] & fb["gate_economic"] & ~fb["promoted"]).all()
    # a per-event override that demands more than any effect here demotes that event only
    s2 = load_discovery_spec(spec_copy({GATES_FILE: {"overrides": {"PERSIST": {"min_after_cost_bps": 500.0}}}}))
    hyp = aggregate_hypotheses(samples.filter(pl.col("window") == "discovery"), s2)
    c2 = phase2_candidates(hyp, s2)
    assert c2.filter(pl.col("event_type") == "PERSIST")["promoted"].sum() == 0
    assert c2.filter(pl.col("event_type") == "FADES")["promoted"].sum() > 0
    assert c2.filter(pl.col("event_type") == "PERSIST")["fail_reasons"].str.contains("< 500.0").any()


def test_fdr_method_by_is_more_conservative(pipeline, spec_copy) -> None:
    _, _, samples, cands, _ = pipeline
    s_by = load_discovery_spec(spec_copy({"multiplicity/families.yaml": {"fdr.method": "by"}}))
    c_by = phase2_candidates(aggregate_hypotheses(samples.filter(pl.col("window") == "discovery"), s_by), s_by)
    j = cands.select("hypothesis_id", q_bh="q_value").join(c_by.select("hypothesis_id", "q_value"), on="hypothesis_id")
    j = j.drop_nulls()
    assert (j["q_value"] >= j["q_bh"] - 1e-15).all() and (c_by["fdr_method"] == "by").all()


def test_reports(pipeline, spec) -> None:
    _, _, _, cands, bridge = pipeline
    f = funnel_counts(cands, bridge, len(strategy_blueprints(bridge, spec)))
    cum = f.filter(pl.col("stage").is_in(["hypotheses", "sample", "fdr", "economic", "conservative", "stability",
                                          "state_information"]))["cumulative"].to_list()  # fmt: skip
    assert cum == sorted(cum, reverse=True) and cum[0] == cands.height
    assert cum[-1] == int(cands["promoted"].sum())
    md = top_candidates_markdown(cands, 5)
    assert md.count("\n") == 7 and "hypothesis_id" in md
    png = volcano_png(cands)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
