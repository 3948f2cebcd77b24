"""Indicators and kernels against straightforward pandas / numpy-loop reference computations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy.stats import percentileofscore

from lake_assets.features import indicators as ind
from lake_assets.features import kernels as K


@pytest.fixture(scope="module")
def ohlc(make_bars: Callable[..., pl.DataFrame]) -> pl.DataFrame:
    return make_bars(600, seed=3, gaps=(100, 101, 300))


def _eval(df: pl.DataFrame, expr: pl.Expr) -> np.ndarray:
    return df.select(expr.alias("x")).to_series().cast(pl.Float64).fill_null(np.nan).to_numpy()


def _np(df: pl.DataFrame, col: str) -> np.ndarray:
    return df[col].cast(pl.Float64).fill_null(np.nan).to_numpy()


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> None:
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=rtol, atol=1e-12)


def test_registry_has_the_contract_names() -> None:
    expected = {
        "RSI",
        "SMA",
        "EMA",
        "MACD",
        "BBANDS",
        "ATR",
        "STOCH",
        "ADX",
        "CCI",
        "OBV",
        "MFI",
        "WILLR",
        "ROC",
        "DONCHIAN",
        "KELTNER",
    }
    assert expected <= set(ind.INDICATORS)
    assert ind.INDICATORS["MACD"].outputs == ("macd", "signal", "hist")
    assert ind.INDICATORS["BBANDS"].outputs == ("mid", "upper", "lower", "pctb", "width")
    with pytest.raises(KeyError, match="missing parameter"):
        ind.INDICATORS["SMA"].build({})
    with pytest.raises(KeyError, match="unknown parameter"):
        ind.INDICATORS["RSI"].build({"window": 3})
    with pytest.raises(ValueError, match="fast must be smaller"):
        ind.INDICATORS["MACD"].build({"fast": 30, "slow": 26})


def test_sma_and_bollinger_match_pandas_rolling(ohlc: pl.DataFrame) -> None:
    c = pd.Series(_np(ohlc, "close"))
    _close(_eval(ohlc, ind.sma("close", 20)), c.rolling(20, min_periods=10).mean().to_numpy())
    bb = ind.bollinger("close", 20, 2.0)
    sd = c.rolling(20, min_periods=10).std(ddof=0)
    mid = c.rolling(20, min_periods=10).mean()
    _close(_eval(ohlc, bb["upper"]), (mid + 2 * sd).to_numpy(), rtol=1e-7)
    pctb = ((c - (mid - 2 * sd)) / (4 * sd)).to_numpy()
    _close(_eval(ohlc, bb["pctb"]), pctb, rtol=1e-6)


def test_ema_matches_pandas_ewm_ignoring_gaps(ohlc: pl.DataFrame) -> None:
    c = pd.Series(_np(ohlc, "close"))
    ref = c.ewm(span=10, adjust=False, ignore_na=True, min_periods=10).mean().to_numpy().copy()
    ref[np.isnan(c.to_numpy())] = np.nan  # ours stays missing on gap rows instead of carrying the last value
    _close(_eval(ohlc, ind.ema("close", 10)), ref)


def _wilder(x: np.ndarray, n: int) -> np.ndarray:
    out, y, cnt = np.full(len(x), np.nan), 0.0, 0
    for i, v in enumerate(x):
        if np.isnan(v):
            continue
        y = v if cnt == 0 else y + (v - y) / n
        cnt += 1
        out[i] = y if cnt >= n else np.nan
    return out


def test_rsi_and_atr_match_loops(ohlc: pl.DataFrame) -> None:
    c, h, lo = _np(ohlc, "close"), _np(ohlc, "high"), _np(ohlc, "low")
    d = np.concatenate([[np.nan], np.diff(c)])
    g, loss = (
        _wilder(np.where(np.isnan(d), np.nan, np.maximum(d, 0)), 14),
        _wilder(np.where(np.isnan(d), np.nan, np.maximum(-d, 0)), 14),
    )
    _close(_eval(ohlc, ind.rsi("close", 14)), 100 * g / (g + loss))
    tr = np.array(
        [
            h[i] - lo[i]
            if i == 0 or np.isnan(c[i - 1])
            else max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))
            for i in range(len(c))
        ]
    )
    _close(_eval(ohlc, ind.atr(14)), _wilder(tr, 14))


def test_channel_oscillators_match_pandas(ohlc: pl.DataFrame) -> None:
    c, h, lo = (pd.Series(_np(ohlc, k)) for k in ("close", "high", "low"))
    hh, ll = h.rolling(14, min_periods=7).max(), lo.rolling(14, min_periods=7).min()
    st = ind.stochastic(14, 3)
    k = 100 * (c - ll) / (hh - ll)
    _close(_eval(ohlc, st["k"]), k.to_numpy())
    _close(_eval(ohlc, st["d"]), k.rolling(3, min_periods=2).mean().to_numpy())
    _close(_eval(ohlc, ind.williams_r(14)), (-100 * (hh - c) / (hh - ll)).to_numpy())
    dc = ind.donchian(20)
    _close(_eval(ohlc, dc["upper"]), h.rolling(20, min_periods=10).max().to_numpy())
    _close(_eval(ohlc, dc["lower"]), lo.rolling(20, min_periods=10).min().to_numpy())
    _close(_eval(ohlc, ind.roc("close", 12)), (100 * (c / c.shift(12) - 1)).to_numpy())


def test_cci_mfi_obv_match_loops(ohlc: pl.DataFrame) -> None:
    c, h, lo, v = (_np(ohlc, k) for k in ("close", "high", "low", "volume"))
    tp = (h + lo + c) / 3
    n = 20
    ref = np.full(len(tp), np.nan)
    for i in range(len(tp)):
        w = tp[max(0, i - n + 1) : i + 1]
        w = w[~np.isnan(w)]
        if len(w) >= 10 and not np.isnan(tp[i]):
            ref[i] = (tp[i] - w.mean()) / (0.015 * np.abs(w - w.mean()).mean())
    _close(_eval(ohlc, ind.cci(n)), ref, rtol=1e-7)
    mf = tp * v
    pos = np.full(len(tp), np.nan)
    neg = np.full(len(tp), np.nan)
    for i in range(1, len(tp)):
        if not (np.isnan(tp[i]) or np.isnan(tp[i - 1])):
            pos[i], neg[i] = (mf[i] if tp[i] > tp[i - 1] else 0.0), (mf[i] if tp[i] < tp[i - 1] else 0.0)
    ps = pd.Series(pos).rolling(14, min_periods=7).sum().to_numpy()
    ns = pd.Series(neg).rolling(14, min_periods=7).sum().to_numpy()
    _close(_eval(ohlc, ind.mfi(14)), 100 * ps / (ps + ns), rtol=1e-7)
    signed = np.sign(np.concatenate([[np.nan], np.diff(c)])) * v
    _close(_eval(ohlc, ind.obv(50)), pd.Series(signed).rolling(50, min_periods=25).sum().to_numpy(), rtol=1e-7)


def test_adx_matches_pandas_wilder_reference(make_bars: Callable[..., pl.DataFrame], ohlc: pl.DataFrame) -> None:
    df = make_bars(400, seed=5, gaps=())  # classic ADX reference without gaps
    h, lo, c = (_np(df, k) for k in ("high", "low", "close"))
    up, down = np.diff(h, prepend=np.nan), -np.diff(lo, prepend=np.nan)
    pdm = np.where((up > down) & (up > 0), up, 0.0)
    mdm = np.where((down > up) & (down > 0), down, 0.0)
    pdm[0] = mdm[0] = np.nan
    tr = np.maximum.reduce([h - lo, np.abs(h - np.roll(c, 1)), np.abs(lo - np.roll(c, 1))])
    tr[0] = np.nan
    n = 14
    atr_, sp, sm = _wilder(tr, n), _wilder(pdm, n), _wilder(mdm, n)
    dx = 100 * np.abs(sp - sm) / (sp + sm)
    _close(_eval(df, ind.adx(n)), _wilder(dx, n), rtol=1e-7)
    assert np.nanmin(atr_) > 0


def test_macd_is_ema_difference(ohlc: pl.DataFrame) -> None:
    m = ind.macd("close", 12, 26, 9)
    line = _eval(ohlc, ind.ema("close", 12)) - _eval(ohlc, ind.ema("close", 26))
    _close(_eval(ohlc, m["macd"]), line)
    _close(_eval(ohlc, m["hist"]), line - _eval(ohlc, m["signal"]))


def test_rolling_pct_rank_matches_scipy_weak_percentile() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=400), 1)  # rounding creates ties
    x[[5, 50, 51]] = np.nan
    got = K.rolling_pct_rank(x, 30, 15)
    for i in range(len(x)):
        w = x[max(0, i - 29) : i + 1]
        w = w[~np.isnan(w)]
        if np.isnan(x[i]) or len(w) < 15:
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(percentileofscore(w, x[i], kind="weak") / 100)


@pytest.mark.parametrize("kind", ["normal", "ties", "specials", "narrow"])
def test_sort_ranks_match_a_comparison_sort(kind: str) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    x = {
        "normal": rng.normal(size=n),
        "ties": rng.integers(-5, 5, size=n).astype(float),
        "specials": rng.choice([-0.0, 0.0, np.inf, -np.inf, 5e-324, -5e-324, 1.0, -1.0], size=n),
        "narrow": 0.5 + np.abs(rng.normal(size=n)) * 1e-12,  # keys differ in their low bits: the argsort fallback
    }[kind]
    x[rng.random(n) < 0.1] = np.nan
    ordinal, last, present = K._sort_ranks(x)
    have = ~np.isnan(x)
    vals = x[have]
    assert present == have.sum()
    assert np.array_equal(ordinal[~have], np.full((~have).sum(), -1)) and np.array_equal(last[~have], ordinal[~have])
    np.testing.assert_array_equal(np.sort(ordinal[have]), np.arange(present))  # a permutation of the positions
    sorted_vals = np.empty(present)
    sorted_vals[ordinal[have]] = vals
    assert np.all(sorted_vals[1:] >= sorted_vals[:-1])  # positions follow the values' order
    # last = (number of values <= x) - 1, -0.0 equal to 0.0
    np.testing.assert_array_equal(last[have], np.searchsorted(np.sort(vals), vals, side="right") - 1)
    assert K._sort_ranks(np.empty(0))[2] == 0


@pytest.mark.parametrize("run", [2, 40, 500])
def test_packed_key_sort_orders_values_that_differ_only_in_low_bits(run: int) -> None:
    """The packed sort drops each key's low bits for the row index: rows whose values differ only there are put in
    key order afterwards (short runs), or the ranks fall back to numpy's argsort of the keys (long runs)."""
    rng = np.random.default_rng(run)
    base = rng.normal(size=3000)
    x = base.copy()
    x[: run * 3] = 1.5 + np.repeat(np.arange(3.0), run)  # three runs of `run` values a few ulps apart
    x[: run * 3] += rng.integers(0, 1000, size=run * 3) * np.spacing(x[: run * 3])
    rng.shuffle(x)
    keys = K._order_keys(x)
    _, order, ok, _ = K._packed_order(keys)
    assert ok == (run <= K._RUN_MAX)
    if ok:
        np.testing.assert_array_equal(np.sort(order), np.arange(len(x)))
        np.testing.assert_array_equal(keys[order], np.sort(keys))
    ordinal, last, present = K._sort_ranks(x)  # either path: positions follow the values, ties share a last one
    sorted_vals = np.empty(present)
    sorted_vals[ordinal] = x
    assert present == len(x) and np.all(sorted_vals[1:] >= sorted_vals[:-1])
    np.testing.assert_array_equal(last, np.searchsorted(np.sort(x), x, side="right") - 1)


