"""Walk-forward of one strategy per book, as the `walkforward` asset writes it: rolling train/test windows sized from
the data (`spec/walkforward.yaml`), JSON strategies re-optimised in-sample (`walkforward.walk_forward`), blueprints
traded as fixed rules per fold; OOS metrics, PBO, PSR/DSR and PSI drift."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from lake_assets import tables
from lake_assets.backtests.blueprint_signals import (
    PERIODS_PER_YEAR,
)
from lake_assets.backtests.book_runs import BOOK, books_by_market, run_blueprint, strategy_frame
from lake_assets.backtests.costs import CostSpec
from lake_assets.backtests.schema import (
    STRATEGY,
)
from lake_assets.backtests.strategies import NoDataError, content_hash, json_key
from lake_assets.backtests.strategy_spec import StrategySpec
from lake_assets.backtests.walkforward import return_metrics, walk_forward
from lake_assets.discovery.blueprints import Blueprint
from lake_assets.settings import spec_dir
from lake_assets.specs import Instrument, StrictModel, read_yaml, validate_model
from lake_assets.stats.sharpe import (
    deflated_sharpe_for_search,
    probabilistic_sharpe_ratio,
    return_moments,
    search_trials,
    sharpe_ratio,
)
from lake_assets.storage.lake import Lake
from lake_assets.tables import WALKFORWARD, WALKFORWARD_FOLDS
from lake_assets.vocabulary import (
    TS,
)


@dataclass(frozen=True)
class WalkForwardSizes:
    train_bars: int
    test_bars: int
    n_bars: int


def choose_sizes(n_bars: int, folds: int = 4, train_multiple: int = 2, min_test: int = 50) -> WalkForwardSizes | None:
    """Rolling windows from the data length: `folds` test windows after a train window `train_multiple` times as
    long; None when the test window would be shorter than `min_test` bars."""
    test = n_bars // (folds + train_multiple)
    if test < min_test:
        return None
    return WalkForwardSizes(train_multiple * test, test, n_bars)


WF_SUMMARY_SCHEMA = WALKFORWARD.schema
WF_FOLDS_SCHEMA = WALKFORWARD_FOLDS.schema
# Sharpe columns of the walk-forward tables, annualised like `metrics.sharpe` (the convention in lake_assets/tables.py);
# walkforward.py computes them per bar, as PSR/DSR need. is_score is the in-sample objective: the (default) Sharpe.
ANNUALISED_WF_COLUMNS = ("oos_sharpe", "is_score")


def annualise_sharpe(value: Any, timeframe: str) -> float | None:
    """A per-bar Sharpe ratio scaled by sqrt(bars per year of `timeframe`), as `BookRun.metrics` annualises."""
    x = _finite_or_none(value)
    return None if x is None else x * math.sqrt(PERIODS_PER_YEAR.get(timeframe, 252.0))


def _annualised_folds(folds: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    scale = math.sqrt(PERIODS_PER_YEAR.get(timeframe, 252.0))
    return folds.with_columns(pl.col(c).cast(pl.Float64) * scale for c in ANNUALISED_WF_COLUMNS if c in folds.columns)


def _summary_row(strategy: str, kind: str, book: str, spec_hash: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(WF_SUMMARY_SCHEMA.names())
    row.update({STRATEGY: strategy, "kind": kind, BOOK: book, "spec_hash": spec_hash, "applicable": True})
    row.update({k: v for k, v in values.items() if k in row})
    return row


def _finite_or_none(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class WalkForwardProtocol(StrictModel):
    """spec/walkforward.yaml: split sizing and the in-sample search budget."""

    folds: int = Field(default=4, ge=2)
    train_multiple: int = Field(default=2, ge=1)
    min_test_bars: int = Field(default=50, ge=10)
    n_trials: int = Field(default=8, ge=1)
    max_grid: int = Field(default=16, ge=1)
    max_pbo_configs: int = Field(default=8, ge=2)
    pbo_splits: int = Field(default=8, ge=2)
    seed: int = 0


def load_walkforward_protocol(path: Path | None = None) -> WalkForwardProtocol:
    path = path or spec_dir() / "walkforward.yaml"
    if not path.exists():
        return WalkForwardProtocol()
    protocol: WalkForwardProtocol = validate_model(WalkForwardProtocol, read_yaml(path) or {}, path)
    return protocol


def walkforward_json(
    store: Lake,
    spec: StrategySpec,
    universe: Sequence[Instrument],
    protocol: WalkForwardProtocol | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Walk-forward per book: rolling train/test sized from the data, re-optimised in-sample (light kernel with the
    spec's own costs), OOS metrics, PBO (CSCV), PSR/DSR and PSI drift. Returns (summary rows, fold rows)."""
    p = protocol or load_walkforward_protocol()
    key = json_key(spec.name)
    h = content_hash(spec)
    applicable = [i for i in universe if spec.applies_to(i.market)]
    frames = {i.id: f for i in applicable if (f := strategy_frame(store, spec, i.id)).height}
    if not frames:
        raise NoDataError(f"strategy {key}: no cleaned bars in the lake for any applicable instrument "
                          f"({', '.join(i.id for i in applicable)})")  # fmt: skip
    summary, folds = [], []
    for market, members in books_by_market([i for i in applicable if i.id in frames]):
        frame = pl.concat([frames[i.id] for i in members], how="diagonal_relaxed")
        n = frame[TS].n_unique()
        sizes = choose_sizes(n, p.folds, p.train_multiple, p.min_test_bars)
        if not spec.parameters:
            summary.append(_summary_row(key, "json", market.value, h, applicable=False, n_bars=n,
                                        reason="no parameters to re-optimise"))  # fmt: skip
            continue
        if sizes is None:
            summary.append(_summary_row(key, "json", market.value, h, applicable=False, n_bars=n,
                                        reason=f"{n} bars are too few for {p.folds} rolling folds"))  # fmt: skip
            continue
        wf = walk_forward(
            frame, spec, train_bars=sizes.train_bars, test_bars=sizes.test_bars, mode="rolling", seed=p.seed,
            n_trials=p.n_trials, max_grid=p.max_grid, max_pbo_configs=p.max_pbo_configs, pbo_splits=p.pbo_splits,
        )  # fmt: skip
        timeframe = sorted({i.base_timeframe for i in members})[0]  # as the book's backtest annualises
        ff = _annualised_folds(wf.folds_frame(), timeframe)
        s = wf.summary()
        s["oos_sharpe"] = annualise_sharpe(s.get("oos_sharpe"), timeframe)
        summary.append(
            _summary_row(
                key, "json", market.value, h, mode=wf.mode, n_bars=n, train_bars=sizes.train_bars,
                test_bars=sizes.test_bars, n_folds=len(wf.folds),
                **{k: _finite_or_none(s.get(k)) for k in ("oos_sharpe", "oos_total_return", "oos_max_drawdown",
                                                          "oos_hit_rate", "oos_exposure", "pbo", "psr", "dsr",
                                                          "dsr_n_trials")},
                max_psi=_finite_or_none(ff["max_psi"].max()) if "max_psi" in ff.columns else None,
            )
        )  # fmt: skip
        folds.append(
            ff.with_columns(
                pl.lit(market.value).alias(BOOK),
                pl.lit(key).alias(STRATEGY),
                pl.lit(False).alias("in_discovery_window"),
            )  # fmt: skip
        )
    return _typed(summary, WF_SUMMARY_SCHEMA), _typed_frames(folds, WF_FOLDS_SCHEMA)


