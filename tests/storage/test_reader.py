"""The lake reader: a month with warm-up equals a fresh read of those months, each partition file is read once while
it is unchanged, a rewritten partition is read afresh, the bytes it holds are bounded, and missing data is an empty
frame of the declared schema."""

from __future__ import annotations

import os
from datetime import date

import polars as pl
import pytest

from lake_assets import tables
from lake_assets.months import month_bounds, month_key, warmup_month_keys
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.storage.reader import LakeReader, warmup_start
from lake_assets.vocabulary import BARS_SCHEMA, INSTRUMENT, TIMEFRAMES, TS, Market


def _write_months(store: Lake, inst: Instrument, months: list[str], skip: frozenset[str] = frozenset(),
                  close: float = 0.0) -> None:  # fmt: skip
    step = TIMEFRAMES[inst.base_timeframe]
    for m in months:
        if m in skip:
            continue
        start, end = month_bounds(m)
        n = int((end - start) / step)
        frame = pl.DataFrame(
            {TS: [start + step * i for i in range(n)], INSTRUMENT: [inst.id] * n,
             "close": [close + float(i) for i in range(n)]}
        )  # fmt: skip
        store.write(frame, "cleaned", "bars", {INSTRUMENT: inst.id, "month": m})


def _spot(inst_id: str, timeframe: str = "5m") -> Instrument:
    start = date(2024, 1, 2)  # after its first month's start: that month's earlier bars are read all the same
    return Instrument(id=inst_id, vendor="synthetic", market=Market.SPOT, base_timeframe=timeframe, start=start)


def _fresh(store: Lake, inst: Instrument, month: str, lookback: int) -> pl.DataFrame:
    months = warmup_month_keys(inst, month, lookback)
    bars = store.read("cleaned", "bars", [{INSTRUMENT: inst.id, "month": m} for m in months], BARS_SCHEMA)
    return bars.filter(pl.col(TS) >= warmup_start(month, inst.base_timeframe, lookback)).sort(TS)


def _months(first: date, count: int) -> list[str]:
    out, m = [], month_key(first)
    for _ in range(count):
        out.append(m)
        m = month_key(month_bounds(m)[1])
    return out


@pytest.mark.parametrize(("timeframe", "lookback"), [("1d", 8690), ("5m", 8690), ("1h", 24 * 40)])
def test_warmup_read_equals_a_fresh_read_and_reads_each_month_once(tmp_path, timeframe: str, lookback: int) -> None:  # type: ignore[no-untyped-def]
    inst = _spot("AAA", timeframe)
    months = _months(inst.start, 14)
    store = Lake(tmp_path)
    _write_months(store, inst, months, skip=frozenset({months[5]}))  # a month without a file is skipped
    reader = LakeReader(store)
    for m in months:
        got = reader.with_warmup(tables.BARS, inst, m, lookback)
        want = _fresh(store, inst, m, lookback)
        assert got.equals(want), m
        assert got[TS].min() >= month_bounds(m)[0] - TIMEFRAMES[timeframe] * lookback
    assert reader.reads == len(months) - 1  # every existing partition read once, however far the warm-up reaches
    held_months = {k[0].split("month=")[1][:7] for k in reader._held}
    assert min(held_months) >= warmup_month_keys(inst, months[-1], lookback)[0]  # earlier months were let go
    if timeframe == "1d":  # 8,690 daily bars reach past the first month: the last month's history is everything
        every = pl.concat([pl.read_parquet(p) for p in sorted(tmp_path.rglob("*.parquet"))])
        assert reader.with_warmup(tables.BARS, inst, months[-1], lookback).equals(every.sort(TS))


def test_instrument_history_is_held_and_a_rewrite_is_read_afresh(tmp_path) -> None:  # type: ignore[no-untyped-def]
    inst = _spot("AAA")
    months = _months(inst.start, 2)
    store = Lake(tmp_path)
    _write_months(store, inst, months)
    first = store.reader.instrument(tables.BARS, "AAA")
    assert first[TS].is_sorted() and first.height == sum(
        int((month_bounds(m)[1] - month_bounds(m)[0]) / TIMEFRAMES["5m"]) for m in months)
    assert store.reader.instrument(tables.BARS, "AAA") is first  # held, not re-read
    reads = store.reader.reads
    path = store.partition_path("cleaned", "bars", {INSTRUMENT: "AAA", "month": months[1]})
    _write_months(store, inst, months[1:], close=1000.0)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a rewrite within the clock's resolution
    again = store.reader.instrument(tables.BARS, "AAA")
    assert again is not first and again["close"].max() >= 1000.0
    assert store.reader.reads == reads + len(months)  # the frame is held, not its partitions: all read again
    assert Lake(tmp_path / "other").reader.instrument(tables.BARS, "AAA").is_empty()  # another lake, another reader


def test_held_bytes_are_bounded_and_columns_are_selected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Lake(tmp_path)
    insts = [_spot(f"B{i}") for i in range(6)]
    for inst in insts:
        _write_months(store, inst, _months(inst.start, 1))
    one = store.reader.instrument(tables.BARS, "B0").estimated_size()
    reader = LakeReader(store, max_bytes=3 * one)
    for inst in insts:
        reader.instrument(tables.BARS, inst.id)
    assert reader._bytes <= 3 * one and len(reader._held) < 2 * len(insts)
    assert reader.instrument(tables.BARS, "B5", columns=[TS, "close"]).columns == [TS, "close"]


def test_an_instrument_without_bars_is_an_empty_bars_frame(tmp_path) -> None:  # type: ignore[no-untyped-def]
    got = LakeReader(Lake(tmp_path)).with_warmup(tables.BARS, _spot("NONE"), "2024-03", 100)
    assert got.height == 0 and got.schema == pl.Schema(BARS_SCHEMA)
