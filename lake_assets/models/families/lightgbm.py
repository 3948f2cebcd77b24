"""LightGBM: a classifier for B1 (binary) and T3 (multiclass), a regressor for R. Deterministic (fixed seed,
`deterministic`, a fixed thread count); stored in LightGBM's own text format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from lake_assets.models.families._base import Task

OBJECTIVE = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
MAX_BIN = 63
# Dataset parameters fixed for a study, so one binned Dataset per fold serves every trial (feature_pre_filter off:
# trials vary min_data_in_leaf, which pre-filtering would freeze into the Dataset)
DATASET_PARAMS = {"max_bin": MAX_BIN, "feature_pre_filter": False, "verbosity": -1}


def train_params(task: Task, params: dict[str, Any], seed: int, threads: int) -> dict[str, Any]:
    """lightgbm.train parameters of a trial (num_boost_round is separate)."""
    p = {
        "objective": OBJECTIVE[task],
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "max_bin": MAX_BIN,
        **{k: v for k, v in params.items() if k != "num_boost_round"},
    }
    if task == "multiclass":
        p["num_class"] = 3
    return p


class LightGBMFamily:
    name = "lightgbm"
    inputs = "features"
    model_suffix = "txt"

    def space(self, trial: Any, task: Task) -> dict[str, Any]:
        return {
            "num_boost_round": trial.suggest_int("num_boost_round", 20, 120, step=10),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 48, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 400, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }

    def prepare(self, x: np.ndarray, y: np.ndarray) -> Any:
        """One fold's binned training Dataset, built once and reused by every trial of a study."""
        return lgb.Dataset(x, label=y, params=DATASET_PARAMS, free_raw_data=True).construct()

    def fit(self, x: np.ndarray, y: np.ndarray, task: Task, params: dict[str, Any], seed: int, threads: int,
            prepared: Any = None) -> Any:  # fmt: skip
        data = prepared if prepared is not None else lgb.Dataset(x, label=y, params=DATASET_PARAMS)
        return lgb.train(train_params(task, params, seed, threads), data,
                         num_boost_round=int(params["num_boost_round"]), keep_training_booster=True)  # fmt: skip

    def predict(self, model: Any, x: np.ndarray, task: Task) -> np.ndarray:
        return np.asarray(model.predict(x))

    def importances(self, model: Any, columns: Sequence[str]) -> dict[str, float]:
        gain = model.feature_importance(importance_type="gain")
        return {c: float(g) for c, g in zip(columns, gain, strict=True)}

    def dump(self, model: Any) -> str:
        return str(model.model_to_string())

    def load(self, text: str) -> Any:
        return lgb.Booster(model_str=text)


FAMILY = LightGBMFamily()
