"""Statistical validity end to end (bars + events -> hypotheses -> candidates): null, power, no lookahead."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from discovery_synth import CLASSES, EventKind, simulate

from lake_assets.discovery.candidates import phase2_candidates
from lake_assets.discovery.hypotheses import phase2_hypotheses
from lake_assets.discovery.multiplicity import grouped_fdr
from lake_assets.stats.hac import fixed_b_pvalue

NULL_KINDS = [
    EventKind("N_MIX", "fam_a", "mixed", 0.012),
    EventKind("N_LONG", "fam_a", "long", 0.008),
    EventKind("N_BOTH", "fam_b", "both", 0.01),
    EventKind("N_NEUTRAL", "fam_b", "neutral", 0.01),
]


def test_null_fdr_is_controlled_over_20_seeds(spec) -> None:
    """No planted effects: every rejection is false, so per FDR group P(any q <= alpha) = FDR must be <= alpha."""
    alpha = spec.gates.defaults.max_q_value
    groups_with_discovery, groups, rejected, tested, promoted, raw_hits = 0, 0, 0, 0, 0, 0
    for seed in range(20):
        bars, events = simulate(100 + seed, NULL_KINDS, n_bars=10_000)
        cands = phase2_candidates(phase2_hypotheses(events, bars, spec, CLASSES), spec, with_dsr=False)
        t = cands.filter(pl.col("q_value").is_not_null())
        per_group = t.group_by(spec.families.fdr.group_by).agg((pl.col("q_value") <= alpha).any().alias("hit"))
        groups_with_discovery += int(per_group["hit"].sum())
        # per-group BH on the unshrunk HAC t (its fixed-b reference): the p-values must be valid on their own
        raw_p = fixed_b_pvalue(t["t_stat"].to_numpy(), t["n"].to_numpy(), t["hac_lags"].to_numpy())
        raw_q = grouped_fdr(t.with_columns(raw_p=raw_p), "raw_p", spec.families.fdr.group_by)
        raw_hits += int(
            t.with_columns(raw_q=raw_q)
            .group_by(spec.families.fdr.group_by)
            .agg((pl.col("raw_q") <= alpha).any())["raw_q"]
            .sum()
        )
        groups += per_group.height
        rejected += int((t["q_value"] <= alpha).sum())
        tested += t.height
        promoted += int(cands["promoted"].sum())
    fdr, raw_fdr = groups_with_discovery / groups, raw_hits / groups
    se = math.sqrt(alpha * (1 - alpha) / groups)
    print(
        f"\nnull: realised FDR {fdr:.4f} over {groups} FDR groups (q={alpha}, +3se bound {alpha + 3 * se:.4f}); "
        f"unshrunk-t BH realised FDR {raw_fdr:.4f}; q<=alpha share {rejected / tested:.5f} of {tested} tested; "
        f"promoted {promoted}"
    )
    assert groups >= 400
    assert fdr <= alpha + 3 * se
    assert raw_fdr <= alpha + 3 * se
    assert promoted / tested <= alpha


POWER_KINDS = [
    EventKind("P_MIX", "fam_a", "mixed", 0.01, effect_bps=40.0, effect_bars=12),
    EventKind("P_LONG", "fam_a", "long", 0.01, effect_bps=-40.0, effect_bars=12),  # longs that fall: reversal
    EventKind("P_BOTH", "fam_b", "both", 0.01, effect_bps=45.0, effect_bars=12),
    EventKind("Z_NULL", "fam_b", "mixed", 0.01),
    EventKind("Z_NULL2", "fam_c", "short", 0.01),
]
PLANTED = {"P_MIX": ("continuation", 40.0), "P_LONG": ("reversal", 40.0), "P_BOTH": ("continuation", 45.0)}


def test_planted_effects_are_found_with_sign_and_size(spec) -> None:
    rt = spec.gates.costs["crypto"].round_trip_bps
    assert all(size > rt + 20 for _, size in PLANTED.values())  # sizes exceed costs by a margin
    found, total, false_promoted, all_promoted = 0, 0, 0, 0
    for seed in (1, 2, 3):
        bars, events = simulate(seed, POWER_KINDS, n_bars=15_000)
        cands = phase2_candidates(phase2_hypotheses(events, bars, spec, CLASSES), spec, with_dsr=False)
        all_promoted += int(cands["promoted"].sum())
        false_promoted += int(cands.filter(pl.col("promoted") & pl.col("event_type").str.starts_with("Z_")).height)
        planted_template = pl.col("event_type").replace_strict({k: v[0] for k, v in PLANTED.items()}, default=None)
        wrong_way = cands.filter(
            pl.col("promoted") & pl.col("event_type").is_in(list(PLANTED)) & (pl.col("template") != planted_template)
        )
        assert wrong_way.height == 0
        for et, (template, size) in PLANTED.items():
            rows = cands.filter(
                (pl.col("event_type") == et)
                & (pl.col("template") == template)
                & (pl.col("state_col") == "all")
                & (pl.col("horizon") >= 12)  # fmt: skip
            )
            for r in rows.iter_rows(named=True):
                total += 1
                expected = (math.exp(size / 1e4) - 1) * 1e4
                ok = (
                    r["promoted"]
                    and r["shrunk_effect_bps"] > 0
                    and abs(r["shrunk_effect_bps"] - expected) <= max(0.35 * expected, 3 * r["se_bps"])
                )
                found += bool(ok)
    print(f"\npower: {found}/{total} planted effects promoted with matching sign and size; "
          f"false promotions {false_promoted}/{all_promoted}")  # fmt: skip
    assert total == 3 * 3 * 2 * 2
    assert found / total >= 0.8
    assert false_promoted <= 0.1 * max(all_promoted, 1)


def test_effect_on_the_detection_bar_itself_is_not_discoverable(spec) -> None:
    """The detection bar's own return is known when the event fires; it must not look like a forward edge."""
    kinds = [
        EventKind("AT_DET", "fam_a", "mixed", 0.015, effect_bps=80.0, at_detection=True),
        EventKind("AT_DET_BOTH", "fam_a", "both", 0.015, effect_bps=80.0, at_detection=True),
        EventKind("AFTER", "fam_b", "mixed", 0.015, effect_bps=80.0, effect_bars=1),  # positive control
    ]
    bars, events = simulate(7, kinds, n_bars=15_000)
    cands = phase2_candidates(phase2_hypotheses(events, bars, spec, CLASSES), spec, with_dsr=False)
    det = cands.filter(pl.col("event_type").str.starts_with("AT_DET"))
    assert det.filter(pl.col("promoted")).height == 0
    assert (det["q_value"].drop_nulls() > spec.gates.defaults.max_q_value).all()
    base = det.filter(pl.col("state_col") == "all")
    assert base["t_stat"].abs().max() < 4.0
    after = cands.filter((pl.col("event_type") == "AFTER") & (pl.col("state_col") == "all"))
    assert after.filter(pl.col("promoted") & (pl.col("template") == "continuation")).height >= 4
    # the planted detection-bar move really is there: the event bars' own bodies are large
    ev_bars = events.filter(pl.col("event_type") == "AT_DET").join(bars, on=["instrument", "ts"])
    body = ((ev_bars["close"] / ev_bars["open"] - 1) * 1e4 * np.where(ev_bars["direction"] == "long", 1, -1)).mean()
    assert body > 60


