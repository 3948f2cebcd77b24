"""A small lake for the workbench tests: SPX daily bars 2016-06..2018-12 (the S&P 500 shipped with `arch`) per
month, and a `vol_regime` feature (terciles of 20-day realised vol), written through `Lake.write` as the layers
write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from lake_assets.storage.lake import Lake


def spx_bars() -> pl.DataFrame:
    from arch.data import sp500

    df = sp500.load()
    df = df[(df.index >= "2016-06-01") & (df.index <= "2018-12-31")]
    return pl.DataFrame(
        {
            "ts": df.index.to_numpy(),
            "instrument": "SPX",
            "open": df["Open"].to_numpy(dtype=float),
            "high": df["High"].to_numpy(dtype=float),
            "low": df["Low"].to_numpy(dtype=float),
            "close": df["Close"].to_numpy(dtype=float),
            "volume": df["Volume"].to_numpy(dtype=float),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.lit(False).alias("is_gap"))


def write_spx_lake(root: Path) -> Lake:
    store = Lake(root / "lake")
    bars = spx_bars()
    lr = np.r_[np.nan, np.diff(np.log(bars["close"].to_numpy()))]
    rv = pl.Series(lr).rolling_std(20).to_numpy()
    lo, hi = np.nanquantile(rv, [0.33, 0.67])
    regime = np.where(np.isnan(rv), None, np.where(rv <= lo, "low", np.where(rv >= hi, "high", "mid")))
    feats = bars.select("ts", "instrument").with_columns(pl.Series("vol_regime", regime.tolist(), dtype=pl.String))
    for frame, group, name in ((bars, "cleaned", "bars"), (feats, "features", "features")):
        months = frame.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias("_m"))
        for (m,), part in months.group_by("_m", maintain_order=True):
            store.write(part.drop("_m"), group, name, {"instrument": "SPX", "month": str(m)})
    return store
