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
