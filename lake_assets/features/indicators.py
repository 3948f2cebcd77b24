"""The indicator catalogue: polars-expression builders over bar columns, plus the `INDICATORS` registry.

Every builder returns expressions over the canonical bar columns (`open`, `high`, `low`, `close`, `volume`) and is
strictly causal. Missing values (gap bars: null or NaN) are skipped inside windows rather than treated as zero; a
window needs `min_count(n)` present values. The heavy lifting runs in numba kernels (`kernels.py`) wrapped with
`map_batches`, so an expression must be evaluated on one instrument's bars in time order. Each entry also carries
an array implementation (`compute`) with the same arithmetic, which compute_features runs on numpy arrays with
intermediates (EMAs, true range, typical price, rolling extremes) shared across entries.

Recursive indicators (EMA, RSI, MACD, ATR, ADX, Keltner) have infinite memory; their `lookback` is the number of bars
after which the seed's weight drops below `EWM_TOLERANCE`, so a warm-up prefix of that length reproduces the
full-history value to ~1e-8 relative. Window indicators are reproduced exactly by a prefix of `n` bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from lake_assets.features import kernels as K
from lake_assets.features.arrays import MIN_FILL, Arrays, min_count
from lake_assets.vocabulary import CLOSE, HIGH, LOW, OPEN, VOLUME

__all__ = [
    "INDICATORS",
    "MIN_FILL",
    "IndicatorDef",
    "adx",
    "atr",
    "bollinger",
    "cci",
    "donchian",
    "ema",
    "keltner",
    "macd",
    "mfi",
    "min_count",
    "obv",
    "roc",
    "rsi",
    "sma",
    "stochastic",
    "williams_r",
]

EWM_TOLERANCE = 1e-8  # residual seed weight accepted when sizing the warm-up of recursive indicators


def ewm_lookback(alpha: float) -> int:
    """Bars until (1 - alpha)^L < EWM_TOLERANCE."""
    return int(math.ceil(math.log(EWM_TOLERANCE) / math.log(1.0 - alpha))) if alpha < 1.0 else 1


def _np(s: pl.Series) -> np.ndarray:
    return np.ascontiguousarray(s.cast(pl.Float64).to_numpy(writable=True), dtype=np.float64)


def _col(c: str | pl.Expr) -> pl.Expr:
    return pl.col(c) if isinstance(c, str) else c


def apply_kernel(fn: Callable[..., np.ndarray], cols: list[str | pl.Expr], *args: Any) -> pl.Expr:
    """Wrap a kernel taking float arrays (+ scalar args) as a Float64 expression (NaN marks missing results)."""
    exprs = [_col(c) for c in cols]

    def run(series: Sequence[pl.Series]) -> pl.Series:
        return pl.Series(fn(*[_np(s) for s in series], *args), dtype=pl.Float64)

    if len(exprs) == 1:
        return exprs[0].map_batches(lambda s: run([s]), return_dtype=pl.Float64)
    return pl.map_batches(exprs, run, return_dtype=pl.Float64)


def as_nan(e: pl.Expr) -> pl.Expr:
    """Missing as NaN so arithmetic and kernels see one marker."""
    return e.cast(pl.Float64).fill_null(float("nan"))


def _diff(e: pl.Expr, n: int = 1) -> pl.Expr:
    """e[t] - e[t-n] with NaN (not null) for the first rows, so kernels see one missing marker."""
    return e.diff(n).fill_null(float("nan"))


def safe_div(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return pl.when(b != 0).then(a / b).otherwise(float("nan"))


# --- window building blocks -------------------------------------------------------------------


def rolling_mean(x: str | pl.Expr, n: int) -> pl.Expr:
    return apply_kernel(K.rolling_mean, [x], n, min_count(n))


def rolling_sum(x: str | pl.Expr, n: int) -> pl.Expr:
    return apply_kernel(K.rolling_sum, [x], n, min_count(n))


def rolling_std(x: str | pl.Expr, n: int, ddof: int = 1) -> pl.Expr:
    return apply_kernel(K.rolling_std, [x], n, min_count(n), ddof)


def rolling_max(x: str | pl.Expr, n: int) -> pl.Expr:
    return apply_kernel(K.rolling_max, [x], n, min_count(n))


def rolling_min(x: str | pl.Expr, n: int) -> pl.Expr:
    return apply_kernel(K.rolling_min, [x], n, min_count(n))


def rolling_zscore(x: str | pl.Expr, n: int) -> pl.Expr:
    return apply_kernel(K.rolling_zscore, [x], n, min_count(n))


def ewm(x: str | pl.Expr, alpha: float, min_obs: int) -> pl.Expr:
    return apply_kernel(K.ewm, [x], alpha, min_obs)


# --- numpy implementations (one call computes all outputs, sharing intermediates) -------------

_NAN = np.nan


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return K.safe_div(a, b)


def _ratio_index(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """100 * up / (up + down); 50 when both are zero (no movement), NaN when undefined."""
    return K.ratio_index(up, down)


def _gain_loss(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return K.gain_loss(x)  # type: ignore[no-any-return]


def rsi_np(x: np.ndarray, n: int) -> np.ndarray:
    gain, loss = _gain_loss(x)
    return _ratio_index(K.ewm(gain, 1.0 / n, n), K.ewm(loss, 1.0 / n, n))


def ema_np(x: np.ndarray, n: int) -> np.ndarray:
    return K.ewm(x, 2.0 / (n + 1.0), n)


def macd_np(x: np.ndarray, fast: int, slow: int, signal: int) -> dict[str, np.ndarray]:
    line = ema_np(x, fast) - ema_np(x, slow)
    sig = K.ewm(line, 2.0 / (signal + 1.0), signal)
    return {"macd": line, "signal": sig, "hist": line - sig}


def bollinger_np(x: np.ndarray, n: int, k: float) -> dict[str, np.ndarray]:
    return _bands(x, K.rolling_mean(x, n, min_count(n)), K.rolling_std(x, n, min_count(n), 0), k)


def _bands(x: np.ndarray, mid: np.ndarray, sd: np.ndarray, k: float) -> dict[str, np.ndarray]:
    upper, lower, pctb, width = K.bands(x, mid, sd, k)
    return {"mid": mid, "upper": upper, "lower": lower, "pctb": pctb, "width": width}


def atr_np(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    return K.ewm(K.true_range(h, lo, c), 1.0 / n, n)


def stochastic_np(h: np.ndarray, lo: np.ndarray, c: np.ndarray, k: int, d: int) -> dict[str, np.ndarray]:
    return _stoch(c, K.rolling_max(h, k, min_count(k)), K.rolling_min(lo, k, min_count(k)), d)


def _stoch(c: np.ndarray, hh: np.ndarray, ll: np.ndarray, d: int) -> dict[str, np.ndarray]:
    pk = K.channel_position(c, hh, ll, 100.0, False)
    return {"k": pk, "d": K.rolling_mean(pk, d, min_count(d))}


def _typical(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    return K.typical_price(h, lo, c)  # type: ignore[no-any-return]


def cci_np(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    tp = _typical(h, lo, c)
    return _cci(tp, K.rolling_mean(tp, n, min_count(n)), n)


def _cci(tp: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    return K.cci_value(tp, mean, K.mean_abs_dev_about(tp, mean, n, min_count(n)))  # type: ignore[no-any-return]


def _signed_volume(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    return K.signed_by_change(c, v)  # type: ignore[no-any-return]


def obv_np(c: np.ndarray, v: np.ndarray, n: int | None) -> np.ndarray:
    signed = _signed_volume(c, v)
    return K.nan_cumsum(signed) if n is None else K.rolling_sum(signed, n, min_count(n))


def _money_flows(tp: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return K.money_flows(tp, v)  # type: ignore[no-any-return]


def mfi_np(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    pos, neg = _money_flows(_typical(h, lo, c), v)
    return _ratio_index(K.rolling_sum(pos, n, min_count(n)), K.rolling_sum(neg, n, min_count(n)))


def williams_r_np(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    return _willr(c, K.rolling_max(h, n, min_count(n)), K.rolling_min(lo, n, min_count(n)))


def _willr(c: np.ndarray, hh: np.ndarray, ll: np.ndarray) -> np.ndarray:
    return K.channel_position(c, hh, ll, -100.0, True)


def roc_np(x: np.ndarray, n: int) -> np.ndarray:
    return K.rate_of_change(x, n)  # type: ignore[no-any-return]


def donchian_np(h: np.ndarray, lo: np.ndarray, n: int) -> dict[str, np.ndarray]:
    hh, ll = K.rolling_max(h, n, min_count(n)), K.rolling_min(lo, n, min_count(n))
    return {"upper": hh, "lower": ll, "mid": (hh + ll) / 2.0}


def keltner_np(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int, k: float) -> dict[str, np.ndarray]:
    return _keltner(ema_np(c, n), atr_np(h, lo, c, n), k)


def _keltner(mid: np.ndarray, a: np.ndarray, k: float) -> dict[str, np.ndarray]:
    upper, lower = K.offset_band(mid, a, k)
    return {"mid": mid, "upper": upper, "lower": lower}


def multi_kernel(fn: Callable[..., dict[str, np.ndarray]], cols: list[str | pl.Expr], *args: Any) -> pl.Expr:
    """One UDF call returning a Struct of all outputs (polars does not de-duplicate UDF calls across outputs)."""
    exprs = [_col(c) for c in cols]

    def run(series: Sequence[pl.Series]) -> pl.Series:
        out = fn(*[_np(s) for s in series], *args)
        return pl.DataFrame({k: pl.Series(v, dtype=pl.Float64) for k, v in out.items()}).to_struct("out")

    return pl.map_batches(exprs, run)


def _fields(struct: pl.Expr, names: tuple[str, ...]) -> dict[str, pl.Expr]:
    return {n: struct.struct.field(n) for n in names}


# --- array implementations (what compute_features runs) ---------------------------------------------------------
# Same arithmetic as the *_np functions above, with shared intermediates (EMAs, true range, typical price, rolling
# extremes and moments) taken from `Arrays`, which computes each once per instrument and batches windows.


def _a_tr(a: Arrays) -> str:
    return a.derived("__tr", lambda: K.true_range(a.x(HIGH), a.x(LOW), a.x(CLOSE)))


def _a_tp(a: Arrays) -> str:
    return a.derived("__tp", lambda: _typical(a.x(HIGH), a.x(LOW), a.x(CLOSE)))


def _a_sma(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"value": a.rolling_mean(p["col"], p["n"])}


def _a_ema(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"value": a.ema(p["col"], p["n"])}


def _a_rsi(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    col, n = p["col"], p["n"]
    gain = a.derived(f"__gain:{col}", lambda: _gain_loss(a.x(col))[0])
    loss = a.derived(f"__loss:{col}", lambda: _gain_loss(a.x(col))[1])
    return {"value": _ratio_index(a.ewm(gain, 1.0 / n, n), a.ewm(loss, 1.0 / n, n))}


def _a_macd(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    fast, slow = a.ema(p["col"], p["fast"]), a.ema(p["col"], p["slow"])
    line, sig, hist = K.macd_lines(fast, slow, 2.0 / (p["signal"] + 1.0), p["signal"])
    return {"macd": line, "signal": sig, "hist": hist}


def _a_bollinger(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    col, n = p["col"], p["n"]
    return _bands(a.x(col), a.rolling_mean(col, n), a.std(col, n, 0), float(p["k"]))


def _a_atr(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"value": a.ewm(_a_tr(a), 1.0 / p["n"], p["n"])}


def _a_stochastic(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    return _stoch(a.x(CLOSE), a.rolling_max(HIGH, p["k"]), a.rolling_min(LOW, p["k"]), p["d"])


def _a_adx(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    n = p["n"]

    def parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pdm, mdm = K.directional_movement(a.x(HIGH), a.x(LOW))
        return pdm, mdm, K.missing_where(pdm, a.x(_a_tr(a)))

    pdm = a.derived("__pdm", lambda: parts()[0])
    mdm = a.derived("__mdm", lambda: parts()[1])
    tr = a.derived("__tr_dm", lambda: parts()[2])
    alpha = 1.0 / n
    dx = K.directional_index(a.ewm(tr, alpha, n), a.ewm(pdm, alpha, n), a.ewm(mdm, alpha, n))
    return {"value": K.ewm(dx, alpha, n)}


def _a_cci(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    tp = _a_tp(a)
    return {"value": _cci(a.x(tp), a.rolling_mean(tp, p["n"]), p["n"])}


def _a_obv(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    if p["n"] is None:
        return {"value": obv_np(a.x(CLOSE), a.x(VOLUME), None)}
    signed = a.derived("__signed_volume", lambda: _signed_volume(a.x(CLOSE), a.x(VOLUME)))
    return {"value": a.rolling_sum(signed, p["n"])}


def _a_mfi(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    pos = a.derived("__mf_pos", lambda: _money_flows(a.x(_a_tp(a)), a.x(VOLUME))[0])
    neg = a.derived("__mf_neg", lambda: _money_flows(a.x(_a_tp(a)), a.x(VOLUME))[1])
    return {"value": _ratio_index(a.rolling_sum(pos, p["n"]), a.rolling_sum(neg, p["n"]))}


def _a_williams_r(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"value": _willr(a.x(CLOSE), a.rolling_max(HIGH, p["n"]), a.rolling_min(LOW, p["n"]))}


def _a_roc(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    return {"value": roc_np(a.x(p["col"]), p["n"])}


def _a_donchian(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    hh, ll = a.rolling_max(HIGH, p["n"]), a.rolling_min(LOW, p["n"])
    return {"upper": hh, "lower": ll, "mid": K.midpoint(hh, ll)}


def _a_keltner(a: Arrays, p: dict[str, Any]) -> dict[str, np.ndarray]:
    n = p["n"]
    return _keltner(a.ema(CLOSE, n), a.ewm(_a_tr(a), 1.0 / n, n), float(p["k"]))


# --- the catalogue (expression builders) ------------------------------------------------------


def sma(col: str, n: int) -> pl.Expr:
    """Simple moving average over the last n bars."""
    return rolling_mean(col, n)


def ema(col: str, n: int) -> pl.Expr:
    """Exponential moving average with span n (alpha = 2/(n+1)), seeded with the first value, null for n bars."""
    return apply_kernel(ema_np, [col], n)


def rsi(col: str, n: int) -> pl.Expr:
    """Wilder's RSI in [0, 100]; 50 when the window has no movement."""
    return apply_kernel(rsi_np, [col], n)


