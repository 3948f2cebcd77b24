"""Walk-forward evaluation of a JSON strategy: re-optimise in-sample, trade out-of-sample, judge the selection.

Splits are over the sorted distinct bar timestamps (all instruments share them), rolling (fixed-length train
window) or expanding (train from the first bar), with an optional embargo of bars between train and test. Each
fold optimises on its train window only (`optimise.optimise` cuts the frame first), then trades the test window
with the chosen parameters. Indicators may warm up on the train bars before the test window (the past is fair
game) but entries are only taken inside the test window, so every OOS trade opens out-of-sample.

The report carries the stitched OOS returns and metrics, the Probabilistic and Deflated Sharpe ratios of the OOS
returns (the number of trials and the variance of trial Sharpe ratios come from the in-sample searches), the
Probability of Backtest Overfitting by CSCV over a set of parameter configurations, and a PSI drift table per
fold between the train and test distributions of the features.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from lake_assets.backtests.optimise import (
    OptimisationResult,
    Runner,
    instrument_frames,
    optimise,
    signal_returns,
)
from lake_assets.backtests.strategy_spec import ENTRY_LONG, ENTRY_SHORT, StrategySpec, compile_signals
from lake_assets.stats.overfitting import PBOResult, probability_of_backtest_overfitting, psi_table
from lake_assets.stats.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    return_moments,
    sharpe_ratio,
)
from lake_assets.vocabulary import RETURN, TS, VOLUME

DEFAULT_PSI_FEATURES = (RETURN, VOLUME, "rv_48", "vol_rank", "funding_z", "volume_z", "basis_bps", "vol_regime")


@dataclass(frozen=True)
class Split:
    """One walk-forward fold as half-open ranges of bar indices into the sorted distinct timestamps."""

    fold: int
    train_start: int
    train_end: int  # exclusive
    test_start: int
    test_end: int  # exclusive

    def __post_init__(self) -> None:
        if not (0 <= self.train_start < self.train_end <= self.test_start < self.test_end):
            raise ValueError(f"invalid split {self}")


def walk_forward_splits(
    n_bars: int,
    train_bars: int,
    test_bars: int,
    *,
    mode: Literal["rolling", "expanding"] = "rolling",
    step_bars: int | None = None,
    embargo_bars: int = 0,
) -> list[Split]:
    """Consecutive train/test folds over `n_bars` bars; test windows never overlap each other or any train window
    of their own fold, and each test window starts after its train window (plus the embargo)."""
    if train_bars < 1 or test_bars < 1:
        raise ValueError(f"train_bars and test_bars must be >= 1, got {train_bars}, {test_bars}")
    if embargo_bars < 0:
        raise ValueError(f"embargo_bars must be >= 0, got {embargo_bars}")
    if mode not in ("rolling", "expanding"):
        raise ValueError(f"mode must be 'rolling' or 'expanding', got {mode!r}")
    step = step_bars or test_bars
    if step < test_bars:
        raise ValueError(f"step_bars {step} < test_bars {test_bars} would make test windows overlap")
    splits: list[Split] = []
    train_end = train_bars
    while True:
        test_start = train_end + embargo_bars
        test_end = test_start + test_bars
        if test_end > n_bars:
            break
        train_start = 0 if mode == "expanding" else train_end - train_bars
        splits.append(Split(len(splits), train_start, train_end, test_start, test_end))
        train_end += step
    if not splits:
        raise ValueError(
            f"no walk-forward fold fits: {n_bars} bars < train {train_bars} + embargo {embargo_bars} + test {test_bars}"
        )
    return splits


@dataclass(frozen=True)
class FoldResult:
    split: Split
    train_start_ts: datetime
    train_end_ts: datetime  # exclusive bound
    test_start_ts: datetime
    test_end_ts: datetime | None  # exclusive bound; None = end of data
    optimisation: OptimisationResult
    oos_returns: np.ndarray
    oos_metrics: dict[str, float]
    psi: pl.DataFrame


@dataclass(frozen=True)
class WalkForwardResult:
    strategy: str
    mode: str
    folds: list[FoldResult]
    oos_returns: np.ndarray  # stitched over folds (instruments averaged per bar)
    oos_metrics: dict[str, float]
    pbo: PBOResult | None
    deflated: dict[str, float]
    pbo_configs: list[dict[str, Any]] = field(default_factory=list)

    def folds_frame(self) -> pl.DataFrame:
        """One row per fold: windows, chosen parameters (JSON), IS score, OOS metrics, worst PSI."""
        import json

        rows = []
        for f in self.folds:
            worst = f.psi["psi"].drop_nans().max() if f.psi.height else None
            rows.append(
                {
                    "strategy": self.strategy,
                    "fold": f.split.fold,
                    "train_start": f.train_start_ts,
                    "train_end": f.train_end_ts,
                    "test_start": f.test_start_ts,
                    "test_end": f.test_end_ts,
                    "params": json.dumps(f.optimisation.best_params, sort_keys=True),
                    "method": f.optimisation.method,
                    "n_trials": f.optimisation.n_trials,
                    "is_score": f.optimisation.best_score,
                    **{f"oos_{k}": v for k, v in f.oos_metrics.items()},
                    "max_psi": worst,
                }
            )
        return pl.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "mode": self.mode,
            "n_folds": len(self.folds),
            **{f"oos_{k}": v for k, v in self.oos_metrics.items()},
            **({f"pbo_{k}" if k != "pbo" else k: v for k, v in self.pbo.summary().items()} if self.pbo else {}),
            **self.deflated,
        }


def return_metrics(returns: np.ndarray) -> dict[str, float]:
    """Per-bar Sharpe, total return, max drawdown, hit rate of non-zero bars and exposure of a return series."""
    r = returns[np.isfinite(returns)]
    if r.size == 0:
        return {"sharpe": float("nan"), "total_return": float("nan"), "max_drawdown": float("nan"),
                "hit_rate": float("nan"), "exposure": float("nan"), "n_bars": 0.0}  # fmt: skip
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    active = r != 0
    return {
        "sharpe": sharpe_ratio(r),
        "total_return": float(equity[-1] - 1.0),
        "max_drawdown": float(np.max(1.0 - equity / peak)),
        "hit_rate": float(np.mean(r[active] > 0)) if active.any() else float("nan"),
        "exposure": float(np.mean(active)),
        "n_bars": float(r.size),
    }


def _bar_index(frame: pl.DataFrame) -> pl.Series:
    return frame[TS].unique().sort()


def _mean_over_instruments(frames: Sequence[pl.DataFrame], returns: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-weight portfolio of the instruments' bar returns, aligned on timestamp."""
    if len(frames) == 1:
        return returns[0]
    parts = [pl.DataFrame({TS: f[TS], "r": r}) for f, r in zip(frames, returns, strict=True)]
    return pl.concat(parts).group_by(TS).agg(pl.col("r").mean()).sort(TS)["r"].to_numpy()


