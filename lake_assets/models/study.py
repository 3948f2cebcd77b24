"""One Optuna study per model variant: TPE (seeded), a median pruner on the per-fold objective, persistent storage.

A trial fits the family on each purged walk-forward fold in turn and reports the running mean of the fold objective
(log loss for B1/T3, RMSE for R) after each fold: `MedianPruner(n_warmup_steps=3)` stops a trial whose running mean
is worse than the median of earlier trials at the same fold. The study lives in an RDB storage (a sqlite file under
the data root unless the spec names a URL) and is named after the variant, the version of the spec parts it reads
and the training set's fingerprint: a run that was killed is continued by the next one (trials it left RUNNING are
marked FAIL, the finished ones count towards the spec's trial budget, numbering continues); new data or a changed
spec starts a new study.

After the study: the best trial's parameters are evaluated once more fold by fold (the same deterministic fits) for
the OOS predictions and per-fold metrics, and refit on every row for the stored model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl

from lake_assets.models import metrics as M
from lake_assets.models.families._base import Family, Task, load_family, prepared_inputs
from lake_assets.models.training import EMB, Fold, bar_step, purged_walk_forward
from lake_assets.vocabulary import INSTRUMENT, TS, TS_DTYPE

optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
CAUGHT = (ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class Arrays:
    x: np.ndarray  # float32 (n, p) features
    emb: np.ndarray  # float32 (n, 32) window embedding
    label: np.ndarray  # float64 (n,)
    ts: np.ndarray  # datetime64[us]
    label_end: np.ndarray  # datetime64[us]
    instrument: np.ndarray
    columns: tuple[str, ...]

    def inputs(self, family: Family) -> np.ndarray:
        return self.emb if family.inputs == "embedding" else self.x

    def input_columns(self, family: Family) -> list[str]:
        return [f"emb_{i}" for i in range(self.emb.shape[1])] if family.inputs == "embedding" else list(self.columns)


def arrays_of(frame: pl.DataFrame, feature_columns: Sequence[str]) -> Arrays:
    cols = tuple(c for c in feature_columns if c in frame.columns)
    x = frame.select(cols).to_numpy().astype(np.float32) if cols else np.zeros((frame.height, 0), np.float32)
    emb = np.asarray(frame[EMB].to_numpy(), dtype=np.float32) if EMB in frame.columns else np.zeros((frame.height, 32))
    return Arrays(
        x=np.ascontiguousarray(x),
        emb=np.ascontiguousarray(np.nan_to_num(emb.astype(np.float32))),
        label=frame["label"].to_numpy().astype(np.float64),
        ts=frame[TS].cast(TS_DTYPE).dt.replace_time_zone(None).to_numpy().astype("datetime64[us]"),
        label_end=frame["label_end_ts"].dt.replace_time_zone(None).to_numpy().astype("datetime64[us]"),
        instrument=frame[INSTRUMENT].to_numpy(),
        columns=cols,
    )


@dataclass(frozen=True)
class StudyConfig:
    variant: str
    frequency: str
    task: Task
    family: str
    folds: int
    min_train_fraction: float
    embargo_bars: int
    seed: int = 0
    threads: int = 1
    n_warmup_steps: int = 3
    n_startup_trials: int = 5
    storage_url: str = "sqlite:///optuna.sqlite3"
    study_name: str = ""


def make_folds(a: Arrays, cfg: StudyConfig) -> list[Fold]:
    embargo = bar_step(cfg.frequency) * cfg.embargo_bars
    return purged_walk_forward(a.ts, a.label_end, cfg.folds, cfg.min_train_fraction, embargo)


def evaluate_fold(family: Family, a: Arrays, fold: Fold, task: Task, params: dict[str, Any], seed: int,
                  threads: int, prepared: Any = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(encoded test labels, predictions) of one fold (`prepared`: the fold's `prepared_inputs`, if any)."""
    xin = a.inputs(family)
    y = M.encode_target(a.label, task)
    xs = None if prepared is not None else xin[fold.train]
    model = family.fit(xs, y[fold.train], task, params, seed, threads, prepared)  # type: ignore[arg-type]
    return y[fold.test], family.predict(model, xin[fold.test], task)


def objective(family: Family, a: Arrays, folds: Sequence[Fold], cfg: StudyConfig) -> Callable[[Any], float]:
    """The trial function; each fold's training rows are prepared once (lazily) and shared by every trial."""
    y_all = M.encode_target(a.label, cfg.task)
    prepared: dict[int, Any] = {}

    def fold_inputs(fold: Fold) -> Any:
        if fold.fold not in prepared:
            prepared[fold.fold] = prepared_inputs(family, a.inputs(family)[fold.train], y_all[fold.train])
        return prepared[fold.fold]

    def run(trial: optuna.Trial) -> float:
        params = family.space(trial, cfg.task)
        losses = []
        for k, fold in enumerate(folds):
            y, pred = evaluate_fold(family, a, fold, cfg.task, params, cfg.seed, cfg.threads, fold_inputs(fold))
            losses.append(M.objective(y, pred, cfg.task))
            running = float(np.mean(losses))
            if not math.isfinite(running):
                raise optuna.TrialPruned(f"non-finite objective at fold {k}")
            trial.report(running, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(losses))

    return run


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the UI, a second run) never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # no fsync per trial update; a crash loses at most the last ones
    cur.close()