def test_fdr_of_the_promoted_list_on_mixtures_of_real_and_null_effects(spec) -> None:
    """Real effects on some instruments / states / horizons next to nulls: the mean false-discovery proportion of
    the promoted list (and of the FDR stage alone) stays <= q under the spec's two-stage procedure. The full
    >= 50-seed version with the old per-group BH for comparison: benchmarks/bench_discovery.py --validity."""
    from validity_sim import fdr_run, summarise_fdr

    alpha = spec.gates.defaults.max_q_value
    rows = [r for seed in range(20) for r in fdr_run(300 + seed, spec, n_bars=10_000)]
    s = summarise_fdr(rows)
    new, old = s[spec.families.fdr.method], s["per_group_bh"]
    print(f"\nmixture, 20 seeds: {spec.families.fdr.method} FDR(promoted) {new['fdr_promoted_mean']:.4f} "
          f"+- {new['fdr_promoted_se']:.4f}, FDR(stage) {new['fdr_stage_mean']:.4f}, power {new['power_mean']:.3f}; "
          f"per-group BH FDR(promoted) {old['fdr_promoted_mean']:.4f}, FDR(stage) {old['fdr_stage_mean']:.4f}, "
          f"power {old['power_mean']:.3f}")  # fmt: skip
    assert spec.families.fdr.method == "bb"
    assert new["fdr_promoted_mean"] <= alpha and new["fdr_stage_mean"] <= alpha
    assert new["promoted_mean"] > 3 and new["power_mean"] > 0.02  # it still finds the planted effects
    assert new["fdr_stage_mean"] <= old["fdr_stage_mean"]


def test_hac_t_keeps_its_size_under_persistent_drift(spec) -> None:
    """Zero-mean AR(1) drift (phi 0.995) in the bars' mean and long-only events: every hypothesis is null. The
    discovery t (Newey-West, bandwidth 1.3 sqrt(n), fixed-b mean, exact fixed-b p-value) rejects about 5%; the iid
    t does not. Full run with more replications: benchmarks/bench_discovery.py --validity."""
    from validity_sim import ar1_run, summarise_ar1

    frame = pl.concat([ar1_run(900 + seed, spec) for seed in range(40)])
    s = summarise_ar1(frame)
    reps = s["replications_per_horizon"]
    assert isinstance(reps, int) and reps >= 300
    pooled = {m: float((frame[f"p_{m}"] < 0.05).mean()) for m in ("discovery", "iid", "nw_classic")}
    se = math.sqrt(0.05 * 0.95 / reps)  # per horizon; the pooled rate (3 correlated horizons) is at least as precise
    print(f"\nAR(1) drift null, {reps} replications x 3 horizons: rejection at 5% {pooled}")
    assert abs(pooled["discovery"] - 0.05) <= max(0.015, 2.5 * se)
    assert pooled["iid"] > pooled["discovery"] + 0.03
