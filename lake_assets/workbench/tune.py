"""Auto-tuning a workbench run: grid, random or Optuna TPE over indicator parameters and blend weights.

Trials are scored on the training window (the first `train_fraction` of the run's bars) by the config's metric,
under its constraints (max drawdown, minimum trades, maximum exposure). An infeasible trial is recorded with its
reason and is never selected (TPE also sees it as infeasible, `Trial.set_constraint`); it still counts as a
trial for the deflated Sharpe. The best feasible trial is then evaluated out of sample on the rest of the window,
and the deflated Sharpe ratio of its training returns is computed for every trial tried (Bailey & Lopez de Prado,
`stats.sharpe.deflated_sharpe_from_returns`). Every trial is a row of `trials.parquet`. Deterministic: a fixed seed,
trials in order, one thread.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from lake_assets.stats.sharpe import deflated_sharpe_from_returns, sharpe_ratio
from lake_assets.vocabulary import TS
from lake_assets.workbench.config import REGIME_LABELS, RunConfig, SearchParam
from lake_assets.workbench.run import Evaluation, Inputs, Params, _ts, evaluate

PENALTY = -1e6  # the objective Optuna sees for a trial without a finite score


def search_space(cfg: RunConfig) -> list[SearchParam]:
    dims = list(cfg.tune.search_space)
    if cfg.tune.per_regime:
        have = {d.target for d in dims}
        labels = sorted(cfg.blend.regime_weights or dict.fromkeys(REGIME_LABELS))
        for label in labels:
            for i in range(len(cfg.indicators)):
                target = f"regime_weight.{label}.{i}"
                if target not in have:
                    dims.append(SearchParam(target=target, low=0.0, high=1.0, step=0.5))
    return dims


def apply(params: Params, assignment: dict[str, float]) -> Params:
    """Params with the tuned values set (targets as in `SearchParam`)."""
    indicators = [(n, dict(p)) for n, p in params.indicators]
    b = params.blend
    weights = list(b.weights)
    regime = {k: list(v) for k, v in b.regime_weights.items()}
    threshold, k = b.threshold, b.k
    for target, value in assignment.items():
        parts = target.split(".")
        if target == "threshold":
            threshold = float(value)
        elif target == "k":
            k = int(round(value))
        elif parts[0] == "weight":
            weights[int(parts[1])] = float(value)
        elif parts[0] == "regime_weight":
            regime.setdefault(parts[1], list(weights))[int(parts[2])] = float(value)
        else:
            indicators[int(parts[0])][1][parts[1]] = float(value)
    blend = replace(b, weights=tuple(weights), threshold=threshold, k=k,
                    regime_weights={lb: tuple(ws) for lb, ws in regime.items()})  # fmt: skip
    return Params(tuple(indicators), blend)


def _split(cfg: RunConfig, inputs: Inputs) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    lo, hi = _ts(cfg.start), _ts(cfg.end, end=True)
    first = next(iter(inputs.frames.values()))
    ts = first.filter((pl.col(TS) >= lo) & (pl.col(TS) <= hi))[TS]
    if ts.len() < 20:
        raise ValueError(f"tune: {ts.len()} bars in the window, too few to split into train and test")
    cut = ts[int(ts.len() * cfg.tune.train_fraction)]
    return (lo, cut - (ts[1] - ts[0]) / 2), (cut, hi)


def infeasible(cfg: RunConfig, m: dict[str, float]) -> str | None:
    c = cfg.tune.constraints
    reasons = []
    if c.max_drawdown is not None and not m["max_drawdown"] <= c.max_drawdown:
        reasons.append(f"max_drawdown {m['max_drawdown']:.3f} > {c.max_drawdown}")
    if c.min_trades is not None and not m["n_trades"] >= c.min_trades:
        reasons.append(f"n_trades {m['n_trades']:.0f} < {c.min_trades}")
    if c.max_exposure is not None and not m["exposure"] <= c.max_exposure:
        reasons.append(f"exposure {m['exposure']:.3f} > {c.max_exposure}")
    return "; ".join(reasons) or None


def _assignments(cfg: RunConfig, dims: list[SearchParam]) -> list[dict[str, float]]:
    """Grid: the full product (evenly thinned to n_trials); random: n_trials draws from the dimensions' grids."""
    grids = [d.values() for d in dims]
    n = cfg.tune.n_trials
    if cfg.tune.method == "grid":
        product = list(itertools.product(*grids))
        if len(product) > n:
            idx = np.unique(np.linspace(0, len(product) - 1, n).round().astype(int))
            product = [product[i] for i in idx]
        return [dict(zip((d.target for d in dims), p, strict=True)) for p in product]
    rng = np.random.default_rng(cfg.tune.seed)
    out = []
    for _ in range(n):
        a = {}
        for d, g in zip(dims, grids, strict=True):
            if d.choices is None and d.step is None and not d.integer:
                assert d.low is not None and d.high is not None
                a[d.target] = float(rng.uniform(d.low, d.high))
            else:
                a[d.target] = float(g[int(rng.integers(len(g)))])
        out.append(a)
    return out


