"""Phase-2 budget: 50,000 hypotheses through shrinkage, FDR and gates in under 5 seconds. Prints JSON.

`--validity [FDR_SEEDS] [AR1_SEEDS]` instead runs the statistical validity simulations of
tests/discovery/validity_sim.py at full size (defaults 60 and 250 seeds) and prints their JSON:
- `fdr`: realised FDR (mean false-discovery proportion over seeds, with its standard error) of the promoted list and
  of the FDR stage alone, and power, for the spec's two-stage procedure and for the old per-group BH on the same
  p-values (mixtures of real and null effects across 8 instruments, 3 horizons and the state columns);
- `ar1`: rejection rate at nominal 5% of a true null under zero-mean AR(1) drift (phi = 0.995) with long-only events,
  per horizon, for the discovery t and the alternatives (iid t, classic Newey-West, LLSW Newey-West).

The hypotheses are simulated at the summary level with the real structure (57 event types in 10 families,
instruments x horizons x 2 templates x 13 states) and a few planted effects, then passed through
`phase2_candidates` (DSR included, SPA/StepM excluded: they need trade samples and scale with the promoted set).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import polars as pl

from lake_assets.discovery.candidates import phase2_candidates, shrunk_pvalues
from lake_assets.discovery.gates import apply_gates
from lake_assets.discovery.hypotheses import finish_hypotheses
from lake_assets.discovery.multiplicity import fdr_adjust
from lake_assets.discovery.shrinkage import shrink_hierarchical
from lake_assets.discovery.spec_model import load_discovery_spec

STATES = [("all", "all")] + [
    (c, v)
    for c, vs in {
        "vol_regime": ["low", "mid", "high"],
        "carry_state": ["neg", "neutral", "pos"],
        "session": ["asia", "europe", "us"],
        "trend_state": ["up", "down", "chop"],
    }.items()
    for v in vs
]


def simulate_hypotheses(n_target: int = 50_000, seed: int = 0) -> pl.DataFrame:
    spec = load_discovery_spec()
    rng = np.random.default_rng(seed)
    events = [(f"fam{e % 10}", f"EV{e:02d}") for e in range(57)]
    horizons = spec.defaults.discovery.horizons_bars["5m"]
    n_inst = int(np.ceil(n_target / (len(events) * len(horizons) * 2 * len(STATES))))
    grid = pl.DataFrame(
        [(f, e, f"I{i}", h, t, sc, sv)
         for f, e in events for i in range(n_inst) for h in horizons for t in ("continuation", "reversal")
         for sc, sv in STATES],
        schema=["family", "event_type", "instrument", "horizon", "template", "state_col", "state_value"],
        orient="row",
    ).head(n_target)  # fmt: skip
    n = grid.height
    count = np.where(grid["state_col"] == "all", rng.integers(60, 400, n), rng.integers(5, 140, n))
    std = rng.uniform(20, 80, n)
    planted = np.where((grid["event_type"].is_in(["EV03", "EV17", "EV41"]) & (grid["template"] == "continuation"))
                       .to_numpy(), 30.0, 0.0)  # fmt: skip
    mean = planted + rng.normal(0, std / np.sqrt(count))
    half = rng.normal(0, std / np.sqrt(count / 2))
    agg = grid.with_columns(
        timeframe=pl.lit("5m"),
        instrument_class=pl.lit("crypto"),
        verb=pl.col("template"),
        n=pl.Series(count, dtype=pl.Int64),
        mean_bps=mean,
        median_bps=mean,
        std_bps=std,
        hit_rate=rng.uniform(0.4, 0.6, n),
        skew=rng.normal(0, 0.3, n),
        kurtosis=rng.uniform(3, 6, n),
        first_half_mean_bps=mean + half,
        second_half_mean_bps=mean - half,
        first_entry_ts=pl.lit(None, dtype=pl.Datetime("us", "UTC")),
        last_entry_ts=pl.lit(None, dtype=pl.Datetime("us", "UTC")),
    )
    return finish_hypotheses(agg, spec)


def main(n: int = 50_000) -> dict[str, object]:
    spec = load_discovery_spec()
    hyp = simulate_hypotheses(n)
    phase2_candidates(hyp.head(2_000), spec)  # warm imports / caches, as a long-running asset process would be
    t0 = time.perf_counter()
    df = shrink_hierarchical(hyp, spec.families.shrinkage.cell_by)
    t1 = time.perf_counter()
    df = shrunk_pvalues(df, spec.defaults.discovery.min_samples)
    fdr = fdr_adjust(df, "p_value", spec.families.fdr.group_by, spec.families.fdr.method)
    df = pl.concat([df, fdr], how="horizontal")
    t2 = time.perf_counter()
    df = apply_gates(df, spec)
    t3 = time.perf_counter()
    full = phase2_candidates(hyp, spec)
    t4 = time.perf_counter()
    out = {
        "benchmark": "phase2_candidates",
        "hypotheses": hyp.height,
        "shrinkage_s": round(t1 - t0, 4),
        "pvalues_fdr_s": round(t2 - t1, 4),
        "gates_s": round(t3 - t2, 4),
        "stages_total_s": round(t3 - t0, 4),
        "phase2_candidates_total_s": round(t4 - t3, 4),
        "hypotheses_per_s": round(hyp.height / (t4 - t3)),
        "budget_s": 5.0,
        "within_budget": (t4 - t3) < 5.0,
        "promoted": int(full["promoted"].sum()),
        "fallback_only": int((full["promotion_track"] == "fallback_only").sum()),
    }
    return out


def validity(fdr_seeds: int = 60, ar1_seeds: int = 250) -> dict[str, object]:
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "discovery"))
    from validity_sim import ar1_run, fdr_run, summarise_ar1, summarise_fdr

    spec = load_discovery_spec()
    t0 = time.perf_counter()
    rows = [r for seed in range(fdr_seeds) for r in fdr_run(10_000 + seed, spec)]
    t1 = time.perf_counter()
    ar1 = pl.concat([ar1_run(20_000 + seed, spec) for seed in range(ar1_seeds)])
    t2 = time.perf_counter()
    return {
        "benchmark": "discovery_validity",
        "q": spec.gates.defaults.max_q_value,
        "fdr_method": spec.families.fdr.method,
        "fdr_group_by": list(spec.families.fdr.group_by),
        "fdr": summarise_fdr(rows),
        "fdr_seconds": round(t1 - t0, 1),
        "ar1": {"phi": 0.995, "drift_sd_bps": 2.5, "noise_bps": 10.0, **summarise_ar1(ar1)},
        "ar1_seconds": round(t2 - t1, 1),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--validity":
        args = [int(a) for a in sys.argv[2:4]]
        print(json.dumps(validity(*args), indent=2))
    else:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
        print(json.dumps(main(n), indent=2))
