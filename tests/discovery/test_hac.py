"""The vectorised grouped Newey-West variance equals statsmodels' HAC (OLS on a constant) to 1e-10."""

from __future__ import annotations

import numpy as np
import statsmodels.api as sm
from statsmodels.stats.sandwich_covariance import cov_hac

from lake_assets.stats.hac import grouped_nw_variance, nw_bandwidth, nw_dof


def test_grouped_newey_west_equals_statsmodels() -> None:
    rng = np.random.default_rng(3)
    sizes = np.r_[2, 3, 5, rng.integers(2, 400, 60), 1500]
    x = np.concatenate([np.cumsum(rng.normal(0, 1, n)) * 0.1 + rng.normal(0, 1, n) for n in sizes])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    lags = nw_bandwidth(sizes)
    assert (lags == np.minimum(np.ceil(sizes / 4), sizes - 1)).all()
    var = grouped_nw_variance(x, starts, lags)
    for k, (s, n) in enumerate(zip(starts, sizes, strict=True)):
        y = x[s : s + n]
        res = sm.OLS(y, np.ones(n)).fit()
        ref = cov_hac(res, nlags=int(lags[k]), use_correction=False)[0, 0]
        np.testing.assert_allclose(var[k], ref, rtol=1e-10, atol=0)
    # explicit other bandwidths, and a single-row group
    var0 = grouped_nw_variance(np.r_[x[:50], 7.0], np.array([0, 50]), np.array([0, 0]))
    np.testing.assert_allclose(var0[0], np.var(x[:50]) / 50, rtol=1e-12)
    assert np.isnan(var0[1])
    assert np.all(nw_dof(sizes, lags) >= 1)


def test_grouped_newey_west_is_bit_deterministic() -> None:
    rng = np.random.default_rng(4)
    sizes = rng.integers(2, 300, 200)
    x = rng.normal(0, 30, int(sizes.sum()))
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    a = grouped_nw_variance(x, starts)
    b = grouped_nw_variance(x.copy(), starts.copy())
    assert a.tobytes() == b.tobytes()
