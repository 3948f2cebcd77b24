"""PBO (CSCV) against a direct loop implementation and by simulation; PSI against hand computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from lake_assets.stats.overfitting import (
    probability_of_backtest_overfitting,
    psi,
    psi_categorical,
    psi_status,
    psi_table,
)


def _reference_pbo(mat: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """A literal transcription of the CSCV steps of Bailey et al. (2017), one split at a time."""
    t, n = mat.shape
    mat = mat[t - (t // s) * s :]
    blocks = np.split(mat, s)
    logits = []
    for train_ids in itertools.combinations(range(s), s // 2):
        train = np.vstack([blocks[i] for i in train_ids])
        test = np.vstack([blocks[i] for i in range(s) if i not in train_ids])
        r_is = train.mean(axis=0) / train.std(axis=0, ddof=1)
        r_oos = test.mean(axis=0) / test.std(axis=0, ddof=1)
        best = int(np.argmax(r_is))
        rank = 1 + np.sum(r_oos < r_oos[best]) + 0.5 * (np.sum(r_oos == r_oos[best]) - 1)
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    arr = np.array(logits)
    return float(np.mean(arr <= 0)), arr


def test_pbo_matches_reference_loop() -> None:
    rng = np.random.default_rng(3)
    mat = rng.normal(0, 1, size=(243, 7)) + np.linspace(-0.05, 0.05, 7)
    res = probability_of_backtest_overfitting(mat, n_splits=6)
    ref_pbo, ref_logits = _reference_pbo(mat, 6)
    assert res.n_combinations == 20 and res.n_obs == 240
    assert res.pbo == pytest.approx(ref_pbo)
    np.testing.assert_allclose(res.logits, ref_logits, rtol=1e-10)


def test_pbo_tiny_case_by_hand() -> None:
    # two blocks of two rows, three strategies; split A: IS = block 0, OOS = block 1 and vice versa
    mat = np.array([[1.0, 0.0, 2.0], [3.0, 1.0, 2.5], [0.0, 1.0, 1.0], [0.5, 3.0, 1.1]])
    res = probability_of_backtest_overfitting(mat, n_splits=2)
    # block 0 Sharpe: s0 = 2/1.414 = 1.41, s1 = 0.5/0.707 = 0.71, s2 = 2.25/0.354 = 6.36 -> best = 2
    # block 1 Sharpe: s0 = 0.25/0.354 = 0.71, s1 = 2/1.414 = 1.41, s2 = 1.05/0.0707 = 14.8 -> best = 2
    # strategy 2 ranks 3rd of 3 OOS in both splits: omega = 3/4, logit = ln 3 > 0 -> PBO = 0
    np.testing.assert_allclose(res.logits, [math.log(3), math.log(3)])
    assert res.pbo == 0.0


def test_pbo_high_for_noise_low_with_real_edge() -> None:
    """Pure noise: the in-sample winner is a coin flip out-of-sample (PBO around or above 0.5 on average; single
    draws vary a lot). One strategy with a real edge: it wins in-sample and stays on top out-of-sample."""
    rng = np.random.default_rng(11)
    noise_pbos, edge_pbos = [], []
    for _ in range(10):
        noise = rng.normal(0, 0.01, size=(800, 20))
        noise_pbos.append(probability_of_backtest_overfitting(noise, n_splits=8).pbo)
        edge = rng.normal(0, 0.01, size=(800, 20))
        edge[:, 5] += 0.003  # per-bar Sharpe 0.3 on one strategy
        edge_pbos.append(probability_of_backtest_overfitting(edge, n_splits=8).pbo)
    assert np.mean(noise_pbos) > 0.35
    assert max(edge_pbos) < 0.05


def test_pbo_handles_gaps_and_rejects_bad_shapes() -> None:
    rng = np.random.default_rng(5)
    mat = rng.normal(size=(200, 4))
    mat[10:20, 1] = np.nan
    res = probability_of_backtest_overfitting(mat, n_splits=8)
    assert np.isfinite(res.logits).all() and 0 <= res.pbo <= 1
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(mat, n_splits=5)
    with pytest.raises(ValueError, match="at least 2 strategies"):
        probability_of_backtest_overfitting(mat[:, :1])
    with pytest.raises(ValueError, match="rows per block"):
        probability_of_backtest_overfitting(mat[:20], n_splits=16)


def test_psi_by_hand() -> None:
    expected = np.arange(100, dtype=float)  # quartile edges 24.75, 49.5, 74.25 -> 25 per bin
    actual = np.array([1.0] * 10 + [30.0] * 20 + [60.0] * 30 + [90.0] * 40)
    e = np.array([0.25, 0.25, 0.25, 0.25])
    a = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(expected, actual, n_bins=4) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert psi(expected, expected, n_bins=4) == pytest.approx(0.0)
    # an empty actual bin uses eps instead of 0
    only_low = np.full(50, 5.0)
    hand = (1 - 0.25) * math.log(1 / 0.25) + 3 * (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    assert psi(expected, only_low, n_bins=4) == pytest.approx(hand)


def test_psi_categorical_and_table() -> None:
    e = ["low"] * 50 + ["high"] * 50
    a = ["low"] * 80 + ["high"] * 20
    hand = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi_categorical(e, a) == pytest.approx(hand)
    rng = np.random.default_rng(0)
    ins = pl.DataFrame({"x": rng.normal(size=5000), "regime": e * 50})
    oos_same = pl.DataFrame({"x": rng.normal(size=5000), "regime": e * 50})
    oos_shift = pl.DataFrame({"x": rng.normal(1.0, 1.0, size=5000), "regime": a * 50})
    same = psi_table(ins, oos_same, ["x", "regime"])
    shifted = psi_table(ins, oos_shift, ["x", "regime"])
    assert same["status"].to_list() == ["stable", "stable"]
    assert shifted["status"].to_list() == ["drift", "drift"]
    assert psi_status(0.15) == "moderate"
    with pytest.raises(KeyError, match="nope"):
        psi_table(ins, oos_same, ["nope"])
