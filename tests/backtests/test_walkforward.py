"""Walk-forward: splits never overlap train/test, each fold re-optimises in-sample only, OOS evaluation is
point-in-time, and the report carries OOS metrics, PBO, PSR/DSR and PSI drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake_assets.backtests.strategy_spec import parse_strategy
from lake_assets.backtests.walkforward import evaluate_window, return_metrics, walk_forward, walk_forward_splits
from lake_assets.stats.sharpe import deflated_sharpe_ratio, return_moments, sharpe_ratio

T0 = datetime(2024, 1, 1, tzinfo=UTC)

PICK = {
    "name": "pick",
    "description": "trade on one of two predictors",
    "parameters": {"pick": {"type": "choice", "default": 1, "choices": [1, 2]}},
    "entry_rules": {"long": "pick == 1 and funding_z > 0 or pick == 2 and volume_z > 0"},
    "exit_rules": {"long": "true"},
    "costs": {"fee_bps": 0, "slippage_bps": 0},
}


def switch_frame(n: int = 1500, switch: int = 900, seed: int = 0) -> pl.DataFrame:
    """funding_z drives the next bar before `switch`, volume_z after it; volume_z's scale also shifts (drift)."""
    rng = np.random.default_rng(seed)
    a, b = rng.choice([-1.0, 1.0], n), rng.choice([-1.0, 1.0], n)
    driver = np.where(np.arange(n) < switch, a, b)
    r = np.zeros(n)
    r[1:] = 0.003 * driver[:-1] + rng.normal(0, 0.001, n - 1)
    close = 100 * np.cumprod(1 + r)
    open_ = np.concatenate([[100.0], close[:-1]])
    noise_feature = rng.normal(0, 1, n) * np.where(np.arange(n) < switch, 1.0, 4.0)
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(n)],
            "instrument": ["X"] * n,
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "ret": np.log(close / open_),
            "funding_z": a,
            "volume_z": b,
            "rv_48": noise_feature,
        }
    )


# --- splits -----------------------------------------------------------------------------------


def test_splits_by_hand() -> None:
    rolling = walk_forward_splits(10, 4, 2)
    assert [(s.train_start, s.train_end, s.test_start, s.test_end) for s in rolling] == [
        (0, 4, 4, 6),
        (2, 6, 6, 8),
        (4, 8, 8, 10),
    ]
    expanding = walk_forward_splits(10, 4, 2, mode="expanding", embargo_bars=1)
    assert [(s.train_start, s.train_end, s.test_start, s.test_end) for s in expanding] == [(0, 4, 5, 7), (0, 6, 7, 9)]
    with pytest.raises(ValueError, match="overlap"):
        walk_forward_splits(100, 10, 5, step_bars=3)
    with pytest.raises(ValueError, match="no walk-forward fold fits"):
        walk_forward_splits(10, 8, 3)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 400),
    train=st.integers(1, 100),
    test=st.integers(1, 60),
    extra_step=st.integers(0, 20),
    embargo=st.integers(0, 10),
    mode=st.sampled_from(["rolling", "expanding"]),
)
def test_splits_never_overlap(n: int, train: int, test: int, extra_step: int, embargo: int, mode: str) -> None:
    try:
        splits = walk_forward_splits(n, train, test, mode=mode, step_bars=test + extra_step, embargo_bars=embargo)
    except ValueError:
        assert train + embargo + test > n
        return
    prev_test_end = -1
    for k, s in enumerate(splits):
        assert s.fold == k
        assert 0 <= s.train_start < s.train_end <= s.test_start < s.test_end <= n
        assert s.test_start - s.train_end == embargo  # train and test never share a bar; embargo respected
        assert s.test_end - s.test_start == test
        assert s.train_end - s.train_start == (train if mode == "rolling" else s.train_end)
        assert s.test_start >= prev_test_end  # test windows are disjoint and move forward
        prev_test_end = s.test_end
    assert n - splits[-1].test_end < test + extra_step  # no room left for another fold


# --- the walk-forward run --------------------------------------------------------------------


