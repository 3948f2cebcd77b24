"""Data-snooping defences across the promoted set: Hansen's SPA and Romano-Wolf StepM, and the Deflated Sharpe Ratio.

Both answer "is the best of many tries better than luck?" from different angles: SPA/StepM bootstrap the promoted
candidates' after-cost PnL series jointly against a do-nothing benchmark (zero PnL); the DSR deflates each
candidate's per-trade Sharpe ratio by the maximum Sharpe that the number of tested hypotheses would produce by
chance (Bailey & Lopez de Prado 2014, via lake_assets.stats.sharpe).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl

from lake_assets.discovery.hypotheses import (
    ENTRY_TS,
    EVENT_ID,
    EVENT_TYPE,
    HORIZON,
    INSTRUMENT,
    RET_BPS,
    STATE_COL,
    STATE_VALUE,
    TEMPLATE,
    expand_templates_states,
)
from lake_assets.discovery.spec_model import DiscoverySpec
from lake_assets.stats.sharpe import deflated_sharpe_ratio

CANDIDATE_KEYS = (EVENT_TYPE, INSTRUMENT, HORIZON, TEMPLATE, STATE_COL, STATE_VALUE)


def deflated_sharpe(cands: pl.DataFrame, rows: pl.Expr) -> pl.DataFrame:
    """Per-trade after-cost Sharpe and its DSR for the selected rows; trials = every tested hypothesis.

    How the trials are counted: a promoted row was selected from every hypothesis that received a p-value in this
    discovery run (the two-stage FDR ranks all groups against each other, so the whole search is the selection
    universe, not the row's own group). `dsr_n_trials` is that count; it travels in each blueprint's evidence so
    that a later walk-forward of the blueprint deflates by it plus its own configurations
    (lake_assets.stats.sharpe.search_trials / deflated_sharpe_for_search).

    The trial Sharpe variance is a robust (MAD-based) variance of the per-trade gross Sharpe (mean / std) across
    tested rows: the plain variance would be inflated by the real effects and by their mirrored reversal rows,
    which would deflate every candidate against an expected maximum that skill-less trials do not reach.
    """
    tested = cands.filter(pl.col("p_value").is_not_null())
    sr_trials = (tested["mean_bps"] / tested["std_bps"]).to_numpy()
    sr_trials = sr_trials[np.isfinite(sr_trials)]
    n_trials = max(len(sr_trials), 1)
    mad = float(np.median(np.abs(sr_trials - np.median(sr_trials)))) if len(sr_trials) > 1 else 0.0
    var = (1.4826 * mad) ** 2
    sr = (pl.col("mean_bps") - pl.col("round_trip_cost_bps")) / pl.col("std_bps")
    out = cands.with_columns(sharpe_per_trade=sr)
    sel = out.with_row_index("_i").filter(rows)
    dsr = np.full(out.height, np.nan)
    for i, s, n, sk, ku in sel.select("_i", "sharpe_per_trade", "n", "skew", "kurtosis").iter_rows():
        dsr[i] = _dsr(s, n, sk, ku, n_trials, var)
    return out.with_columns(
        dsr=pl.Series(dsr).fill_nan(None), dsr_n_trials=pl.lit(n_trials), dsr_trial_sr_variance=pl.lit(var)
    )


def _dsr(sr: float | None, n: int, skew: float | None, kurt: float | None, n_trials: int, var: float) -> float:
    if sr is None or not math.isfinite(sr) or n < 2:
        return float("nan")
    skew = 0.0 if skew is None or not math.isfinite(skew) else skew
    kurt = 3.0 if kurt is None or not math.isfinite(kurt) else kurt
    try:
        return deflated_sharpe_ratio(sr, n, skew, kurt, n_trials, var)
    except ValueError:  # moments that make the Sharpe variance non-positive
        return float("nan")


def candidate_trades(cands: pl.DataFrame, samples: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """The individual trades behind each candidate row (template sign and state filter applied), after cost."""
    # expansion is row-wise: keep only the samples of the candidates' (event, instrument, horizon) before it
    pre = [k for k in CANDIDATE_KEYS if k in samples.columns]
    if pre:
        samples = samples.join(cands.select(pre).unique(), on=pre, how="semi", nulls_equal=True)
    long = expand_templates_states(samples, spec)
    keyed = cands.select(*CANDIDATE_KEYS, "hypothesis_id", "round_trip_cost_bps")
    # joins return rows in an order that varies between calls: sort (a candidate's trades are one per event) so
    # that every sum over them adds the same numbers in the same order
    return (
        long.join(keyed, on=list(CANDIDATE_KEYS), how="inner")
        .with_columns(pnl_bps=pl.col(RET_BPS) - pl.col("round_trip_cost_bps"))
        .sort("hypothesis_id", ENTRY_TS, EVENT_ID, maintain_order=True)
    )


def snooping_tests(cands: pl.DataFrame, samples: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """SPA p-values (set level) and StepM membership for every `promoted` row (the rows that passed every gate but
    the snooping ones, when called from phase2_candidates); one row per such hypothesis."""
    cfg = spec.defaults.snooping
    schema = {"hypothesis_id": pl.String, "spa_pvalue": pl.Float64, "spa_pvalue_lower": pl.Float64,
              "spa_pvalue_upper": pl.Float64, "stepm_superior": pl.Boolean, "snooping_n_models": pl.Int64}  # fmt: skip
    promoted = cands.filter(pl.col("promoted"))
    if promoted.height == 0:
        return pl.DataFrame(schema=schema)
    trades = candidate_trades(promoted, samples, spec)
    per = (
        trades.with_columns(_p=pl.col(ENTRY_TS).dt.truncate(cfg.period))
        .group_by("hypothesis_id", "_p", maintain_order=True)
        .agg(pl.col("pnl_bps").sum())
    )
    wide = per.pivot(on="hypothesis_id", index="_p", values="pnl_bps", sort_columns=True).sort("_p")
    if wide.height < 2 * cfg.block_size:
        return pl.DataFrame(schema=schema)
    ids = [c for c in wide.columns if c != "_p"]
    pnl = wide.select(ids).fill_null(0.0).to_pandas()
    losses = -pnl  # the bootstrap tests compare losses; the benchmark (do nothing) loses 0
    bench = pd.Series(np.zeros(len(pnl)), index=pnl.index)
    from arch.bootstrap import SPA

    spa = SPA(bench, losses, block_size=cfg.block_size, reps=cfg.reps, bootstrap=cfg.bootstrap, seed=cfg.seed)
    spa.compute()
    pv = spa.pvalues  # read before the step-down below re-subsets the same bootstrap
    superior = {ids[i] for i in _stepm(spa, len(ids), spec.gates.snooping.stepm_size)}
    return pl.DataFrame(
        {
            "hypothesis_id": ids,
            "spa_pvalue": [float(pv["consistent"])] * len(ids),
            "spa_pvalue_lower": [float(pv["lower"])] * len(ids),
            "spa_pvalue_upper": [float(pv["upper"])] * len(ids),
            "stepm_superior": [i in superior for i in ids],
            "snooping_n_models": [len(ids)] * len(ids),
        },
        schema=schema,
    )


def _stepm(spa: object, k: int, size: float) -> list[int]:
    """Romano-Wolf StepM step-down on a computed SPA (as arch.bootstrap.StepM).

    arch's StepM loop re-runs the SPA on an empty subset (and crashes) when every remaining model is superior;
    this loop stops when nothing is left.
    """
    remaining = np.ones(k, dtype=bool)
    superior: list[int] = []
    while remaining.any():
        spa.subset(remaining)  # type: ignore[attr-defined]
        spa.compute()  # type: ignore[attr-defined]
        better = [int(i) for i in spa.better_models(size) if remaining[int(i)]]  # type: ignore[attr-defined]
        if not better:
            break
        superior.extend(better)
        remaining[better] = False
    spa.subset(np.ones(k, dtype=bool))  # type: ignore[attr-defined]
    return sorted(superior)
