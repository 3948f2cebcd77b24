"""The linear baseline (statsmodels): logit (B1), multinomial logit (T3), OLS (R) on the `k` features most
correlated with the label in the training rows, standardised on the training rows and clipped at +-`clip`.
Stored as JSON (columns, scaling, coefficients)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import statsmodels.api as sm

from lake_assets.models.families._base import Task, standardise


def fit_glm(z: np.ndarray, y: np.ndarray, task: Task) -> np.ndarray:
    """Coefficients (intercept first): (p+1,) for binary/regression, (p+1, 2) for multiclass (class 0 is the base)."""
    xc = np.column_stack([np.ones(z.shape[0]), z])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "regression":
            return np.asarray(sm.OLS(y, xc).fit().params)
        # rank checked by the column selection (no near-collinear pair): statsmodels' own QR check is skipped
        model = (sm.Logit(y, xc, check_rank=False) if task == "binary"
                 else sm.MNLogit(y.astype(int), xc, check_rank=False))  # fmt: skip
        try:  # Newton: a handful of iterations for a few dozen coefficients
            res = model.fit(method="newton", disp=0, maxiter=35)
            params = np.asarray(res.params)
            if not np.all(np.isfinite(params)):
                raise np.linalg.LinAlgError("non-finite coefficients")
        except (np.linalg.LinAlgError, ValueError):  # singular Hessian, perfect separation: the gradient method
            params = np.asarray(model.fit(method="lbfgs", disp=0, maxiter=60).params)
        if task == "binary":
            return params
        if params.shape[1] < 2:  # a class never seen in training: no coefficients for it
            params = np.column_stack([params, np.full(params.shape[0], -1e3)])
        return params


def predict_glm(coef: np.ndarray, z: np.ndarray, task: Task) -> np.ndarray:
    xc = np.column_stack([np.ones(z.shape[0]), z])
    eta = xc @ coef
    if task == "regression":
        return eta
    if task == "binary":
        return 1.0 / (1.0 + np.exp(-np.clip(eta, -50, 50)))
    logits = np.column_stack([np.zeros(z.shape[0]), eta])
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _distinct_top(z: np.ndarray, score: np.ndarray, k: int, max_abs_corr: float = 0.95) -> np.ndarray:
    """The k columns with the highest score, skipping any nearly collinear (|corr| > 0.95) with one already taken
    (collinear inputs make the logit's Hessian singular)."""
    order = [int(j) for j in np.argsort(-score, kind="stable") if score[j] >= 0]
    cand = z[:, order[: 3 * k]]  # enough candidates for k distinct ones in practice
    cand = cand - cand.mean(axis=0)
    cand /= np.sqrt((cand * cand).sum(axis=0)) + 1e-12
    taken: list[int] = []
    for i in range(cand.shape[1]):
        if len(taken) == k:
            break
        if not taken or np.max(np.abs(cand[:, taken].T @ cand[:, i])) <= max_abs_corr:
            taken.append(i)
    return np.asarray([order[i] for i in taken], dtype=int)


class LinearFamily:
    name = "linear"
    inputs = "features"
    model_suffix = "json"

    def space(self, trial: Any, task: Task) -> dict[str, Any]:
        return {"k": trial.suggest_int("k", 3, 30), "clip": trial.suggest_float("clip", 2.0, 8.0)}

    def fit(self, x: np.ndarray, y: np.ndarray, task: Task, params: dict[str, Any], seed: int, threads: int,
            prepared: Any = None) -> Any:  # fmt: skip
        with warnings.catch_warnings():  # an all-null column (a feature a market lacks) is not usable: said below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
        usable = np.isfinite(mean) & np.isfinite(std) & (std > 0)
        std = np.where(usable, std, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        z = standardise(x, mean, std, float(params["clip"]))
        yc = y - y.mean()
        corr = np.abs((z * yc[:, None]).mean(axis=0)) / (z.std(axis=0) * (yc.std() or 1.0) + 1e-12)
        corr[~usable] = -1
        cols = np.sort(_distinct_top(z, corr, int(params["k"])))
        coef = fit_glm(z[:, cols], y, task)
        return {"cols": cols.tolist(), "mean": mean[cols].tolist(), "std": std[cols].tolist(),
                "clip": float(params["clip"]), "coef": np.asarray(coef).tolist(), "n_inputs": x.shape[1]}  # fmt: skip

    def predict(self, model: Any, x: np.ndarray, task: Task) -> np.ndarray:
        cols = np.asarray(model["cols"], dtype=int)
        z = standardise(x[:, cols], np.asarray(model["mean"]), np.asarray(model["std"]), model["clip"])
        return predict_glm(np.asarray(model["coef"]), z, task)

    def importances(self, model: Any, columns: Sequence[str]) -> dict[str, float]:
        coef = np.abs(np.asarray(model["coef"]))
        coef = coef[1:] if coef.ndim == 1 else coef[1:].max(axis=1)
        out = dict.fromkeys(columns, 0.0)
        for c, v in zip(model["cols"], coef, strict=True):
            out[columns[c]] = float(v)
        return out

    def dump(self, model: Any) -> str:
        return json.dumps(model)

    def load(self, text: str) -> Any:
        return json.loads(text)


FAMILY = LinearFamily()
