"""Feature templates: the non-indicator feature definitions a spec entry can instantiate (`template: <name>`).

A template turns its input columns (bar columns or other features) and parameters into one polars expression, and
(`compute`) into a numpy array with the same semantics, which is what compute_features runs. Floats use NaN as the
in-flight missing marker (the compute step turns NaN into null at the end); states and flags are null whenever
their inputs are missing, never a default label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from typing import Any, cast

import numpy as np
import polars as pl

from lake_assets.calendars import holiday_dates
from lake_assets.features import indicators as ind
from lake_assets.features import kernels as K
from lake_assets.features.arrays import TS_US, Arrays, Labeled

NAN = float("nan")
FUNDING_PERIODS_PER_YEAR = 3 * 365  # 8-hourly funding


def _x(c: str) -> pl.Expr:
    return ind.as_nan(pl.col(c))


def _valid(e: pl.Expr) -> pl.Expr:
    return e.is_not_null() & e.is_not_nan()


@dataclass(frozen=True)
class TemplateDef:
    name: str
    params: Mapping[str, Any]  # default None = required
    inputs: tuple[str, ...]  # default input columns; a spec may rename them (same count)
    dtype: pl.DataType
    build: Callable[[list[str], dict[str, Any]], pl.Expr]
    lookback: Callable[[dict[str, Any]], int]  # bars of history the template itself reads (current bar included)
    pit: str = "bar_close"  # "bar_open": reads only the timestamp, known when the bar opens
    check: Callable[[dict[str, Any]], str | None] = lambda p: None
    # array implementation used by compute_features (None: it evaluates `build`'s expression instead)
    compute: Callable[[Arrays, list[str], dict[str, Any]], np.ndarray | Labeled] | None = None
    # rows (current included) before the first value on gap-free inputs, when less than `lookback`
    span_fn: Callable[[dict[str, Any]], int] | None = None

    def span(self, params: dict[str, Any]) -> int:
        return self.span_fn(params) if self.span_fn is not None else self.lookback(params)

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise KeyError(f"unknown parameter(s) {unknown} for template {self.name}; expected {sorted(self.params)}")
        out = {**self.params, **given}
        missing = sorted(k for k, v in out.items() if v is None)
        if missing:
            raise KeyError(f"missing parameter(s) {missing} for template {self.name}")
        for k, v in out.items():
            if k in ("n", "cap") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{self.name}.{k} must be a positive integer number of bars, got {v!r}")
        problem = self.check(out)
        if problem:
            raise ValueError(problem)
        return out


def _n(p: dict[str, Any]) -> int:
    return int(p["n"]) + 1


def _log_return(i: list[str], p: dict[str, Any]) -> pl.Expr:
    x = _x(i[0])
    return (x / x.shift(p["n"], fill_value=NAN)).log()


def _realized_vol(i: list[str], p: dict[str, Any]) -> pl.Expr:
    """sqrt(n * mean(r^2)): realized vol over the n-bar horizon, missing bars not counted as zero returns."""
    r = _x(i[0])
    return (ind.rolling_mean(r * r, p["n"]) * p["n"]).sqrt()


def _parkinson(i: list[str], p: dict[str, Any]) -> pl.Expr:
    hl = (_x(i[0]) / _x(i[1])).log()
    return (ind.rolling_mean(hl * hl, p["n"]) * (p["n"] / (4.0 * math.log(2.0)))).sqrt()


def _pct_rank(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return ind.apply_kernel(K.rolling_pct_rank, [_x(i[0])], p["n"], ind.min_count(p["n"]))


def _regime3(i: list[str], p: dict[str, Any]) -> pl.Expr:
    x = pl.col(i[0])
    lo, mid, hi = p["labels"]
    return (
        pl.when(~_valid(x))
        .then(pl.lit(None, pl.String))
        .when(x <= p["low"])
        .then(pl.lit(lo))
        .when(x >= p["high"])
        .then(pl.lit(hi))
        .otherwise(pl.lit(mid))
    )


def _check_regime(p: dict[str, Any]) -> str | None:
    if not (isinstance(p["labels"], list | tuple) and len(p["labels"]) == 3):
        return "labels must be a list of three names (low, mid, high)"
    return None if p["low"] < p["high"] else f"low ({p['low']}) must be below high ({p['high']})"


def _rolling_cv(i: list[str], p: dict[str, Any]) -> pl.Expr:
    x = _x(i[0])
    return ind.safe_div(ind.rolling_std(x, p["n"]), ind.rolling_mean(x, p["n"]))


def _zscore(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return ind.rolling_zscore(_x(i[0]), p["n"])


def _identity(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return _x(i[0])


def _scale(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return _x(i[0]) * float(p["factor"])


def _run_length(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return ind.apply_kernel(K.signed_run_length, [_x(i[0])], p["cap"])


def _extreme_flag(i: list[str], p: dict[str, Any]) -> pl.Expr:
    z, level = pl.col(i[0]), pl.col(i[1])
    hit_z = _valid(z) & (z.abs() >= p["z"])
    hit_abs = _valid(level) & (level.abs() >= p["abs"])
    return pl.when(~_valid(z) & ~_valid(level)).then(pl.lit(None, pl.Boolean)).otherwise(hit_z | hit_abs)


def _carry_state(i: list[str], p: dict[str, Any]) -> pl.Expr:
    level, extreme = pl.col(i[0]), pl.col(i[1])
    band = p["neutral_band"]
    return (
        pl.when(~_valid(level))
        .then(pl.lit(None, pl.String))
        .when(extreme.fill_null(False) & (level > 0))
        .then(pl.lit("pos_extreme"))
        .when(extreme.fill_null(False) & (level < 0))
        .then(pl.lit("neg_extreme"))
        .when(level > band)
        .then(pl.lit("pos"))
        .when(level < -band)
        .then(pl.lit("neg"))
        .otherwise(pl.lit("neutral"))
    )


def _body_ratio(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return ind.safe_div((_x(i[1]) - _x(i[0])).abs(), _x(i[2]))


def _range_ratio(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return ind.safe_div(_x(i[0]) - _x(i[1]), _x(i[2]))


def _wick(upper: bool) -> Callable[[list[str], dict[str, Any]], pl.Expr]:
    def build(i: list[str], p: dict[str, Any]) -> pl.Expr:
        o, h, lo, c = (_x(k) for k in i)
        rng = h - lo
        wick = h - pl.max_horizontal(o, c) if upper else pl.min_horizontal(o, c) - lo
        return pl.when(rng > 0).then(wick / rng).otherwise(pl.when(rng == 0).then(0.0).otherwise(NAN))

    return build


def _amihud(i: list[str], p: dict[str, Any]) -> pl.Expr:
    """Mean |return| per million of quote volume over n bars (Amihud 2002 illiquidity)."""
    r, c, v = (_x(k) for k in i)
    dollar = c * v
    per_bar = pl.when(dollar > 0).then(r.abs() / dollar * 1e6).otherwise(NAN)
    return ind.rolling_mean(per_bar, p["n"])


def _roll_spread_np(r: np.ndarray, n: int) -> np.ndarray:
    cov = K.rolling_cov(r, K.lag_valid(r, 1), n, ind.min_count(n), 1)
    return K.spread_from_autocov(cov)


def _roll_spread(i: list[str], p: dict[str, Any]) -> pl.Expr:
    """Roll (1984) effective spread in bps: 2 sqrt(-cov(r_t, r_t-1)), 0 when the autocovariance is positive."""
    return ind.apply_kernel(_roll_spread_np, [_x(i[0])], p["n"])


def _spread_bps(i: list[str], p: dict[str, Any]) -> pl.Expr:
    bid, ask = _x(i[0]), _x(i[1])
    return ind.safe_div(ask - bid, (ask + bid) / 2.0) * 1e4


def _imbalance_np(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    if n > 1:
        a, b = K.rolling_sum(a, n, ind.min_count(n)), K.rolling_sum(b, n, ind.min_count(n))
    return K.imbalance(a, b)


def _imbalance(i: list[str], p: dict[str, Any]) -> pl.Expr:
    """(a - b) / (a + b) over n bars: order-flow imbalance from buy/sell volume, depth imbalance from sizes."""
    return ind.apply_kernel(_imbalance_np, [_x(i[0]), _x(i[1])], p["n"])


def _log_change(i: list[str], p: dict[str, Any]) -> pl.Expr:
    x = _x(i[0])
    prev = x.shift(p["n"], fill_value=NAN)
    return pl.when((x > 0) & (prev > 0)).then((x / prev).log()).otherwise(NAN)


def _ratio_to_sum(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return ind.safe_div(_x(i[0]), ind.rolling_sum(_x(i[1]), p["n"]))


def _liquidation_proxy(i: list[str], p: dict[str, Any]) -> pl.Expr:
    """Open interest flushed (bps) on a volume spike, signed +1 for long liquidations (price down), -1 for shorts."""
    oi_chg, r, vz = (_x(k) for k in i)
    flushed = (-oi_chg).clip(lower_bound=0.0) * 1e4
    return -r.sign() * flushed * (1.0 + vz.clip(lower_bound=0.0))


def _trend_state(i: list[str], p: dict[str, Any]) -> pl.Expr:
    fast, slow, strength = (pl.col(k) for k in i)
    strong = strength >= p["adx_min"]
    return (
        pl.when(~_valid(fast) | ~_valid(slow) | ~_valid(strength))
        .then(pl.lit(None, pl.String))
        .when(strong & (fast > slow))
        .then(pl.lit("up"))
        .when(strong & (fast < slow))
        .then(pl.lit("down"))
        .otherwise(pl.lit("chop"))
    )


def _utc_wall(c: str) -> pl.Expr:
    """UTC wall-clock time without the zone: calendar arithmetic on it avoids per-row time-zone conversion."""
    return pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def _weekday(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return _utc_wall(i[0]).dt.weekday().cast(pl.Int8)  # ISO: Monday=1 .. Sunday=7


def _hour(i: list[str], p: dict[str, Any]) -> pl.Expr:
    return _utc_wall(i[0]).dt.hour().cast(pl.Int8)


def _month_end(i: list[str], p: dict[str, Any]) -> pl.Expr:
    """The bar opens on the last calendar day of its month (UTC)."""
    ts = _utc_wall(i[0])
    return (ts + pl.duration(days=1)).dt.month() != ts.dt.month()


def _holiday(i: list[str], p: dict[str, Any]) -> pl.Expr:
    days = pl.Series(holiday_dates(p["calendar"], date(1990, 1, 1), date(2100, 12, 31)), dtype=pl.Date)
    return _utc_wall(i[0]).dt.date().is_in(days.implode())


def _check_calendar(p: dict[str, Any]) -> str | None:
    try:
        holiday_dates(p["calendar"], date(2000, 1, 1), date(2000, 1, 2))
    except ValueError as exc:
        return str(exc)
    return None


# --- array implementations (what compute_features runs; same semantics as the expressions above) ----------------
# Polars compares NaN as the largest float, numpy as unordered; every comparison below is either guarded by a
# validity test or only chooses between NaN results, so both agree.


def _sdiv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return K.safe_div(a, b)


def _a_log_return(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.lagged_log_ratio(a.x(i[0]), p["n"])


def _a_realized_vol(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    sq = a.derived(f"__sq:{i[0]}", lambda: a.x(i[0]) * a.x(i[0]))
    return K.scaled_sqrt(a.rolling_mean(sq, p["n"]), float(p["n"]))


def _a_parkinson(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    def hl2() -> np.ndarray:  # one buffer, updated in place (numpy's log)
        hl = np.empty(a.x(i[0]).shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(a.x(i[0]), a.x(i[1]), out=hl)
            np.log(hl, out=hl)
        np.multiply(hl, hl, out=hl)
        return hl

    sq = a.derived(f"__hl2:{i[0]}:{i[1]}", hl2)
    return K.scaled_sqrt(a.rolling_mean(sq, p["n"]), p["n"] / (4.0 * math.log(2.0)))


def _a_pct_rank(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.rolling_pct_rank(a.x(i[0]), p["n"], ind.min_count(p["n"]))


def _a_regime3(a: Arrays, i: list[str], p: dict[str, Any]) -> Labeled:
    return Labeled(K.regime3_codes(a.x(i[0]), float(p["low"]), float(p["high"])), tuple(p["labels"]))


def _a_rolling_cv(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return _sdiv(a.std(i[0], p["n"], 1), a.rolling_mean(i[0], p["n"]))


def _a_zscore(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.standardize(a.x(i[0]), a.rolling_mean(i[0], p["n"]), a.std(i[0], p["n"], 1))


def _a_identity(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return a.x(i[0])


def _a_scale(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return a.x(i[0]) * float(p["factor"])


def _a_run_length(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.signed_run_length(a.x(i[0]), p["cap"])


def _a_extreme_flag(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.extreme_flag(a.x(i[0]), a.x(i[1]), float(p["z"]), float(p["abs"]))


_CARRY_LABELS = ("pos_extreme", "neg_extreme", "pos", "neg", "neutral")


def _a_carry_state(a: Arrays, i: list[str], p: dict[str, Any]) -> Labeled:
    codes = K.carry_codes(a.x(i[0]), a.x(i[1]), float(p["neutral_band"]))
    return Labeled(codes, _CARRY_LABELS)


def _a_body_ratio(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.diff_ratio(a.x(i[1]), a.x(i[0]), a.x(i[2]), True)


def _a_range_ratio(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.diff_ratio(a.x(i[0]), a.x(i[1]), a.x(i[2]), False)


def _a_wick(upper: bool) -> Callable[[Arrays, list[str], dict[str, Any]], np.ndarray]:
    def compute(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
        o, h, lo, c = (a.x(k) for k in i)
        return K.wick_ratio(o, h, lo, c, upper)  # max/min skip NaN, like max_horizontal

    return compute


def _a_amihud(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    per_bar = a.derived(f"__amihud:{':'.join(i)}", lambda: K.illiquidity(*(a.x(k) for k in i)))
    return a.rolling_mean(per_bar, p["n"])


def _a_roll_spread(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return _roll_spread_np(a.x(i[0]), p["n"])


def _a_spread_bps(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.spread_bps(a.x(i[0]), a.x(i[1]))


def _a_imbalance(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    n = p["n"]
    if n > 1:
        return K.imbalance(a.rolling_sum(i[0], n), a.rolling_sum(i[1], n))
    return K.imbalance(a.x(i[0]), a.x(i[1]))


def _a_log_change(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.positive_log_change(a.x(i[0]), p["n"])


def _a_ratio_to_sum(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return _sdiv(a.x(i[0]), a.rolling_sum(i[1], p["n"]))


def _a_liquidation_proxy(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return K.liquidation_proxy(*(a.x(k) for k in i))  # type: ignore[no-any-return]


def _a_trend_state(a: Arrays, i: list[str], p: dict[str, Any]) -> Labeled:
    fast, slow, strength = (a.x(k) for k in i)
    return Labeled(K.trend_codes(fast, slow, strength, float(p["adx_min"])), ("up", "down", "chop"))


def _calendar(a: Arrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weekday, hour, month-end flag and day number of every bar, computed once per instrument."""
    key = "__calendar"
    if key not in a.cache:
        a.cache[key] = K.utc_calendar(a.x(TS_US))
    return cast(tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], a.cache[key])