def test_walk_forward_reoptimises_in_sample_and_reports_everything() -> None:
    frame = switch_frame()
    spec = parse_strategy(PICK)
    res = walk_forward(frame, spec, train_bars=300, test_bars=150, pbo_splits=8)
    assert len(res.folds) == 8
    for f in res.folds:
        opt = f.optimisation
        assert opt.in_sample_end is not None and opt.in_sample_end < f.test_start_ts  # fitted on the past only
        assert opt.in_sample_start == f.train_start_ts and opt.n_bars == 300
        assert len(f.oos_returns) == 150
        train_end_bar = f.split.train_end
        if train_end_bar <= 900:
            assert opt.best_params == {"pick": 1}, f.split
        if f.split.train_start >= 900:
            assert opt.best_params == {"pick": 2}, f.split
    assert len(res.oos_returns) == 8 * 150
    assert res.oos_metrics["n_bars"] == 1200
    assert res.oos_metrics["sharpe"] == pytest.approx(sharpe_ratio(res.oos_returns))
    # deflated Sharpe from the paper's formula with the folds' trial count and trial-Sharpe variance
    n_obs, skew, kurt = return_moments(res.oos_returns)
    trial_srs = [s for f in res.folds for s in f.optimisation.trial_sharpes()]
    hand = deflated_sharpe_ratio(sharpe_ratio(res.oos_returns), n_obs, skew, kurt, 2, float(np.var(trial_srs, ddof=1)))
    assert res.deflated["dsr"] == pytest.approx(hand)
    assert 0.0 <= res.deflated["dsr"] <= res.deflated["psr"] <= 1.0
    # PBO over both configurations on the whole span; one of them is right most of the time
    assert res.pbo is not None and res.pbo.n_strategies == 2 and 0.0 <= res.pbo.pbo <= 1.0
    # PSI: rv_48 widens after the switch -> drift in folds tested after it, stable in early folds
    first, last = res.folds[0].psi, res.folds[-1].psi
    assert set(first["feature"].to_list()) == {"ret", "rv_48", "funding_z", "volume_z"}
    # (with 300 vs 150 rows PSI carries a small-sample bias of about 9 * (1/300 + 1/150) = 0.09 under no drift)
    assert first.filter(pl.col("feature") == "rv_48")["psi"].item() < 0.25
    assert res.folds[4].psi.filter(pl.col("feature") == "rv_48")["status"].item() == "drift"
    assert last.height == 4
    table = res.folds_frame()
    assert table.height == 8 and {"params", "oos_sharpe", "max_psi"} <= set(table.columns)
    summary = res.summary()
    assert summary["n_folds"] == 8 and "pbo" in summary and "dsr" in summary


def test_expanding_mode_and_embargo() -> None:
    frame = switch_frame(900, 450)
    spec = parse_strategy(PICK)
    res = walk_forward(frame, spec, train_bars=300, test_bars=200, mode="expanding", embargo_bars=20, pbo_splits=4)
    starts = [f.train_start_ts for f in res.folds]
    assert starts == [T0] * len(res.folds)
    for f in res.folds:
        gap = (f.test_start_ts - f.train_end_ts) / timedelta(minutes=5)
        assert gap == 20


def test_oos_evaluation_is_point_in_time() -> None:
    """Bars after a test window never change its returns (truncation), and entries start inside the window."""
    frame = switch_frame(800)
    spec = parse_strategy({**PICK, "exit_rules": {"long": "close < SMA(5)"}})
    start, end = T0 + timedelta(minutes=5 * 400), T0 + timedelta(minutes=5 * 600)
    hist = T0 + timedelta(minutes=5 * 300)
    full = evaluate_window(frame, spec, {"pick": 1}, start, end, history_from=hist)
    cut = evaluate_window(frame.filter(pl.col("ts") < end), spec, {"pick": 1}, start, end, history_from=hist)
    np.testing.assert_array_equal(full, cut)
    assert len(full) == 200
    assert full[0] == 0.0  # flat on the first test bar: an entry needs a signal at a test bar's close first


def test_noise_strategies_get_no_credit() -> None:
    """On a pure random walk the selected configurations have no out-of-sample edge: DSR stays low."""
    rng = np.random.default_rng(9)
    n = 1600
    r = rng.normal(0, 0.002, n)
    close = 100 * np.cumprod(1 + r)
    open_ = np.concatenate([[100.0], close[:-1]])
    frame = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(n)],
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
        }
    )
    spec = parse_strategy(
        {
            "name": "noise",
            "description": "lagged-momentum family on noise",
            "parameters": {"lag": {"type": "int", "default": 1, "low": 1, "high": 12}},
            "entry_rules": {"long": "close > close[lag]", "short": "close < close[lag]"},
            "costs": {"fee_bps": 0, "slippage_bps": 0},
        }
    )
    res = walk_forward(frame, spec, train_bars=400, test_bars=200, pbo_splits=8)
    assert res.deflated["dsr"] < 0.9
    assert res.pbo is not None and res.pbo.n_strategies == 12


def test_return_metrics_by_hand() -> None:
    m = return_metrics(np.array([0.1, -0.5, 0.0, 0.2]))
    assert m["total_return"] == pytest.approx(1.1 * 0.5 * 1.0 * 1.2 - 1)
    assert m["max_drawdown"] == pytest.approx(0.5)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    assert m["exposure"] == pytest.approx(0.75)
