"""Compile every numba kernel into the on-disk cache ($NUMBA_CACHE_DIR) by running the real compute on tiny data.

`qlake demo` starts this in a background process: compiling the feature, event and backtest kernels then overlaps
with ingestion (mostly Dagster bookkeeping) instead of stalling the first run that needs them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl


def warm_up() -> None:
    from lake_assets.backtests.brackets import bracket_orders
    from lake_assets.backtests.engine import EngineConfig, run_orders, run_signals
    from lake_assets.backtests.optimise import signal_returns
    from lake_assets.backtests.schema import SizeType
    from lake_assets.backtests.strategy_spec import compile_signals, load_strategies
    from lake_assets.cleaned.bars import build_bars, dedupe
    from lake_assets.events.registry import detect_events
    from lake_assets.events.spec_model import event_specs
    from lake_assets.features.catalog import load_feature_specs
    from lake_assets.features.compute import compute_features
    from lake_assets.months import month_bounds
    from lake_assets.raw.ingest import validate_raw
    from lake_assets.specs import universe
    from lake_assets.vendors.synthetic import SyntheticVendor
    from lake_assets.vocabulary import DataKind

    inst = next(i for i in universe().instruments if i.vendor == "synthetic" and i.market == "perp")
    start, end = month_bounds(f"{inst.start.year:04d}-{inst.start.month:02d}")
    vendor = SyntheticVendor(as_of=datetime.now(UTC))
    raw = {k: vendor.fetch(inst, start, end, k) for k in (DataKind.OHLCV, DataKind.FUNDING, DataKind.OPEN_INTEREST)}
    ohlcv, _ = dedupe(validate_raw(raw[DataKind.OHLCV], DataKind.OHLCV).accepted)
    bars = build_bars(ohlcv, instrument=inst.id, timeframe=inst.base_timeframe, start=start, end=end,
                      funding=raw[DataKind.FUNDING], open_interest=raw[DataKind.OPEN_INTEREST]).head(3000)  # fmt: skip
    features = compute_features(bars, load_feature_specs())
    frame = bars.join(features.drop("instrument", "is_gap"), on="ts", how="left")
    detect_events(frame, event_specs().specs, inst.id)
    close = frame["close"].fill_null(strategy="forward")
    signals = frame.select(
        "ts", "instrument",
        (close > close.rolling_mean(20)).alias("long_entry"), (close < close.rolling_mean(20)).alias("long_exit"),
    )  # fmt: skip
    run_signals(bars, signals, EngineConfig())
    run_signals(bars, signals, EngineConfig(), fast=False)
    # the bracket-order path every blueprint and every spec with stops goes through
    brackets = bars.join(signals.drop("instrument"), on="ts").with_columns(
        pl.lit("warmup").alias("strategy"), pl.lit(False).alias("short_entry"), pl.lit(False).alias("short_exit")
    )
    orders = bracket_orders(brackets, strategy="warmup", size_type=SizeType.EQUITY_PERCENT, size=0.5,
                            stop_frac=0.01, target_frac=0.02, max_hold_bars=24)  # fmt: skip
    run_orders(bars, orders, EngineConfig(taker_fee=0.0004, default_spread_bps=1.0, participation_rate=0.1))
    for spec in load_strategies().values():
        if spec.applies_to(inst.market):
            signal_returns(compile_signals(frame, spec), spec)
            break
    np.seterr(all="ignore")


if __name__ == "__main__":
    pl.Config.set_tbl_rows(1)
    warm_up()
