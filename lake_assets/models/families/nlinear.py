"""An N-Linear-style linear model on the window embedding (Zeng et al. 2023, "Are Transformers Effective for Time
Series Forecasting?"): the last `lookback` normalised returns are turned into a cumulative path, the path's last
value is subtracted (the N-Linear normalisation), and one linear layer maps it to the label: OLS for R, logit /
multinomial logit for B1 / T3 (statsmodels). Stored as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from lake_assets.models.families._base import Task
from lake_assets.models.families.linear import fit_glm, predict_glm


def nlinear_inputs(emb: np.ndarray, lookback: int, subtract_last: bool) -> np.ndarray:
    window = np.nan_to_num(emb[:, -lookback:].astype(np.float64))
    path = np.cumsum(window, axis=1)
    if subtract_last:
        path = path - path[:, -1:]
        path = path[:, :-1]  # the last column is 0 after the normalisation
    return path


class NLinearFamily:
    name = "nlinear"
    inputs = "embedding"
    model_suffix = "json"

    def space(self, trial: Any, task: Task) -> dict[str, Any]:
        return {"lookback": trial.suggest_categorical("lookback", [4, 8, 16, 32]),
                "subtract_last": trial.suggest_categorical("subtract_last", [True, False])}  # fmt: skip

    def fit(self, x: np.ndarray, y: np.ndarray, task: Task, params: dict[str, Any], seed: int, threads: int,
            prepared: Any = None) -> Any:  # fmt: skip
        lookback, sub = int(params["lookback"]), bool(params["subtract_last"])
        z = nlinear_inputs(x, lookback, sub)
        scale = z.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        coef = fit_glm(z / scale, y, task)
        return {"lookback": lookback, "subtract_last": sub, "scale": scale.tolist(), "coef": np.asarray(coef).tolist()}

    def predict(self, model: Any, x: np.ndarray, task: Task) -> np.ndarray:
        z = nlinear_inputs(x, model["lookback"], model["subtract_last"]) / np.asarray(model["scale"])
        return predict_glm(np.asarray(model["coef"]), z, task)

    def importances(self, model: Any, columns: Sequence[str]) -> dict[str, float]:
        coef = np.abs(np.asarray(model["coef"]))
        coef = coef[1:] if coef.ndim == 1 else coef[1:].max(axis=1)
        return {f"path_{i}": float(v) for i, v in enumerate(coef)}

    def dump(self, model: Any) -> str:
        return json.dumps(model)

    def load(self, text: str) -> Any:
        return json.loads(text)


FAMILY = NLinearFamily()
