"""Grouped BH / BY q-values are identical to statsmodels' multipletests run group by group."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.multitest import multipletests

from lake_assets.discovery.multiplicity import grouped_fdr


@pytest.mark.parametrize("method", ["bh", "by"])
def test_equals_statsmodels_per_group(method: str) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    p = np.concatenate([rng.uniform(size=n - 500), rng.beta(0.2, 8.0, 500)])
    p[rng.choice(n, 300, replace=False)] = 0.5  # ties
    p[rng.choice(n, 50, replace=False)] = np.nan  # untested
    df = pl.DataFrame({"g1": rng.integers(0, 7, n), "g2": rng.choice(["a", "b", "c"], n), "p_value": p})
    q = grouped_fdr(df, "p_value", ["g1", "g2"], method).to_numpy()
    sm_method = {"bh": "fdr_bh", "by": "fdr_by"}[method]
    for (g1, g2), part in df.with_row_index("i").group_by("g1", "g2"):
        part = part.filter(pl.col("p_value").is_not_nan())
        ref = multipletests(part["p_value"].to_numpy(), method=sm_method)[1]
        assert np.array_equal(q[part["i"].to_numpy()], ref), (g1, g2)
    assert np.isnan(q[np.isnan(p)]).all()
    ok = q[~np.isnan(q)]
    assert ((ok >= 0) & (ok <= 1)).all()


def test_ungrouped_and_validation() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001])
    df = pl.DataFrame({"p_value": p})
    assert np.array_equal(grouped_fdr(df).to_numpy(), multipletests(p, method="fdr_bh")[1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        grouped_fdr(pl.DataFrame({"p_value": [1.2]}))
    with pytest.raises(ValueError, match="missing column"):
        grouped_fdr(df, group_by=["family"])


def _bb_direct(p: np.ndarray, g: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Bogomolov at level alpha, literally: Simes per group, BH across groups, BH within at alpha R / G."""
    groups = np.unique(g)
    simes = np.array([np.min(np.sort(p[g == k]) * (g == k).sum() / np.arange(1, (g == k).sum() + 1)) for k in groups])
    sel = multipletests(simes, alpha=alpha, method="fdr_bh")[0]
    r = int(sel.sum())
    out = np.zeros(len(p), dtype=bool)
    for k, s in zip(groups, sel, strict=True):
        if s:
            out[g == k] = multipletests(p[g == k], alpha=alpha * r / len(groups), method="fdr_bh")[0]
    return out


def test_two_stage_q_values_reproduce_the_procedure_at_every_level() -> None:
    from lake_assets.discovery.multiplicity import two_stage_fdr

    rng = np.random.default_rng(11)
    n_groups = 40
    g = rng.integers(0, n_groups, 3000)
    p = rng.uniform(0, 1, len(g))
    strong = np.isin(g, [1, 2, 3, 7, 30])
    p = np.where(strong & (rng.random(len(g)) < 0.3), rng.uniform(0, 1e-3, len(g)), p)
    p[::97] = np.nan  # untested rows
    df = pl.DataFrame({"g": g, "p_value": p}).with_columns(pl.col("p_value").fill_nan(None))
    out = two_stage_fdr(df, "p_value", ["g"])
    q = out["q_value"].to_numpy().astype(float)
    ok = np.isfinite(p)
    assert (np.isnan(q) == ~ok).all()
    assert (q[ok] >= p[ok] - 1e-15).all() and (q[ok] <= 1).all()
    for alpha in (0.001, 0.01, 0.05, 0.1, 0.2):
        direct = _bb_direct(p[ok], g[ok], alpha)
        assert direct.sum() > 0 or alpha < 0.01
        assert np.array_equal(q[ok] <= alpha, direct), alpha
    # monotone in p inside each group
    t = df.with_columns(q=out["q_value"]).drop_nulls().sort("g", "p_value")
    assert t.filter(pl.col("q").diff().over("g") < -1e-15).height == 0
    assert out["fdr_groups_tested"][0] == n_groups


def test_two_stage_on_pure_noise_rarely_rejects() -> None:
    from lake_assets.discovery.multiplicity import two_stage_fdr

    any_reject_bb, any_reject_bh = 0, 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(150), 40)
        df = pl.DataFrame({"g": g, "p_value": rng.uniform(0, 1, len(g))})
        any_reject_bb += bool((two_stage_fdr(df, "p_value", ["g"])["q_value"] <= 0.05).any())
        any_reject_bh += bool((grouped_fdr(df, "p_value", ["g"]) <= 0.05).any())
    assert any_reject_bb / 200 <= 0.05 + 3 * (0.05 * 0.95 / 200) ** 0.5  # Simes-BH: P(any) <= q under the null
    assert any_reject_bh / 200 > 0.9  # per-group BH: ~1 - 0.95^150
