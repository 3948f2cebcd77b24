"""Synthetic 5m bars for the feature tests: GBM-ish prices, a few gap rows, funding, OI, buy/sell volume, basis."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

os.environ.setdefault("NUMBA_CACHE_DIR", "/work/main/.numba_cache")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from lake_assets.features.catalog import FeatureCatalog, load_feature_specs  # noqa: E402
from lake_assets.vocabulary import BARS_SCHEMA, conform  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_bars(
    n: int = 3000,
    *,
    seed: int = 1,
    instrument: str = "TESTUSDT-PERP",
    start: datetime = START,
    gaps: tuple[int, ...] | None = None,
    funding: bool = True,
    oi: bool = True,
    trades: bool = True,
    spot: bool = True,
    base_price: float = 100.0,
    common: np.ndarray | None = None,
) -> pl.DataFrame:
    """n regular 5m bars in BARS_SCHEMA; `gaps` rows have null OHLCV/ret and is_gap=True (default: 3 short runs)."""
    rng = np.random.default_rng(seed)
    log_vol = np.zeros(n)
    shocks = rng.normal(0, 0.05, n)
    for i in range(1, n):  # mean-reverting log volatility (AR(1)), so long series stay well-behaved
        log_vol[i] = 0.995 * log_vol[i - 1] + shocks[i]
    vol = 0.002 * np.exp(log_vol)
    r = rng.standard_t(5, n) * vol / np.sqrt(5 / 3)
    if common is not None:
        r = 0.6 * common[:n] + 0.8 * r
    close = base_price * np.exp(np.cumsum(r))
    open_ = np.concatenate([[base_price], close[:-1]]) * np.exp(rng.normal(0, 0.0002, n))
    spread = np.abs(rng.normal(0, vol, n))
    high = np.maximum(open_, close) * np.exp(spread)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol, n)))
    volume = rng.lognormal(3.0, 0.6, n)
    buy_share = np.clip(0.5 + 20 * r + rng.normal(0, 0.05, n), 0.01, 0.99)
    ts = [start + timedelta(minutes=5 * i) for i in range(n)]
    # funding: changes every 96 bars (8h), random walk with occasional sign flips and extremes
    f_steps = rng.normal(0.0001, 0.0002, n // 96 + 1)
    f_steps[rng.random(f_steps.shape[0]) < 0.1] *= 6
    funding_rate = np.repeat(f_steps, 96)[:n]
    open_interest = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spot_close = close * np.exp(-rng.normal(0.0003, 0.0002, n))
    df = pl.DataFrame(
        {
            "ts": ts,
            "instrument": instrument,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "trade_count": rng.poisson(50, n),
            "buy_volume": volume * buy_share if trades else None,
            "sell_volume": volume * (1 - buy_share) if trades else None,
            "funding_rate": funding_rate if funding else None,
            "open_interest": open_interest if oi else None,
            "spot_close": spot_close if spot else None,
        }
    )
    if gaps is None:
        gaps = tuple(g for g in (n // 5, n // 5 + 1, n // 5 + 2, n // 2, (3 * n) // 4) if g < n)
    gap = np.zeros(n, dtype=bool)
    gap[list(gaps)] = True
    price_cols = ["open", "high", "low", "close", "volume", "trade_count", "buy_volume", "sell_volume", "spot_close"]
    df = df.with_columns(pl.Series("is_gap", gap)).with_columns(
        [pl.when(pl.col("is_gap")).then(None).otherwise(pl.col(c)).alias(c) for c in price_cols]
    )
    df = df.with_columns(
        ret=(pl.col("close") / pl.col("close").shift(1)).log(),
        basis_bps=(pl.col("close") / pl.col("spot_close") - 1.0) * 1e4,
        is_outlier=pl.lit(False),
        ohlc_violation=pl.lit(False),
    )
    return conform(df, BARS_SCHEMA)


@pytest.fixture(scope="session")
def catalog() -> FeatureCatalog:
    return load_feature_specs()


@pytest.fixture(scope="session")
def make_bars() -> Callable[..., pl.DataFrame]:
    """The synthetic bar generator (a fixture, so test modules need no package imports)."""
    return synthetic_bars


@pytest.fixture(scope="session")
def bars() -> pl.DataFrame:
    return synthetic_bars(3000, seed=7)
