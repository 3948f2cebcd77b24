"""BarsHistory returns what a fresh read of the warm-up months returns, and reads each month partition once per run."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from lake_assets.features.history import BarsHistory, warmup_months
from lake_assets.raw.ingest import month_bounds, month_key
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import BARS_SCHEMA, INSTRUMENT, TIMEFRAMES, TS, Market


def _write_months(store: Lake, inst: Instrument, months: list[str], skip: frozenset[str] = frozenset()) -> None:
    step = TIMEFRAMES[inst.base_timeframe]
    for m in months:
        if m in skip:
            continue
        start, end = month_bounds(m)
        n = int((end - start) / step)
        frame = pl.DataFrame(
            {TS: [start + step * i for i in range(n)], INSTRUMENT: [inst.id] * n, "close": [float(i) for i in range(n)]}
        )
        store.write(frame, "cleaned", "bars", {INSTRUMENT: inst.id, "month": m})


def _spot(inst_id: str, timeframe: str = "5m") -> Instrument:
    start = date(2024, 1, 2)  # after its first month's start: that month's earlier bars are read all the same
    return Instrument(id=inst_id, vendor="synthetic", market=Market.SPOT, base_timeframe=timeframe, start=start)


def _fresh(store: Lake, inst: Instrument, month: str, lookback: int) -> pl.DataFrame:
    months, after = warmup_months(inst, month, lookback)
    bars = store.read("cleaned", "bars", [{INSTRUMENT: inst.id, "month": m} for m in months], BARS_SCHEMA)
    return bars.filter(after).sort(TS)


def _months(first: date, count: int) -> list[str]:
    out, m = [], month_key(first)
    for _ in range(count):
        out.append(m)
        m = month_key(month_bounds(m)[1])
    return out


@pytest.mark.parametrize(("timeframe", "lookback"), [("1d", 8690), ("5m", 8690), ("1h", 24 * 40)])
def test_history_equals_a_fresh_read_and_reads_each_month_once(tmp_path, timeframe: str, lookback: int) -> None:  # type: ignore[no-untyped-def]
    inst = _spot("AAA", timeframe)
    months = _months(inst.start, 14)
    store = Lake(tmp_path)
    _write_months(store, inst, months, skip=frozenset({months[5]}))  # a month without a file is skipped, as before
    history = BarsHistory(store)
    for m in months:
        got = history.read(inst, m, lookback)
        want = _fresh(store, inst, m, lookback)
        assert got.equals(want), m
        assert got[TS].min() >= month_bounds(m)[0] - TIMEFRAMES[timeframe] * lookback
    assert history.reads == len(months)  # every partition read once, however far the warm-up reaches
    if timeframe == "1d":  # 8,690 daily bars reach past the first month: the last month's history is everything
        every = pl.concat([pl.read_parquet(p) for p in sorted(tmp_path.rglob("*.parquet"))])
        assert history.read(inst, months[-1], lookback).equals(every.sort(TS))


def test_history_keeps_only_months_a_later_request_can_need(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = _spot("AAA"), _spot("BBB")
    months = _months(a.start, 6)
    store = Lake(tmp_path)
    _write_months(store, a, months)
    _write_months(store, b, months)
    history = BarsHistory(store)
    for m in months:  # the context asset's order: month by month, every instrument
        for inst in (a, b):
            assert history.read(inst, m, 8690).equals(_fresh(store, inst, m, 8690))
    held = history._months
    assert sorted(held) == ["AAA", "BBB"] and all(len(v) <= 3 for v in held.values())  # 5m: two warm-up months
    assert history.reads == 2 * len(months)
    # an out-of-order request is still answered right (it just reads again)
    assert history.read(a, months[1], 8690).equals(_fresh(store, a, months[1], 8690))


def test_history_of_an_instrument_without_bars_is_an_empty_bars_frame(tmp_path) -> None:  # type: ignore[no-untyped-def]
    inst = _spot("NONE")
    got = BarsHistory(Lake(tmp_path)).read(inst, "2024-03", 100)
    assert got.height == 0 and got.schema == pl.Schema(BARS_SCHEMA)
