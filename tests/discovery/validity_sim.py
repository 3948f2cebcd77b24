"""Validity simulations shared by tests/discovery/test_validity.py (few seeds) and
`benchmarks/bench_discovery.py --validity` (the full runs).

- `fdr_run`: a mixture of real and null effects across instruments, horizons and states (discovery_synth plants:
  2 of 8 instruments carry one event's effect, a state-conditional effect on one instrument, a delayed effect that
  short horizons cannot see, a short effect, and four null event types), pushed through the real hypotheses ->
  shrinkage -> p-values -> FDR -> gates chain; the promoted list is scored against `discovery_synth.truth` for the
  spec's FDR method and for the old per-group BH on the same p-values.
- `ar1_run`: zero-mean AR(1) drift (phi = 0.995) in every bar's mean return, one-directional (long) events and no
  planted effect: every hypothesis is null, so the share of unconditional continuation rows with p < 5% is the
  test's size. Reported for the discovery t (Newey-West, bandwidth ceil(1.3 sqrt(n)), fixed-b mean, exact fixed-b
  p-value) and the alternatives: the iid t, Newey-West with the classic bandwidth floor(4 (n/100)^(2/9)) and normal
  critical values, and Newey-West with the former fixed-b bandwidth ceil(n/4) (same fixed-b mean and exact p-value).
The SPA / StepM gates are not applied here (they need bootstraps per seed); they can only remove rows from the list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from discovery_synth import EventKind, simulate, truth
from scipy import stats

from lake_assets.discovery.candidates import shrunk_pvalues
from lake_assets.discovery.gates import apply_gates
from lake_assets.discovery.hypotheses import aggregate_hypotheses, trade_samples
from lake_assets.discovery.multiplicity import fdr_adjust, grouped_fdr
from lake_assets.discovery.shrinkage import shrink_hierarchical
from lake_assets.discovery.spec_model import DiscoverySpec
from lake_assets.stats.hac import fixed_b_mean, fixed_b_pvalue, grouped_nw_variance

INSTRUMENTS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")
CLASSES_8 = dict.fromkeys(INSTRUMENTS, "crypto")

MIXTURE = [
    EventKind("R_TWO_INST", "fam_a", "mixed", 0.01, effect_bps=40.0, instruments=("AAA", "BBB")),
    EventKind("R_STATE", "fam_a", "mixed", 0.01, effect_bps=60.0, instruments=("CCC",), state=("vol_regime", "high")),
    EventKind("R_DELAYED", "fam_b", "mixed", 0.01, effect_bps=40.0, instruments=("DDD", "EEE"), effect_delay=4),
    EventKind("R_SHORT", "fam_c", "mixed", 0.01, effect_bps=30.0, effect_bars=3, instruments=("FFF", "GGG"),
              state=("session", "us")),
    EventKind("N_MIX", "fam_b", "mixed", 0.01),
    EventKind("N_LONG", "fam_c", "long", 0.01),
    EventKind("N_BOTH", "fam_d", "both", 0.01),
    EventKind("N_MIX2", "fam_d", "mixed", 0.01),
]  # fmt: skip


@dataclass(frozen=True)
class FdrSeed:
    seed: int
    method: str
    promoted: int
    false_promoted: int
    true_promoted: int
    true_total: int
    rejected: int  # rows with q <= the gate's max_q (the FDR stage alone)
    false_rejected: int

    @property
    def fdp(self) -> float:
        return self.false_promoted / self.promoted if self.promoted else 0.0

    @property
    def fdp_fdr_stage(self) -> float:
        return self.false_rejected / self.rejected if self.rejected else 0.0

    @property
    def power(self) -> float:
        return self.true_promoted / self.true_total if self.true_total else float("nan")

    @property
    def power_fdr_stage(self) -> float:
        return (self.rejected - self.false_rejected) / self.true_total if self.true_total else float("nan")


def fdr_run(seed: int, spec: DiscoverySpec, n_bars: int = 12_000) -> list[FdrSeed]:
    """One seed of the mixture: the spec's method and the old per-group BH on the same p-values."""
    bars, events = simulate(seed, MIXTURE, instruments=INSTRUMENTS, n_bars=n_bars)
    samples = trade_samples(events, bars, spec, CLASSES_8)
    hyp = aggregate_hypotheses(samples.filter(pl.col("window") == "discovery"), spec)
    pre = shrunk_pvalues(shrink_hierarchical(hyp, spec.families.shrinkage.cell_by), spec.defaults.discovery.min_samples)
    true = truth(pre, MIXTURE)
    group_by, alpha = spec.families.fdr.group_by, spec.gates.defaults.max_q_value
    qs = {
        spec.families.fdr.method: fdr_adjust(pre, "p_value", group_by, spec.families.fdr.method)["q_value"],
        "per_group_bh": grouped_fdr(pre, "p_value", group_by, "bh"),
    }
    out = []
    for method, q in qs.items():
        c = apply_gates(pre.with_columns(q_value=q), spec).with_columns(_true=true)
        p = c.filter(pl.col("promoted"))
        rej = c.filter(pl.col("q_value") <= alpha)
        out.append(
            FdrSeed(
                seed=seed, method=method, promoted=p.height, false_promoted=int((~p["_true"]).sum()),
                true_promoted=int(p["_true"].sum()), true_total=int(true.sum()), rejected=rej.height,
                false_rejected=int((~rej["_true"]).sum()),
            )  # fmt: skip
        )
    return out