def macd(col: str, fast: int, slow: int, signal: int) -> dict[str, pl.Expr]:
    """MACD line (EMA fast - EMA slow), its signal EMA and the histogram."""
    return _fields(multi_kernel(macd_np, [col], fast, slow, signal), ("macd", "signal", "hist"))


def bollinger(col: str, n: int, k: float) -> dict[str, pl.Expr]:
    """Bollinger bands (population std, as in Bollinger's definition), %B and relative width."""
    return _fields(multi_kernel(bollinger_np, [col], n, float(k)), ("mid", "upper", "lower", "pctb", "width"))


def atr(n: int) -> pl.Expr:
    """Wilder's average true range."""
    return apply_kernel(atr_np, [HIGH, LOW, CLOSE], n)


def stochastic(k: int, d: int) -> dict[str, pl.Expr]:
    """Fast stochastic %K over k bars and its d-bar SMA %D, in [0, 100]."""
    return _fields(multi_kernel(stochastic_np, [HIGH, LOW, CLOSE], k, d), ("k", "d"))


def adx(n: int) -> pl.Expr:
    """Wilder's average directional index in [0, 100]."""
    return apply_kernel(K.adx, [HIGH, LOW, CLOSE], n)


def cci(n: int) -> pl.Expr:
    """Commodity channel index: (TP - SMA(TP)) / (0.015 * mean absolute deviation of TP)."""
    return apply_kernel(cci_np, [HIGH, LOW, CLOSE], n)


