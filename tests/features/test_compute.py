"""compute_features: point-in-time by truncation, warm-up prefix, gaps, missing inputs, NaN-ratio report."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from lake_assets.features.catalog import FeatureCatalog, required_lookback_bars
from lake_assets.features.compute import compute_features, nan_ratio_report, window_embeddings

CONTRACT_COLUMNS = [
    "ret_1", "rv_12", "rv_48", "rv_288", "vol_rank", "vol_regime", "vol_of_vol", "funding_z", "funding_carry_ann",
    "funding_persistence", "funding_extreme", "carry_state", "body_atr", "upper_wick_ratio", "lower_wick_ratio",
    "range_atr", "volume_z", "amihud", "roll_spread", "spread_bps", "ofi", "oi_change", "oi_z", "oi_volume_ratio",
    "liquidation_proxy", "basis_bps", "basis_z", "trend_state", "rsi_14", "sma_50", "ema_200", "macd_12_26_9_hist",
    "bb_20_2_pctb", "atr_14", "adx_14", "weekday", "hour", "is_month_end", "is_holiday",
]  # fmt: skip


@pytest.fixture(scope="module")
def full(bars: pl.DataFrame, catalog: FeatureCatalog) -> pl.DataFrame:
    return compute_features(bars, catalog)


def test_catalog_has_contract_columns_and_100_plus_features(catalog: FeatureCatalog, full: pl.DataFrame) -> None:
    assert len(catalog.columns) >= 100
    assert set(CONTRACT_COLUMNS) <= set(catalog.columns)
    assert full.columns[:3] == ["ts", "instrument", "is_gap"]
    assert full.schema["vol_regime"] == pl.String and full.schema["funding_extreme"] == pl.Boolean
    assert set(full["vol_regime"].drop_nulls().unique()) <= {"low", "mid", "high"}
    assert set(full["carry_state"].drop_nulls().unique()) <= {"neg_extreme", "neg", "neutral", "pos", "pos_extreme"}
    assert set(full["trend_state"].drop_nulls().unique()) <= {"up", "down", "chop"}
    assert full["vol_rank"].drop_nulls().is_between(0, 1).all()
    assert full["rsi_14"].drop_nulls().is_between(0, 100).all()


@pytest.mark.parametrize("cut", [400, 1500, 2999])
def test_truncated_history_gives_identical_rows(bars: pl.DataFrame, catalog: FeatureCatalog, full: pl.DataFrame,
                                                cut: int) -> None:  # fmt: skip
    part = compute_features(bars.head(cut), catalog)
    assert_frame_equal(part, full.head(cut), check_exact=True)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=2, max_value=2999), seed=st.integers(0, 3))
def test_truncation_property(
    make_bars: Callable[..., pl.DataFrame], catalog: FeatureCatalog, cut: int, seed: int
) -> None:
    bars = make_bars(1200, seed=seed) if seed else make_bars(3000, seed=7)
    cut = min(cut, bars.height - 1)
    full = compute_features(bars, catalog)
    part = compute_features(bars.head(cut), catalog)
    assert_frame_equal(part, full.head(cut), check_exact=True)


def test_warmup_prefix_reproduces_full_history(make_bars: Callable[..., pl.DataFrame], catalog: FeatureCatalog) -> None:
    lb = required_lookback_bars(catalog)
    bars = make_bars(lb + 1500, seed=11)
    target_start = bars["ts"][lb + 1000]
    full = compute_features(bars, catalog, target_start=target_start)
    assert full["ts"][0] == target_start and full.height == 500
    # history starting exactly `lb` bars before the target window (e.g. a month partition plus its warm-up)
    window = compute_features(bars.slice(1000), catalog, target_start=target_start)
    assert full.columns == window.columns
    for c in full.columns:
        a, b = full[c], window[c]
        if a.dtype == pl.Float64:
            np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-6, atol=1e-9, err_msg=c)
        else:
            assert a.equals(b), c


def test_gap_rows_are_null_and_do_not_poison_beyond_reach(
    make_bars: Callable[..., pl.DataFrame], catalog: FeatureCatalog
) -> None:
    clean = make_bars(2500, seed=4, gaps=())
    g = 1200
    gapped = make_bars(2500, seed=4, gaps=(g, g + 1))
    a, b = compute_features(clean, catalog), compute_features(gapped, catalog)
    calendar = {"weekday", "hour", "is_month_end", "is_holiday"}
    row = b.row(g, named=True)
    assert row["is_gap"]
    assert all(v is None for k, v in row.items() if k in catalog.columns and k not in calendar)
    assert b["sma_5"][g + 2] is not None  # a window holding a gap still computes from its present bars
    assert b["ret_1"][g + 2] is None and b["ret_1"][g + 3] is not None  # return across the gap is missing
    for f in catalog.features:
        for col in f.columns:
            if col.name in calendar or col.name in ("vol_rank", "vol_regime", "funding_z"):
                continue
            reach = g + 1 + f.lookback
            if reach >= a.height:
                continue
            x, y = a[col.name][reach:], b[col.name][reach:]
            if x.dtype == pl.Float64:
                np.testing.assert_allclose(y.to_numpy(), x.to_numpy(), rtol=1e-6, atol=1e-9, err_msg=col.name)
            else:
                assert x.equals(y), col.name


def test_instrument_without_funding_or_trades_gets_null_columns(
    make_bars: Callable[..., pl.DataFrame], catalog: FeatureCatalog
) -> None:
    spot = make_bars(800, seed=2, funding=False, oi=False, trades=False, spot=False)
    out = compute_features(spot, catalog)
    for c in ("funding_level", "funding_z", "carry_state", "funding_extreme", "ofi", "oi_z", "basis_bps", "basis_z",
              "liquidation_proxy", "spread_bps"):  # fmt: skip
        assert out[c].null_count() == out.height, c
    assert out["rsi_14"].drop_nulls().len() > 700
    declared = compute_features(make_bars(800, seed=2), catalog, instrument_has={"ohlcv", "funding"})
    assert declared["ofi"].null_count() == declared.height  # trades present in the frame but not declared
    assert declared["funding_level"].drop_nulls().len() > 0
    with pytest.raises(ValueError, match="unknown data kind"):
        compute_features(spot, catalog, instrument_has={"orderbook"})


def test_bad_bars_are_rejected(bars: pl.DataFrame, catalog: FeatureCatalog) -> None:
    with pytest.raises(ValueError, match="sorted"):
        compute_features(bars.reverse(), catalog)
    with pytest.raises(ValueError, match="one instrument"):
        compute_features(pl.concat([bars.head(5), bars.head(5).with_columns(instrument=pl.lit("X"))]), catalog)


def test_nan_ratio_report_flags_broken_columns(catalog: FeatureCatalog, full: pl.DataFrame) -> None:
    rep = nan_ratio_report(full, catalog)
    assert rep.height == len(catalog.columns)
    assert rep.filter(pl.col("applicable"))["ok"].all()
    assert not rep.filter(pl.col("feature") == "spread_bps")["applicable"].item()
    broken = full.with_columns(rsi_14=pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("rsi_14")))
    bad = nan_ratio_report(broken, catalog).filter(pl.col("feature") == "rsi_14")
    assert not bad["ok"].item() and bad["nan_ratio"].item() == pytest.approx(1 / 3, abs=0.01)


def test_nan_ratio_report_counts_match_a_direct_count(catalog: FeatureCatalog, full: pl.DataFrame) -> None:
    """Per instrument and column: in-scope rows = non-gap rows after the warm-up, nulls counted among them."""
    two = pl.concat([full, full.with_columns(instrument=pl.lit("OTHER"))])
    gaps = two.with_columns(is_gap=pl.when(pl.int_range(pl.len()) % 7 == 0).then(True).otherwise(pl.col("is_gap")))
    for warmup in (None, 0, 250):
        rep = nan_ratio_report(gaps, catalog, warmup_rows=warmup)
        assert rep.height == 2 * len(catalog.columns)
        for inst, frame in gaps.partition_by("instrument", as_dict=True).items():
            for col in ("rsi_14", "funding_z", "weekday", "spread_bps"):
                lb = catalog.feature_of(col).lookback if warmup is None else warmup
                scoped = frame.with_row_index("i").filter((pl.col("i") >= lb) & ~pl.col("is_gap").fill_null(False))
                row = rep.filter((pl.col("instrument") == inst[0]) & (pl.col("feature") == col)).row(0, named=True)
                assert row["rows"] == scoped.height
                assert row["null_rows"] == scoped[col].null_count()
                assert row["applicable"] == (frame[col].null_count() < frame.height)
    assert nan_ratio_report(gaps.head(0), catalog).is_empty()


def test_window_embeddings_are_normalised_and_point_in_time(bars: pl.DataFrame) -> None:
    emb = window_embeddings(bars)
    assert emb.schema["emb_32"] == pl.Array(pl.Float64, 32) and emb.schema["emb_64"] == pl.Array(pl.Float64, 64)
    assert emb["emb_32"][:31].null_count() == 31 and emb["emb_32"][31] is not None
    v = np.array(emb["emb_64"][2000].to_list(), dtype=float)
    assert np.sqrt(np.nanmean(v**2)) == pytest.approx(1.0)
    c = bars["close"].to_numpy()
    r = np.log(c[1937:2001] / c[1936:2000])
    np.testing.assert_allclose(v, r / np.sqrt(np.mean(r**2)))
    assert emb.filter(pl.col("ts") == bars.filter("is_gap")["ts"][0])["emb_32"].item() is None
    assert_frame_equal(window_embeddings(bars.head(1000)), emb.head(1000), check_exact=True)