@pytest.mark.parametrize("n", [1, 7, 64, 300])
def test_rolling_pct_rank_matches_a_direct_window_count_with_ties_and_gaps(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.round(rng.normal(size=2000), 1)  # heavy ties
    x[rng.random(x.size) < 0.15] = np.nan
    x[100:180] = np.nan  # a stretch with nothing present
    mins = max(1, n // 2)
    got = K.rolling_pct_rank(x, n, mins)
    for i in range(x.size):
        w = x[max(0, i - n + 1) : i + 1]
        w = w[~np.isnan(w)]
        want = np.nan if np.isnan(x[i]) or w.size < mins else (w <= x[i]).sum() / w.size
        assert got[i] == want or (np.isnan(got[i]) and np.isnan(want)), i


def test_sliding_welford_std_stays_exact_over_long_windows_of_a_trending_price() -> None:
    rng = np.random.default_rng(3)
    price = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.002, 60_000)))
    price[rng.random(price.size) < 0.01] = np.nan
    n = 8640
    got = K.rolling_std(price, n, n // 2, 1)
    for i in rng.integers(n, price.size, 40):
        w = price[i - n + 1 : i + 1]
        assert got[i] == pytest.approx(np.nanstd(w, ddof=1), rel=1e-9)


def test_rolling_sums_and_means_match_direct_window_sums_after_a_long_history() -> None:
    """The sliding sum (one addition of the entering-minus-leaving difference per row) and the mean as sum times the
    held reciprocal of the count stay within float rounding of a fresh sum of each window, 200k rows in, through
    gaps, an emptied window (the sum restarts at 0) and partial windows below and above min_count."""
    rng = np.random.default_rng(9)
    x = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.002, 200_000)))
    x[rng.random(x.size) < 0.02] = np.nan
    x[150_000:150_040] = np.nan  # longer than the 20-row window: it empties
    for n, mins in ((20, 10), (288, 144)):
        sums, means = K.rolling_sum(x, n, mins), K.rolling_mean(x, n, mins)
        fused = K.rolling_sum_multi(x, np.array([n, n]), np.array([mins, mins]), np.array([False, True]))
        np.testing.assert_array_equal(fused[0], sums)
        np.testing.assert_array_equal(fused[1], means)
        rows = np.r_[np.arange(n + 5), rng.integers(n, x.size, 300), np.arange(150_000, 150_000 + n + 45)]
        for i in rows:
            w = x[max(0, i - n + 1) : i + 1]
            w = w[~np.isnan(w)]
            if w.size < mins:
                assert np.isnan(sums[i]) and np.isnan(means[i]), i
                continue
            assert sums[i] == pytest.approx(w.sum(), rel=1e-12), i
            assert means[i] == pytest.approx(w.mean(), rel=1e-12), i


