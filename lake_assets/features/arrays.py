"""`Arrays`: the float columns a feature evaluation reads, plus intermediates shared across features.

compute_features evaluates the catalog on numpy arrays where NaN marks a missing value. Indicator and template
implementations ask this object for their inputs (`x`) and for common intermediates: rolling sums/means, EWMs,
Welford variances, rolling extremes and derived series such as true range or typical price. Each is computed once
per instrument. With a `plan` (every request of a catalog, recorded once by evaluating it on empty inputs), the first
request for an (operation, input) computes all planned windows of it in one fused kernel pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lake_assets.features import kernels as K

Plan = dict[tuple[str, str], set[tuple[float, ...]]]  # (operation, input) -> parameter tuples requested
TS_US = "__ts_utc_us"  # pseudo-column: bar open times as UTC epoch microseconds (int64)


MIN_FILL = 0.5  # share of a window that must hold present (non-gap) values


def min_count(n: int) -> int:
    """Present values a window of n rows needs."""
    return max(1, math.ceil(n * MIN_FILL))


@dataclass(frozen=True)
class Labeled:
    """A categorical feature in flight: float codes (NaN = null) indexing `labels`."""

    codes: np.ndarray
    labels: tuple[str, ...]


class Arrays:
    """Column source + memo for one instrument's evaluation (see module docstring).

    `load(name)` returns a bar column as a float64 array (NaN = missing); computed features are added with `set`.
    In `record` mode every windowed request is added to `plan` (used on zero-row inputs to build the plan).
    """

    def __init__(self, load: Callable[[str], np.ndarray], *, plan: Plan | None = None, record: bool = False) -> None:
        self._load = load
        self._cols: dict[str, np.ndarray | Labeled] = {}
        self._memo: dict[tuple[object, ...], object] = {}
        self.cache: dict[str, object] = {}  # free-form per-instrument cache for implementations
        self.plan: Plan = plan if plan is not None else {}
        self.record = record

    # --- columns ---------------------------------------------------------------------------------------------

    def set(self, name: str, value: np.ndarray | Labeled) -> None:
        self._cols[name] = value

    def get(self, name: str) -> np.ndarray | Labeled:
        if name not in self._cols:
            self._cols[name] = self._load(name)
        return self._cols[name]

    def x(self, name: str) -> np.ndarray:
        """A column (feature or bar) as float64 with NaN for missing."""
        v = self.get(name)
        if isinstance(v, Labeled):
            raise ValueError(f"column {name!r} holds labels, not numbers")
        return v

    def derived(self, name: str, fn: Callable[[], np.ndarray]) -> str:
        """Register a series computed once (e.g. true range) under `name`; returns the name for windowed requests."""
        if name not in self._cols:
            self._cols[name] = np.ascontiguousarray(fn(), dtype=np.float64)
        return name

    # --- windowed intermediates (batched per input through the plan) ---------------------------------------

    def _batched(self, op: str, col: str, param: tuple[float, ...], run: Callable[[list[tuple[float, ...]]], list]):
        key = (op, col, param)
        if key in self._memo:
            return self._memo[key]
        planned = self.plan.setdefault((op, col), set())
        if self.record:
            planned.add(param)
        todo = sorted({param} | {p for p in planned if (op, col, p) not in self._memo})
        for p, value in zip(todo, run(todo), strict=True):
            self._memo[(op, col, p)] = value
        return self._memo[key]

    def _rolling(self, col: str, n: int, mean: bool) -> np.ndarray:
        def run(params: list[tuple[float, ...]]) -> list[np.ndarray]:
            ns = np.array([int(p[0]) for p in params], dtype=np.int64)
            means = np.array([bool(p[1]) for p in params])
            out = K.rolling_sum_multi(self.x(col), ns, np.array([min_count(int(m)) for m in ns]), means)
            return list(out)

        return self._batched("roll", col, (n, 1.0 if mean else 0.0), run)  # type: ignore[no-any-return]

    def rolling_mean(self, col: str, n: int) -> np.ndarray:
        """= K.rolling_mean(x, n, min_count(n))."""
        return self._rolling(col, n, True)

    def rolling_sum(self, col: str, n: int) -> np.ndarray:
        """= K.rolling_sum(x, n, min_count(n))."""
        return self._rolling(col, n, False)

    def ewm(self, col: str, alpha: float, min_obs: int) -> np.ndarray:
        """= K.ewm(x, alpha, min_obs)."""

        def run(params: list[tuple[float, ...]]) -> list[np.ndarray]:
            alphas = np.array([p[0] for p in params])
            mins = np.array([int(p[1]) for p in params], dtype=np.int64)
            return list(K.ewm_multi(self.x(col), alphas, mins))

        return self._batched("ewm", col, (float(alpha), min_obs), run)  # type: ignore[no-any-return]

    def ema(self, col: str, n: int) -> np.ndarray:
        """EMA with span n (alpha = 2/(n+1)), n observations before the first value."""
        return self.ewm(col, 2.0 / (n + 1.0), n)

    def var(self, col: str, n: int, ddof: int) -> np.ndarray:
        """= K.rolling_var(x, n, min_count(n), ddof): the Welford state is shared by every ddof."""
        key = ("var", col, n, ddof)
        if key not in self._memo:

            def run(params: list[tuple[float, ...]]) -> list[tuple[np.ndarray, np.ndarray]]:
                m2, cnt = K.rolling_m2_multi(self.x(col), np.array([int(p[0]) for p in params], dtype=np.int64))
                return [(m2[i], cnt[i]) for i in range(len(params))]

            m2, cnt = self._batched("m2", col, (n,), run)
            self._memo[key] = K.var_from_m2(m2, cnt, min_count(n), ddof)
        return self._memo[key]  # type: ignore[return-value]

    def std(self, col: str, n: int, ddof: int) -> np.ndarray:
        key = ("std", col, n, ddof)
        if key not in self._memo:
            self._memo[key] = np.sqrt(self.var(col, n, ddof))
        return self._memo[key]  # type: ignore[return-value]

    def _extreme(self, op: str, col: str, n: int) -> np.ndarray:
        def run(params: list[tuple[float, ...]]) -> list[np.ndarray]:
            ns = np.array([int(p[0]) for p in params], dtype=np.int64)
            mins = np.array([min_count(int(m)) for m in ns], dtype=np.int64)
            return list(K.rolling_extreme_multi(self.x(col), ns, mins, 1.0 if op == "max" else -1.0))

        return self._batched(op, col, (n,), run)  # type: ignore[no-any-return]

    def rolling_max(self, col: str, n: int) -> np.ndarray:
        return self._extreme("max", col, n)

    def rolling_min(self, col: str, n: int) -> np.ndarray:
        return self._extreme("min", col, n)
