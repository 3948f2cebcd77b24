"""The array fast path of compute_features against the catalog's polars expressions, and its fused kernels."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from reference_features import expression_features, rolling_primitives

from lake_assets.features import indicators as ind
from lake_assets.features import kernels as K
from lake_assets.features import templates as tmpl
from lake_assets.features.arrays import Arrays, min_count
from lake_assets.features.catalog import FeatureCatalog
from lake_assets.features.compute import available_inputs, compute_features
from lake_assets.features.evaluate import plan_for
from lake_assets.vocabulary import CLOSE


def _assert_same(fast: pl.DataFrame, ref: pl.DataFrame, rtol: float = 1e-9) -> None:
    for c in ref.columns:
        a, b = fast[c], ref[c]
        assert a.dtype == b.dtype, c
        assert a.is_null().to_list() == b.is_null().to_list(), c
        if a.dtype == pl.Float64:
            x, y = a.drop_nulls().to_numpy(), b.drop_nulls().to_numpy()
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-300, err_msg=c)
        else:
            assert a.equals(b), c


@pytest.fixture(scope="module")
def book_bars(make_bars: Callable[..., pl.DataFrame]) -> pl.DataFrame:
    """Bars with top-of-book columns, a long gap run and a gap on the first rows: every feature is computed."""
    bars = make_bars(5000, seed=9, gaps=(0, 1, 700, *range(1200, 1240), 4999))
    return bars.with_columns(
        bid=pl.col("close") * 0.9995, ask=pl.col("close") * 1.0005, bid_size=pl.col("volume"), ask_size=7.0,
        taker_fee_bps=5.0,
    )


def test_array_path_matches_expression_features(book_bars: pl.DataFrame, catalog: FeatureCatalog) -> None:
    fast = compute_features(book_bars, catalog)
    ref = expression_features(book_bars, catalog)
    assert fast.columns[3:] == ref.columns
    short = [c for c in ref.columns if catalog.feature_of(c).span < fast.height]  # full window within the bars
    assert all(fast[c].null_count() < fast.height for c in short)  # nothing silently left null
    assert all(fast[c].null_count() == fast.height for c in ref.columns if c not in short)  # vol_rank, funding_z
    _assert_same(fast, ref)


def test_entries_without_array_implementation_fall_back_to_expressions(
    book_bars: pl.DataFrame, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = compute_features(book_bars, catalog)
    for name in ("zscore", "regime3", "extreme_flag", "carry_state", "weekday", "log_return"):
        template = tmpl.FEATURE_TEMPLATES[name]
        monkeypatch.setitem(tmpl.FEATURE_TEMPLATES, name, dataclasses.replace(template, compute=None))
    for name in ("BBANDS", "RSI", "ADX"):
        monkeypatch.setitem(ind.INDICATORS, name, dataclasses.replace(ind.INDICATORS[name], compute=None))
    slow = compute_features(book_bars, catalog)
    _assert_same(slow, fast)


def test_plan_batches_windows_of_one_input(catalog: FeatureCatalog, book_bars: pl.DataFrame) -> None:
    plan = plan_for(catalog, available_inputs(book_bars, None))
    sma_windows = {int(p[0]) for p in plan[("roll", CLOSE)] if p[1] == 1.0}
    assert {5, 10, 20, 50, 100, 200} <= sma_windows
    assert len(plan[("ewm", CLOSE)]) >= 9  # 8 EMAs + MACD's 35-bar slow EMA
    x = book_bars[CLOSE].cast(pl.Float64).to_numpy()
    planned = Arrays(lambda _: x, plan=plan)
    lone = Arrays(lambda _: x)
    for n in (5, 20, 200):
        np.testing.assert_array_equal(planned.rolling_mean(CLOSE, n), lone.rolling_mean(CLOSE, n))
        np.testing.assert_array_equal(planned.rolling_mean(CLOSE, n), K.rolling_mean(x, n, ind.min_count(n)))


def _series(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    x[[0, 3, 4, 5, 100, 101]] = np.nan
    x[200:260] = np.nan  # a window with nothing present
    return x


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_kernels_equal_single_window_kernels_exactly(seed: int) -> None:
    x = _series(1500, seed)
    ns = np.array([1, 2, 5, 14, 20, 55, 288])
    mins = np.array([ind.min_count(int(n)) for n in ns])
    means = np.array([True, False, True, False, True, True, False])
    sums = K.rolling_sum_multi(x, ns, mins, means)
    hi, lo = K.rolling_extreme_multi(x, ns, mins, 1.0), K.rolling_extreme_multi(x, ns, mins, -1.0)
    # every window with ddof 0 and 1 through the evaluation's lanes: two ddofs per lane, groups of four plus a partial
    planned = Arrays(
        lambda _: x,
        plan={("std", ""): {("x", int(n), d) for n in ns for d in (0, 1)}, ("ewm", "x"): {(0.5, 2), (0.1, 10)}},
    )
    for k, n in enumerate(ns):
        single = K.rolling_mean if means[k] else K.rolling_sum
        np.testing.assert_array_equal(sums[k], single(x, n, mins[k]))
        for ddof in (0, 1):
            np.testing.assert_array_equal(planned.std("x", int(n), ddof), K.rolling_std(x, n, mins[k], ddof))
        w = np.lib.stride_tricks.sliding_window_view(np.concatenate([np.full(n - 1, np.nan), x]), n)
        present = (~np.isnan(w)).sum(axis=1)
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            ref_hi, ref_lo = np.nanmax(w, axis=1), np.nanmin(w, axis=1)
        ok = present >= mins[k]
        np.testing.assert_array_equal(hi[k], np.where(ok, ref_hi, np.nan))
        np.testing.assert_array_equal(lo[k], np.where(ok, ref_lo, np.nan))
    for alpha, emin in ((2 / 201, 200), (0.5, 2), (0.1, 10)):  # the first request runs the planned ones with it
        np.testing.assert_array_equal(planned.ewm("x", alpha, emin), K.ewm(x, alpha, emin))


def test_mean_abs_dev_matches_direct_loop() -> None:
    x = _series(800, 3)
    for n in (3, 20, 50):
        got = K.rolling_mean_abs_dev(x, n, ind.min_count(n))
        for i in range(len(x)):
            w = x[max(0, i - n + 1) : i + 1]
            w = w[~np.isnan(w)]
            if len(w) < ind.min_count(n):
                assert np.isnan(got[i])
            else:
                assert got[i] == pytest.approx(np.abs(w - w.mean()).mean(), rel=1e-10)


def test_pct_rank_ignores_missing_and_infinite_keys() -> None:
    x = np.array([1.0, np.nan, np.inf, 2.0, np.inf, np.nan, 0.5, 2.0])
    got = K.rolling_pct_rank(x, 4, 1)
    expected = [1.0, np.nan, 1.0, 2 / 3, 1.0, np.nan, 1 / 3, 2 / 3]
    np.testing.assert_allclose(got, expected)


def test_utc_calendar_matches_polars_datetime_fields() -> None:
    start = datetime(1968, 12, 30, 22, tzinfo=UTC)
    ts = pl.Series([start + timedelta(hours=7 * i) for i in range(20_000)], dtype=pl.Datetime("us", "UTC"))
    weekday, hour, month_end, days = K.utc_calendar(ts.to_physical().to_numpy())
    wall = ts.dt.replace_time_zone(None)
    assert weekday.tolist() == wall.dt.weekday().to_list()
    assert hour.tolist() == wall.dt.hour().to_list()
    assert month_end.tolist() == ((wall + timedelta(days=1)).dt.month() != wall.dt.month()).to_list()
    assert days.tolist() == wall.dt.date().cast(pl.Int32).to_list()


def test_output_series_matches_nan_to_null_then_cast() -> None:
    from lake_assets.features.arrays import Labeled
    from lake_assets.features.evaluate import output_series

    x = np.array([1.0, np.nan, 3.0, 0.0, -3.0, 7.0, 2.0] * 20)
    gaps = np.array([5, 64, 65, 139])
    nulled = x.copy()
    nulled[gaps] = np.nan
    for dtype in (pl.Float64(), pl.Int8(), pl.Boolean(), pl.Int64()):
        for start in (0, 3, 65, 66):  # starts before, at and after gap rows: passes run over rows from `start` only
            got = output_series("c", x, dtype, start=start, gap_rows=gaps)
            want = pl.Series("c", nulled, nan_to_null=True).cast(dtype).slice(start)
            assert got.dtype == dtype and got.to_list() == want.to_list()
    frac = output_series("c", np.array([1.5, np.nan]), pl.Int8())  # not exact: polars' cast decides
    assert frac.to_list() == [1, None]
    codes = np.where(np.isnan(x), np.nan, np.abs(x) % 3)
    # labels that fit a string view inline (built as views; 12 bytes of UTF-8 at most), and one that does not
    for labels in (("a", "b", "c"), ("pos_extreme", "é" * 6, ""), ("pos_extreme", "a label of 21 bytes..", "c")):
        for start in (2, 65):
            got = output_series("c", Labeled(codes, labels), pl.String(), start=start, gap_rows=gaps)
            want = [None if (np.isnan(v) or i in gaps) else labels[int(v)] for i, v in enumerate(codes)][start:]
            assert got.dtype == pl.String and got.to_list() == want
            assert got.equals(pl.Series("c", want, dtype=pl.String))
            assert got.str.len_bytes().to_list() == [None if w is None else len(w.encode()) for w in want]
    with pytest.raises(IndexError, match="label code out of range"):
        output_series("c", Labeled(np.array([0.0, 3.0]), ("a", "b", "c")), pl.String())


@pytest.mark.parametrize("unit", ["us", "ns", "ms"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", None])
def test_target_start_row_counts_the_bars_before_it(unit: str, tz: str | None) -> None:
    """Both paths (binary search for aware us/ns columns, polars' cast otherwise) against Python's comparison."""
    from zoneinfo import ZoneInfo

    from lake_assets.features.compute import _start_row

    base = datetime(2026, 3, 8, 4, 10, tzinfo=UTC)  # a DST change in New York within the range
    ts = pl.datetime_range(base, base + timedelta(hours=10), "5m", eager=True, time_unit=unit).alias("ts")
    ts = ts.dt.replace_time_zone(None) if tz is None else ts.dt.convert_time_zone(tz)
    bars = pl.DataFrame([ts])
    starts = [base - timedelta(hours=1), base, base + timedelta(minutes=7, microseconds=3), base + timedelta(days=1),
              (base + timedelta(hours=2)).astimezone(ZoneInfo("Asia/Tokyo"))]  # fmt: skip
    if tz is None:
        starts = [s.replace(tzinfo=None) for s in starts]
    stamps = ts.to_list()  # Python datetimes: aware ones compare as instants across zones
    for start in starts:
        assert _start_row(bars, start) == sum(t < start for t in stamps), start


def test_ewm_lanes_over_different_inputs_equal_single_kernels_exactly() -> None:
    xs = [_series(1500, seed) for seed in (4, 5, 6)]
    xs[1][700] = np.inf  # a non-NaN value that poisons the fast path's missing-value test
    alphas, mins = np.array([0.5, 0.1, 2 / 201, 1 / 14]), np.array([2, 10, 200, 1])
    out = np.empty((4, 1500))
    K.ewm_lanes(xs[0], xs[1], xs[2], xs[0], alphas, mins, out[0], out[1], out[2], out[3])
    for k, x in enumerate([xs[0], xs[1], xs[2], xs[0]]):
        np.testing.assert_array_equal(out[k], K.ewm(x, alphas[k], mins[k]))
    planned = Arrays(lambda name: xs[int(name[-1])], plan={("ewm", f"x{j}"): {(0.1, 10), (0.5, 3)} for j in range(3)})
    for j in range(3):
        np.testing.assert_array_equal(planned.ewm(f"x{j}", 0.5, 3), K.ewm(xs[j], 0.5, 3))


def test_loader_turns_nulls_into_nan_at_any_offset() -> None:
    from lake_assets.features.compute import _loader

    values = [None if i % 7 in (0, 3) or i in (20, 21, 22) else float(i) for i in range(150)]
    col = pl.concat([pl.Series("close", values[:40]), pl.Series("close", values[40:])], rechunk=False)
    for start in (0, 1, 5, 8, 13):
        frame = pl.DataFrame([col]).slice(start)
        want = np.array([np.nan if v is None else v for v in values[start:]])
        np.testing.assert_array_equal(_loader(frame)("close"), want)


@pytest.mark.parametrize("n", [1, 3, 4, 7, 20, 50, 288])
def test_mean_abs_dev_depends_on_the_window_alone(n: int) -> None:
    """The SIMD sum of full windows is the same bits wherever the window sits: truncating the history or starting
    it later never changes a value (the point-in-time contract), and values match a direct computation."""
    x = _series(1500, n)
    mean = K.rolling_mean(x, n, ind.min_count(n))
    mean[[50, 51, 300]] = np.nan
    full = K.mean_abs_dev_about(x, mean, n, ind.min_count(n))
    for end in (n + 5, 701, 702, 703, 1001):
        np.testing.assert_array_equal(K.mean_abs_dev_about(x[:end], mean[:end], n, ind.min_count(n)), full[:end])
    for start in (1, 2, 3, 5, 64):  # windows wholly after the new start are the same windows
        later = K.mean_abs_dev_about(x[start:], mean[start:], n, ind.min_count(n))
        np.testing.assert_array_equal(later[n - 1 :], full[start + n - 1 :])
    for i in range(len(x)):
        w = x[max(0, i - n + 1) : i + 1]
        w = w[~np.isnan(w)]
        if len(w) < ind.min_count(n) or np.isnan(mean[i]):
            assert np.isnan(full[i])
        else:
            assert full[i] == pytest.approx(np.abs(w - mean[i]).mean(), rel=1e-12, abs=1e-300)


def test_std_lanes_give_two_ddofs_of_one_window_exactly() -> None:
    xs = [_series(2500, seed) for seed in (7, 8)]  # > one moments block
    ns, mins = np.array([20, 288, 5]), np.array([ind.min_count(20), ind.min_count(288), ind.min_count(5)])
    out, out_b = K.rolling_std_lanes2(xs[0], xs[1], xs[0], xs[0], ns, np.array([0, 1, 1]), np.array([1, -1, 0]), mins)
    for k, (x, d) in enumerate([(xs[0], 0), (xs[1], 1), (xs[0], 1)]):
        np.testing.assert_array_equal(out[k], K.rolling_std(x, ns[k], mins[k], d))
    for k, (x, d) in ((0, (xs[0], 1)), (2, (xs[0], 0))):
        np.testing.assert_array_equal(out_b[k], K.rolling_std(x, ns[k], mins[k], d))
    planned = Arrays(lambda name: xs[int(name[-1])], plan={("std", ""): {("x0", 20, 0), ("x0", 20, 1), ("x1", 20, 1)}})
    for name, d in (("x0", 1), ("x0", 0), ("x1", 1)):
        np.testing.assert_array_equal(planned.std(name, 20, d), K.rolling_std(xs[int(name[-1])], 20, mins[0], d))


def test_released_intermediates_are_never_needed_again(
    book_bars: pl.DataFrame, catalog: FeatureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lake_assets.features import compute as core_mod
    from lake_assets.features import evaluate as ev

    plan, releases = ev.evaluation_plan(catalog, available_inputs(book_bars, None))
    assert sum(len(keys) for keys in releases.values()) > 50  # bar copies, derived series, windowed intermediates
    freed = compute_features(book_bars, catalog)
    monkeypatch.setattr(core_mod, "evaluation_plan", lambda c, h: (ev.evaluation_plan(c, h)[0], {}))
    kept = compute_features(book_bars, catalog)
    assert freed.equals(kept, null_equal=True)


def _kernel_value(op: str, x: np.ndarray, p: list[str]) -> np.ndarray:
    n = int(float(p[0]))
    if op == "roll":
        return (K.rolling_mean if p[-1] == "1.0" else K.rolling_sum)(x, n, min_count(n))  # type: ignore[no-any-return]
    if op == "std":
        return K.rolling_std(x, n, min_count(n), int(p[1]))  # type: ignore[no-any-return]
    if op in ("max", "min"):
        return (K.rolling_max if op == "max" else K.rolling_min)(x, n, min_count(n))  # type: ignore[no-any-return]
    if op == "ewm":
        return K.ewm(x, float(p[0]), int(p[1]))  # type: ignore[no-any-return]
    return K.rolling_pct_rank(x, n, min_count(n))


def test_benchmark_anchor_computes_the_same_rolling_primitives(
    make_bars: Callable[..., pl.DataFrame], catalog: FeatureCatalog
) -> None:
    """bench_features' polars anchor does the work the kernels do: every planned (input, window) pair, same values.
    The bars outlast the longest window (vol_rank's 8,640) so every primitive has values to compare."""
    bars = make_bars(9000, seed=5, gaps=(3, 700, *range(1200, 1240)))
    frame, exprs = rolling_primitives(bars, catalog)
    out = frame.select(exprs)
    assert out.width > 60 and {c.split("|")[0] for c in out.columns} == {"roll", "std", "max", "min", "ewm", "rank"}
    for name in out.columns:
        op, col, params = name.split("|")
        x = frame[col].fill_null(np.nan).to_numpy()
        want = _kernel_value(op, x, params.split(","))
        got = out[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        expected_missing = np.isnan(want)
        if op == "rank":  # polars' rolling_rank waits for a full window
            expected_missing |= np.arange(len(x)) < int(params) - 1
        assert np.array_equal(np.isnan(got), expected_missing), name
        both = ~np.isnan(got)
        assert both.sum() >= 300, name
        np.testing.assert_allclose(got[both], want[both], rtol=1e-7, atol=1e-9 * np.nanmax(np.abs(want)), err_msg=name)


@pytest.mark.parametrize(("zone", "unit"), [("UTC", "us"), ("America/New_York", "us"), ("Asia/Kolkata", "ns")])
def test_loader_clock_is_utc_epoch_microseconds(zone: str, unit: str) -> None:
    """The calendar features' clock: aware "us" timestamps are read as stored (UTC epoch), others converted."""
    from lake_assets.features.arrays import TS_US
    from lake_assets.features.compute import _loader

    ts = pl.datetime_range(datetime(2024, 3, 9, tzinfo=UTC), datetime(2024, 3, 12, tzinfo=UTC), "1h", eager=True)
    bars = pl.DataFrame([ts.dt.convert_time_zone(zone).dt.cast_time_unit(unit).alias("ts")])
    want = [int(t.timestamp() * 1_000_000) for t in ts.to_list()]
    assert _loader(bars)(TS_US).tolist() == want
