"""Sharpe / PSR / DSR against hand computations from the papers' formulas and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lake_assets.stats.sharpe import (
    deflated_sharpe_from_returns,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    return_moments,
    sharpe_ratio,
)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_sharpe_ratio_by_hand_and_ignores_gaps() -> None:
    r = [0.01, -0.02, 0.03, float("nan"), 0.00]
    vals = [0.01, -0.02, 0.03, 0.00]
    mean = sum(vals) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / 3)
    assert sharpe_ratio(r) == pytest.approx(mean / sd)
    assert math.isnan(sharpe_ratio([0.01, 0.01, 0.01]))
    assert math.isnan(sharpe_ratio([0.01]))


def test_return_moments_are_pearson() -> None:
    rng = np.random.default_rng(0)
    n, skew, kurt = return_moments(rng.normal(size=200_000))
    assert n == 200_000
    assert abs(skew) < 0.03
    assert kurt == pytest.approx(3.0, abs=0.05)


def test_psr_matches_hand_formula() -> None:
    sr, sr_star, t, g3, g4 = 0.08, 0.02, 500, -0.7, 6.0
    z = (sr - sr_star) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(sr, sr_star, t, g3, g4) == pytest.approx(_phi(z), rel=1e-12)
    # normal returns, zero benchmark: z = SR sqrt(T-1) / sqrt(1 + SR^2 / 2)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(_phi(0.1 * 10 / math.sqrt(1.005)))


def test_expected_max_sharpe_by_hand() -> None:
    n, v = 100, 0.5 / 250
    gamma = 0.5772156649015329
    # Phi^-1 values: 1 - 1/100 and 1 - 1/(100 e), from the standard normal quantile table
    from statistics import NormalDist

    z1, z2 = NormalDist().inv_cdf(1 - 1 / n), NormalDist().inv_cdf(1 - 1 / (n * math.e))
    assert expected_max_sharpe(n, v) == pytest.approx(math.sqrt(v) * ((1 - gamma) * z1 + gamma * z2), rel=1e-9)
    assert expected_max_sharpe(1, v) == 0.0
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, v)


def test_dsr_reproduces_the_paper_example() -> None:
    """Bailey & López de Prado (2014), section 4: SR 2.5 annualised on 1250 daily obs, skew -3, kurtosis 10,
    100 trials with annualised SR variance 0.5 -> DSR about 0.90."""
    sr = 2.5 / math.sqrt(250)
    dsr = deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, 0.5 / 250)
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    z = (sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2)
    assert dsr == pytest.approx(_phi(z), rel=1e-12)
    assert dsr == pytest.approx(0.90, abs=0.01)
    assert sr0 == pytest.approx(0.1132, abs=0.002)


def test_excess_kurtosis_by_mistake_is_reported() -> None:
    with pytest.raises(ValueError, match="Pearson"):
        probabilistic_sharpe_ratio(2.0, 0.0, 100, skew=3.0, kurtosis=-2.0)


def test_expected_max_sharpe_by_simulation() -> None:
    """The False Strategy theorem: the best of N skill-less strategies has SR close to E[max SR]."""
    rng = np.random.default_rng(42)
    n_trials, t, reps = 50, 400, 200
    sims = rng.normal(size=(reps, t, n_trials))
    sr = sims.mean(axis=1) / sims.std(axis=1, ddof=1)
    simulated = sr.max(axis=1).mean()
    predicted = expected_max_sharpe(n_trials, float(sr.var(ddof=1)))
    assert simulated == pytest.approx(predicted, rel=0.05)


def test_psr_is_calibrated_under_the_null() -> None:
    """With true SR = 0, PSR(0) > 0.95 should happen about 5% of the time."""
    rng = np.random.default_rng(7)
    from scipy import stats

    sims = rng.standard_t(df=8, size=(2000, 250)) * 0.01
    srs = sims.mean(axis=1) / sims.std(axis=1, ddof=1)
    skews = stats.skew(sims, axis=1)
    kurts = stats.kurtosis(sims, axis=1, fisher=False)
    n, g3, g4 = return_moments(sims[0])
    assert (g3, g4) == pytest.approx((skews[0], kurts[0]))
    assert sharpe_ratio(sims[0]) == pytest.approx(srs[0])
    psr = [probabilistic_sharpe_ratio(sr, 0.0, 250, a, b) for sr, a, b in zip(srs, skews, kurts, strict=True)]
    hits = np.mean(np.array(psr) > 0.95)
    assert 0.03 < hits < 0.07


def test_dsr_from_returns_deflates_more_with_more_trials() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.05, 1.0, size=1000)
    few = deflated_sharpe_from_returns(r, [0.0, 0.02, 0.05])
    many = deflated_sharpe_from_returns(r, list(rng.normal(0, 0.03, size=500)))
    assert many["expected_max_sharpe"] > few["expected_max_sharpe"]
    assert many["dsr"] < few["dsr"] <= few["psr"] + 1e-12
