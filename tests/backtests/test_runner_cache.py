"""The instrument-bars cache the strategies of one run share: a hit returns the held frame, a rewritten partition
is read afresh, the size bound holds, and `clear_bars_cache` empties it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import polars as pl

from lake_assets.backtests import runner
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT, TS


def _bars(inst: str, start: datetime, n: int, close: float) -> pl.DataFrame:
    ts = [start + timedelta(minutes=5 * i) for i in range(n)]
    return pl.DataFrame({TS: ts, INSTRUMENT: [inst] * n, "close": [close] * n})


def test_bars_cache_hits_and_sees_rewrites(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Lake(tmp_path)
    jan, feb = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    store.write(_bars("AAA", feb, 3, 2.0), "cleaned", "bars", {INSTRUMENT: "AAA", "month": "2026-02"})
    store.write(_bars("AAA", jan, 3, 1.0), "cleaned", "bars", {INSTRUMENT: "AAA", "month": "2026-01"})
    runner.clear_bars_cache()
    first = runner.instrument_bars(store, "AAA")
    assert first.height == 6 and first[TS].is_sorted() and first["close"].to_list() == [1.0] * 3 + [2.0] * 3
    assert runner.instrument_bars(store, "AAA") is first  # held, not re-read

    path = store.write(_bars("AAA", feb, 4, 3.0), "cleaned", "bars", {INSTRUMENT: "AAA", "month": "2026-02"})
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a rewrite within the clock's resolution
    again = runner.instrument_bars(store, "AAA")
    assert again is not first and again.height == 7 and again["close"].tail(4).to_list() == [3.0] * 4

    for i in range(runner.BARS_CACHE_SIZE + 2):
        inst = f"B{i}"
        store.write(_bars(inst, jan, 2, 1.0), "cleaned", "bars", {INSTRUMENT: inst, "month": "2026-01"})
        runner.instrument_bars(store, inst)
    assert len(runner._BARS_CACHE) == runner.BARS_CACHE_SIZE
    assert runner.instrument_bars(Lake(tmp_path / "other"), "AAA").is_empty()  # another lake is another key
    runner.clear_bars_cache()
    assert not runner._BARS_CACHE
