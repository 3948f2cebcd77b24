"""Kept models as strategies: `model.<variant>` partitions of `backtests` and `walkforward`.

A model strategy trades its variant's OOS positions (model_predictions) at the variant's frequency with the lake's
cost model (spec/costs.yaml, one shared-cash book per market, funding for perps), exactly as JSON strategies are
backtested; positions before the first test fold do not exist, so the backtest starts there. Its walk-forward is the
model's own: the purged walk-forward folds of model_folds, the model refit per fold with the study's best parameters
(nothing re-optimised per fold), each test window judged out of sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from lake_assets import tables
from lake_assets.backtests import model_eval
from lake_assets.backtests.book_runs import BookRun, books_by_market, cost_config
from lake_assets.backtests.costs import CostSpec, load_costs
from lake_assets.backtests.risk import Sizing
from lake_assets.backtests.schema import STRATEGY, SizeType
from lake_assets.backtests.strategies import MODEL_PREFIX, NoDataError
from lake_assets.backtests.walkforward import return_metrics
from lake_assets.backtests.walkforward_runs import (
    WF_FOLDS_SCHEMA,
    WF_SUMMARY_SCHEMA,
    _summary_row,
    _typed,
    annualise_sharpe,
)
from lake_assets.models.spec_model import split_variant_key
from lake_assets.specs import Instrument
from lake_assets.stats.sharpe import deflated_sharpe_ratio, probabilistic_sharpe_ratio, return_moments, sharpe_ratio
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT, TS, Market


def _variant(key: str) -> str:
    return key[len(MODEL_PREFIX) :]


def _inputs(store: Lake, key: str) -> tuple[str, pl.DataFrame, pl.DataFrame]:
    if not key.startswith(MODEL_PREFIX):
        raise NoDataError(f"strategy {key}: not a model strategy")
    variant = _variant(key)
    freq = split_variant_key(variant)[0]
    preds = model_eval.model_predictions(store, variant)
    if preds.is_empty():
        raise NoDataError(f"strategy {key}: no OOS predictions in models/model_predictions/variant={variant} "
                          "(materialize model_runs first)")  # fmt: skip
    bars = model_eval.oos_bars(store, preds, freq)
    if bars.is_empty():
        raise NoDataError(f"strategy {key}: no bars at {freq} for {sorted(preds[INSTRUMENT].unique())}")
    return freq, preds, bars


def run_model_strategy(store: Lake, key: str, universe: Sequence[Instrument], costs: CostSpec | None = None
                       ) -> list[BookRun]:  # fmt: skip
    """One book per market of the variant's instruments, signals from its OOS positions, the lake's costs."""
    costs = costs or load_costs()
    freq, preds, bars = _inputs(store, key)
    members = [i for i in universe if i.id in set(bars[INSTRUMENT].unique().to_list())]
    runs = []
    for market, insts in books_by_market(members):
        ids = [i.id for i in insts]
        b = bars.filter(pl.col(INSTRUMENT).is_in(ids))
        sig = model_eval.signals_of(preds.filter(pl.col(INSTRUMENT).is_in(ids)), b)
        funding = model_eval.perp_funding(store, ids) if market == Market.PERP else None
        result = model_eval.realistic(sig, b, cost_config(costs, market, 1.0), funding, key,
                                      Sizing(SizeType.EQUITY_PERCENT, 1.0 / len(ids)))  # fmt: skip
        runs.append(BookRun(key, "model", market.value, freq, ids, b, result, "signals"))
    return runs


def walkforward_model(store: Lake, key: str, universe: Sequence[Instrument], content_hash: str,
                      costs: CostSpec | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """(summary, folds) per book over the model's own purged walk-forward folds."""
    variant = _variant(key)
    folds = store.reader.partition(tables.MODEL_FOLDS, {"variant": variant})
    runs_table = store.reader.partition(tables.MODEL_RUNS, {"variant": variant})
    params = str(runs_table["best_params"][0]) if runs_table.height else "{}"
    n_trials = int(runs_table["n_trials"][0]) if runs_table.height else 1
    rows, fold_rows = [], []
    for run in run_model_strategy(store, key, universe, costs):
        eq = run.result.equity.select(TS, "equity")
        oos = []
        for f in folds.sort("fold").iter_rows(named=True):
            before = eq.filter(pl.col(TS) < f["test_start"])["equity"]
            inside = eq.filter((pl.col(TS) >= f["test_start"]) & (pl.col(TS) < f["test_end"]))["equity"].to_numpy()
            if inside.size == 0:
                continue
            base = float(before[-1]) if before.len() else run.result.init_cash
            curve = np.r_[base, inside]
            r = np.diff(curve) / curve[:-1]
            oos.append(r)
            m = return_metrics(r)
            fold_rows.append({
                STRATEGY: key, "book": run.book, "fold": int(f["fold"]), "train_start": None,
                "train_end": f["test_start"], "test_start": f["test_start"], "test_end": f["test_end"],
                "params": params, "method": "optuna (TPE): the study's best, refit per fold", "n_trials": n_trials,
                "is_score": None, **{f"oos_{a}": v for a, v in m.items()},
                "oos_sharpe": annualise_sharpe(m["sharpe"], run.timeframe), "max_psi": None,
                "in_discovery_window": False,
            })  # fmt: skip
        stitched = np.concatenate(oos) if oos else np.array([])
        m = return_metrics(stitched)
        n_obs, skew, kurt = return_moments(stitched) if stitched.size > 2 else (0, 0.0, 3.0)
        sr = sharpe_ratio(stitched) if stitched.size > 2 else math.nan
        ok = n_obs >= 2 and math.isfinite(sr)
        rows.append(_summary_row(
            key, "model", run.book, content_hash, mode="model-walkforward", n_bars=eq.height, n_folds=len(oos),
            **{f"oos_{a}": (v if math.isfinite(v) else None) for a, v in m.items() if a != "sharpe"},
            oos_sharpe=annualise_sharpe(m["sharpe"], run.timeframe),
            psr=probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt) if ok else None,
            dsr=deflated_sharpe_ratio(sr, n_obs, skew, kurt, n_trials, 0.0) if ok else None,
            dsr_n_trials=float(n_trials),
            reason="the model's purged walk-forward test folds (model_folds), traded with the lake's costs",
        ))  # fmt: skip
    return _typed(rows, WF_SUMMARY_SCHEMA), _typed(fold_rows, WF_FOLDS_SCHEMA)
