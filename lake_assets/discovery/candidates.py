"""`phase2_candidates`: shrinkage, one-sided p-values from the shrunk t, grouped FDR, gates, tracks, DSR, SPA/StepM.

The p-value tests "expectancy > 0 in the template's direction": t_shrunk = shrunk effect / raw standard error
(the raw, not the posterior, standard error: conservative; Newey-West, see hypotheses.py), p = P(T > t_shrunk) under
the exact fixed-b null of the row's bandwidth (lake_assets.stats.hac.fixed_b_pvalue; Student-t n - 1 for iid rows).
FDR: the spec's method (families.yaml `fdr.method`; `bb` = Benjamini-Bogomolov two-stage across the spec's groups,
see multiplicity.py) bounds the false discoveries of the promoted list, not only inside each group.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from lake_assets.discovery.gates import apply_gates, apply_snooping_gates
from lake_assets.discovery.hypotheses import TEMPLATE, WINDOW
from lake_assets.discovery.multiplicity import fdr_adjust
from lake_assets.discovery.shrinkage import shrink_hierarchical
from lake_assets.discovery.snooping import deflated_sharpe, snooping_tests
from lake_assets.discovery.spec_model import DiscoverySpec, load_discovery_spec, require_current_spec


def shrunk_pvalues(df: pl.DataFrame, min_samples: int) -> pl.DataFrame:
    """Vectorised one-sided p-values from the shrunk t-statistic; untested rows (n < min_samples) get null."""
    from scipy import stats  # on first use: processes that never need it (CLI, workers) start ~1 s sooner

    from lake_assets.stats.hac import fixed_b_pvalue
    n = df["n"].to_numpy().astype(np.float64)
    se = df["se_bps"].fill_null(np.nan).to_numpy()
    eff = df["shrunk_effect_bps"].fill_null(np.nan).to_numpy()
    lags = df["hac_lags"].fill_null(0).to_numpy().astype(np.int64) if "hac_lags" in df.columns else np.zeros(len(n))
    ok = (n >= min_samples) & np.isfinite(se) & (se > 0) & np.isfinite(eff)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ok, eff / se, np.nan)
        # Newey-West rows: the exact fixed-b reference of their bandwidth; iid rows: Student-t with n - 1 df
        p = np.where(ok, stats.t.sf(t, np.maximum(n - 1, 1)), np.nan)
        hac = ok & (lags > 0)
        p[hac] = fixed_b_pvalue(t[hac], n[hac].astype(np.int64), lags[hac])
    return df.with_columns(t_shrunk=pl.Series(t).fill_nan(None), p_value=pl.Series(p).fill_nan(None))


def phase2_candidates(
    hypotheses: pl.DataFrame,
    spec: DiscoverySpec | None = None,
    samples: pl.DataFrame | None = None,
    with_dsr: bool = True,
) -> pl.DataFrame:
    """Candidates from hypotheses (all event types together); `samples` (discovery trades) enables SPA/StepM."""
    spec = spec or load_discovery_spec()
    require_current_spec(hypotheses, spec, "phase2_hypotheses")
    fdr = spec.families.fdr
    df = shrink_hierarchical(hypotheses, spec.families.shrinkage.cell_by)
    df = shrunk_pvalues(df, spec.defaults.discovery.min_samples)
    if "verb" not in df.columns:
        df = df.with_columns(verb=pl.col(TEMPLATE))
    df = pl.concat([df, fdr_adjust(df, "p_value", fdr.group_by, fdr.method)], how="horizontal").with_columns(
        fdr_method=pl.lit(fdr.method)
    )
    df = apply_gates(df, spec)  # every gate but the snooping ones: they test the set that passed the others
    snoop = None
    if samples is not None:
        if WINDOW in samples.columns:
            samples = samples.filter(pl.col(WINDOW) == "discovery")
        snoop = snooping_tests(df, samples, spec)
    df = apply_snooping_gates(df, snoop, spec)
    if with_dsr:
        df = deflated_sharpe(df, pl.col("promotion_track").is_not_null())
    # hypothesis_id is unique: a total order, so ties in the ranking columns cannot reorder rows between runs
    return df.sort(
        ["promoted", "q_value", "shrunk_effect_bps", "hypothesis_id"],
        descending=[True, False, True, False],
        nulls_last=True,
        maintain_order=True,
    )