def storage_of(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage; a sqlite file in WAL mode with synchronous=NORMAL (each report of a trial is a transaction:
    an fsync each would cost more than a small fold's fit)."""
    if url.startswith("sqlite:///"):
        import sqlalchemy

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections made from now on get the pragmas
        return storage
    return optuna.storages.RDBStorage(url)


def open_study(cfg: StudyConfig) -> optuna.Study:
    """The variant's study, created or continued; trials a killed run left RUNNING are marked FAIL."""
    storage = storage_of(cfg.storage_url)
    study = optuna.create_study(
        study_name=cfg.study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=cfg.n_startup_trials, n_warmup_steps=cfg.n_warmup_steps),
        direction="minimize",
        load_if_exists=True,
    )
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    return study


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


@dataclass
class StudyResult:
    study_name: str
    n_trials: int
    n_pruned: int
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    folds: pl.DataFrame
    predictions: pl.DataFrame
    importances: pl.DataFrame
    trials: pl.DataFrame
    model_text: str
    model_suffix: str
    oos: dict[str, float] = field(default_factory=dict)


def trials_frame(study: optuna.Study, variant: str) -> pl.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        secs = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None  # fmt: skip
        rows.append({"variant": variant, "trial": t.number, "state": t.state.name, "value": t.value,
                     "last_step": t.last_step, "params": json.dumps(t.params, sort_keys=True), "seconds": secs})
    schema = {"variant": pl.String, "trial": pl.Int64, "state": pl.String, "value": pl.Float64,
              "last_step": pl.Int64, "params": pl.String, "seconds": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def optimise(cfg: StudyConfig, a: Arrays, trials: int, folds: Sequence[Fold] | None = None) -> optuna.Study:
    """Run the variant's study until it holds `trials` finished trials (continuing what an earlier run left)."""
    family = load_family(cfg.family)
    folds = list(folds if folds is not None else make_folds(a, cfg))
    if not folds:
        raise ValueError(f"variant {cfg.variant}: too few distinct timestamps for {cfg.folds} folds")
    study = open_study(cfg)
    fn = objective(family, a, folds, cfg)
    attempts = 0
    while finished(study) < trials and attempts < 3 * trials:
        todo = trials - finished(study)
        study.optimize(fn, n_trials=todo, catch=CAUGHT)
        attempts += todo
    return study


def best_outcome(cfg: StudyConfig, a: Arrays, study: optuna.Study, folds: Sequence[Fold] | None = None
                 ) -> StudyResult:  # fmt: skip
    """The best trial's OOS predictions, per-fold metrics, refit model and importances."""
    family = load_family(cfg.family)
    folds = list(folds if folds is not None else make_folds(a, cfg))
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"variant {cfg.variant}: no trial of study {cfg.study_name} completed")
    best = study.best_trial
    params = dict(best.params)
    fold_rows, preds = [], []
    ys, ps = [], []
    for fold in folds:
        y, pred = evaluate_fold(family, a, fold, cfg.task, params, cfg.seed, cfg.threads)
        fm = M.fold_metrics(y, pred, cfg.task)
        fold_rows.append({"variant": cfg.variant, "fold": fold.fold, "train_rows": int(fold.train.size),
                          "purged_rows": fold.purged, "test_rows": int(fold.test.size),
                          "test_start": _dt(fold.test_start), "test_end": _dt(fold.test_end), **fm})  # fmt: skip
        ys.append(y)
        ps.append(pred)
        preds.append(pl.DataFrame({
            TS: a.ts[fold.test], INSTRUMENT: a.instrument[fold.test], "variant": cfg.variant, "fold": fold.fold,
            "label": a.label[fold.test], "prediction": M.scalar_prediction(pred, cfg.task),
            "position": M.position_of(pred, cfg.task),
        }))  # fmt: skip
    y_all, p_all = np.concatenate(ys), np.concatenate(ps)
    oos = M.fold_metrics(y_all, p_all, cfg.task)
    predictions = pl.concat(preds).with_columns(pl.col(TS).dt.replace_time_zone("UTC").cast(TS_DTYPE))
    folds_df = pl.DataFrame(fold_rows).with_columns(
        pl.col("test_start").dt.replace_time_zone("UTC"), pl.col("test_end").dt.replace_time_zone("UTC")
    )
    xin = a.inputs(family)
    model = family.fit(xin, M.encode_target(a.label, cfg.task), cfg.task, params, cfg.seed, cfg.threads)
    imp = family.importances(model, a.input_columns(family))
    importances = pl.DataFrame({"variant": cfg.variant, "feature": list(imp), "importance": list(imp.values())},
                               schema={"variant": pl.String, "feature": pl.String, "importance": pl.Float64})
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return StudyResult(
        study_name=cfg.study_name,
        n_trials=sum(s in FINISHED for s in states),
        n_pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states),
        best_trial=best.number,
        best_value=float(best.value) if best.value is not None else math.nan,
        best_params=params,
        folds=folds_df,
        predictions=predictions.sort(TS, INSTRUMENT),
        importances=importances.sort("importance", descending=True),
        trials=trials_frame(study, cfg.variant),
        model_text=family.dump(model),
        model_suffix=family.model_suffix,
        oos={**oos, "rows": float(y_all.shape[0])},
    )


def _dt(v: np.datetime64) -> Any:
    return v.astype("datetime64[us]").item()


def run_variant(cfg: StudyConfig, frame: pl.DataFrame, feature_columns: Sequence[str], trials: int) -> StudyResult:
    a = arrays_of(frame, feature_columns)
    folds = make_folds(a, cfg)
    t0 = time.perf_counter()
    study = optimise(cfg, a, trials, folds)
    result = best_outcome(cfg, a, study, folds)
    result.oos["seconds"] = time.perf_counter() - t0
    return result
