"""Windowed features start once their full window exists (pandas rolling(n) / TA-Lib), on real daily S&P 500 data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from lake_assets.features.catalog import FeatureCatalog, load_feature_specs
from lake_assets.features.compute import compute_features
from lake_assets.vendors.packaged import load_dataset
from lake_assets.vocabulary import BARS_SCHEMA, CLOSE, INSTRUMENT, IS_GAP, TS, conform


@pytest.fixture(scope="module")
def spx() -> pl.DataFrame:
    """The packaged S&P 500 daily series as cleaned bars (trading days only: no gap rows)."""
    raw = load_dataset("sp500")
    return conform(raw.with_columns(pl.lit("SPX").alias(INSTRUMENT), pl.lit(False).alias(IS_GAP)), BARS_SCHEMA)


def _cross_signals(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-up / cross-down bars of two SMA columns (NaN: no signal, as a vectorbt / pandas crossover has it)."""
    valid = ~np.isnan(fast) & ~np.isnan(slow)
    above = np.where(valid, fast > slow, False)
    below = np.where(valid, fast < slow, False)
    prev_valid = np.r_[False, valid[:-1]]
    up = valid & prev_valid & above & ~np.r_[False, above[:-1]]
    down = valid & prev_valid & below & ~np.r_[False, below[:-1]]
    return up, down


def test_sma_crossover_from_features_equals_pandas_rolling_mean(spx: pl.DataFrame) -> None:
    feats = compute_features(spx, load_feature_specs(), timeframe="1d")
    close = pd.Series(spx[CLOSE].to_numpy())
    for fast_n, slow_n in ((20, 50), (50, 200)):
        ref_fast = close.rolling(fast_n).mean().to_numpy()
        ref_slow = close.rolling(slow_n).mean().to_numpy()
        fast = feats[f"sma_{fast_n}"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        slow = feats[f"sma_{slow_n}"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref_fast))  # first value at row n - 1, not n / 2
        np.testing.assert_array_equal(np.isnan(slow), np.isnan(ref_slow))
        np.testing.assert_allclose(slow[slow_n - 1 :], ref_slow[slow_n - 1 :], rtol=1e-10)
        up, down = _cross_signals(fast, slow)
        ref_up, ref_down = _cross_signals(ref_fast, ref_slow)
        assert up.sum() > 3 and down.sum() > 3
        np.testing.assert_array_equal(up, ref_up)
        np.testing.assert_array_equal(down, ref_down)


@pytest.mark.parametrize(("column", "first_row"), [("sma_200", 199), ("rv_12", 12), ("bb_20_2_mid", 19),
                                                   ("close_z_100", 99), ("donchian_55_upper", 54), ("ret_48", 48)])
def test_window_features_are_null_until_their_full_window(spx: pl.DataFrame, column: str, first_row: int) -> None:
    feats = compute_features(spx.head(400), load_feature_specs())
    values = feats[column]
    assert values[:first_row].null_count() == first_row, column
    assert values[first_row] is not None, column


def test_min_fill_allows_a_partial_window_per_feature(tmp_path: Path, spx: pl.DataFrame) -> None:
    (tmp_path / "ta.yaml").write_text(
        "family: ta\nfeatures:\n"
        "  - indicator: SMA\n    params: {n: 200}\n"
        "  - indicator: SMA\n    name: sma_200_partial\n    params: {n: 200}\n    min_fill: 0.5\n"
    )
    catalog: FeatureCatalog = load_feature_specs(tmp_path)
    feats = compute_features(spx.head(300), catalog)
    assert feats["sma_200"].null_count() == 199
    assert feats["sma_200_partial"].null_count() == 99  # the old default: half the window present
    close = pd.Series(spx[CLOSE].head(300).to_numpy())
    ref = close.rolling(200, min_periods=100).mean().to_numpy()
    np.testing.assert_allclose(feats["sma_200_partial"].to_numpy()[99:], ref[99:], rtol=1e-10)
    assert feats[TS].len() == 300
