"""Sharpe ratio, Probabilistic Sharpe Ratio and Deflated Sharpe Ratio (Bailey & López de Prado 2012, 2014).

Everything is per period (per bar): no annualisation happens here, because PSR/DSR are only correct when the Sharpe
ratio, the number of observations and the higher moments refer to the same sampling frequency. Kurtosis is the
Pearson (non-excess) kurtosis, 3.0 for a normal distribution, as in the papers; `return_moments` computes the
matching triple so callers never mix conventions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329


def _clean(returns: Any) -> np.ndarray:
    """Returns as a finite float array; nulls/NaNs (gaps) are dropped, never treated as zero."""
    if hasattr(returns, "to_numpy"):
        returns = returns.to_numpy()
    arr = np.asarray(returns, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def sharpe_ratio(returns: Any, ddof: int = 1) -> float:
    """Per-period Sharpe ratio mean/std of the finite returns; NaN with fewer than two or zero dispersion."""
    arr = _clean(returns)
    if arr.size <= ddof:
        return float("nan")
    sd = float(arr.std(ddof=ddof))
    if not sd > 0.0:
        return float("nan")
    return float(arr.mean()) / sd


def annualised_sharpe(returns: Any, periods_per_year: float) -> float:
    """Sharpe scaled by sqrt(periods per year), for reports only (PSR/DSR take the per-period value)."""
    return sharpe_ratio(returns) * math.sqrt(periods_per_year)


def return_moments(returns: Any) -> tuple[int, float, float]:
    """(n_obs, skewness, Pearson kurtosis) of the finite returns, the conventions PSR/DSR expect."""
    from scipy import stats  # on first use: processes that never need it (CLI, workers) start ~1 s sooner
    arr = _clean(returns)
    if arr.size < 3 or not arr.std() > 0:
        return int(arr.size), 0.0, 3.0
    return int(arr.size), float(stats.skew(arr, bias=True)), float(stats.kurtosis(arr, fisher=False, bias=True))


def _check_n_obs(n_obs: int) -> None:
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")


def sharpe_ratio_std(sr: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of an estimated per-period Sharpe ratio under non-normal returns (Mertens / Bailey-LdP)."""
    _check_n_obs(n_obs)
    var = (1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr) / (n_obs - 1)
    if var <= 0:
        raise ValueError(
            f"non-positive Sharpe variance for sr={sr}, skew={skew}, kurtosis={kurtosis}: "
            "kurtosis must be Pearson (normal = 3), not excess"
        )
    return math.sqrt(var)


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P(true SR > sr_benchmark) given an estimated per-period `sr` from `n_obs` returns with these moments.

    PSR(SR*) = Phi[(SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)], Bailey & López de Prado (2012).
    """
    from scipy import stats
    if not math.isfinite(sr):
        return float("nan")
    return float(stats.norm.cdf((sr - sr_benchmark) / sharpe_ratio_std(sr, n_obs, skew, kurtosis)))


def expected_max_sharpe(n_trials: int, trial_sr_variance: float) -> float:
    """Expected maximum of `n_trials` estimated Sharpe ratios whose true value is 0 (the False Strategy theorem).

    E[max SR] = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))); zero for a single trial.
    """
    from scipy import stats
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if trial_sr_variance < 0:
        raise ValueError(f"trial_sr_variance must be non-negative, got {trial_sr_variance}")
    if n_trials == 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(trial_sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    sr: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    trial_sr_variance: float,
) -> float:
    """PSR against the Sharpe ratio the best of `n_trials` skill-less trials would show (Bailey & LdP 2014).

    All Sharpe ratios (sr and the variance across trials) are per period, on the same frequency as `n_obs`.
    """
    return probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, trial_sr_variance), n_obs, skew, kurtosis)


def deflated_sharpe_from_returns(returns: Any, trial_sharpes: Sequence[float]) -> dict[str, float]:
    """DSR of a selected strategy's returns given the per-period Sharpe ratios of every trial that was tried."""
    trials = np.asarray([s for s in trial_sharpes if math.isfinite(s)], dtype=float)
    n_obs, skew, kurt = return_moments(returns)
    sr = sharpe_ratio(returns)
    n_trials = max(int(trials.size), 1)
    var = float(trials.var(ddof=1)) if trials.size > 1 else 0.0
    sr0 = expected_max_sharpe(n_trials, var)
    ok = n_obs >= 2 and math.isfinite(sr)
    return {
        "sharpe": sr,
        "n_obs": float(n_obs),
        "skew": skew,
        "kurtosis": kurt,
        "n_trials": float(n_trials),
        "trial_sr_variance": var,
        "expected_max_sharpe": sr0,
        "psr": probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt) if ok else float("nan"),
        "dsr": probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurt) if ok else float("nan"),
    }


def search_trials(discovery_trials: int | None, own_configurations: int = 1) -> int:
    """Configurations tried for a result that came out of discovery: every hypothesis discovery tested (the
    blueprint's `evidence.dsr_n_trials`) plus the configurations the later search tried besides the discovered one
    (`own_configurations - 1`; a fixed-rule walk-forward tries one). Without discovery, just `own_configurations`."""
    if own_configurations < 1:
        raise ValueError(f"own_configurations must be at least 1, got {own_configurations}")
    if not discovery_trials:
        return own_configurations
    return int(discovery_trials) + own_configurations - 1


def deflated_sharpe_for_search(
    sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int, trial_sr_variance: float | None = None
) -> float:
    """DSR of a per-period Sharpe `sr` chosen from `n_trials` configurations.

    When the trials' own Sharpe ratios on this sample are unknown (a discovered blueprint re-measured out of sample:
    the other hypotheses were never run on these bars), `trial_sr_variance` defaults to the sampling variance of a
    skill-less Sharpe estimate over `n_obs` periods, 1 / (n_obs - 1): the dispersion the best of `n_trials` lucky
    tries would show on this sample under the null.
    """
    _check_n_obs(n_obs)
    var = 1.0 / (n_obs - 1) if trial_sr_variance is None else trial_sr_variance
    return deflated_sharpe_ratio(sr, n_obs, skew, kurtosis, n_trials, var)
