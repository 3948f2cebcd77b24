"""One Sharpe convention in the lake: `walkforward.oos_sharpe`, `walkforward_folds.oos_sharpe` and `is_score` are
annualised exactly as `metrics.sharpe` is (per-bar Sharpe x sqrt(bars per year of the book's timeframe)), so the
in-sample and out-of-sample Sharpe of one strategy compare; PSR/DSR still come from the per-bar Sharpe."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import START, make_blueprint, synthetic_bars, write_bars, write_events, write_funding  # noqa: E402

from lake_assets.backtests import book_runs, walkforward_runs  # noqa: E402
from lake_assets.backtests.metrics import compute_metrics  # noqa: E402
from lake_assets.backtests.strategy_spec import load_strategies  # noqa: E402
from lake_assets.backtests.walkforward import WalkForwardResult  # noqa: E402
from lake_assets.specs import universe  # noqa: E402
from lake_assets.stats.sharpe import sharpe_ratio  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402

PERPS = ("BTCUSDT-PERP", "ETHUSDT-PERP")
EVENT = "vol_spike_test"
SQRT_5M = math.sqrt(288 * 365)  # the annualisation of 5m books


@pytest.fixture()
def lake(data_root: Path) -> Lake:
    from datetime import timedelta

    store = Lake()
    n = 288 * 21
    bars = pl.concat([synthetic_bars(PERPS[0], n, 1, 60_000.0), synthetic_bars(PERPS[1], n, 2, 3_000.0)])
    write_bars(store, bars)
    for inst in PERPS:
        write_funding(store, inst, START, START + timedelta(days=21), rate=2e-4)
    write_events(store, bars.filter(pl.col("instrument") == PERPS[0]), EVENT, every=61)
    return store


def test_blueprint_oos_sharpe_is_annualised_like_the_backtest(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []
    real = walkforward_runs.return_metrics

    def spy(returns: np.ndarray) -> dict[str, float]:
        seen.append(np.asarray(returns))
        return real(returns)

    monkeypatch.setattr(walkforward_runs, "return_metrics", spy)
    summary, folds = walkforward_runs.walkforward_blueprint(
        lake, make_blueprint(PERPS[0], EVENT), universe().instruments
    )
    *fold_returns, stitched = seen
    assert folds.height == len(fold_returns) == 4
    assert summary["oos_sharpe"].item() == pytest.approx(sharpe_ratio(stitched) * SQRT_5M, rel=1e-12)
    expected = [sharpe_ratio(r) * SQRT_5M for r in fold_returns]
    assert folds["oos_sharpe"].to_list() == pytest.approx(expected, rel=1e-12)
    # and metrics.sharpe is the same statistic on the same scale: mean/std of bar returns x sqrt(105,120)
    [run] = book_runs.run_blueprint(lake, make_blueprint(PERPS[0], EVENT), universe().instruments)
    eq = np.r_[run.result.init_cash, run.result.equity["equity"].to_numpy()]
    bar_returns = eq[1:] / eq[:-1] - 1.0
    assert run.metrics()["sharpe"] == pytest.approx(sharpe_ratio(bar_returns) * SQRT_5M, rel=1e-9)
    assert compute_metrics(run.result, 288 * 365)["sharpe"] == run.metrics()["sharpe"]


def test_json_walkforward_sharpes_are_annualised(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[WalkForwardResult] = []
    real = walkforward_runs.walk_forward

    def spy(*args: Any, **kwargs: Any) -> WalkForwardResult:
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(walkforward_runs, "walk_forward", spy)
    spec = load_strategies()["rsi_reversal"]
    summary, folds = walkforward_runs.walkforward_json(
        lake, spec, universe().instruments,
        walkforward_runs.WalkForwardProtocol(n_trials=2, max_grid=2, max_pbo_configs=2),
    )
    [wf] = results
    per_bar = wf.summary()["oos_sharpe"]
    assert summary["oos_sharpe"].item() == pytest.approx(per_bar * SQRT_5M, rel=1e-12)
    raw = wf.folds_frame()
    assert folds["oos_sharpe"].to_list() == pytest.approx((raw["oos_sharpe"] * SQRT_5M).to_list(), rel=1e-12)
    assert folds["is_score"].to_list() == pytest.approx((raw["is_score"] * SQRT_5M).to_list(), rel=1e-12)
    assert summary["psr"].item() == pytest.approx(wf.summary()["psr"])  # from the per-bar Sharpe, unchanged
