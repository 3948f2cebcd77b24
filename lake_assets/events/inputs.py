"""The one frame per instrument that detectors read: bars + features + context features + market context."""

from __future__ import annotations

import polars as pl

from lake_assets import tables
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT, IS_GAP, TS


def join_event_inputs(
    bars: pl.DataFrame, features: pl.DataFrame, context: pl.DataFrame, market: pl.DataFrame
) -> pl.DataFrame:
    """Left-join everything onto the bar grid; later layers never re-derive what an earlier one published."""
    frame = bars.sort(TS)
    if features.height:
        frame = frame.join(features.drop([c for c in (INSTRUMENT, IS_GAP) if c in features.columns]), on=TS,
                           how="left", suffix="_feature")  # fmt: skip
    if context.height:
        frame = frame.join(context.drop(INSTRUMENT), on=TS, how="left", suffix="_context")
    if market.height:
        frame = frame.join(market, on=TS, how="left", suffix="_market")
    return frame


def instrument_event_frame(store: Lake, inst: Instrument, context: pl.DataFrame | None = None) -> pl.DataFrame:
    """Pass `context` (all of `context_features`) when building many instruments, so it is read once, not per one."""
    reader = store.reader
    months = reader.months(tables.BARS, inst.id)
    bars = reader.instrument(tables.BARS, inst.id, months=months, hold=False)
    if bars.is_empty():
        return bars
    features = reader.instrument(tables.FEATURES, inst.id, months=months, hold=False)
    context = reader.table(tables.CONTEXT_FEATURES) if context is None else context
    context = context.filter(pl.col(INSTRUMENT) == inst.id).drop("month", strict=False) if context.height else context
    market = reader.read(tables.MARKET_CONTEXT, [{"month": m} for m in months])
    return join_event_inputs(bars, features, context, market.drop("month", strict=False) if market.height else market)