def summarise_fdr(rows: list[FdrSeed]) -> dict[str, dict[str, float]]:
    """Per method: mean FDP of the promoted list (the realised FDR) with its standard error over seeds, the same
    for the FDR stage alone, mean power, and mean list size."""
    out: dict[str, dict[str, float]] = {}
    for method in sorted({r.method for r in rows}):
        rs = [r for r in rows if r.method == method]
        fdp = np.array([r.fdp for r in rs])
        stage = np.array([r.fdp_fdr_stage for r in rs])
        power = np.array([r.power for r in rs])
        power_stage = np.array([r.power_fdr_stage for r in rs])
        out[method] = {
            "seeds": len(rs),
            "fdr_promoted_mean": float(fdp.mean()),
            "fdr_promoted_se": float(fdp.std(ddof=1) / math.sqrt(len(rs))) if len(rs) > 1 else float("nan"),
            "fdr_stage_mean": float(stage.mean()),
            "fdr_stage_se": float(stage.std(ddof=1) / math.sqrt(len(rs))) if len(rs) > 1 else float("nan"),
            "seeds_with_false_promotion": int(sum(r.false_promoted > 0 for r in rs)),
            "power_mean": float(power.mean()),
            "power_fdr_stage_mean": float(power_stage.mean()),
            "rejected_fdr_stage_mean": float(np.mean([r.rejected for r in rs])),
            "promoted_mean": float(np.mean([r.promoted for r in rs])),
            "true_rows_mean": float(np.mean([r.true_total for r in rs])),
        }
    return out


AR1_KINDS = [EventKind("DRIFT_LONG", "fam_a", "long", 0.01)]


def ar1_run(
    seed: int, spec: DiscoverySpec, n_bars: int = 20_000, phi: float = 0.995, drift_sd_bps: float = 2.5
) -> pl.DataFrame:
    """One seed of the AR(1)-drift null: per (instrument, horizon), the one-sided p-values of the unconditional
    continuation row under each inference method (columns p_discovery, p_iid, p_nw_classic, p_nw_quarter)."""
    bars, events = simulate(
        seed, AR1_KINDS, instruments=INSTRUMENTS, n_bars=n_bars, drift_phi=phi, drift_sd_bps=drift_sd_bps
    )
    samples = trade_samples(events, bars, spec, CLASSES_8).filter(pl.col("window") == "discovery")
    hyp = aggregate_hypotheses(samples, spec).filter(
        (pl.col("state_col") == "all") & (pl.col("template") == "continuation")
    )
    series = samples.sort("instrument", "horizon", "entry_ts", "event_id")
    keys = series.select("instrument", "horizon")
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).to_numpy().any(axis=1)]
                            if keys.height > 1 else np.ones(keys.height, dtype=bool))  # fmt: skip
    x = series["ret_bps"].to_numpy()
    sizes = np.diff(np.r_[starts, len(x)])
    mean = np.add.reduceat(x, starts) / sizes
    classic = np.minimum(np.floor(4 * (sizes / 100.0) ** (2 / 9)).astype(np.int64), sizes - 1)
    var_classic = grouped_nw_variance(x, starts, classic)
    quarter = np.minimum(-(-sizes // 4), sizes - 1)
    var_quarter = grouped_nw_variance(x, starts, quarter) / fixed_b_mean(sizes, quarter)
    alt = keys[starts].with_columns(
        p_nw_classic=stats.norm.sf(mean / np.sqrt(var_classic)),
        p_nw_quarter=fixed_b_pvalue(mean / np.sqrt(var_quarter), sizes, quarter),
    )
    return (
        hyp.select(
            "instrument",
            "horizon",
            "n",
            p_discovery=pl.Series(
                fixed_b_pvalue(hyp["t_stat"].to_numpy(), hyp["n"].to_numpy(), hyp["hac_lags"].to_numpy())
            ),
            p_iid=pl.Series(stats.t.sf((hyp["mean_bps"] / hyp["se_iid_bps"]).to_numpy(), hyp["n"].to_numpy() - 1)),
        )
        .join(alt, on=["instrument", "horizon"], how="left")
        .with_columns(seed=pl.lit(seed))
    )


def summarise_ar1(frame: pl.DataFrame, alpha: float = 0.05) -> dict[str, object]:
    """Rejection rate at `alpha` per method and horizon (each (seed, instrument) row one replication) with its
    binomial standard error."""
    out: dict[str, object] = {"replications_per_horizon": int(frame.group_by("horizon").len()["len"].min())}
    for h in sorted(frame["horizon"].unique().to_list()):
        f = frame.filter(pl.col("horizon") == h)
        rates = {}
        for m in ("p_discovery", "p_iid", "p_nw_classic", "p_nw_quarter"):
            r = float((f[m] < alpha).mean())
            rates[m.removeprefix("p_")] = {"rate": r, "se": math.sqrt(alpha * (1 - alpha) / f.height)}
        out[f"h{h}"] = {"mean_trades": float(f["n"].mean()), **rates}
    return out
