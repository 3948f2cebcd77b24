"""An instrument's cleaned bars for one month plus the warm-up before it, with each month partition read once per run.

Consecutive months of one instrument share most of their warm-up: at 5m every month is read again for the two months
after it, and at 1d (where the catalogue's lookback in bars spans decades) every month is read again for every later
month, so a long daily backfill read its files quadratically often. `BarsHistory` keeps the month frames it has read
until a request of the same instrument starts after them; the frame it returns is the one a fresh read would give.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from lake_assets.raw.ingest import month_bounds, warmup_month_keys
from lake_assets.specs import Instrument
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import BARS_SCHEMA, INSTRUMENT, TIMEFRAMES, TS

__all__ = ["BarsHistory", "warmup_months", "warmup_start"]


def warmup_start(month: str, timeframe: str, lookback_bars: int) -> datetime:
    """Where `month`'s features start reading: `lookback_bars` bars of `timeframe` before the month start."""
    return month_bounds(month)[0] - TIMEFRAMES[timeframe] * lookback_bars


def warmup_months(inst: Instrument, month: str, lookback_bars: int) -> tuple[list[str], pl.Expr]:
    """The month partitions holding `month` and `lookback_bars` bars before it, and the filter on the warm-up start."""
    return warmup_month_keys(inst, month, lookback_bars), pl.col(TS) >= warmup_start(month, inst.base_timeframe,
                                                                                       lookback_bars)


class BarsHistory:
    """Cleaned bars with warm-up, reading each (instrument, month) partition once while later requests need it.

    Requests should come in month order per instrument (as `instrument_months` and month partition keys are sorted);
    an out-of-order request is still right, it only reads again.
    """

    def __init__(self, store: Lake) -> None:
        self._store = store
        self._months: dict[str, dict[str, pl.DataFrame]] = {}  # instrument -> month -> that partition's bars
        self.reads = 0  # partition files read so far

    def read(self, inst: Instrument, month: str, lookback_bars: int) -> pl.DataFrame:
        """The instrument's bars from (month start - lookback) to month end, sorted by ts."""
        months, after_warm_start = warmup_months(inst, month, lookback_bars)
        held = self._months.setdefault(inst.id, {})
        for m in [m for m in held if m < months[0]]:  # no later request of this instrument reaches back to it
            del held[m]
        frames = []
        for m in months:
            if m not in held:
                held[m] = self._store.read("cleaned", "bars", [{INSTRUMENT: inst.id, "month": m}], BARS_SCHEMA)
                self.reads += 1
            if held[m].height:
                frames.append(held[m])
        if not frames:
            return pl.DataFrame(schema=BARS_SCHEMA)
        bars = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
        return bars.filter(after_warm_start).sort(TS)
