"""A demo-like lake in memory: the universe's synthetic crypto instruments through the real layers (vendor -> cleaned
bars -> features, context features, market context -> the event layer's joined frame), month by month as the assets
build them, without Dagster or files."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from lake_assets.cleaned.bars import build_bars, dedupe
from lake_assets.events.inputs import join_event_inputs
from lake_assets.features.calendar import load_calendar_spec
from lake_assets.features.catalog import load_feature_specs
from lake_assets.features.compute import compute_features
from lake_assets.features.context import (
    benchmarks_from_universe,
    compute_context_features,
    own_underlying_benchmark,
)
from lake_assets.features.market_context import compute_market_context
from lake_assets.months import month_bounds, months_between
from lake_assets.raw.ingest import validate_raw
from lake_assets.specs import universe
from lake_assets.trades import trades_to_bars
from lake_assets.vendors.synthetic import SyntheticVendor
from lake_assets.vocabulary import TS, DataKind


def demo_event_frames(first: str = "2026-01", last: str = "2026-03") -> dict[str, pl.DataFrame]:
    """Instrument -> the joined frame `event_registry` reads, for the synthetic instruments over [first, last]."""
    u = universe()
    insts = [i for i in u.instruments if i.vendor == "synthetic"]
    start, end = month_bounds(first)[0], month_bounds(last)[1]
    vendor = SyntheticVendor(as_of=end)
    raw = {i.id: {k: vendor.fetch(i, start, end, k) for k in DataKind} for i in insts}
    bars: dict[str, pl.DataFrame] = {}
    ohlcvs = {i.id: dedupe(validate_raw(raw[i.id][DataKind.OHLCV], DataKind.OHLCV).accepted)[0] for i in insts}
    for i in insts:
        months = []
        ohlcv, spot = ohlcvs[i.id], ohlcvs[i.spot] if i.spot else None
        trades = raw[i.id][DataKind.TRADES]
        trade_bars = trades_to_bars(trades.lazy(), i.base_timeframe) if trades.height else None
        for m in months_between(first, last):
            s, e = month_bounds(m)
            months.append(build_bars(
                ohlcv, instrument=i.id, timeframe=i.base_timeframe, start=s, end=e,
                funding=raw[i.id][DataKind.FUNDING], open_interest=raw[i.id][DataKind.OPEN_INTEREST], spot=spot,
                trade_bars=trade_bars if trade_bars is not None and trade_bars.height else None,
            ))  # fmt: skip
        bars[i.id] = pl.concat(months).sort(TS)
    catalog = load_feature_specs()
    context = compute_context_features(
        bars, benchmarks_from_universe(u), catalog, own_underlying=own_underlying_benchmark(u)
    )
    market = compute_market_context((start, end), load_calendar_spec())
    return {
        i.id: join_event_inputs(
            bars[i.id],
            compute_features(bars[i.id], catalog, timeframe=i.base_timeframe),
            context.filter(pl.col("instrument") == i.id),
            market,
        )
        for i in insts
    }


if __name__ == "__main__":  # counts per event type and instrument: python tests/events/demo_lake.py 2026-01 2026-11
    import sys
    import time

    from lake_assets.events.registry import detect_events
    from lake_assets.events.spec_model import event_specs

    t0 = time.time()
    frames = demo_event_frames(*sys.argv[1:3])
    t1 = time.time()
    specs = event_specs().specs
    rows = []
    for inst, frame in frames.items():
        events, app = detect_events(frame, specs, inst)
        counts = dict(events.group_by("event_type").len().iter_rows())
        n_bars = int(app["n_bars"][0])
        for r in app.iter_rows(named=True):
            n = counts.get(r["event_type"], 0)
            rows.append((r["event_type"], inst, r["applicable"], n, 1000 * n / n_bars, r["reason"]))
    t2 = time.time()
    table = pl.DataFrame(rows, schema=["event_type", "instrument", "applicable", "n", "per_1000", "reason"],
                         orient="row")  # fmt: skip
    with pl.Config(tbl_rows=400, fmt_str_lengths=90, tbl_width_chars=200):
        print(table.pivot(on="instrument", index="event_type", values="n").sort("event_type"))
        print(table.filter(~pl.col("applicable")).select("event_type", "instrument", "reason"))
        print(table.filter(pl.col("applicable")).group_by("event_type").agg(
            pl.col("per_1000").min().alias("min_rate"), pl.col("per_1000").max().alias("max_rate")).sort("min_rate"))
    print(f"build {t1 - t0:.1f}s detect {t2 - t1:.1f}s", datetime.now(UTC))