def obv(n: int | None = None) -> pl.Expr:
    """On-balance volume: signed volume summed over the last n bars (cumulative from the frame start if n is None)."""
    return apply_kernel(obv_np, [CLOSE, VOLUME], n)


def mfi(n: int) -> pl.Expr:
    """Money flow index in [0, 100]: volume-weighted RSI of the typical price."""
    return apply_kernel(mfi_np, [HIGH, LOW, CLOSE, VOLUME], n)


def williams_r(n: int) -> pl.Expr:
    """Williams %R in [-100, 0]."""
    return apply_kernel(williams_r_np, [HIGH, LOW, CLOSE], n)


def roc(col: str, n: int) -> pl.Expr:
    """Rate of change in percent over n bars (missing if either end is a gap)."""
    return apply_kernel(roc_np, [col], n)


def donchian(n: int) -> dict[str, pl.Expr]:
    """Donchian channel over the last n bars (including the current one, known at its close)."""
    return _fields(multi_kernel(donchian_np, [HIGH, LOW], n), ("upper", "lower", "mid"))


def keltner(n: int, k: float) -> dict[str, pl.Expr]:
    """Keltner channel: EMA(close, n) +- k * ATR(n)."""
    return _fields(multi_kernel(keltner_np, [HIGH, LOW, CLOSE], n, float(k)), ("mid", "upper", "lower"))