def _a_weekday(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return _calendar(a)[0]


def _a_hour(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return _calendar(a)[1]


def _a_month_end(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    return _calendar(a)[2]


@lru_cache(maxsize=8)
def _holiday_days(calendar: str) -> np.ndarray:
    days = holiday_dates(calendar, date(1990, 1, 1), date(2100, 12, 31))
    return np.unique(np.array([(d - date(1970, 1, 1)).days for d in days], dtype=np.int64))  # sorted: in_sorted


def _a_holiday(a: Arrays, i: list[str], p: dict[str, Any]) -> np.ndarray:
    days = _calendar(a)[3]
    return K.in_sorted(days, _holiday_days(p["calendar"]))


FEATURE_TEMPLATES: dict[str, TemplateDef] = {
    t.name: t
    for t in (
        TemplateDef(
            "log_return",
            {"n": 1},
            ("close",),
            pl.Float64(),
            _log_return,
            _n,
            compute=_a_log_return,
        ),
        TemplateDef(
            "realized_vol",
            {"n": None},
            ("ret_1",),
            pl.Float64(),
            _realized_vol,
            _n,
            compute=_a_realized_vol,
        ),
        TemplateDef(
            "parkinson_vol",
            {"n": None},
            ("high", "low"),
            pl.Float64(),
            _parkinson,
            _n,
            compute=_a_parkinson,
        ),
        TemplateDef(
            "pct_rank",
            {"n": None},
            ("rv_48",),
            pl.Float64(),
            _pct_rank,
            _n,
            compute=_a_pct_rank,
        ),
        TemplateDef(
            "regime3",
            {"low": 0.33, "high": 0.67, "labels": ["low", "mid", "high"]},
            ("vol_rank",),
            pl.String(),
            _regime3,
            lambda p: 1,
            check=_check_regime,
            compute=_a_regime3,
        ),
        TemplateDef(
            "rolling_cv",
            {"n": None},
            ("rv_48",),
            pl.Float64(),
            _rolling_cv,
            _n,
            compute=_a_rolling_cv,
        ),
        TemplateDef(
            "zscore",
            {"n": None},
            ("close",),
            pl.Float64(),
            _zscore,
            _n,
            compute=_a_zscore,
        ),
        TemplateDef(
            "identity",
            {},
            ("close",),
            pl.Float64(),
            _identity,
            lambda p: 1,
            compute=_a_identity,
        ),
        TemplateDef(
            "scale",
            {"factor": None},
            ("funding_rate",),
            pl.Float64(),
            _scale,
            lambda p: 1,
            compute=_a_scale,
        ),
        TemplateDef(
            "signed_run_length",
            {"cap": 2016},
            ("funding_rate",),
            pl.Float64(),
            _run_length,
            lambda p: int(p["cap"]) + 1,
            compute=_a_run_length,
        ),
        TemplateDef(
            "extreme_flag",
            {"z": 2.0, "abs": 0.0005},
            ("funding_z", "funding_rate"),
            pl.Boolean(),
            _extreme_flag,
            lambda p: 1,
            compute=_a_extreme_flag,
        ),
        TemplateDef(
            "carry_state",
            {"neutral_band": 0.00005},
            ("funding_rate", "funding_extreme"),
            pl.String(),
            _carry_state,
            lambda p: 1,
            compute=_a_carry_state,
        ),
        TemplateDef(
            "body_ratio",
            {},
            ("open", "close", "atr_14"),
            pl.Float64(),
            _body_ratio,
            lambda p: 1,
            compute=_a_body_ratio,
        ),
        TemplateDef(
            "range_ratio",
            {},
            ("high", "low", "atr_14"),
            pl.Float64(),
            _range_ratio,
            lambda p: 1,
            compute=_a_range_ratio,
        ),
        TemplateDef(
            "upper_wick",
            {},
            ("open", "high", "low", "close"),
            pl.Float64(),
            _wick(True),
            lambda p: 1,
            compute=_a_wick(True),
        ),
        TemplateDef(
            "lower_wick",
            {},
            ("open", "high", "low", "close"),
            pl.Float64(),
            _wick(False),
            lambda p: 1,
            compute=_a_wick(False),
        ),
        TemplateDef(
            "amihud",
            {"n": 288},
            ("ret_1", "close", "volume"),
            pl.Float64(),
            _amihud,
            _n,
            compute=_a_amihud,
        ),
        TemplateDef(
            "roll_spread",
            {"n": 288},
            ("ret_1",),
            pl.Float64(),
            _roll_spread,
            lambda p: int(p["n"]) + 2,
            compute=_a_roll_spread,
        ),
        TemplateDef(
            "spread_bps",
            {},
            ("bid", "ask"),
            pl.Float64(),
            _spread_bps,
            lambda p: 1,
            compute=_a_spread_bps,
        ),
        TemplateDef(
            "imbalance",
            {"n": 1},
            ("buy_volume", "sell_volume"),
            pl.Float64(),
            _imbalance,
            _n,
            compute=_a_imbalance,
        ),
        TemplateDef(
            "log_change",
            {"n": 1},
            ("open_interest",),
            pl.Float64(),
            _log_change,
            _n,
            compute=_a_log_change,
        ),
        TemplateDef(
            "ratio_to_rolling_sum",
            {"n": 288},
            ("open_interest", "volume"),
            pl.Float64(),
            _ratio_to_sum,
            _n,
            compute=_a_ratio_to_sum,
        ),
        TemplateDef(
            "liquidation_proxy",
            {},
            ("oi_change", "ret_1", "volume_z"),
            pl.Float64(),
            _liquidation_proxy,
            lambda p: 1,
            compute=_a_liquidation_proxy,
        ),
        TemplateDef(
            "trend_state",
            {"adx_min": 20.0},
            ("ema_20", "ema_100", "adx_14"),
            pl.String(),
            _trend_state,
            lambda p: 1,
            compute=_a_trend_state,
        ),
        TemplateDef(
            "weekday",
            {},
            ("ts",),
            pl.Int8(),
            _weekday,
            lambda p: 1,
            pit="bar_open",
            compute=_a_weekday,
        ),
        TemplateDef(
            "hour",
            {},
            ("ts",),
            pl.Int8(),
            _hour,
            lambda p: 1,
            pit="bar_open",
            compute=_a_hour,
        ),
        TemplateDef(
            "month_end",
            {},
            ("ts",),
            pl.Boolean(),
            _month_end,
            lambda p: 1,
            pit="bar_open",
            compute=_a_month_end,
        ),
        TemplateDef(
            "holiday",
            {"calendar": "XNYS"},
            ("ts",),
            pl.Boolean(),
            _holiday,
            lambda p: 1,
            pit="bar_open",
            check=_check_calendar,
            compute=_a_holiday,
        ),
    )
}


def _window_n(p: dict[str, Any]) -> int:
    return int(p["n"])


# Templates whose `lookback` (history they read, sized generously) exceeds the rows their first value needs: a
# rolling statistic over n rows exists from row n - 1, as pandas' rolling(n) has it.
_SPANS: dict[str, Callable[[dict[str, Any]], int]] = {
    **dict.fromkeys(
        ("realized_vol", "parkinson_vol", "pct_rank", "rolling_cv", "zscore", "amihud", "imbalance",
         "ratio_to_rolling_sum"),
        _window_n,
    ),  # fmt: skip
    "signed_run_length": lambda p: int(p["cap"]),
    "roll_spread": lambda p: int(p["n"]) + 1,
}
for _name, _span in _SPANS.items():
    FEATURE_TEMPLATES[_name] = replace(FEATURE_TEMPLATES[_name], span_fn=_span)