def walkforward_blueprint(
    store: Lake, blueprint: Blueprint, universe: Sequence[Instrument], costs: CostSpec | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A blueprint is a fixed rule: nothing to re-optimise, so each rolling test window is traded with the rule as
    is (entries inside the window only, indicators warmed up on the bars before it) and judged out-of-sample.
    Folds overlapping discovery's sample are flagged. PBO needs several configurations: not applicable."""
    bp = blueprint
    h = content_hash(bp)
    bars = store.reader.instrument(tables.BARS, bp.instrument)
    if bars.is_empty():
        raise NoDataError(f"strategy {bp.blueprint_id}: instrument {bp.instrument}: no cleaned bars in the lake")
    inst = next(i for i in universe if i.id == bp.instrument)
    events = store.read("events", "event_registry", [{"event_type": bp.event_type}]).drop("event_type_right",
                                                                                        strict=False)  # fmt: skip
    n = bars.height
    sizes = choose_sizes(n)
    if sizes is None:
        row = _summary_row(bp.blueprint_id, "blueprint", inst.market.value, h, applicable=False, n_bars=n,
                           reason=f"{n} bars are too few for 4 rolling folds")  # fmt: skip
        return _typed([row], WF_SUMMARY_SCHEMA), _typed_frames([], WF_FOLDS_SCHEMA)
    ts = bars[TS]
    last_disc = bp.evidence.discovery_last_entry
    fold_rows, oos = [], []
    k = 0
    start = sizes.train_bars
    while start + sizes.test_bars <= n:
        s0, s1 = ts[start], (ts[start + sizes.test_bars] if start + sizes.test_bars < n else None)
        [run] = run_blueprint(store, bp, universe, costs, events=events, window=(s0, s1), bars=bars)
        eq = run.result.equity.filter(pl.col(TS) >= s0)["equity"].to_numpy()
        before = run.result.equity.filter(pl.col(TS) < s0)["equity"]
        base = float(before[-1]) if before.len() else run.result.init_cash
        r = np.diff(np.r_[base, eq]) / np.r_[base, eq][:-1]
        oos.append(r)
        m = return_metrics(r)
        fold_rows.append({
            STRATEGY: bp.blueprint_id, BOOK: inst.market.value, "fold": k, "train_start": ts[start - sizes.train_bars],
            "train_end": s0, "test_start": s0, "test_end": s1, "params": json.dumps(bp.definition(), sort_keys=True),
            "method": "fixed", "n_trials": 1, "is_score": None, **{f"oos_{a}": v for a, v in m.items()},
            "oos_sharpe": annualise_sharpe(m["sharpe"], inst.base_timeframe),  # replaces the per-bar value
            "max_psi": None,
            "in_discovery_window": last_disc is not None and s0 <= _utc(last_disc),
        })  # fmt: skip
        k += 1
        start += sizes.test_bars
    stitched = np.concatenate(oos)
    m = return_metrics(stitched)
    n_obs, skew, kurt = return_moments(stitched)
    sr = sharpe_ratio(stitched)
    ok = n_obs >= 2 and math.isfinite(sr)
    trials = search_trials(bp.evidence.dsr_n_trials, 1)  # every hypothesis discovery tested, plus this fixed rule
    row = _summary_row(
        bp.blueprint_id, "blueprint", inst.market.value, h, mode="rolling-fixed-rule", n_bars=n,
        train_bars=sizes.train_bars, test_bars=sizes.test_bars, n_folds=k,
        **{f"oos_{a}": _finite_or_none(v) for a, v in m.items() if a != "sharpe"},
        oos_sharpe=annualise_sharpe(m["sharpe"], inst.base_timeframe),
        psr=probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt) if ok else None,
        dsr=deflated_sharpe_for_search(sr, n_obs, skew, kurt, trials) if ok else None, dsr_n_trials=float(trials),
        reason="fixed rule: evaluated per fold without re-optimisation; PBO needs several configurations",
    )  # fmt: skip
    return _typed([row], WF_SUMMARY_SCHEMA), _typed(fold_rows, WF_FOLDS_SCHEMA)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _typed(rows: list[dict[str, Any]], schema: pl.Schema) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame([{k: r.get(k) for k in schema.names()} for r in rows], schema=schema)


def _typed_frames(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema=schema)
    out = pl.concat(frames, how="diagonal_relaxed")
    return out.select([(pl.col(k) if k in out.columns else pl.lit(None)).cast(t).alias(k) for k, t in schema.items()])