def test_a_series_against_itself_has_correlation_and_beta_exactly_one() -> None:
    rng = np.random.default_rng(4)
    x = np.cumsum(rng.normal(0, 1e-3, 5000)) * 1e-2  # small returns-like values
    x[rng.random(x.size) < 0.05] = np.nan
    corr, beta = K.rolling_corr_beta(x, x, 288, 144)
    assert np.array_equal(K.rolling_corr(x, x, 288, 144), corr, equal_nan=True)
    assert np.all(corr[~np.isnan(corr)] == 1.0) and np.all(beta[~np.isnan(beta)] == 1.0)
    assert (~np.isnan(corr)).sum() > 4000


def test_rolling_cov_corr_and_extremes_match_pandas() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=500), rng.normal(size=500)
    x[[10, 11, 200]] = np.nan
    y[[50, 300]] = np.nan
    both = ~(np.isnan(x) | np.isnan(y))
    xs, ys = pd.Series(np.where(both, x, np.nan)), pd.Series(np.where(both, y, np.nan))
    _close(K.rolling_cov(x, y, 40, 20, 1), xs.rolling(40, min_periods=20).cov(ys).to_numpy(), rtol=1e-8)
    _close(K.rolling_corr(x, y, 40, 20), xs.rolling(40, min_periods=20).corr(ys).to_numpy(), rtol=1e-8)
    beta_ref = (xs.rolling(40, min_periods=20).cov(ys) / ys.rolling(40, min_periods=20).var()).to_numpy()
    _close(K.rolling_corr_beta(x, y, 40, 20)[1], beta_ref, rtol=1e-8)
    s = pd.Series(x)
    _close(K.rolling_max(x, 25, 5), s.rolling(25, min_periods=5).max().to_numpy())
    _close(K.rolling_min(x, 25, 5), s.rolling(25, min_periods=5).min().to_numpy())
    _close(K.rolling_std(x, 25, 5, 1), s.rolling(25, min_periods=5).std().to_numpy(), rtol=1e-8)