# --- registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndicatorDef:
    """One catalogue entry: parameters (None default = required), outputs, bar inputs and warm-up length."""

    name: str
    prefix: str  # lower-case column prefix (`bb` for BBANDS)
    params: Mapping[str, Any]
    outputs: tuple[str, ...]  # one output -> column `<prefix>_<params>`; several -> `<prefix>_<params>_<output>`
    inputs: tuple[str, ...]  # bar columns read (`col` param adds its column)
    builder: Callable[[dict[str, Any]], dict[str, pl.Expr]]
    lookback_fn: Callable[[dict[str, Any]], int]
    check: Callable[[dict[str, Any]], str | None] = lambda p: None
    # array implementation used by compute_features (None: it evaluates `builder`'s expressions instead)
    compute: Callable[[Arrays, dict[str, Any]], dict[str, np.ndarray]] | None = None
    recursive: bool = False  # EWM-based: the kernel's own first value (TA-Lib's) starts it, not a window mask

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in; raises KeyError/ValueError with a readable problem."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise KeyError(f"unknown parameter(s) {unknown} for {self.name}; expected {sorted(self.params)}")
        out = {**self.params, **given}
        missing = sorted(k for k, v in out.items() if v is None and k != "col")
        if missing and not (self.name == "OBV" and missing == ["n"]):
            raise KeyError(f"missing parameter(s) {missing} for {self.name}")
        for key, v in out.items():
            if key == "col":
                if not isinstance(v, str):
                    raise ValueError(f"{self.name}.col must be a column name, got {v!r}")
            elif v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
                raise ValueError(f"{self.name}.{key} must be a positive number, got {v!r}")
            elif key != "k" and v is not None and not isinstance(v, int):
                raise ValueError(f"{self.name}.{key} must be an integer number of bars, got {v!r}")
        problem = self.check(out)
        if problem:
            raise ValueError(problem)
        return out

    def build(self, params: dict[str, Any]) -> dict[str, pl.Expr]:
        return self.builder(self.resolve(params))

    def lookback(self, params: dict[str, Any]) -> int:
        return self.lookback_fn(self.resolve(params))

    def span(self, params: dict[str, Any]) -> int:
        """Rows (current included) a window indicator needs before its first value: its lookback; 1 for a recursive
        one, whose kernel already waits for its first n observations as TA-Lib does."""
        return 1 if self.recursive else self.lookback(params)

    def input_columns(self, params: dict[str, Any]) -> tuple[str, ...]:
        p = self.resolve(params)
        return (*self.inputs, p["col"]) if "col" in p else self.inputs


