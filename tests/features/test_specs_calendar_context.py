"""Spec validation errors, NYSE holidays, market context and cross-instrument context features."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lake_assets.calendars import holiday_dates
from lake_assets.features.calendar import load_calendar_spec
from lake_assets.features.catalog import FeatureCatalog, load_feature_specs
from lake_assets.features.context import benchmarks_from_universe, compute_context_features
from lake_assets.features.market_context import compute_market_context
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, load_universe


def _spec_dir(tmp_path: Path, extra: str) -> Path:
    d = tmp_path / "features"
    shutil.copytree(spec_dir() / "features", d)
    (d / "zz_extra.yaml").write_text(extra)
    return d


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("features:\n  - {name: x1, family: t, template: nope}\n", "features.0.template", "unknown template 'nope'"),
        ("features:\n  - {family: t, indicator: FOO}\n", "features.0.indicator", "unknown indicator 'FOO'"),
        ("features:\n  - {name: x2, family: t, template: zscore, inputs: [close]}\n", "features.0.params",
         "missing parameter(s) ['n']"),
        ("features:\n  - {name: x3, family: t, template: zscore, params: {n: 5}, inputs: [closee]}\n",
         "features.0.inputs", "unknown input column 'closee'"),
        ("features:\n  - {name: rsi_14, family: t, template: zscore, params: {n: 5}}\n", "features.0",
         "duplicated feature name 'rsi_14'"),
        ("features:\n  - {family: t, indicator: RSI, params: {n: 0}}\n", "features.0.params", "positive number"),
        ("features:\n  - {name: x4, family: t, template: zscore, params: {n: 50}, lookback: 3}\n",
         "features.0.lookback", "declared 3 bars but zscore needs 51"),
        ("features:\n  - {name: x5, family: t, template: zscore, params: {n: 5}, pit: bar_open}\n", "features.0.pit",
         "only known at the bar close"),
        ("features:\n  - {name: a1, family: t, template: zscore, params: {n: 5}, inputs: [b1]}\n"
         "  - {name: b1, family: t, template: zscore, params: {n: 5}, inputs: [a1]}\n", "features.0.inputs",
         "dependency cycle"),
        ("features:\n  - {name: x6, family: t, template: zscore, params: {n: 5}, colour: red}\n", "features.0.colour",
         "Extra inputs are not permitted"),
        ("features:\n  - {family: t, indicator: OBV}\n", "features.0.params", "unbounded lookback"),
    ],
)  # fmt: skip
def test_malformed_feature_specs_fail_with_file_key_problem(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        load_feature_specs(_spec_dir(tmp_path, extra))
    assert err.value.file.endswith("zz_extra.yaml")
    assert err.value.key == key
    assert problem in err.value.problem


def test_spec_hash_changes_with_the_spec(tmp_path: Path, catalog: FeatureCatalog) -> None:
    d = _spec_dir(tmp_path, "features:\n  - {name: extra_z, family: t, template: zscore, params: {n: 5}}\n")
    other = load_feature_specs(d)
    assert other.spec_hash != catalog.spec_hash and "extra_z" in other.columns
    assert load_feature_specs().spec_hash == catalog.spec_hash


def test_nyse_holidays_follow_exchange_rules() -> None:
    got = set(holiday_dates("XNYS", date(2016, 1, 1), date(2016, 12, 31)))
    assert got == {date(2016, 1, 1), date(2016, 1, 18), date(2016, 2, 15), date(2016, 3, 25), date(2016, 5, 30),
                   date(2016, 7, 4), date(2016, 9, 5), date(2016, 11, 24), date(2016, 12, 26)}  # fmt: skip
    later = set(holiday_dates("XNYS", date(2018, 1, 1), date(2022, 12, 31)))
    assert date(2018, 12, 5) in later  # national day of mourning (G.H.W. Bush)
    assert date(2022, 6, 20) in later and date(2021, 6, 18) not in later  # Juneteenth from 2022, observed Monday
    assert date(2021, 12, 31) not in later  # Saturday New Year's Day is not observed on Friday
    assert holiday_dates("NONE", date(2016, 1, 1), date(2016, 12, 31)) == []
    with pytest.raises(ValueError, match="unknown holiday calendar"):
        holiday_dates("XLON", date(2016, 1, 1), date(2016, 1, 2))


def _calendar(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "calendar.yaml"
    p.write_text(text)
    return p


SESSIONS = 'sessions:\n  - {name: asia, start: "21:00", end: "07:00"}\n  - {name: rest, start: "07:00", end: "21:00"}\n'


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('sessions:\n  - {name: a, start: "00:00", end: "12:00"}\n  - {name: b, start: "11:00", end: "24:00"}\n',
         "<root>", "overlap at minute 11:00"),
        ('sessions:\n  - {name: a, start: "00:00", end: "12:00"}\n', "<root>", "leave minute 12:00"),
        (SESSIONS + "macro_events:\n  - {name: FOMC, times: [2026-01-28T19:00:00]}\n", "macro_events.0.times",
         "has no timezone"),
        (SESSIONS + "macro_events:\n  - {name: FOMC, before: 2 hours, times: [2026-01-28T19:00:00Z]}\n",
         "macro_events.0.before", "expected a duration like '30m'"),
        (SESSIONS + "holiday_calendar: XLON\n", "holiday_calendar", "unknown holiday calendar"),
        ('sessions:\n  - {name: a, start: "25:00", end: "12:00"}\n', "sessions.0.start", "must be HH:MM"),
    ],
)  # fmt: skip
def test_calendar_spec_validation(tmp_path: Path, text: str, key: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        load_calendar_spec(_calendar(tmp_path, text))
    assert err.value.key == key and problem in err.value.problem


def test_market_context_sessions_funding_and_macro_windows() -> None:
    spec = load_calendar_spec()
    start = datetime(2026, 1, 27, 20, 0, tzinfo=UTC)
    mc = compute_market_context((start, start + timedelta(days=2)), spec)
    assert mc.height == 2 * 288 and mc["session"].null_count() == 0

    def at(h: int, m: int, day: int = 28) -> dict:
        return mc.filter(pl.col("ts") == datetime(2026, 1, day, h, m, tzinfo=UTC)).row(0, named=True)

    assert at(3, 0)["session"] == "asia" and at(10, 0)["session"] == "europe" and at(15, 0)["session"] == "us"
    assert at(7, 0)["session_open"] and at(6, 55)["session_close"] and not at(7, 5)["session_open"]
    assert at(23, 55)["is_funding_ts"] and at(7, 55)["is_funding_ts"] and not at(0, 0, 29)["is_funding_ts"]
    assert mc["is_funding_ts"].sum() == 6
    assert at(16, 55)["macro_window"] is None and at(17, 0)["macro_window"] == "FOMC"  # 19:00Z - 2h
    assert at(23, 0)["macro_window"] == "FOMC" and at(23, 5)["macro_window"] is None  # + 4h, inclusive end
    assert at(12, 0)["weekday"] == 3
    daily = compute_market_context(
        pl.Series("ts", [datetime(2016, 7, 4, tzinfo=UTC)]), spec, bar_period=timedelta(days=1)
    )
    assert daily["is_holiday"].item() and daily["is_funding_ts"].item()
    # point in time: a bar's context depends on its own timestamp only
    assert_frame_equal(compute_market_context(mc["ts"].head(100), spec), mc.head(100))


def test_universe_benchmarks_map_crypto_and_equities() -> None:
    bm = benchmarks_from_universe(load_universe())
    assert bm["ETHUSDT"] == "BTCUSDT-PERP" and bm["NDX"] == "SPX" and bm["BTCUSDT-PERP"] == "BTCUSDT-PERP"


def test_context_features_correlation_beta_dispersion_breakdown(
    make_bars: Callable[..., pl.DataFrame], catalog: FeatureCatalog
) -> None:
    n = 3000
    rng = np.random.default_rng(9)
    common = rng.normal(0, 0.006, n)
    bench = make_bars(n, seed=1, common=common, instrument="BENCH", gaps=(500,))
    follower = make_bars(n, seed=2, common=common, instrument="FOLLOW", gaps=(900,))
    # a third instrument tracks the factor, then decouples for the last 400 bars
    c2 = common.copy()
    c2[-400:] = rng.normal(0, 0.006, 400)
    breaker = make_bars(n, seed=3, common=c2, instrument="BREAK", gaps=())
    frames = {"BENCH": bench, "FOLLOW": follower, "BREAK": breaker}
    bm = {k: "BENCH" for k in frames}
    out = compute_context_features(frames, bm, catalog)
    assert out.columns == ["ts", "instrument", "corr_bench", "beta_bench", "corr_bench_long", "dispersion",
                           "corr_breakdown"]  # fmt: skip
    b = out.filter(pl.col("instrument") == "BENCH")
    # the benchmark against itself carries nothing: null, so BETA_SHIFT / breakdowns are not applicable to it
    assert b["corr_bench"].null_count() == b["beta_bench"].null_count() == b["corr_breakdown"].null_count() == n
    assert b["dispersion"].drop_nulls().len() > 2000
    f = out.filter(pl.col("instrument") == "FOLLOW")
    # reference: numpy correlation over the last 288 paired returns
    rb = np.log(bench["close"].to_numpy()[1:] / bench["close"].to_numpy()[:-1])
    rf = np.log(follower["close"].to_numpy()[1:] / follower["close"].to_numpy()[:-1])
    i = 2500
    w = slice(i - 288, i)
    ok = ~(np.isnan(rb[w]) | np.isnan(rf[w]))
    assert f["corr_bench"][i] == pytest.approx(np.corrcoef(rf[w][ok], rb[w][ok])[0, 1])
    beta_ref = np.cov(rf[w][ok], rb[w][ok])[0, 1] / np.var(rb[w][ok], ddof=1)
    assert f["beta_bench"][i] == pytest.approx(beta_ref)
    assert f["corr_bench"].drop_nulls().mean() > 0.3
    brk = out.filter(pl.col("instrument") == "BREAK")
    assert brk["corr_breakdown"][2000:2500].sum() == 0 and brk["corr_breakdown"][-100:].sum() > 50
    assert f["corr_bench"][900] is None and f["corr_bench"][902] is not None  # gap row null, window continues
    ts = bench["ts"][1500]
    disp = out.filter(pl.col("ts") == ts)["dispersion"].unique()
    closes = [fr.filter(pl.col("ts") <= ts)["close"].to_numpy()[-13:] for fr in frames.values()]
    assert disp.len() == 1 and disp.item() == pytest.approx(np.std([np.log(c[-1] / c[0]) for c in closes], ddof=1))
    # point in time
    part = compute_context_features({k: v.head(2000) for k, v in frames.items()}, bm, catalog)
    assert_frame_equal(part, out.filter(pl.col("ts") <= bench["ts"][1999]), check_exact=True)


@pytest.mark.parametrize(
    "template",
    ["rv_{col.__class__.__name__}", "rv_{col[0]}", "rv_{window:>999999999}", "rv_{nope}", "rv_{window", "x" * 200],
)
def test_feature_name_templates_are_data_not_format_strings(template: str) -> None:
    from lake_assets.features.catalog import fill_name
    from lake_assets.specs import SpecError

    with pytest.raises(SpecError) as err:
        fill_name(template, {"col": "close", "window": 48}, "spec/features/x.yaml", "features.0.name")
    assert err.value.key == "features.0.name"
    assert fill_name("rv_{col}_{window}", {"col": "close", "window": 48}, "f", "k") == "rv_close_48"
