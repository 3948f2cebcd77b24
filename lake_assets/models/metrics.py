"""Out-of-sample metrics of predictions (numpy only): balanced accuracy, log loss, RMSE, ROC AUC; the objective a
study minimises; the position a prediction implies."""

from __future__ import annotations

import math

import numpy as np

from lake_assets.models.families._base import Task

EPS = 1e-12


def encode_target(label: np.ndarray, task: Task) -> np.ndarray:
    """Label values -> what a family fits: B1 0/1, T3 -1/0/1 -> 0/1/2, R as is."""
    if task == "multiclass":
        return (np.rint(label) + 1).astype(np.int64)
    if task == "binary":
        return np.rint(label).astype(np.int64)
    return label.astype(np.float64)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in y."""
    classes = np.unique(y)
    if classes.size == 0:
        return math.nan
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.ndim == 1:
        p = np.clip(proba, EPS, 1 - EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = np.clip(proba[np.arange(y.shape[0]), y], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def auc(y01: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
    pos = y01 == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(score)  # average ranks over ties
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classes_of(pred: np.ndarray, task: Task) -> np.ndarray:
    """The predicted class: B1 P>0.5, T3 argmax (codes 0/1/2), R the sign (1 up, 0 not up)."""
    if task == "binary":
        return (pred > 0.5).astype(np.int64)
    if task == "multiclass":
        return np.argmax(pred, axis=1).astype(np.int64)
    return (pred > 0).astype(np.int64)


def position_of(pred: np.ndarray, task: Task) -> np.ndarray:
    """The position a prediction implies, known at the bar's close: B1 long if P(up) > 0.5 else short; T3 the
    predicted class (-1/0/+1); R the sign of the predicted return."""
    if task == "binary":
        return np.where(pred > 0.5, 1, -1).astype(np.int8)
    if task == "multiclass":
        return (np.argmax(pred, axis=1) - 1).astype(np.int8)
    return np.sign(pred).astype(np.int8)


def scalar_prediction(pred: np.ndarray, task: Task) -> np.ndarray:
    """One number per row for the predictions table: P(up), the expected T3 class, the predicted return."""
    if task == "multiclass":
        return pred @ np.array([-1.0, 0.0, 1.0])
    return pred.astype(np.float64)


def fold_metrics(y_enc: np.ndarray, pred: np.ndarray, task: Task) -> dict[str, float]:
    """balanced_accuracy, log_loss, rmse, auc of one block of predictions (nan where not applicable)."""
    nan = math.nan
    if task == "regression":
        up = (y_enc > 0).astype(np.int64)
        return {"balanced_accuracy": balanced_accuracy(up, classes_of(pred, task)), "log_loss": nan,
                "rmse": rmse(y_enc, pred), "auc": nan}  # fmt: skip
    ba = balanced_accuracy(y_enc, classes_of(pred, task))
    if task == "binary":
        return {"balanced_accuracy": ba, "log_loss": log_loss(y_enc, pred), "rmse": nan, "auc": auc(y_enc, pred)}
    aucs = [auc((y_enc == c).astype(np.int64), pred[:, c]) for c in range(pred.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return {"balanced_accuracy": ba, "log_loss": log_loss(y_enc, pred), "rmse": nan,
            "auc": float(np.mean(aucs)) if aucs else nan}  # fmt: skip


def objective_of(metrics: dict[str, float], task: Task) -> float:
    """What a study minimises: log loss (B1, T3) or RMSE (R)."""
    return metrics["rmse"] if task == "regression" else metrics["log_loss"]


def objective(y_enc: np.ndarray, pred: np.ndarray, task: Task) -> float:
    """The objective alone (what a trial reports per fold), without the other metrics."""
    return rmse(y_enc, pred) if task == "regression" else log_loss(y_enc, pred)