def _ema_lb(n: int) -> int:
    return ewm_lookback(2.0 / (n + 1.0))


def _wilder_lb(n: int) -> int:
    return ewm_lookback(1.0 / n) + n


def _obv_lb(p: dict[str, Any]) -> int:
    if p["n"] is None:
        raise ValueError("OBV without `n` is cumulative from the first bar (unbounded lookback); set params.n")
    return int(p["n"]) + 1


INDICATORS: dict[str, IndicatorDef] = {
    d.name: d
    for d in (
        IndicatorDef(
            "SMA",
            "sma",
            {"col": CLOSE, "n": None},
            ("value",),
            (),
            lambda p: {"value": sma(p["col"], p["n"])},
            lambda p: p["n"],
            compute=_a_sma,
        ),
        IndicatorDef(
            "EMA",
            "ema",
            {"col": CLOSE, "n": None},
            ("value",),
            (),
            lambda p: {"value": ema(p["col"], p["n"])},
            lambda p: _ema_lb(p["n"]),
            compute=_a_ema,
            recursive=True,
        ),
        IndicatorDef(
            "RSI",
            "rsi",
            {"col": CLOSE, "n": 14},
            ("value",),
            (),
            lambda p: {"value": rsi(p["col"], p["n"])},
            lambda p: _wilder_lb(p["n"]) + 1,
            compute=_a_rsi,
            recursive=True,
        ),
        IndicatorDef(
            "MACD",
            "macd",
            {"col": CLOSE, "fast": 12, "slow": 26, "signal": 9},
            ("macd", "signal", "hist"),
            (),
            lambda p: macd(p["col"], p["fast"], p["slow"], p["signal"]),
            lambda p: _ema_lb(p["slow"]) + _ema_lb(p["signal"]),
            lambda p: None if p["fast"] < p["slow"] else "MACD.fast must be smaller than MACD.slow",
            compute=_a_macd,
            recursive=True,
        ),
        IndicatorDef(
            "BBANDS",
            "bb",
            {"col": CLOSE, "n": 20, "k": 2.0},
            ("mid", "upper", "lower", "pctb", "width"),
            (),
            lambda p: bollinger(p["col"], p["n"], p["k"]),
            lambda p: p["n"],
            compute=_a_bollinger,
        ),
        IndicatorDef(
            "ATR",
            "atr",
            {"n": 14},
            ("value",),
            (HIGH, LOW, CLOSE),
            lambda p: {"value": atr(p["n"])},
            lambda p: _wilder_lb(p["n"]) + 1,
            compute=_a_atr,
            recursive=True,
        ),
        IndicatorDef(
            "STOCH",
            "stoch",
            {"k": 14, "d": 3},
            ("k", "d"),
            (HIGH, LOW, CLOSE),
            lambda p: stochastic(p["k"], p["d"]),
            lambda p: p["k"] + p["d"],
            lambda p: None if isinstance(p["k"], int) else "STOCH.k must be an integer number of bars",
            compute=_a_stochastic,
        ),
        IndicatorDef(
            "ADX",
            "adx",
            {"n": 14},
            ("value",),
            (HIGH, LOW, CLOSE),
            lambda p: {"value": adx(p["n"])},
            lambda p: 2 * _wilder_lb(p["n"]) + 1,
            compute=_a_adx,
            recursive=True,
        ),
        IndicatorDef(
            "CCI",
            "cci",
            {"n": 20},
            ("value",),
            (HIGH, LOW, CLOSE),
            lambda p: {"value": cci(p["n"])},
            lambda p: p["n"],
            compute=_a_cci,
        ),
        IndicatorDef(
            "OBV",
            "obv",
            {"n": None},
            ("value",),
            (CLOSE, VOLUME),
            lambda p: {"value": obv(p["n"])},
            _obv_lb,
            compute=_a_obv,
        ),
        IndicatorDef(
            "MFI",
            "mfi",
            {"n": 14},
            ("value",),
            (HIGH, LOW, CLOSE, VOLUME),
            lambda p: {"value": mfi(p["n"])},
            lambda p: p["n"] + 1,
            compute=_a_mfi,
        ),
        IndicatorDef(
            "WILLR",
            "willr",
            {"n": 14},
            ("value",),
            (HIGH, LOW, CLOSE),
            lambda p: {"value": williams_r(p["n"])},
            lambda p: p["n"],
            compute=_a_williams_r,
        ),
        IndicatorDef(
            "ROC",
            "roc",
            {"col": CLOSE, "n": None},
            ("value",),
            (),
            lambda p: {"value": roc(p["col"], p["n"])},
            lambda p: p["n"] + 1,
            compute=_a_roc,
        ),
        IndicatorDef(
            "DONCHIAN",
            "donchian",
            {"n": 20},
            ("upper", "lower", "mid"),
            (HIGH, LOW),
            lambda p: donchian(p["n"]),
            lambda p: p["n"],
            compute=_a_donchian,
        ),
        IndicatorDef(
            "KELTNER",
            "keltner",
            {"n": 20, "k": 2.0},
            ("mid", "upper", "lower"),
            (HIGH, LOW, CLOSE),
            lambda p: keltner(p["n"], p["k"]),
            lambda p: _wilder_lb(p["n"]) + 1,
            compute=_a_keltner,
            recursive=True,
        ),
    )
}

BAR_PRICE_COLUMNS = (OPEN, HIGH, LOW, CLOSE)
