"""Parameter optimisation of a JSON strategy over its declared ranges, on an in-sample window only.

Small discrete spaces are searched exhaustively (grid); larger or continuous ones with Optuna (TPE sampler with a
seed, MedianPruner(n_warmup_steps=3)). The frame is cut to the in-sample window *before* anything is computed, so
neither indicators nor scores can read out-of-sample bars (indicator warm-up happens inside the window).

Scoring needs many backtests, so it runs on a light signal-to-returns kernel (`signal_returns`): the minimal
`run(signals) -> returns` interface walk-forward also uses. Any callable with the same signature (for example an
adapter over the full event engine) can be passed as `runner`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl
from numba import njit

from lake_assets.backtests.strategy_spec import (
    ENTRY_LONG,
    ENTRY_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    SIGNAL_COLUMNS,
    StrategySpec,
    compile_signals,
)
from lake_assets.specs import SpecError
from lake_assets.stats.sharpe import sharpe_ratio
from lake_assets.vocabulary import CLOSE, FUNDING_RATE, HIGH, INSTRUMENT, LOW, OPEN, TS

Runner = Callable[[pl.DataFrame, StrategySpec], np.ndarray]
Objective = Callable[[np.ndarray], float]

FUNDING_PERIOD_US = 8 * 3600 * 1_000_000  # funding at 00:00, 08:00, 16:00 UTC


# --- the light signal -> returns kernel -----------------------------------------------------


@njit(cache=True)
def _signal_returns_nb(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    entry_long: np.ndarray,
    exit_long: np.ndarray,
    entry_short: np.ndarray,
    exit_short: np.ndarray,
    funding: np.ndarray,
    weight: float,
    cost: float,
    stop_loss: float,
    take_profit: float,
    max_hold: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar net returns and the position held during each bar (-1, 0, +1).

    A signal at the close of bar i fills at the open of the next bar with a price (entry lag of one bar). Stops
    and targets are checked against each bar's high/low (stop first when both are touched) and fill at the level,
    or at the open when the bar gaps through it. Gap bars (NaN prices) earn nothing and delay pending fills.
    Returns are constant-weight: `weight` x the price return of the held bar, minus `cost` per unit of weight
    traded, minus funding (`funding[i]`, a rate charged to longs and paid to shorts at funding bars).
    """
    n = o.shape[0]
    ret = np.zeros(n)
    held = np.zeros(n)
    pos = 0  # position after the last fill
    target = 0  # position requested by the last signal, filled at the next valid open
    pending = False
    entry_px = np.nan
    ref = np.nan  # last valid close (mark-to-market reference)
    bars_held = 0
    for i in range(n):
        if np.isnan(o[i]) or np.isnan(c[i]):
            held[i] = pos
            continue
        r = 0.0
        if pending:
            if pos != 0 and not np.isnan(ref):
                r += pos * weight * (o[i] / ref - 1.0)  # overnight/gap move up to the fill
            r -= cost * weight * abs(target - pos)
            pos = target
            pending = False
            entry_px = o[i] if pos != 0 else np.nan
            bars_held = 0
            ref = o[i]
        elif pos != 0 and np.isnan(ref):
            ref = o[i]
        exit_px = np.nan
        if pos != 0:
            if pos > 0:
                stop = entry_px * (1.0 - stop_loss) if stop_loss > 0 else -np.inf
                tgt = entry_px * (1.0 + take_profit) if take_profit > 0 else np.inf
                if lo[i] <= stop:
                    exit_px = min(o[i], stop)
                elif h[i] >= tgt:
                    exit_px = max(o[i], tgt)
            else:
                stop = entry_px * (1.0 + stop_loss) if stop_loss > 0 else np.inf
                tgt = entry_px * (1.0 - take_profit) if take_profit > 0 else -np.inf
                if h[i] >= stop:
                    exit_px = max(o[i], stop)
                elif lo[i] <= tgt:
                    exit_px = min(o[i], tgt)
        base = ref if not np.isnan(ref) else o[i]
        if pos != 0 and not np.isnan(exit_px):
            r += pos * weight * (exit_px / base - 1.0) - cost * weight
            held[i] = pos
            pos = 0
            entry_px = np.nan
        else:
            if pos != 0:
                r += pos * weight * (c[i] / base - 1.0)
                if not np.isnan(funding[i]):
                    r -= pos * weight * funding[i]
                bars_held += 1
            held[i] = pos
        ref = c[i]
        ret[i] = r
        # signals at this close decide the next fill
        want = pos
        if pos > 0:
            if exit_long[i] or (max_hold > 0 and bars_held >= max_hold):
                want = 0
            if entry_short[i] and not entry_long[i]:
                want = -1
        elif pos < 0:
            if exit_short[i] or (max_hold > 0 and bars_held >= max_hold):
                want = 0
            if entry_long[i] and not entry_short[i]:
                want = 1
        else:
            if entry_long[i] and not entry_short[i]:
                want = 1
            elif entry_short[i] and not entry_long[i]:
                want = -1
        if want != pos:
            target = want
            pending = True
        else:
            pending = False
    return ret, held


