"""`Arrays`: the float columns a feature evaluation reads, plus intermediates shared across features.

compute_features evaluates the catalog on numpy arrays where NaN marks a missing value. Indicator and template
implementations ask this object for their inputs (`x`) and for common intermediates: rolling sums/means, EWMs,
Welford standard deviations, rolling extremes and derived series such as true range or typical price. Each is
computed once per instrument. With a `plan` (every request of a catalog, recorded once by evaluating it on empty
inputs), the first request for an (operation, input) computes all planned windows of it in one fused kernel pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from lake_assets.features import kernels as K

Plan = dict[tuple[str, str], set[tuple[Any, ...]]]  # (operation, input) -> parameter tuples requested
TS_US = "__ts_utc_us"  # pseudo-column: bar open times as UTC epoch microseconds (int64)


_Lane = TypeVar("_Lane")

# Gap tolerance inside a window: the share of its n rows that must hold present (non-gap) values. Warm-up is not
# decided here: compute_features nulls every feature until its full window has elapsed (`FeatureDef.span`, as
# pandas' rolling(n) and TA-Lib start at row n - 1); after that a window with gap bars is computed from its present
# values while at least half of them are present (pandas would give NaN for any gap in the window).
MIN_FILL = 0.5


def min_count(n: int) -> int:
    """Present values a window of n rows needs (gap tolerance; see MIN_FILL)."""
    return max(1, math.ceil(n * MIN_FILL))


@dataclass(frozen=True)
class Labeled:
    """A categorical feature in flight: float codes (NaN = null) indexing `labels`."""

    codes: np.ndarray
    labels: tuple[str, ...]


def _lane_groups(lanes: list[_Lane]) -> list[list[_Lane]]:
    """Groups of four lanes, the requested lane (first) in the first group; a trailing partial group of lanes nobody
    asked for yet is left out: a pass costs about the same for one lane as for four, so those wait to fill a later
    pass with the lanes of inputs that are not ready yet."""
    groups = [lanes[g : g + 4] for g in range(0, len(lanes), 4)]
    if len(groups) > 1 and len(groups[-1]) < 4:
        groups.pop()
    return groups


class Arrays:
    """Column source + memo for one instrument's evaluation (see module docstring).

    `load(name)` returns a bar column as a float64 array (NaN = missing); computed features are added with `set`.
    In `record` mode every windowed request is added to `plan` (used on zero-row inputs to build the plan).
    """

    def __init__(
        self,
        load: Callable[[str], np.ndarray],
        *,
        plan: Plan | None = None,
        record: bool = False,
        loadable: frozenset[str] | None = None,
        releases: dict[int, list[tuple[object, ...]]] | None = None,
    ) -> None:
        self._load = load
        self._loadable = loadable  # names `load` serves (None: any); others exist once `set`
        self._cols: dict[str, np.ndarray | Labeled] = {}
        self._memo: dict[tuple[object, ...], object] = {}
        self.cache: dict[str, object] = {}  # free-form per-instrument cache for implementations
        self.plan: Plan = plan if plan is not None else {}
        self.record = record
        self._done: set[tuple[object, ...]] = set()  # memo keys computed (their value may be released since)
        # Step = index of the feature being evaluated. Record mode notes each key's last step (`last_use`); with
        # `releases` (step -> keys last used then) the other intermediates are dropped once read for the last time,
        # so their memory is reused while still in cache instead of every instrument touching fresh pages.
        self.step = 0
        self.last_use: dict[tuple[object, ...], int] = {}
        self._releases = releases or {}

    # --- columns ---------------------------------------------------------------------------------------------

    def _touch(self, key: tuple[object, ...]) -> None:
        if self.record:
            self.last_use[key] = self.step

    def _store(self, key: tuple[object, ...], value: object) -> None:
        self._memo[key] = value
        self._done.add(key)

    def release(self) -> None:
        """Drop the intermediates whose last reader was the current step."""
        for key in self._releases.get(self.step, ()):
            if key[0] == "col":
                self._cols.pop(str(key[1]), None)
            else:
                self._memo.pop(key, None)

    def set(self, name: str, value: np.ndarray | Labeled) -> None:
        self._touch(("col", name))
        self._cols[name] = value

    def get(self, name: str) -> np.ndarray | Labeled:
        self._touch(("col", name))
        if name not in self._cols:
            self._cols[name] = self._load(name)
        return self._cols[name]

    def ready(self, name: str) -> bool:
        """The column can be read now (a bar column, or a feature computed already)."""
        return name in self._cols or self._loadable is None or name in self._loadable

    def x(self, name: str) -> np.ndarray:
        """A column (feature or bar) as float64 with NaN for missing."""
        v = self.get(name)
        if isinstance(v, Labeled):
            raise ValueError(f"column {name!r} holds labels, not numbers")
        return v

    def derived(self, name: str, fn: Callable[[], np.ndarray]) -> str:
        """Register a series computed once (e.g. true range) under `name`; returns the name for windowed requests."""
        self._touch(("col", name))
        if name not in self._cols:
            self._cols[name] = np.ascontiguousarray(fn(), dtype=np.float64)
        return name

    # --- windowed intermediates (batched per input through the plan) ---------------------------------------

    def _batched(self, op: str, col: str, param: tuple[float, ...], run: Callable[[list[tuple[float, ...]]], list]):
        key = (op, col, param)
        self._touch(key)
        if key in self._memo:
            return self._memo[key]
        if self.record:
            self.plan.setdefault((op, col), set()).add(param)
        planned = self.plan.get((op, col), ())
        todo = sorted({param} | {p for p in planned if (op, col, p) not in self._done})
        for p, value in zip(todo, run(todo), strict=True):
            self._store((op, col, p), value)
        return self._memo[key]

    def _rolling(self, col: str, n: int, mean: bool) -> np.ndarray:
        def run(params: list[tuple[float, ...]]) -> list[np.ndarray]:
            if len(params) == 1:
                w = int(params[0][0])
                single = K.rolling_mean if params[0][1] else K.rolling_sum
                return [single(self.x(col), w, min_count(w))]
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
        """= K.ewm(x, alpha, min_obs).

        Every planned EWM whose input is ready runs as a lane of one `K.ewm_lanes` pass, four at a time.
        """

        def run(group: list[tuple[str, tuple[Any, ...]]]) -> list[np.ndarray]:
            pad = 4 - len(group)
            xs = [self.x(c) for c, _ in group] + [self.x(group[0][0])] * pad
            params = [p for _, p in group] + [group[0][1]] * pad
            out = np.empty((len(group), xs[0].shape[0]))
            outs = [*out, *[out[0]] * pad]  # unused lanes repeat lane 0: identical writes
            alphas = np.array([float(p[0]) for p in params])
            mins = np.array([int(p[1]) for p in params], dtype=np.int64)
            K.ewm_lanes(xs[0], xs[1], xs[2], xs[3], alphas, mins, outs[0], outs[1], outs[2], outs[3])
            return list(out)

        return self._laned("ewm", col, (float(alpha), min_obs), run)

    def _laned(
        self,
        op: str,
        col: str,
        param: tuple[Any, ...],
        run: Callable[[list[tuple[str, tuple[Any, ...]]]], list[np.ndarray]],
    ) -> np.ndarray:
        """Memoised (op, col, param), computed together with every planned (op, other input, params) whose input is
        ready, in groups of four lanes (`run` takes up to four (input, params) lanes)."""
        key = (op, col, param)
        self._touch(key)
        if key in self._memo:
            return self._memo[key]  # type: ignore[return-value]
        if self.record:
            self.plan.setdefault((op, col), set()).add(param)
        lanes = [(col, param)]
        for (o, c), params in self.plan.items():
            if o == op and self.ready(c):
                lanes += [(c, p) for p in sorted(params) if (c, p) != (col, param) and (op, c, p) not in self._done]
        for group in _lane_groups(lanes):
            for (c, p), value in zip(group, run(group), strict=True):
                self._store((op, c, p), value)
        return self._memo[key]  # type: ignore[return-value]

    def ema(self, col: str, n: int) -> np.ndarray:
        """EMA with span n (alpha = 2/(n+1)), n observations before the first value."""
        return self.ewm(col, 2.0 / (n + 1.0), n)

    def std(self, col: str, n: int, ddof: int) -> np.ndarray:
        """= K.rolling_std(x, n, min_count(n), ddof).

        Welford updates are bound by the divider, so every planned (input, window) whose input is ready runs as a
        lane of one kernel pass, four lanes at a time, across inputs; a window asked with two ddofs is one lane.
        """
        key = ("std", col, n, ddof)
        self._touch(key)
        if key in self._memo:
            return self._memo[key]  # type: ignore[return-value]
        if self.record:
            self.plan.setdefault(("std", ""), set()).add((col, n, ddof))
        wanted = [(col, n, ddof)]
        for p in sorted(self.plan.get(("std", ""), ()), key=str):
            lane = (str(p[0]), int(p[1]), int(p[2]))
            if lane not in wanted and ("std", *lane) not in self._done and self.ready(lane[0]):
                wanted.append(lane)
        # one lane per (input, window) and pair of ddofs: both come from the same moments
        by_window: dict[tuple[str, int], list[int]] = {}
        for c, w, d in wanted:
            by_window.setdefault((c, w), []).append(d)
        lanes = [(c, w, ds[i : i + 2]) for (c, w), ds in by_window.items() for i in range(0, len(ds), 2)]
        for group in _lane_groups(lanes):
            xs = [self.x(c) for c, _, _ in group]
            xs += [xs[0]] * (4 - len(xs))
            out, out_b = K.rolling_std_lanes2(
                xs[0],
                xs[1],
                xs[2],
                xs[3],
                np.array([w for _, w, _ in group], dtype=np.int64),
                np.array([ds[0] for _, _, ds in group], dtype=np.int64),
                np.array([ds[1] if len(ds) > 1 else -1 for _, _, ds in group], dtype=np.int64),
                np.array([min_count(w) for _, w, _ in group], dtype=np.int64),
            )
            for j, (c, w, ds) in enumerate(group):
                for d, values in zip(ds, (out[j], out_b[j]), strict=False):
                    self._store(("std", c, w, d), values)
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
