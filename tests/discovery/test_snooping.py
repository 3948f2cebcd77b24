"""SPA / StepM wiring against arch's own StepM, and DSR against lake_assets.stats.sharpe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from arch.bootstrap import SPA, StepM

from lake_assets.discovery.snooping import _stepm, deflated_sharpe
from lake_assets.stats.sharpe import deflated_sharpe_ratio


def test_stepdown_matches_arch_stepm() -> None:
    rng = np.random.default_rng(0)
    t = 400
    pnl = rng.normal(0, 1, (t, 8))
    pnl[:, :3] += 0.35  # three genuinely better than doing nothing
    losses = pd.DataFrame(-pnl, columns=[f"m{i}" for i in range(8)])
    bench = pd.Series(np.zeros(t))
    ref = StepM(bench, losses, size=0.05, block_size=5, reps=300, seed=1)
    ref.compute()
    spa = SPA(bench, losses, block_size=5, reps=300, seed=1)
    spa.compute()
    mine = [f"m{i}" for i in _stepm(spa, 8, 0.05)]
    assert mine == list(ref.superior_models) == ["m0", "m1", "m2"]


def test_stepdown_survives_all_models_superior() -> None:
    rng = np.random.default_rng(1)
    losses = pd.DataFrame(-(rng.normal(0, 1, (300, 3)) + 1.0))
    spa = SPA(pd.Series(np.zeros(300)), losses, block_size=5, reps=200, seed=2)
    spa.compute()
    assert _stepm(spa, 3, 0.05) == [0, 1, 2]


def test_dsr_uses_the_shared_helper() -> None:
    rng = np.random.default_rng(2)
    n = 300
    mean = rng.normal(0, 3, n)
    df = pl.DataFrame(
        {
            "mean_bps": mean,
            "std_bps": rng.uniform(20, 40, n),
            "n": rng.integers(30, 200, n),
            "skew": rng.normal(0, 0.3, n),
            "kurtosis": rng.uniform(3, 5, n),
            "round_trip_cost_bps": 5.0,
            "p_value": rng.uniform(size=n),
        }
    )
    out = deflated_sharpe(df, pl.col("mean_bps") > 2)
    sr = (df["mean_bps"] - 5.0) / df["std_bps"]
    trials = (df["mean_bps"] / df["std_bps"]).to_numpy()
    var = (1.4826 * np.median(np.abs(trials - np.median(trials)))) ** 2
    i = int(np.flatnonzero(mean > 2)[0])
    ref = deflated_sharpe_ratio(sr[i], int(df["n"][i]), df["skew"][i], df["kurtosis"][i], n, var)
    assert out["dsr"][i] == ref
    assert out.filter(pl.col("mean_bps") <= 2)["dsr"].is_null().all()
    assert out["dsr_n_trials"][0] == n


def test_dsr_for_a_discovered_blueprint_deflates_by_the_whole_search() -> None:
    """A walk-forward of a blueprint deflates by discovery's tested hypotheses plus its own configurations; with
    only one trial (the old fixed-rule count) the DSR is just the PSR against zero."""
    from lake_assets.stats.sharpe import (
        deflated_sharpe_for_search,
        deflated_sharpe_ratio,
        probabilistic_sharpe_ratio,
        search_trials,
    )

    assert search_trials(17_000, 1) == 17_000 and search_trials(17_000, 6) == 17_005
    assert search_trials(None, 6) == 6 and search_trials(0, 1) == 1
    with pytest.raises(ValueError):
        search_trials(10, 0)
    sr, n = 0.08, 2_000  # per-bar Sharpe of a decent strategy over 2,000 bars
    one = deflated_sharpe_ratio(sr, n, 0.0, 3.0, 1, 0.0)
    assert one == pytest.approx(probabilistic_sharpe_ratio(sr, 0.0, n))
    honest = deflated_sharpe_for_search(sr, n, 0.0, 3.0, search_trials(17_000, 1))
    assert honest < one and honest < 0.95  # the best of 17,000 skill-less tries reaches sr ~ 0.09 on 2,000 bars
    assert deflated_sharpe_for_search(0.2, n, 0.0, 3.0, 17_000) > 0.95  # a real edge survives the deflation
