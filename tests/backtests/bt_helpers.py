"""Test data builders for the backtest tests (synthetic bars on a 5m grid, S&P 500 daily bars)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl


def random_walk_bars(n: int, seed: int, instrument: str = "SYN", start: datetime | None = None) -> pl.DataFrame:
    """5m OHLCV random walk; open = previous close with a small gap so open and close fills differ."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(minutes=5 * i) for i in range(n)],
            "instrument": instrument,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(500, 1500, n),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def sp500_bars(n_last: int = 1500) -> pl.DataFrame:
    """The last `n_last` sessions of the S&P 500 as the packaged vendor delivers them (arch's bundled data)."""
    from lake_assets.vendors.packaged import load_dataset

    return load_dataset("sp500").tail(n_last).select("ts", pl.lit("SPX").alias("instrument"), "open", "high", "low",
                                                   "close", "volume")  # fmt: skip


def sma_cross(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross-up / cross-down of two trailing SMAs (bar i known at its close)."""

    def sma(x: np.ndarray, k: int) -> np.ndarray:
        c = np.cumsum(np.r_[0.0, x])
        out = np.full(x.shape[0], np.nan)
        out[k - 1 :] = (c[k:] - c[:-k]) / k
        return out

    f, s = sma(close, fast), sma(close, slow)
    above = f > s
    prev = np.r_[False, above[:-1]]
    valid = np.isfinite(s) & np.r_[False, np.isfinite(s[:-1])]
    up = above & ~prev & valid
    below = f < s
    prev_b = np.r_[False, below[:-1]]
    down = below & ~prev_b & valid
    return up, down
