"""Parameter optimisation sees only the in-sample window; the light signal->returns kernel against hand
computations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lake_assets.backtests.optimise import (
    funding_charges,
    optimise,
    signal_positions,
    signal_returns,
    strategy_returns,
)
from lake_assets.backtests.strategy_spec import StrategySpec, compile_signals, parse_strategy

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bars_from_returns(r: np.ndarray, **extra: np.ndarray) -> pl.DataFrame:
    """Continuous bars (open = previous close) whose open->close return is r."""
    n = len(r)
    close = 100 * np.cumprod(1 + r)
    open_ = np.concatenate([[100.0], close[:-1]])
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(n)],
            "instrument": ["X"] * n,
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            **extra,
        }
    )


def regime_switch_frame(n_is: int = 600, n_oos: int = 900, seed: int = 0) -> tuple[pl.DataFrame, datetime]:
    """funding_z predicts the next bar in-sample, volume_z predicts it out-of-sample (and more strongly)."""
    rng = np.random.default_rng(seed)
    n = n_is + n_oos
    a, b = rng.choice([-1.0, 1.0], n), rng.choice([-1.0, 1.0], n)
    driver = np.where(np.arange(n) < n_is, a, b)
    edge = np.where(np.arange(n) < n_is, 0.002, 0.004)
    r = np.zeros(n)
    r[1:] = edge[1:] * driver[:-1] + rng.normal(0, 0.001, n - 1)
    return bars_from_returns(r, funding_z=a, volume_z=b), T0 + timedelta(minutes=5 * n_is)


PICK = {
    "name": "pick",
    "description": "trade on one of two predictors",
    "parameters": {"pick": {"type": "choice", "default": 1, "choices": [1, 2]}},
    "entry_rules": {"long": "pick == 1 and funding_z > 0 or pick == 2 and volume_z > 0"},
    "exit_rules": {"long": "true"},
    "costs": {"fee_bps": 0, "slippage_bps": 0},
}

THRESHOLD = {
    "name": "threshold",
    "description": "continuous threshold on a predictor",
    "parameters": {"thr": {"type": "float", "default": 0.0, "low": -1.5, "high": 1.5}},
    "entry_rules": {"long": "funding_z > thr"},
    "exit_rules": {"long": "true"},
    "costs": {"fee_bps": 0, "slippage_bps": 0},
}


class Spy:
    """A runner that remembers the latest bar it was ever shown."""

    def __init__(self) -> None:
        self.max_ts: datetime | None = None
        self.calls = 0

    def __call__(self, frame: pl.DataFrame, spec: StrategySpec) -> np.ndarray:
        self.calls += 1
        latest = frame["ts"].max()
        self.max_ts = latest if self.max_ts is None or latest > self.max_ts else self.max_ts  # type: ignore[operator]
        return signal_returns(frame, spec)


def test_optimisation_only_sees_in_sample_data() -> None:
    frame, split = regime_switch_frame()
    spec = parse_strategy(PICK)
    in_sample = optimise(frame, spec, end=split)
    everything = optimise(frame, spec)
    assert in_sample.method == "grid" and in_sample.n_trials == 2
    assert in_sample.best_params == {"pick": 1}
    assert everything.best_params == {"pick": 2}  # the out-of-sample bars would have changed the answer
    assert in_sample.in_sample_end is not None and in_sample.in_sample_end < split
    assert in_sample.n_bars == 600
    spy = Spy()
    optimise(frame, spec, end=split, runner=spy)
    assert spy.calls == 2 and spy.max_ts is not None and spy.max_ts < split


def test_optuna_path_is_seeded_pruned_and_in_sample_only() -> None:
    frame, split = regime_switch_frame()
    spec = parse_strategy(THRESHOLD)
    assert spec.grid_size() == float("inf")
    spy = Spy()
    a = optimise(frame, spec, end=split, n_trials=25, seed=3, n_folds=8, runner=spy)
    b = optimise(frame, spec, end=split, n_trials=25, seed=3, n_folds=8)
    assert a.method == "optuna" and a.n_trials == 25
    assert a.best_params == b.best_params and a.best_score == b.best_score
    assert spy.max_ts is not None and spy.max_ts < split
    assert set(a.trials["state"].to_list()) <= {"complete", "pruned"}
    assert (a.trials["state"] == "pruned").sum() > 0  # MedianPruner after 3 warm-up steps
    assert -1.0 < a.best_params["thr"] < 1.0  # the predictor is +-1: any threshold inside picks the same bars
    c = optimise(frame, spec, end=split, n_trials=25, seed=4, n_folds=8)
    assert c.trials["thr"].to_list() != a.trials["thr"].to_list()


def test_grid_is_used_for_small_spaces_and_optuna_for_large_ones() -> None:
    frame, split = regime_switch_frame(300, 300)
    spec = parse_strategy(
        {
            **PICK,
            "parameters": {
                "pick": {"type": "choice", "default": 1, "choices": [1, 2]},
                "n": {"type": "int", "default": 5, "low": 1, "high": 30},
            },
            "entry_rules": {"long": "pick == 1 and funding_z > 0 and close > lowest(close, n) or pick == 2"},
        }
    )
    assert spec.grid_size() == 60
    assert optimise(frame, spec, end=split).method == "grid"
    small = optimise(frame, spec, end=split, max_grid=10, n_trials=5)
    assert small.method == "optuna" and small.n_trials == 5
    with pytest.raises(ValueError, match="holds no bars"):
        optimise(frame, spec, start=split + timedelta(days=30))


def test_kernel_long_by_hand() -> None:
    frame = bars_from_returns(np.zeros(1))  # placeholder for the schema
    o = [10.0, 10.0, 11.0, 12.0, 12.0, 11.0, 10.0]
    c = [10.0, 11.0, 12.0, 12.5, 11.0, 10.0, 10.0]
    frame = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(7)],
            "open": o,
            "high": [max(a, b) for a, b in zip(o, c, strict=True)],
            "low": [min(a, b) for a, b in zip(o, c, strict=True)],
            "close": c,
        }
    )
    spec = parse_strategy(
        {
            "name": "t",
            "description": "x",
            "entry_rules": {"long": "close > open"},
            "exit_rules": {"long": "close < open"},
            "costs": {"fee_bps": 10, "slippage_bps": 0},
        }
    )
    sig = compile_signals(frame, spec)
    # signal at bar 1 close -> long from bar 2 open (11); exit signal at bar 4 close -> flat from bar 5 open (11)
    exp = [0, 0, 12 / 11 - 1 - 0.001, 12.5 / 12 - 1, 11 / 12.5 - 1, 11 / 11 - 1 - 0.001, 0]
    np.testing.assert_allclose(signal_returns(sig, spec), exp, atol=1e-12)
    np.testing.assert_array_equal(signal_positions(sig, spec), [0, 0, 1, 1, 1, 0, 0])


def test_kernel_short_stop_loss_and_gap() -> None:
    o = [10.0, 10.0, 9.0, 9.5, np.nan, 10.0, 10.0]
    c = [10.0, 9.0, 9.4, 9.5, np.nan, 10.0, 10.0]
    h = [10.0, 10.0, 9.5, 9.6, np.nan, 10.5, 10.0]
    lo = [10.0, 9.0, 8.9, 9.4, np.nan, 9.9, 10.0]
    frame = pl.DataFrame(
        {"ts": [T0 + timedelta(minutes=5 * i) for i in range(7)], "open": o, "high": h, "low": lo, "close": c}
    ).with_columns(pl.col(x).fill_nan(None) for x in ("open", "high", "low", "close"))
    spec = parse_strategy(
        {
            "name": "s",
            "description": "x",
            "entry_rules": {"short": "close < open"},
            "exit_rules": {"stop_loss_pct": 5.0},
            "costs": {"fee_bps": 0, "slippage_bps": 0},
        }
    )
    sig = compile_signals(frame, spec)
    # short from bar 2 open (9.0); stop at 9.45; bar 2 high 9.5 >= 9.45 -> stopped at 9.45 in bar 2
    r = signal_returns(sig, spec)
    assert r[2] == pytest.approx(-(9.45 / 9.0 - 1))
    assert r[3:].tolist() == [0.0] * 4
    # without the stop the short rides through the gap bar (no return there) and marks the jump after it
    spec2 = parse_strategy({**spec.model_dump(mode="json"), "exit_rules": {}})
    r2 = signal_returns(compile_signals(frame, spec2), spec2)
    np.testing.assert_allclose(r2, [0, 0, -(9.4 / 9 - 1), -(9.5 / 9.4 - 1), 0, -(10 / 9.5 - 1), 0], atol=1e-12)


def test_funding_is_charged_to_longs_at_funding_bars() -> None:
    n = 12 * 9  # 9 hours of 5m bars from 00:00
    frame = bars_from_returns(np.zeros(n), funding_rate=np.full(n, 0.001))
    due = funding_charges(frame)
    closes_at = [T0 + timedelta(minutes=5 * (i + 1)) for i in range(n)]
    expected_due = [t.hour == 8 and t.minute == 0 for t in closes_at]
    assert (~np.isnan(due)).tolist() == expected_due
    spec = parse_strategy(
        {"name": "f", "description": "x", "entry_rules": {"long": "true"}, "costs": {"fee_bps": 0, "slippage_bps": 0}}
    )
    r = strategy_returns(frame, spec)[0]
    assert r.sum() == pytest.approx(-0.001)  # one 08:00 funding payment, prices flat


def test_light_kernel_matches_the_event_engine() -> None:
    """Reference check: on the same compiled signals (long-only, fully invested, no costs) the light kernel and
    the full engine give the same per-bar returns; with costs they stay within a few basis points overall."""
    from lake_assets.backtests.optimise import engine_runner

    rng = np.random.default_rng(4)
    frame = bars_from_returns(rng.normal(0.0001, 0.003, 2500))
    base = {
        "name": "trend",
        "description": "x",
        "parameters": {"n": {"type": "int", "default": 30, "low": 10, "high": 50}},
        "entry_rules": {"long": "close crosses above EMA(n)"},
        "exit_rules": {"long": "close crosses below EMA(n)"},
    }
    free = parse_strategy({**base, "costs": {"fee_bps": 0, "slippage_bps": 0}})
    sig = compile_signals(frame, free)
    assert sig["long_entry"].sum() > 20
    light = signal_returns(sig, free)
    engine = engine_runner()(sig, free)
    np.testing.assert_allclose(engine, light, atol=1e-12)
    costly = parse_strategy({**base, "costs": {"fee_bps": 4, "slippage_bps": 0}})
    sig = compile_signals(frame, costly)
    light_total = np.prod(1 + signal_returns(sig, costly))
    engine_total = np.prod(1 + engine_runner()(sig, costly))
    assert light_total == pytest.approx(engine_total, rel=5e-4)
    with pytest.raises(ValueError, match="stop_loss_pct"):
        engine_runner()(sig, parse_strategy({**base, "exit_rules": {"long": "false", "stop_loss_pct": 2}}))


def test_infeasible_combinations_are_recorded_never_chosen() -> None:
    frame, split = regime_switch_frame(300, 100)
    spec = parse_strategy(
        {
            "name": "macd_overlap",
            "description": "fast and slow ranges overlap: fast >= slow combinations are invalid",
            "parameters": {
                "fast": {"type": "int", "default": 5, "low": 5, "high": 15, "step": 5},
                "slow": {"type": "int", "default": 10, "low": 10, "high": 15, "step": 5},
            },
            "entry_rules": {"long": "MACD(fast, slow, 3) histogram > 0"},
            "exit_rules": {"long": "MACD(fast, slow, 3) histogram < 0"},
        }
    )
    res = optimise(frame, spec, end=split)
    states = dict(zip(zip(res.trials["fast"], res.trials["slow"], strict=True), res.trials["state"], strict=True))
    assert states[(15, 10)] == "invalid" and states[(10, 10)] == "invalid" and states[(5, 10)] == "complete"
    assert "fast must be smaller" in res.trials.filter(pl.col("state") == "invalid")["error"][0]
    assert res.best_params["fast"] < res.best_params["slow"]
    opt = optimise(frame, spec, end=split, method="optuna", n_trials=12, seed=1)
    assert opt.best_params["fast"] < opt.best_params["slow"]