@pytest.mark.parametrize("ns", [[1, 14, 55], [1, 14, 55, 700, 3000]])
def test_rolling_extremes_across_tiles_match_pandas(ns: list[int]) -> None:
    """The sparse table is built in tiles (2048 rows for short windows, 4x the longest window otherwise) that re-read
    the longest window's rows before them: every window matches pandas across tile boundaries, with gaps around
    rows 4096 and 12000 (boundaries of the two window sets)."""
    rng = np.random.default_rng(12)
    x = np.cumsum(rng.normal(size=30_000))
    x[rng.random(x.size) < 0.03] = np.nan
    x[4090:4200] = np.nan
    x[11_990:12_100] = np.nan
    windows = np.array(ns)
    mins = np.maximum(windows // 2, 1)
    s = pd.Series(x)
    for sign in (1.0, -1.0):
        out = K.rolling_extreme_multi(x, windows, mins, sign)
        for k, n in enumerate(ns):
            roll = s.rolling(n, min_periods=int(mins[k]))
            _close(out[k], (roll.max() if sign > 0 else roll.min()).to_numpy())


def test_signed_run_length_counts_same_sign_and_caps() -> None:
    x = np.array([1.0, 2.0, 3.0, -1.0, -1.0, 0.0, np.nan, 4.0, 4.0, 4.0, 4.0])
    np.testing.assert_array_equal(K.signed_run_length(x, 3), [1, 2, 3, -1, -2, 0, np.nan, 1, 2, 3, 3])