def _f64(frame: pl.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.full(frame.height, np.nan)
    return np.ascontiguousarray(frame[col].cast(pl.Float64).to_numpy(), dtype=np.float64)  # null -> NaN


def _bool(frame: pl.DataFrame, col: str) -> np.ndarray:
    return np.ascontiguousarray(frame[col].fill_null(False).to_numpy(), dtype=np.bool_)


def funding_charges(frame: pl.DataFrame) -> np.ndarray:
    """Funding rate charged at the bars whose close reaches 00/08/16 UTC (NaN elsewhere / without funding)."""
    if FUNDING_RATE not in frame.columns or TS not in frame.columns or frame.height < 2:
        return np.full(frame.height, np.nan)
    ts_us = frame[TS].dt.epoch("us").to_numpy()
    step = int(np.median(np.diff(ts_us)))
    if step <= 0 or step > FUNDING_PERIOD_US:
        return np.full(frame.height, np.nan)
    due = (ts_us + step) % FUNDING_PERIOD_US == 0  # 00/08/16 UTC are the multiples of 8h since the epoch
    return np.where(due, _f64(frame, FUNDING_RATE), np.nan)


def signal_returns(frame: pl.DataFrame, spec: StrategySpec) -> np.ndarray:
    """Per-bar net strategy returns of a one-instrument frame that already holds the four signal columns."""
    ret, _ = _run_kernel(frame, spec)
    return ret


def signal_positions(frame: pl.DataFrame, spec: StrategySpec) -> np.ndarray:
    """The position (-1/0/+1) held during each bar, for tests and reports."""
    _, held = _run_kernel(frame, spec)
    return held


def position_weight(spec: StrategySpec) -> float:
    """Fraction of equity held while in a position: EQUITY_PERCENT sizes are used as given (capped by max
    leverage); other size types are treated as fully invested, since this kernel has no price-level sizing."""
    sz = spec.sizing
    return float(min(sz.size, sz.max_leverage)) if sz.size_type.value == "EQUITY_PERCENT" else float(sz.max_leverage)


def _market_inputs(frame: pl.DataFrame, spec: StrategySpec) -> tuple[np.ndarray, ...]:
    """Open, high, low, close and the funding charged per bar: what the kernel reads besides the signals."""
    funding = funding_charges(frame) if spec.costs.include_funding else np.full(frame.height, np.nan)
    return _f64(frame, OPEN), _f64(frame, HIGH), _f64(frame, LOW), _f64(frame, CLOSE), funding


def _trial_runner(runner: Runner, part: pl.DataFrame, spec: StrategySpec) -> Callable[[pl.DataFrame], np.ndarray]:
    """`runner` for the signal frames of one instrument frame across trials. For the light kernel the market inputs
    are converted once (they are the same every trial; funding timing alone cost ~1.8 ms a trial): the signal frame
    `compile_signals(part, ...)` keeps `part`'s rows in order, so they line up."""
    if runner is not signal_returns:
        return lambda sig: runner(sig, spec)
    market = _market_inputs(part, spec)
    return lambda sig: _run_kernel(sig, spec, market)[0]


def _run_kernel(
    frame: pl.DataFrame, spec: StrategySpec, market: tuple[np.ndarray, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    ex = spec.exit_rules
    op, hi, lo, cl, funding = market if market is not None else _market_inputs(frame, spec)
    if op.shape[0] != frame.height:
        raise ValueError(f"market inputs hold {op.shape[0]} bars, the signal frame {frame.height}")
    ret, held = _signal_returns_nb(
        op,
        hi,
        lo,
        cl,
        _bool(frame, ENTRY_LONG),
        _bool(frame, EXIT_LONG),
        _bool(frame, ENTRY_SHORT),
        _bool(frame, EXIT_SHORT),
        funding,
        position_weight(spec),
        (spec.costs.fee_bps + spec.costs.slippage_bps) / 1e4,
        (ex.stop_loss_pct or 0.0) / 100.0,
        (ex.take_profit_pct or 0.0) / 100.0,
        int(ex.max_holding_bars or 0),
    )
    return ret, held


def engine_runner(config: Any = None, funding: pl.DataFrame | None = None) -> Runner:
    """A `Runner` over the full event engine (`engine.run_signals`): per-bar returns of its equity curve.

    Costs come from the spec (taker fee + fixed slippage) unless an `EngineConfig` is given; `funding` is the
    raw funding events frame (ts, instrument, funding_rate). The engine's signal path has no intrabar stops,
    targets or holding limits, so specs that declare them are refused rather than silently run without them.
    """

    def run(frame: pl.DataFrame, spec: StrategySpec) -> np.ndarray:
        from lake_assets.backtests.engine import EngineConfig, run_signals
        from lake_assets.backtests.risk import RiskLimits, Sizing

        ex = spec.exit_rules
        if ex.stop_loss_pct or ex.take_profit_pct or ex.max_holding_bars:
            raise ValueError(
                f"strategy {spec.name!r}: engine_runner cannot model stop_loss_pct/take_profit_pct/max_holding_bars"
                " on the signal path; use signal_returns"
            )
        cfg = config or EngineConfig(
            taker_fee=spec.costs.fee_bps / 1e4,
            slippage=spec.costs.slippage_bps / 1e4,
            risk=RiskLimits(max_leverage=spec.sizing.max_leverage),
        )
        signals = frame.select(TS, INSTRUMENT, *SIGNAL_COLUMNS)
        sizing = Sizing(spec.sizing.size_type, spec.sizing.size)
        res = run_signals(frame, signals, cfg, sizing=sizing, funding=funding if spec.costs.include_funding else None)
        equity = res.equity["equity"].to_numpy()
        prev = np.concatenate([[res.init_cash], equity[:-1]])
        return np.asarray(equity / prev - 1.0)

    return run


def instrument_frames(frame: pl.DataFrame) -> list[pl.DataFrame]:
    """One time-sorted frame per instrument, in instrument order (a single frame without an instrument column).

    Partitioned first and sorted per instrument only where needed: walk-forward frames arrive instrument by
    instrument in time order, and a two-key sort of the whole frame cost ~15 ms on every trial window."""
    if INSTRUMENT not in frame.columns:
        return [frame.sort(TS) if TS in frame.columns else frame]
    parts = frame.partition_by(INSTRUMENT, maintain_order=True, as_dict=True)
    ordered = sorted(parts, key=lambda k: (k[0] is not None, "" if k[0] is None else str(k[0])))  # nulls first
    return [p if TS not in p.columns or p[TS].is_sorted() else p.sort(TS) for p in (parts[k] for k in ordered)]


def strategy_returns(
    frame: pl.DataFrame,
    spec: StrategySpec,
    params: Mapping[str, Any] | None = None,
    runner: Runner = signal_returns,
) -> list[np.ndarray]:
    """Compile signals and run them, per instrument: one per-bar return array per instrument frame."""
    return [runner(compile_signals(part, spec, params), spec) for part in instrument_frames(frame)]


# --- objectives -----------------------------------------------------------------------------


def sharpe_objective(returns: np.ndarray) -> float:
    """Per-bar Sharpe of the strategy's bar returns (flat bars count as zero return)."""
    return sharpe_ratio(returns)


def total_return_objective(returns: np.ndarray) -> float:
    r = returns[np.isfinite(returns)]
    return float(np.prod(1.0 + r) - 1.0) if r.size else float("nan")


OBJECTIVES: dict[str, Objective] = {"sharpe": sharpe_objective, "total_return": total_return_objective}


# --- the optimiser --------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimisationResult:
    strategy: str
    method: Literal["grid", "optuna"]
    best_params: dict[str, Any]
    best_score: float
    trials: pl.DataFrame  # one row per trial: trial, <params>, score, sharpe, state (complete/pruned/invalid), error
    in_sample_start: datetime | None
    in_sample_end: datetime | None
    n_bars: int
    trial_returns: list[np.ndarray] = field(default_factory=list, repr=False)  # concatenated IS returns per trial

    @property
    def n_trials(self) -> int:
        return self.trials.height

    def trial_sharpes(self) -> list[float]:
        return [s for s in self.trials["sharpe"].to_list() if s is not None and math.isfinite(s)]


def slice_window(frame: pl.DataFrame, start: datetime | None, end: datetime | None) -> pl.DataFrame:
    """Rows with start <= ts < end (either bound optional)."""
    out = frame
    if start is not None:
        out = out.filter(pl.col(TS) >= start)
    if end is not None:
        out = out.filter(pl.col(TS) < end)
    return out


def _score_parts(parts: Sequence[np.ndarray], objective: Objective) -> float:
    if not parts:
        return float("nan")
    return float(objective(np.concatenate(parts)))


def optimise(
    frame: pl.DataFrame,
    spec: StrategySpec,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    objective: str | Objective = "sharpe",
    method: Literal["auto", "grid", "optuna"] = "auto",
    max_grid: int = 256,
    n_trials: int = 60,
    seed: int = 0,
    n_folds: int = 4,
    runner: Runner = signal_returns,
    keep_returns: bool = False,
    storage: str | None = None,
    study_name: str | None = None,
) -> OptimisationResult:
    """Best parameters of `spec` on the in-sample window [start, end) of `frame` (bars + features).

    Grid search when the declared grid has at most `max_grid` points (or method="grid"), otherwise Optuna TPE
    (seeded) with a MedianPruner(n_warmup_steps=3) fed by the running score after each instrument x time fold.
    Trials whose score is undefined (no trades, flat returns) never win.

    `storage` (an Optuna RDB URL, e.g. `postgresql+psycopg2://host/optuna`; default: in memory, as before) shares one
    study, `study_name` (default: the strategy's name), between processes: each runs `n_trials` of its own (give each
    a different `seed`), the sampler and the pruner see every process's trials, and the result (`trials`,
    `best_params`) is the whole study's when this process finishes. Returns of other processes' trials are not
    shared, so `keep_returns` needs the in-memory study.
    """
    if storage is not None and keep_returns:
        raise ValueError("keep_returns needs an in-memory study: a shared study does not hold other trials' returns")
    score_fn = OBJECTIVES[objective] if isinstance(objective, str) else objective
    window = slice_window(frame, start, end)
    if window.height == 0:
        raise ValueError(f"in-sample window [{start}, {end}) of {spec.name!r} holds no bars")
    parts = instrument_frames(window)
    grid_size = spec.grid_size()
    use_grid = method == "grid" or (method == "auto" and grid_size <= max_grid)
    if method == "grid" and not math.isfinite(grid_size):
        raise ValueError(f"strategy {spec.name!r} has continuous parameters; use method='optuna'")

    rows: list[dict[str, Any]] = []
    kept: list[np.ndarray] = []

    def record(params: Mapping[str, Any], rets: list[np.ndarray] | None, state: str, error: str = "") -> float:
        full = np.concatenate(rets) if rets else np.array([])
        score = _score_parts(rets, score_fn) if rets else float("nan")
        rows.append(
            {
                "trial": len(rows),
                **params,
                "score": score,
                "sharpe": sharpe_ratio(full),
                "state": state,
                "error": error or None,
            }
        )
        if keep_returns:
            kept.append(full)
        return score

    run_parts = [_trial_runner(runner, p, spec) for p in parts]
    if use_grid:
        for params in spec.grid():
            try:
                rets = [run(compile_signals(p, spec, params)) for p, run in zip(parts, run_parts, strict=True)]
            except SpecError as exc:  # an infeasible combination (e.g. MACD fast >= slow): never chosen
                record(params, None, "invalid", str(exc))
                continue
            record(params, rets, "complete")
        result_method: Literal["grid", "optuna"] = "grid"
    else:
        shared = _run_optuna(spec, parts, run_parts, score_fn, n_trials, seed, n_folds, record, storage, study_name)
        if shared is not None:
            rows = shared
        result_method = "optuna"

    trials = pl.DataFrame(rows, infer_schema_length=None)
    if trials.height and (trials["state"] == "invalid").all():
        raise ValueError(f"every parameter combination of {spec.name!r} is invalid, e.g. {trials['error'][0]}")
    done = trials.filter((pl.col("state") == "complete") & pl.col("score").is_finite())
    if done.height:
        best_row = done.sort(["score", "trial"], descending=[True, False]).row(0, named=True)
        best = {k: best_row[k] for k in spec.parameters}
        best_score = float(best_row["score"])
    else:  # nothing traded: fall back to the declared defaults
        best, best_score = spec.defaults(), float("nan")
    ts = window[TS] if TS in window.columns else None
    return OptimisationResult(
        strategy=spec.name,
        method=result_method,
        best_params=spec.resolve_params(best),
        best_score=best_score,
        trials=trials,
        in_sample_start=ts.min() if ts is not None else None,  # type: ignore[arg-type]
        in_sample_end=ts.max() if ts is not None else None,  # type: ignore[arg-type]
        n_bars=window.height,
        trial_returns=kept,
    )


def _run_optuna(
    spec: StrategySpec,
    parts: list[pl.DataFrame],
    run_parts: list[Callable[[pl.DataFrame], np.ndarray]],
    score_fn: Objective,
    n_trials: int,
    seed: int,
    n_folds: int,
    record: Callable[..., float],
    storage: str | None = None,
    study_name: str | None = None,
) -> list[dict[str, Any]] | None:
    """Run the study; with a shared `storage`, return the rows of every trial of the study (all processes')."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed (NaN) trials are expected, not news
    study = _create_study(storage, (study_name or spec.name) if storage is not None else None, seed)

    def record_and_share(trial: optuna.Trial, params: Mapping[str, Any], rets: list[np.ndarray] | None,
                         state: str, error: str = "") -> float:  # fmt: skip
        score = record(params, rets, state, error)
        if storage is not None:
            full = np.concatenate(rets) if rets else np.array([])
            trial.set_user_attr("qlake", {"score": score if math.isfinite(score) else None,
                                          "sharpe": _finite_or_none(sharpe_ratio(full)), "state": state,
                                          "error": error or None})  # fmt: skip
        return score

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in spec.parameters.items():
            if p.type == "choice":
                out[name] = trial.suggest_categorical(name, list(p.choices or ()))
            elif p.type == "int":
                assert p.low is not None and p.high is not None
                step = 1 if p.log else int(p.step or 1)
                out[name] = trial.suggest_int(name, int(p.low), int(p.high), step=step, log=p.log)
            else:
                assert p.low is not None and p.high is not None
                out[name] = trial.suggest_float(name, p.low, p.high, step=None if p.log else p.step, log=p.log)
        return out

    def run(trial: optuna.Trial) -> float:
        params = suggest(trial)
        rets: list[np.ndarray] = []
        step = 0
        for part, run_part in zip(parts, run_parts, strict=True):
            try:
                r = run_part(compile_signals(part, spec, params))
            except SpecError as exc:  # an infeasible combination: recorded, and the study moves on
                record_and_share(trial, params, None, "invalid", str(exc))
                raise optuna.TrialPruned() from exc
            for chunk in np.array_split(r, max(1, n_folds)):
                rets.append(chunk)
                value = _score_parts(rets, score_fn)
                trial.report(value if math.isfinite(value) else 0.0, step)  # no trades yet: flat, zero
                step += 1
                if trial.should_prune():
                    record_and_share(trial, params, rets, "pruned")
                    raise optuna.TrialPruned()
        score = record_and_share(trial, params, rets, "complete")
        return score if math.isfinite(score) else float("nan")

    study.optimize(run, n_trials=n_trials, catch=())
    if storage is None:
        return None
    rows = []
    for t in study.get_trials(deepcopy=False):
        said = t.user_attrs.get("qlake")
        if said is None:  # still running in another process, or failed before it was recorded
            continue
        nan = float("nan")
        rows.append({"trial": t.number, **{k: t.params.get(k) for k in spec.parameters},
                     "score": nan if said["score"] is None else float(said["score"]),
                     "sharpe": nan if said["sharpe"] is None else float(said["sharpe"]),
                     "state": said["state"], "error": said["error"]})  # fmt: skip
    return rows


def _create_study(storage: str | None, name: str | None, seed: int, attempts: int = 5) -> Any:
    """An in-memory study, or the shared one in `storage` (created by whichever process comes first). Workers that
    start together race to create Optuna's schema in a new database; the loser's DDL fails once and is retried."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.create_study(
                direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=seed),
                pruner=optuna.pruners.MedianPruner(n_warmup_steps=3),
                storage=storage,
                study_name=name,
                load_if_exists=storage is not None,
            )
        except SQLAlchemyError:
            if storage is None or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
