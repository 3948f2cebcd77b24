"""Spec windows as durations: the same quantity at 5m, 1h and 1d bars, stable names, warm-up per timeframe."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from lake_assets.features.catalog import bars_of, load_feature_specs, required_lookback_bars
from lake_assets.features.compute import compute_features, infer_timeframe
from lake_assets.specs import SpecError
from lake_assets.vendors.packaged import load_dataset
from lake_assets.vocabulary import BARS_SCHEMA, INSTRUMENT, IS_GAP, TS, conform


def test_durations_become_bars_of_each_timeframe() -> None:
    assert [bars_of("30d", tf) for tf in ("5m", "1h", "1d")] == [8640, 720, 30]
    assert bars_of("90m", "1h") == 2  # rounded up: the bars covering the duration
    assert bars_of("1h", "1d") == 1
    assert bars_of({"default": "1d", "1d": 20}, "5m") == 288 and bars_of({"default": "1d", "1d": 20}, "1d") == 20
    assert bars_of(12, "1d") == 12  # an int is bars
    with pytest.raises(ValueError, match="no value for timeframe"):
        bars_of({"5m": 3}, "1d")


def test_catalog_per_timeframe_keeps_names_and_spec_hash() -> None:
    spec = load_feature_specs()
    daily, hourly = spec.for_timeframe("1d"), spec.for_timeframe("1h")
    assert daily.columns == spec.columns == hourly.columns and daily.spec_hash == spec.spec_hash
    assert spec.for_timeframe("1d") is daily  # built once
    n = {tf: c.feature_of("vol_rank").params["n"] for tf, c in (("5m", spec), ("1h", hourly), ("1d", daily))}
    assert n == {"5m": 8640, "1h": 720, "1d": 30}
    assert spec.feature_of("sma_200").params["n"] == daily.feature_of("sma_200").params["n"] == 200  # bars
    # the warm-up follows: 5m is led by vol_rank (30 days + rv_48), 1d by EMA-200's recursion tolerance
    assert required_lookback_bars(spec, "5m") == 8690
    assert required_lookback_bars(spec, "1d") == daily.feature_of("ema_200").lookback
    assert (daily.feature_of("vol_rank").lookback, daily.feature_of("vol_rank").span) == (80, 30 + 48 + 1 - 1)


def test_vol_rank_and_regime_exist_on_daily_index_data() -> None:
    raw = load_dataset("sp500").filter(pl.col(TS) < datetime(2019, 1, 1, tzinfo=UTC))
    bars = conform(raw.with_columns(pl.lit("SPX").alias(INSTRUMENT), pl.lit(False).alias(IS_GAP)), BARS_SCHEMA)
    assert infer_timeframe(bars, "5m") == "1d"  # weekends skipped: most steps are still one day
    feats = compute_features(bars.tail(500), load_feature_specs())
    tail = feats.tail(400)
    assert tail["vol_rank"].null_count() == 0
    assert set(tail["vol_regime"].unique().to_list()) == {"low", "mid", "high"}


@pytest.mark.parametrize(
    ("params", "name", "problem"),
    [
        ("{n: {5m: 12, 2d: 3}}", "w", "not timeframes"),
        ("{n: {5m: 12}}", "w", "no value for timeframe"),
        ("{n: {default: 1d}}", "w_{n}", "per-timeframe window"),
        ("{n: 0d}", "w", "positive"),
    ],
)
def test_bad_duration_windows_are_spec_errors(tmp_path: Path, params: str, name: str, problem: str) -> None:
    (tmp_path / "f.yaml").write_text(
        f"family: x\nfeatures:\n  - name: {name}\n    template: zscore\n    params: {params}\n    inputs: [close]\n"
    )
    with pytest.raises(SpecError) as err:
        load_feature_specs(tmp_path)
    assert problem in err.value.problem


def test_duration_placeholder_shows_the_duration(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(
        "family: x\nfeatures:\n  - name: z_{n}\n    template: zscore\n    params: {n: [1d, 7d]}\n    inputs: [close]\n"
    )
    spec = load_feature_specs(tmp_path)
    assert spec.columns == spec.for_timeframe("1d").columns == ["z_1d", "z_7d"]
    assert spec.for_timeframe("1h").feature_of("z_7d").params["n"] == 168


def test_context_windows_follow_the_timeframe() -> None:
    from lake_assets.features.context import compute_context_features

    frames = {}
    for inst, symbol in (("SPX", "sp500"), ("NDX", "nasdaq")):
        raw = load_dataset(symbol).filter(pl.col(TS) >= datetime(2016, 1, 1, tzinfo=UTC))
        frames[inst] = conform(raw.with_columns(pl.lit(inst).alias(INSTRUMENT), pl.lit(False).alias(IS_GAP)),
                               BARS_SCHEMA)  # fmt: skip
    spec = load_feature_specs()
    assert (spec.context.corr_window, spec.for_timeframe("1d").context.corr_window) == (288, 63)
    out = compute_context_features(frames, {"SPX": "SPX", "NDX": "SPX"}, spec)
    ndx = out.filter(pl.col(INSTRUMENT) == "NDX")
    # a quarter and a year of sessions, null until the full window of paired returns (returns start at row 1)
    assert ndx["corr_bench"][:63].null_count() == 63 and ndx["corr_bench"][63] is not None
    assert ndx["corr_bench_long"][:252].null_count() == 252 and ndx["corr_bench_long"][252] is not None
    assert ndx["corr_bench"].drop_nulls().median() > 0.8  # type: ignore[operator]
    assert out.filter(pl.col(INSTRUMENT) == "SPX")["corr_bench"].null_count() == frames["SPX"].height  # itself
