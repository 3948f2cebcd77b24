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
    assert (lags == np.minimum(np.ceil(1.3 * np.sqrt(sizes)), sizes - 1)).all()
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


def test_fixed_b_pvalue_matches_monte_carlo_in_the_tails() -> None:
    """The saddlepoint fixed-b p-value against simulation of iid Gaussian trades (the exact null it evaluates), at
    the 5% .. 0.1% levels, and the Student-t(3T/2S) approximation it replaces being too heavy already at 0.1%."""
    from scipy import stats

    from lake_assets.stats.hac import fixed_b_mean, fixed_b_pvalue

    rng = np.random.default_rng(7)
    t_len, reps = 24, 400_000
    lags = int(nw_bandwidth(np.array([t_len]))[0])
    x = rng.normal(size=(reps, t_len))
    e = x - x.mean(axis=1, keepdims=True)
    v = (e * e).sum(axis=1)
    for lag in range(1, lags + 1):
        v += 2 * (1 - lag / (lags + 1)) * (e[:, lag:] * e[:, :-lag]).sum(axis=1)
    t = x.mean(axis=1) / np.sqrt(v / t_len**2 / fixed_b_mean(np.array([t_len]), np.array([lags]))[0])
    for level in (0.05, 0.01, 0.001):
        c = float(np.quantile(t, 1 - level))
        p = fixed_b_pvalue(np.array([c]), np.array([t_len]), np.array([lags]))[0]
        se = np.sqrt(level * (1 - level) / reps)
        # the saddlepoint errs on the conservative side by up to ~10%
        assert level - 4 * se <= p <= 1.15 * level + 4 * se, (level, p)
    c = float(np.quantile(t, 1 - 0.001))
    assert stats.t.sf(c, nw_dof(np.array([t_len]), np.array([lags]))[0]) > 1.3 * 0.001  # ~10x at 1e-4
    # symmetric, monotone, 1/2 at zero; rows without lags use Student-t n - 1
    grid = np.linspace(-6, 6, 49)
    p = fixed_b_pvalue(grid, np.full(49, 80), np.full(49, 20))
    assert np.all(np.diff(p) <= 0) and p[24] == 0.5
    np.testing.assert_allclose(p + p[::-1], 1.0, atol=1e-12)
    np.testing.assert_allclose(fixed_b_pvalue(np.array([2.0]), np.array([30]), np.array([0])),
                               stats.t.sf(2.0, 29))  # fmt: skip


def test_fixed_b_reference_tightens_as_trades_accumulate() -> None:
    """b = S/T = 1.3 / sqrt(T) shrinks with T, so the same t is stronger evidence on more trades (a fixed b = 1/4
    kept ~6 equivalent degrees of freedom whatever T was); above 200 trades the reference is taken at T = 200 with
    the same b, and it stays between the normal and the smaller samples' references."""
    from scipy import stats

    from lake_assets.stats.hac import fixed_b_pvalue

    n = np.array([26, 100, 400, 2000])
    p = fixed_b_pvalue(np.full(4, 4.0), n, nw_bandwidth(n))
    assert np.all(np.diff(p) < 0) and p[-1] > stats.norm.sf(4.0)
    big = fixed_b_pvalue(np.array([4.0]), np.array([800]), nw_bandwidth(np.array([800])))
    ref = fixed_b_pvalue(np.array([4.0]), np.array([200]), np.array([round(37 * 200 / 800)]))
    assert int(nw_bandwidth(np.array([800]))[0]) == 37 and big[0] == ref[0]
