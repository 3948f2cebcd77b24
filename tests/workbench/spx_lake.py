"""A small lake for the workbench tests: SPX daily bars 2016-06..2018-12 (the S&P 500 shipped with `arch`) per
month, and a `vol_regime` feature (terciles of 20-day realised vol), written through `Lake.write` as the layers
write them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from lake_assets.storage.lake import Lake


def spx_bars() -> pl.DataFrame:
    from lake_assets.vendors.packaged import load_dataset

    bars = load_dataset("sp500").filter(pl.col("ts").dt.date().is_between(date(2016, 6, 1), date(2018, 12, 31)))
    return bars.select("ts", pl.lit("SPX").alias("instrument"), "open", "high", "low", "close", "volume",
                       pl.lit(False).alias("is_gap"))  # fmt: skip


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