def evaluate_window(
    frame: pl.DataFrame,
    spec: StrategySpec,
    params: Mapping[str, Any],
    start: datetime,
    end: datetime | None,
    *,
    history_from: datetime | None = None,
    runner: Runner = signal_returns,
) -> np.ndarray:
    """Returns of `spec` with `params` over [start, end): indicators see bars from `history_from` on, entries are
    only taken from `start` on (so the window starts flat), bars after `end` are never read."""
    window = frame.filter(pl.col(TS) < end) if end is not None else frame
    if history_from is not None:
        window = window.filter(pl.col(TS) >= history_from)
    frames, rets = [], []
    for part in instrument_frames(window):
        sig = compile_signals(part, spec, params)
        before = pl.col(TS) < start
        sig = sig.with_columns(
            pl.when(before).then(False).otherwise(pl.col(ENTRY_LONG)).alias(ENTRY_LONG),
            pl.when(before).then(False).otherwise(pl.col(ENTRY_SHORT)).alias(ENTRY_SHORT),
        )
        r = runner(sig, spec)
        keep = (sig[TS] >= start).to_numpy()
        frames.append(sig.filter(pl.col(TS) >= start))
        rets.append(r[keep])
    return _mean_over_instruments(frames, rets)


def _psi_columns(frame: pl.DataFrame, requested: Sequence[str] | None) -> list[str]:
    if requested is not None:
        return list(requested)
    return [c for c in DEFAULT_PSI_FEATURES if c in frame.columns]


def _pbo_configs(spec: StrategySpec, results: Sequence[OptimisationResult], max_configs: int, seed: int) -> list[dict]:
    """Configurations for CSCV: the whole grid when small, else a seeded sample of it / of the tried trials."""
    if math.isfinite(spec.grid_size()) and spec.grid_size() <= max_configs:
        return spec.grid()
    rng = random.Random(seed)
    if math.isfinite(spec.grid_size()) and spec.grid_size() <= 100_000:
        return rng.sample(spec.grid(), max_configs)
    seen: dict[str, dict[str, Any]] = {}
    for res in results:
        for row in res.trials.iter_rows(named=True):
            params = {k: row[k] for k in spec.parameters}
            seen.setdefault(repr(sorted(params.items())), params)
    configs = list(seen.values())
    return configs if len(configs) <= max_configs else rng.sample(configs, max_configs)


