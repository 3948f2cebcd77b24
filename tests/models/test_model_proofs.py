"""What the model layer has to prove: no leakage on null data, a leaky feature caught by the purged split, planted
predictability recovered, determinism, and the vectorbt screen equal to qlake's engine on identical settings."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_lake import PERPS, build_model_lake, driven_bars, training_frame  # noqa: E402

from lake_assets import tables  # noqa: E402
from lake_assets.backtests import model_eval  # noqa: E402
from lake_assets.backtests.engine import EngineConfig  # noqa: E402
from lake_assets.backtests.risk import fixed_notional  # noqa: E402
from lake_assets.features.catalog import columns_of, load_feature_specs  # noqa: E402
from lake_assets.models import metrics as M  # noqa: E402
from lake_assets.models.families._base import load_family  # noqa: E402
from lake_assets.models.labels import compute_labels  # noqa: E402
from lake_assets.models.spec_model import model_spec  # noqa: E402
from lake_assets.models.study import StudyConfig, arrays_of, evaluate_fold, make_folds, run_variant  # noqa: E402
from lake_assets.models.training import (  # noqa: E402
    InstrumentInputs,
    build_training_set,
    embeddings_at,
    features_at,
    shuffled_kfold,
)
from lake_assets.storage.lake import Lake  # noqa: E402

FEATS = [f"f{i}" for i in range(8)]


def config(tmp_path: Path, family: str = "lightgbm", task: str = "binary", name: str = "s", freq: str = "1h",
           embargo: int = 2) -> StudyConfig:  # fmt: skip
    return StudyConfig(variant=f"{freq}.B1.{family}", frequency=freq, task=task, family=family,  # type: ignore[arg-type]
                       folds=5, min_train_fraction=0.4, embargo_bars=embargo,
                       storage_url=f"sqlite:///{tmp_path / 'optuna.sqlite3'}", study_name=name)  # fmt: skip


def test_power_planted_predictability_is_recovered(tmp_path: Path) -> None:
    # y = 1{0.5 x0 + e > 0}: the best possible balanced accuracy is 1/2 + arcsin(0.5 / sqrt(1.25)) / pi = 0.648
    frame = training_frame(4000, 0.5)
    res = run_variant(config(tmp_path), frame, FEATS, 6)
    best = 0.5 + math.asin(0.5 / math.sqrt(1.25)) / math.pi
    assert res.oos["balanced_accuracy"] == pytest.approx(best, abs=0.035)
    imp = res.importances.row(0, named=True)
    assert imp["feature"] == "f0"  # the planted feature carries the gain


def test_determinism_same_spec_data_seed(tmp_path: Path) -> None:
    frame = training_frame(1500, 0.3)
    a = run_variant(config(tmp_path / "a"), frame, FEATS, 4)
    b = run_variant(config(tmp_path / "b"), frame, FEATS, 4)
    assert a.best_params == b.best_params and a.best_trial == b.best_trial
    assert a.predictions.equals(b.predictions)
    assert a.model_text == b.model_text


def test_leaky_feature_collapses_under_the_purged_split() -> None:
    # overlapping 24-bar labels of pure noise and a feature that only tells where in time a row is: a shuffled,
    # unpurged split scores well from neighbours sharing the label window; the purged walk-forward is at chance
    frame = training_frame(3000, 0.0, label="B1", horizon=24, p=2)
    frame = frame.with_columns(pl.int_range(pl.len()).cast(pl.Float32).alias("f0"))
    a = arrays_of(frame, ["f0", "f1"])
    fam = load_family("lightgbm")
    params = {"num_boost_round": 60, "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 5,
              "feature_fraction": 1.0, "lambda_l2": 0.0}  # fmt: skip

    def ba(folds: list) -> float:  # type: ignore[type-arg]
        ys, ps = zip(*(evaluate_fold(fam, a, f, "binary", params, 0, 1) for f in folds), strict=True)
        return M.balanced_accuracy(np.concatenate(ys), M.classes_of(np.concatenate(ps), "binary"))

    cfg = StudyConfig("1h.B1.lightgbm", "1h", "binary", "lightgbm", 5, 0.4, 24)
    purged, unpurged = ba(make_folds(a, cfg)), ba(shuffled_kfold(a.ts.shape[0], 5))
    assert unpurged > 0.65 and abs(purged - 0.5) < 0.06 and unpurged - purged > 0.12, (purged, unpurged)


def _lake_training_set(lake: Lake, scheme: str) -> pl.DataFrame:
    cols = columns_of(load_feature_specs())
    parts = []
    for inst in PERPS:
        bars = lake.reader.instrument(tables.BARS_1H, inst)
        labels = compute_labels(bars, "1h", 1, 0.2)
        feats = features_at("1h", "5m", lake.reader.instrument(tables.FEATURES, inst))
        parts.append(InstrumentInputs(inst, labels, feats, embeddings_at("1h", bars)))
    frame, _ = build_training_set(parts, scheme, cols, 24, 100_000)
    return frame


def test_null_data_is_at_chance_and_the_leaderboard_keeps_nothing(data_root: Path, tmp_path: Path) -> None:
    lake = Lake()
    build_model_lake(lake, beta=0.0)
    frame = _lake_training_set(lake, "B1")
    cols = columns_of(load_feature_specs())
    spec = model_spec().leaderboard
    for family in ("lightgbm", "linear"):
        cfg = config(tmp_path, family, name=family)
        res = run_variant(cfg, frame, cols, 5)
        assert abs(res.oos["balanced_accuracy"] - 0.5) < 0.05, (family, res.oos)
        run = {"variant": cfg.variant, "study_name": cfg.study_name, "best_params": "{}", "n_trials": res.n_trials,
               "oos_balanced_accuracy": res.oos["balanced_accuracy"], "model_path": "x"}  # fmt: skip
        row = model_eval.evaluate_variant(lake, run, res.predictions, spec)
        assert not row["kept"] and row["score"] < spec.keep_min_score, row
        assert row["n_trades"] > 0


def test_fast_screen_equals_the_engine_on_identical_settings() -> None:
    bars, x = driven_bars("BTCUSDT-PERP", 3000, seed=3, beta=0.0003, gaps=0)
    rng = np.random.default_rng(1)
    pos = np.where(x > 0.3, 1, np.where(x < -0.3, -1, 0)) * (rng.random(3000) > 0.02)
    preds = pl.DataFrame({"ts": bars["ts"], "instrument": bars["instrument"], "position": pos.astype(np.int8)})
    sig = model_eval.signals_of(preds, bars)
    fast = model_eval.fast_screen(sig, bars, slippage=0.0001, periods_per_year=105_120.0, fees=0.0004)
    cfg = EngineConfig.vectorbt_compatible(fees=0.0004, slippage=0.0001, init_cash=model_eval.INIT_CASH)
    res = model_eval.realistic(sig, bars, cfg, None, "model.x", fixed_notional(np.inf))
    eq = res.equity["equity"].to_numpy()
    engine_sharpe = model_eval.annualised_sharpe(np.r_[model_eval.INIT_CASH, eq], 105_120.0)
    assert res.trades.height > 20
    assert fast["sharpe"] == pytest.approx(engine_sharpe, rel=1e-9)
    assert fast["total_return"] == pytest.approx(eq[-1] / model_eval.INIT_CASH - 1, rel=1e-9)
