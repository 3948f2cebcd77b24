"""Synthetic perps through the real layers (vendor -> raw validation -> cleaned bars -> features), in memory or
written to a lake as the assets would (bars, features and raw_funding partitions per instrument-month)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from lake_assets import tables
from lake_assets.cleaned.bars import build_bars, dedupe
from lake_assets.features.catalog import load_feature_specs
from lake_assets.features.compute import compute_features
from lake_assets.months import month_bounds, months_between
from lake_assets.raw.ingest import validate_raw
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.trades import trades_to_bars
from lake_assets.vendors.synthetic import SyntheticVendor
from lake_assets.vocabulary import TS, DataKind, Market


def perp(seed: int, name: str = "TEST", price: float = 100.0) -> tuple[Instrument, Instrument]:
    """A synthetic perp and its spot leg (trades on the perp: order-flow features)."""
    start = date(2026, 1, 1)
    params = {"seed": seed, "base_price": price}
    spot = Instrument(id=f"{name}USDT", vendor="synthetic", market=Market.SPOT, start=start, params=params)
    p = Instrument(id=f"{name}USDT-PERP", vendor="synthetic", market=Market.PERP, spot=spot.id, start=start,
                   params={**params, "trades": True})  # fmt: skip
    return p, spot


def perp_frames(pair: tuple[Instrument, Instrument], first: str, last: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(bars, features) of the perp over the months [first, last]."""
    inst, spot = pair
    start, end = month_bounds(first)[0], month_bounds(last)[1]
    vendor = SyntheticVendor(as_of=end)
    raw = {k: vendor.fetch(inst, start, end, k) for k in DataKind}
    ohlcv = dedupe(validate_raw(raw[DataKind.OHLCV], DataKind.OHLCV).accepted)[0]
    spot_ohlcv = dedupe(validate_raw(vendor.fetch(spot, start, end, DataKind.OHLCV), DataKind.OHLCV).accepted)[0]
    trade_bars = trades_to_bars(raw[DataKind.TRADES].lazy(), "5m") if raw[DataKind.TRADES].height else None
    months = []
    for m in months_between(first, last):
        s, e = month_bounds(m)
        months.append(build_bars(
            ohlcv, instrument=inst.id, timeframe="5m", start=s, end=e, funding=raw[DataKind.FUNDING],
            open_interest=raw[DataKind.OPEN_INTEREST], spot=spot_ohlcv, trade_bars=trade_bars,
        ))  # fmt: skip
    bars = pl.concat(months).sort(TS)
    return bars, compute_features(bars, load_feature_specs(), timeframe="5m")


def write_perp_lake(lake: Lake, pairs: list[tuple[Instrument, Instrument]], first: str, last: str) -> None:
    """bars, features and raw_funding partitions of each perp, month by month."""
    for pair in pairs:
        inst = pair[0]
        bars, feats = perp_frames(pair, first, last)
        start, end = month_bounds(first)[0], month_bounds(last)[1]
        funding = SyntheticVendor(as_of=end).fetch(inst, start, end, DataKind.FUNDING)
        for m in months_between(first, last):
            s, e = month_bounds(m)
            dims = {"instrument": inst.id, "month": m}
            in_month = (pl.col(TS) >= s) & (pl.col(TS) < e)
            lake.write(bars.filter(in_month), tables.BARS.group, tables.BARS.name, dims)
            lake.write(feats.filter(in_month), tables.FEATURES.group, tables.FEATURES.name, dims)
            lake.write(funding.filter(in_month), tables.RAW_FUNDING.group, tables.RAW_FUNDING.name, dims)


UTC_START = datetime(2026, 1, 1, tzinfo=UTC)
