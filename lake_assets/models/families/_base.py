"""The one small interface every model family implements (fit / predict / params space), and how a family is found.

A task is what the label scheme asks for: `binary` (B1, classes 0/1; predict returns P(1)), `multiclass` (T3,
classes -1/0/+1 encoded 0/1/2; predict returns an (n, 3) probability matrix) or `regression` (R; predict returns the
predicted value). Inputs are float32 matrices: `features` (the catalogue) or `embedding` (the window embedding).
A model is stored as text (`dump`/`load`): LightGBM's own text format, JSON for the linear families; never pickle.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np

Task = Literal["binary", "multiclass", "regression"]
Inputs = Literal["features", "embedding"]


class Family(Protocol):
    name: str
    inputs: Inputs
    model_suffix: str  # file suffix of the dumped model: txt | json

    def space(self, trial: Any, task: Task) -> dict[str, Any]:
        """Parameters for one Optuna trial (`trial.suggest_*`)."""

    def fit(self, x: np.ndarray, y: np.ndarray, task: Task, params: dict[str, Any], seed: int, threads: int,
            prepared: Any = None) -> Any:  # fmt: skip
        """A fitted model (y: class codes 0..k-1 for classification, values for regression). `prepared` is what
        `prepare(x, y)` returned for these rows, if the family has `prepare` (a study reuses it across trials)."""

    def predict(self, model: Any, x: np.ndarray, task: Task) -> np.ndarray:
        """P(1) (binary), class probabilities (n, 3) (multiclass) or values (regression)."""

    def importances(self, model: Any, columns: Sequence[str]) -> dict[str, float]:
        """Feature name -> importance."""

    def dump(self, model: Any) -> str: ...

    def load(self, text: str) -> Any: ...


def prepared_inputs(family: Family, x: np.ndarray, y: np.ndarray) -> Any:
    """The family's reusable form of one fold's training rows (LightGBM: the binned Dataset), or None."""
    prepare = getattr(family, "prepare", None)
    return prepare(x, y) if prepare is not None else None


def load_family(name: str) -> Family:
    """The family module `name` of this package (only names listed by `spec_model.available_families`, which the
    spec validation already enforces: a spec value never names an arbitrary module)."""
    from lake_assets.models.spec_model import available_families

    if name not in available_families():
        raise ValueError(f"unknown model family {name!r}; known: {available_families()}")
    module = importlib.import_module(f"lake_assets.models.families.{name}")
    family: Family = module.FAMILY
    return family


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float) -> np.ndarray:
    z = (x - mean) / std
    z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(z, -clip, clip)
