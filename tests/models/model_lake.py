"""A small lake for the model layer, written directly: two perps x two months of 5m bars whose next returns follow a
slow, observable driver (a feature column) or nothing at all (null data), with bars_1h/bars_1d, features, window
embeddings and funding; plus synthetic training frames for the compute-level tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.cleaned.bars import resample_bars
from lake_assets.features.catalog import columns_of, load_feature_specs
from lake_assets.features.compute import window_embeddings
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import BARS_SCHEMA, RAW_FUNDING_SCHEMA, conform

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
PERPS = ("BTCUSDT-PERP", "ETHUSDT-PERP")
MONTHS = ("2026-01", "2026-02")
DRIVER = "rsi_14"  # the catalogue column that carries the planted driver


def driven_bars(instrument: str, n: int, seed: int, beta: float, gaps: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """5m bars whose return from bar t to t+1 is beta x driver[t] + noise; the driver is a slow AR(1) known at t."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = 0.995 * x[i - 1] + rng.normal(0.0, 0.1)
    x /= x.std()
    r = np.r_[0.0, beta * x[:-1] + rng.normal(0.0, 0.002, n - 1)]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    is_gap = np.zeros(n, dtype=bool)
    if gaps:
        is_gap[rng.choice(np.arange(100, n - 100), gaps, replace=False)] = True
    nan = np.where(is_gap, np.nan, 1.0)
    df = pl.DataFrame({
        "ts": [START + STEP * i for i in range(n)], "instrument": instrument, "open": open_ * nan,
        "high": high * nan, "low": low * nan, "close": close * nan, "volume": np.full(n, 1e4) * nan,
        "is_gap": is_gap, "is_outlier": False, "ohlc_violation": False,
    }).with_columns(pl.col(c).fill_nan(None) for c in ("open", "high", "low", "close", "volume"))  # fmt: skip
    df = df.with_columns((pl.col("close") / pl.col("close").shift(1)).log().alias("ret"))
    return conform(df, BARS_SCHEMA), x


def _write_months(lake: Lake, frame: pl.DataFrame, group: str, name: str) -> None:
    tagged = frame.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias("_m"))
    for (inst, month), part in tagged.group_by("instrument", "_m"):
        lake.write(part.drop("_m"), group, name, {"instrument": str(inst), "month": str(month)})


def build_model_lake(lake: Lake, beta: float = 0.00015, days: int = 59, gaps: int = 6) -> None:
    n = 288 * days
    cols = columns_of(load_feature_specs())
    for k, inst in enumerate(PERPS):
        bars, x = driven_bars(inst, n, seed=10 + k, beta=beta, gaps=gaps)
        _write_months(lake, bars, "cleaned", "bars")
        for tf, name in (("1h", "bars_1h"), ("1d", "bars_1d")):
            parts = [resample_bars(p, tf) for p in bars.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias("_m"))
                     .partition_by("_m")]  # fmt: skip
            _write_months(lake, pl.concat([p.drop("_m", strict=False) for p in parts]).sort("ts"), "cleaned", name)
        rng = np.random.default_rng(100 + k)
        feats = {c: pl.Series(c, rng.normal(size=n)) for c in cols[:8]}
        feats[DRIVER] = pl.Series(DRIVER, x)
        f = pl.DataFrame({"ts": bars["ts"], "instrument": inst, "is_gap": bars["is_gap"], **feats})
        f = f.with_columns(pl.when(pl.col("is_gap")).then(None).otherwise(pl.col(c)).alias(c) for c in feats)
        _write_months(lake, f, "features", "features")
        _write_months(lake, window_embeddings(bars, (32, 64)), "features", "window_embeddings")
        fund = pl.DataFrame({"ts": [START + timedelta(hours=8 * i) for i in range(3 * days)], "instrument": inst,
                             "funding_rate": 1e-4, "vendor": "synthetic", "ingested_at": START})  # fmt: skip
        _write_months(lake, conform(fund, RAW_FUNDING_SCHEMA), "raw", "raw_funding")


def training_frame(n: int, signal: float, seed: int = 0, step: timedelta = timedelta(hours=1), p: int = 8,
                   label: str = "B1", instruments: int = 1, leaky: bool = False, horizon: int = 1) -> pl.DataFrame:
    """A training set as `training_sets` writes it: `p` features, the first of which drives the next return with
    weight `signal` (0: null data). `leaky` adds `leak` = a noisy copy of the label (it looks forward)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(instruments):
        x = rng.normal(size=(n, p)).astype(np.float32)
        r = signal * x[:, 0] + rng.normal(size=n)
        y_r = np.convolve(r, np.ones(horizon), mode="full")[horizon - 1 : horizon - 1 + n] if horizon > 1 else r
        y = {"B1": (y_r > 0).astype(float), "R": y_r, "T3": np.where(y_r > 0.5, 1.0, np.where(y_r < -0.5, -1.0, 0.0))}
        ts = [START + step * i for i in range(n)]
        cols = {f"f{i}": x[:, i] for i in range(p)}
        if leaky:
            cols["leak"] = (y_r + rng.normal(0, 0.3, n)).astype(np.float32)
        frames.append(pl.DataFrame({
            "ts": ts, "instrument": f"I{k}", "label": y[label], "label_end_ts": [t + step * horizon for t in ts],
            "emb": pl.Series(rng.normal(size=(n, 32)).astype(np.float32), dtype=pl.Array(pl.Float32, 32)), **cols,
        }))  # fmt: skip
    return pl.concat(frames).sort("ts", "instrument")
