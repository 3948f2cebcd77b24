"""Backtest-overfitting diagnostics: PBO by combinatorially symmetric cross-validation, and PSI drift.

PBO follows Bailey, Borwein, López de Prado & Zhu (2017), "The Probability of Backtest Overfitting": split the T x N
matrix of per-period strategy returns into S blocks, and for every way of choosing S/2 blocks as in-sample pick the
best strategy in-sample and look at its relative rank out-of-sample. PBO is the share of splits where the in-sample
winner lands at or below the out-of-sample median (logit <= 0). Sums per block make all C(S, S/2) splits one matrix
product, so S = 16 (12,870 splits) over hundreds of strategies takes well under a second.

PSI (population stability index) compares a feature's out-of-sample distribution with its in-sample one over bins
cut at in-sample quantiles: PSI = sum (a_i - e_i) ln(a_i / e_i). Common reading: < 0.1 stable, < 0.25 moderate
shift, otherwise drift.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

PSI_STABLE = 0.1
PSI_DRIFT = 0.25


@dataclass(frozen=True)
class PBOResult:
    """Outcome of CSCV: PBO plus what the paper plots (logits, IS-vs-OOS performance of the IS winners)."""

    pbo: float
    logits: np.ndarray  # one lambda per split
    is_best_perf: np.ndarray  # in-sample metric of the in-sample winner, per split
    oos_best_perf: np.ndarray  # out-of-sample metric of that same strategy, per split
    n_splits: int  # S, number of blocks
    n_combinations: int
    n_strategies: int
    n_obs: int  # rows used (T trimmed to a multiple of S)

    @property
    def prob_oos_loss(self) -> float:
        """Share of splits where the in-sample winner has a negative out-of-sample metric."""
        return float(np.mean(self.oos_best_perf < 0))

    @property
    def degradation_slope(self) -> float:
        """Slope of OOS on IS performance of the winners; strongly negative means selection picks noise."""
        ok = np.isfinite(self.is_best_perf) & np.isfinite(self.oos_best_perf)
        if ok.sum() < 3 or np.ptp(self.is_best_perf[ok]) == 0:
            return float("nan")
        return float(np.polyfit(self.is_best_perf[ok], self.oos_best_perf[ok], 1)[0])

    def summary(self) -> dict[str, float]:
        return {
            "pbo": self.pbo,
            "prob_oos_loss": self.prob_oos_loss,
            "degradation_slope": self.degradation_slope,
            "median_logit": float(np.median(self.logits)),
            "n_splits": float(self.n_splits),
            "n_combinations": float(self.n_combinations),
            "n_strategies": float(self.n_strategies),
            "n_obs": float(self.n_obs),
        }


def _block_stats(perf: np.ndarray, n_splits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block and strategy: count of finite returns, their sum and their sum of squares (S x N each)."""
    t, n = perf.shape
    blocks = perf.reshape(n_splits, t // n_splits, n)
    finite = np.isfinite(blocks)
    vals = np.where(finite, blocks, 0.0)
    return finite.sum(axis=1).astype(float), vals.sum(axis=1), (vals * vals).sum(axis=1)


def _sharpe_from_sums(cnt: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = (s2 - cnt * mean * mean) / (cnt - 1)
        sd = np.sqrt(np.where(var > 1e-300, var, np.nan))
        return np.asarray(mean / sd)


def probability_of_backtest_overfitting(
    perf: Any, n_splits: int = 16, strategy_names: Sequence[str] | None = None
) -> PBOResult:
    """PBO by CSCV over a T x N matrix of per-period returns (rows = time, columns = strategy configurations).

    The metric is the per-period Sharpe ratio. Rows are trimmed from the start so T is a multiple of `n_splits`;
    NaNs (gaps, flat periods without data) are ignored within each block. Ties in OOS rank get the average rank.
    """
    from scipy import stats  # on first use: processes that never need it (CLI, workers) start ~1 s sooner
    mat = perf.to_numpy() if hasattr(perf, "to_numpy") else np.asarray(perf, dtype=float)
    mat = np.asarray(mat, dtype=float)
    if mat.ndim != 2:
        raise ValueError(f"perf must be a 2-D (time x strategy) matrix, got shape {mat.shape}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number >= 2, got {n_splits}")
    t, n = mat.shape
    if n < 2:
        raise ValueError(f"PBO needs at least 2 strategies, got {n}")
    if t < 2 * n_splits:
        raise ValueError(f"PBO needs at least 2 rows per block: {t} rows for {n_splits} blocks")
    t_used = (t // n_splits) * n_splits
    mat = mat[t - t_used :]
    cnt, s1, s2 = _block_stats(mat, n_splits)

    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    train = np.zeros((len(combos), n_splits))
    train[np.arange(len(combos))[:, None], combos] = 1.0
    test = 1.0 - train
    is_perf = _sharpe_from_sums(train @ cnt, train @ s1, train @ s2)
    oos_perf = _sharpe_from_sums(test @ cnt, test @ s1, test @ s2)

    is_filled = np.where(np.isfinite(is_perf), is_perf, -np.inf)
    best = is_filled.argmax(axis=1)
    rows = np.arange(len(combos))
    oos_filled = np.where(np.isfinite(oos_perf), oos_perf, -np.inf)
    ranks = stats.rankdata(oos_filled, axis=1, method="average")  # 1 = worst, n = best
    omega = ranks[rows, best] / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        is_best_perf=is_perf[rows, best],
        oos_best_perf=oos_perf[rows, best],
        n_splits=n_splits,
        n_combinations=len(combos),
        n_strategies=n,
        n_obs=t_used,
    )


# --- PSI ------------------------------------------------------------------------------------


def _proportions(counts: np.ndarray, eps: float) -> np.ndarray:
    total = counts.sum()
    props = counts / total if total > 0 else np.zeros_like(counts, dtype=float)
    return np.where(props > 0, props, eps)


def psi(expected: Any, actual: Any, n_bins: int = 10, eps: float = 1e-4) -> float:
    """PSI of `actual` (out-of-sample) against `expected` (in-sample) for a numeric feature.

    Bin edges are the in-sample quantiles (deduplicated, open-ended at both sides); empty bins get share `eps`
    so the log stays finite. Nulls/NaNs are dropped. NaN when either side has no finite value.
    """
    e = _finite(expected)
    a = _finite(actual)
    if e.size == 0 or a.size == 0:
        return float("nan")
    inner = np.unique(np.quantile(e, np.linspace(0, 1, n_bins + 1)[1:-1]))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    e_cnt = np.histogram(e, edges)[0].astype(float)
    a_cnt = np.histogram(a, edges)[0].astype(float)
    return _psi_from_counts(e_cnt, a_cnt, eps)


def psi_categorical(expected: Any, actual: Any, eps: float = 1e-4) -> float:
    """PSI over the categories of a string/bool feature (categories seen on either side)."""
    e = [v for v in _values(expected) if v is not None]
    a = [v for v in _values(actual) if v is not None]
    if not e or not a:
        return float("nan")
    cats = sorted({*e, *a}, key=str)
    e_cnt = np.array([e.count(c) for c in cats], dtype=float)
    a_cnt = np.array([a.count(c) for c in cats], dtype=float)
    return _psi_from_counts(e_cnt, a_cnt, eps)


def _psi_from_counts(e_cnt: np.ndarray, a_cnt: np.ndarray, eps: float) -> float:
    pe, pa = _proportions(e_cnt, eps), _proportions(a_cnt, eps)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def psi_status(value: float) -> str:
    if not math.isfinite(value):
        return "unknown"
    return "stable" if value < PSI_STABLE else "moderate" if value < PSI_DRIFT else "drift"


def psi_table(
    in_sample: pl.DataFrame, out_of_sample: pl.DataFrame, columns: Sequence[str], n_bins: int = 10
) -> pl.DataFrame:
    """PSI per feature between an in-sample and an out-of-sample frame: feature, psi, status, n_is, n_oos."""
    rows = []
    for col in columns:
        for side, frame in (("in-sample", in_sample), ("out-of-sample", out_of_sample)):
            if col not in frame.columns:
                raise KeyError(f"PSI feature {col!r} is not a column of the {side} frame")
        dtype = in_sample.schema[col]
        if dtype.is_numeric():
            value = psi(in_sample[col], out_of_sample[col], n_bins=n_bins)
        else:
            value = psi_categorical(in_sample[col], out_of_sample[col])
        rows.append(
            {
                "feature": col,
                "psi": value,
                "status": psi_status(value),
                "n_is": in_sample[col].drop_nulls().len(),
                "n_oos": out_of_sample[col].drop_nulls().len(),
            }
        )
    schema = {"feature": pl.String, "psi": pl.Float64, "status": pl.String, "n_is": pl.Int64, "n_oos": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def _values(x: Any) -> list[Any]:
    if isinstance(x, pl.Series):
        return x.to_list()
    return list(np.asarray(x).ravel())


def _finite(x: Any) -> np.ndarray:
    if isinstance(x, pl.Series):
        x = x.cast(pl.Float64).to_numpy()
    arr = np.asarray(x, dtype=float).ravel()
    return arr[np.isfinite(arr)]
