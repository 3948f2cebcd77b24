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
from lake_assets.discovery.gates import BASE_GATES
from lake_assets.discovery.hypotheses import aggregate_hypotheses, trade_samples
from lake_assets.discovery.reporting import funnel_counts, top_candidates_markdown, volcano_png
from lake_assets.discovery.spec_model import GATE_NAMES, GATES_FILE, SpecHashMismatchError, load_discovery_spec

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
    # SPA / StepM bootstrap exactly the rows that passed every other gate
    tried = pl.all_horizontal([pl.col(f"gate_{g}") for g in BASE_GATES])
    assert cands.filter(~tried)["spa_pvalue"].is_null().all()
    assert cands.filter(tried)["spa_pvalue"].is_not_null().all()
    assert (cands["promoted"] == (cands["gate_spa"] & cands["gate_stepm"] & cands.select(tried).to_series())).all()
    assert cands["snooping_evaluated"].all()
    assert cands.filter(pl.col("promotion_track").is_null())["dsr"].is_null().all()


def test_blueprints_roundtrip_deterministic(pipeline, spec, tmp_path) -> None:
    _, _, _, _, bridge = pipeline
    bps = strategy_blueprints(bridge, spec)
    passed = bridge.filter(pl.col("bridge_pass"))
    effects = passed.select("event_type", "instrument", "verb", "horizon").unique().height
    assert len(bps) == min(effects, spec.defaults.blueprints.max_total) > 0  # one per effect, its best row
    ranked = passed.sort(["q_value", "holdout_after_cost_bps"], descending=[False, True], nulls_last=True)
    best = ranked.row(0, named=True)
    assert best["q_value"] in {b.evidence.q_value for b in bps}
    assert [b.blueprint_id for b in bps] == [b.blueprint_id for b in strategy_blueprints(bridge, spec)]
    assert len({b.blueprint_id for b in bps}) == len(bps)
    bp = bps[0]
    assert bp.entry.lag_bars >= 1 and bp.exits.time_stop_bars in (3, 12, 48)
    assert bp.spec_hash == spec.spec_hash and bp.evidence.q_value <= 0.05
    assert set(bp.evidence.cost_stress_bps) == {"1x", "1.5x", "2x", "3x"}
    # the DSR trial count discovery hands on: every hypothesis tested in the run, not the row's group
    cands = pipeline[3]
    assert bp.evidence.dsr_n_trials == cands.filter(pl.col("p_value").is_not_null()).height > 100
    assert bp.evidence.t_df is not None and bp.evidence.baseline_mean_bps is not None
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
        assert len(failed) >= 1 and set(failed) <= set(GATE_NAMES)
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


def test_fdr_methods_nest(pipeline, spec_copy) -> None:
    """Per-group BY is more conservative than per-group BH; the two-stage bb q-value is never below per-group BH
    (stage 3 is BH at q R / G <= q inside a selected group)."""
    _, _, samples, cands, _ = pipeline
    disc = samples.filter(pl.col("window") == "discovery")
    q = {"bb": cands.select("hypothesis_id", "q_value")}
    for m in ("bh", "by"):
        s_m = load_discovery_spec(spec_copy({"multiplicity/families.yaml": {"fdr.method": m}}))
        c_m = phase2_candidates(aggregate_hypotheses(disc, s_m), s_m, with_dsr=False)
        assert (c_m["fdr_method"] == m).all()
        q[m] = c_m.select("hypothesis_id", "q_value")
    assert (cands["fdr_method"] == "bb").all()
    j = q["bb"].join(q["bh"], on="hypothesis_id", suffix="_bh").join(q["by"], on="hypothesis_id", suffix="_by")
    j = j.drop_nulls()
    assert j.height > 100
    assert (j["q_value_by"] >= j["q_value_bh"] - 1e-15).all()
    assert (j["q_value"] >= j["q_value_bh"] - 1e-15).all()


def test_reports(pipeline, spec) -> None:
    _, _, _, cands, bridge = pipeline
    f = funnel_counts(cands, bridge, len(strategy_blueprints(bridge, spec)))
    assert f["stage"].to_list() == ["hypotheses", *GATE_NAMES, "promoted", "bridge_pass", "blueprints"]
    cum = f["cumulative"].to_list()
    assert cum == sorted(cum, reverse=True) and cum[0] == cands.height  # cumulative: survivors never increase
    assert cum[-4] == cum[-3] == int(cands["promoted"].sum())  # after the last gate = promoted
    assert cum[-2] == int(bridge["bridge_pass"].sum()) and cum[-1] == len(strategy_blueprints(bridge, spec))
    alone = dict(zip(f["stage"], f["passed"], strict=True))
    assert all(alone[g] >= c for g, c in zip(GATE_NAMES, cum[1:], strict=False))
    assert f.filter(pl.col("stage") == "promoted")["fallback_only"].item() == int(
        (cands["promotion_track"] == "fallback_only").sum()
    )
    from lake_assets.reports.plots import funnel_labels, funnel_png

    assert funnel_labels(f)[:3] == ["hypotheses", "+ sample", "+ fdr"]
    assert funnel_png(f)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="must not increase"):
        funnel_png(f.with_columns(cumulative=pl.col("cumulative").reverse()))
    md = top_candidates_markdown(cands, 5)
    assert md.count("\n") == 7 and "hypothesis_id" in md
    png = volcano_png(cands)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