def walk_forward(
    frame: pl.DataFrame,
    spec: StrategySpec,
    *,
    train_bars: int,
    test_bars: int,
    mode: Literal["rolling", "expanding"] = "rolling",
    step_bars: int | None = None,
    embargo_bars: int = 0,
    warmup_bars: int | None = None,
    psi_features: Sequence[str] | None = None,
    pbo_splits: int = 16,
    max_pbo_configs: int = 64,
    seed: int = 0,
    runner: Runner = signal_returns,
    **optimise_kwargs: Any,
) -> WalkForwardResult:
    """Walk-forward test of `spec` on a bars(+features) frame; see the module docstring for what is reported.

    `warmup_bars` (default: the train length) is how many bars before each test window indicators may read.
    Remaining keyword arguments go to `optimise` (objective, method, n_trials, max_grid, ...).
    """
    if frame.height == 0:
        raise ValueError(f"walk-forward of {spec.name!r}: empty frame")
    bars = _bar_index(frame)
    splits = walk_forward_splits(
        bars.len(), train_bars, test_bars, mode=mode, step_bars=step_bars, embargo_bars=embargo_bars
    )
    warm = train_bars if warmup_bars is None else warmup_bars
    psi_cols = _psi_columns(frame, psi_features)
    folds: list[FoldResult] = []
    oos_all: list[np.ndarray] = []
    for sp in splits:
        t0, t1 = bars[sp.train_start], bars[sp.train_end]  # train = [t0, t1)
        s0 = bars[sp.test_start]
        s1 = bars[sp.test_end] if sp.test_end < bars.len() else None
        opt = optimise(frame, spec, start=t0, end=t1, seed=seed + sp.fold, runner=runner, **optimise_kwargs)
        hist = bars[max(0, sp.test_start - warm)]
        oos = evaluate_window(frame, spec, opt.best_params, s0, s1, history_from=hist, runner=runner)
        is_frame = frame.filter((pl.col(TS) >= t0) & (pl.col(TS) < t1))
        oos_frame = frame.filter((pl.col(TS) >= s0) & ((pl.col(TS) < s1) if s1 is not None else pl.lit(True)))
        folds.append(
            FoldResult(
                split=sp,
                train_start_ts=t0,
                train_end_ts=t1,
                test_start_ts=s0,
                test_end_ts=s1,
                optimisation=opt,
                oos_returns=oos,
                oos_metrics=return_metrics(oos),
                psi=psi_table(is_frame, oos_frame, psi_cols),
            )
        )
        oos_all.append(oos)
    stitched = np.concatenate(oos_all)

    # Deflated Sharpe of the stitched OOS returns, deflated by the searches that chose the parameters.
    trial_srs = [s for f in folds for s in f.optimisation.trial_sharpes()]
    n_trials = max(1, round(float(np.mean([f.optimisation.n_trials for f in folds]))))
    trial_var = float(np.var(trial_srs, ddof=1)) if len(trial_srs) > 1 else 0.0
    n_obs, skew, kurt = return_moments(stitched)
    sr = sharpe_ratio(stitched)
    ok = n_obs >= 2 and math.isfinite(sr)
    deflated = {
        "psr": probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt) if ok else float("nan"),
        "dsr": deflated_sharpe_ratio(sr, n_obs, skew, kurt, n_trials, trial_var) if ok else float("nan"),
        "dsr_n_trials": float(n_trials),
        "dsr_trial_sr_variance": trial_var,
        "dsr_expected_max_sharpe": expected_max_sharpe(n_trials, trial_var),
    }

    # PBO by CSCV over a set of configurations run on the whole walk-forward span.
    configs = _pbo_configs(spec, [f.optimisation for f in folds], max_pbo_configs, seed)
    pbo: PBOResult | None = None
    if len(configs) >= 2:
        start_ts = bars[splits[0].train_start]
        end_ts = bars[splits[-1].test_end] if splits[-1].test_end < bars.len() else None
        cols = [evaluate_window(frame, spec, c, start_ts, end_ts, runner=runner) for c in configs]
        mat = np.column_stack(cols)
        n_split = min(pbo_splits, 2 * (mat.shape[0] // 4))  # at least two rows per block
        if n_split >= 2:
            pbo = probability_of_backtest_overfitting(mat, n_splits=n_split)
    return WalkForwardResult(
        strategy=spec.name,
        mode=mode,
        folds=folds,
        oos_returns=stitched,
        oos_metrics=return_metrics(stitched),
        pbo=pbo,
        deflated=deflated,
        pbo_configs=configs,
    )


__all__ = [
    "FoldResult",
    "Split",
    "WalkForwardResult",
    "evaluate_window",
    "return_metrics",
    "walk_forward",
    "walk_forward_splits",
]