def tune(cfg: RunConfig, inputs: Inputs, base: Params) -> tuple[Params, dict[str, Any], pl.DataFrame]:
    """(best params, summary for results.json, trials table)."""
    train, test = _split(cfg, inputs)
    dims = search_space(cfg)
    metric = cfg.tune.metric
    rows: list[dict[str, Any]] = []
    evals: list[Evaluation | None] = []

    def run_trial(assignment: dict[str, float]) -> tuple[float, str | None]:
        params = apply(base, assignment)
        try:
            ev = evaluate(cfg, inputs, params, train)
        except ValueError as exc:  # e.g. a window too long for the data: a failed, infeasible trial
            rows.append({"trial": len(rows), "params": json.dumps(assignment, sort_keys=True), "score": None,
                         "feasible": False, "reason": f"error: {exc}", "sharpe": None, "max_drawdown": None,
                         "n_trades": None, "exposure": None, "sr_per_bar": None})  # fmt: skip
            evals.append(None)
            return PENALTY, "error"
        m = ev.metrics
        score = float(m.get(metric, math.nan))
        reason = infeasible(cfg, m)
        rows.append({
            "trial": len(rows), "params": json.dumps(assignment, sort_keys=True),
            "score": score if math.isfinite(score) else None, "feasible": reason is None, "reason": reason,
            "sharpe": _f(m["sharpe"]), "max_drawdown": _f(m["max_drawdown"]), "n_trades": _f(m["n_trades"]),
            "exposure": _f(m["exposure"]), "sr_per_bar": _f(sharpe_ratio(ev.returns)) if ev.returns.size > 1 else None,
        })  # fmt: skip
        evals.append(ev)
        return (score if math.isfinite(score) else PENALTY), reason

    if cfg.tune.method == "tpe":
        _optuna(cfg, dims, run_trial)
    else:
        for a in _assignments(cfg, dims):
            run_trial(a)
    trials = pl.DataFrame(rows, schema=TRIALS_SCHEMA)
    feasible = trials.filter(pl.col("feasible") & pl.col("score").is_not_null())
    summary: dict[str, Any] = {"method": cfg.tune.method, "metric": metric, "n_trials": trials.height,
                               "n_feasible": feasible.height,
                               "train": [train[0].isoformat(), train[1].isoformat()],
                               "test": None}  # fmt: skip
    if feasible.is_empty():
        summary["note"] = "no feasible trial: the config's own parameters are used"
        best = base
        best_eval = evaluate(cfg, inputs, best, train)
    else:
        best_row = feasible.sort(["score", "trial"], descending=[True, False]).row(0, named=True)
        best = apply(base, json.loads(best_row["params"]))
        best_eval = evals[best_row["trial"]]
        assert best_eval is not None
        summary["best_trial"] = best_row["trial"]
        summary["best_assignment"] = json.loads(best_row["params"])
    summary["train_metrics"] = best_eval.metrics
    trial_srs = [s for s in trials["sr_per_bar"].to_list() if s is not None]
    dsr = deflated_sharpe_from_returns(best_eval.returns, trial_srs) if best_eval.returns.size > 2 else {}
    summary["dsr"] = dsr.get("dsr")
    summary["dsr_detail"] = dsr
    try:
        test_eval = evaluate(cfg, inputs, best, test)
        summary["test"] = {"window": [test[0].isoformat(), test[1].isoformat()], **test_eval.metrics}
    except ValueError as exc:
        summary["test"] = {"error": str(exc)}
    return best, summary, trials


def _optuna(cfg: RunConfig, dims: list[SearchParam], run_trial: Any) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.tune.seed, n_startup_trials=min(10, cfg.tune.n_trials))
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        a: dict[str, float] = {}
        for d in dims:
            if d.choices is not None:
                a[d.target] = float(trial.suggest_categorical(d.target, d.choices))
            elif d.integer:
                assert d.low is not None and d.high is not None
                a[d.target] = float(trial.suggest_int(d.target, int(d.low), int(d.high), step=int(d.step or 1)))
            else:
                assert d.low is not None and d.high is not None
                a[d.target] = trial.suggest_float(d.target, d.low, d.high, step=d.step)
        value, reason = run_trial(a)
        trial.set_constraint("feasible", 1.0 if reason else -1.0)  # > 0: infeasible (TPE samples away from it)
        return value

    study.optimize(objective, n_trials=cfg.tune.n_trials, n_jobs=1)


def _f(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


TRIALS_SCHEMA = pl.Schema({
    "trial": pl.Int64, "params": pl.String, "score": pl.Float64, "feasible": pl.Boolean, "reason": pl.String,
    "sharpe": pl.Float64, "max_drawdown": pl.Float64, "n_trades": pl.Float64, "exposure": pl.Float64,
    "sr_per_bar": pl.Float64,
})  # fmt: skip
