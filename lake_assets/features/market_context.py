"""Market context per bar timestamp (not per instrument): session, funding times, calendar flags, macro windows.

Everything here is a function of the bar's own timestamp and the calendar spec, so it is point-in-time by
construction and can be computed for any future grid as well.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from lake_assets.calendars import holiday_dates
from lake_assets.features.calendar import CalendarSpec
from lake_assets.vocabulary import TS, TS_DTYPE

__all__ = ["compute_market_context"]


def _grid(ts: pl.Series | tuple[datetime, datetime], period: timedelta) -> pl.Series:
    if isinstance(ts, pl.Series):
        if not isinstance(ts.dtype, pl.Datetime):
            raise ValueError(f"ts must be a Datetime series, got {ts.dtype}")
        return ts.cast(TS_DTYPE).alias(TS)
    start, end = ts
    return pl.datetime_range(
        start, end, interval=period, closed="left", time_unit="us", time_zone="UTC", eager=True
    ).alias(TS)


def _session_of(minute: pl.Expr, spec: CalendarSpec) -> pl.Expr:
    chain: Any = None
    for s in spec.sessions:
        a, b = s.start_min, s.end_min
        cond = (minute >= a) & (minute < b) if a < b else (minute >= a) | (minute < b)
        chain = pl.when(cond).then(pl.lit(s.name)) if chain is None else chain.when(cond).then(pl.lit(s.name))
    assert chain is not None  # the spec guarantees at least one session
    return chain.otherwise(pl.lit(None, pl.String))


def compute_market_context(
    ts: pl.Series | tuple[datetime, datetime], calendar_spec: CalendarSpec, *, bar_period: timedelta | None = None
) -> pl.DataFrame:
    """One row per bar open time: session, session_open/close, is_funding_ts, macro_window and calendar flags.

    `ts` is a Datetime series of bar open times or a (start, end) pair for a regular grid of `bar_period`
    (default: the spec's `bar_period`). `is_funding_ts`: a funding time (spec `funding_hours_utc`) falls in
    (open, close]. `macro_window`: the first declared macro event whose window overlaps [open, close).
    """
    period = bar_period or calendar_spec.period
    p_us = int(period / timedelta(microseconds=1))
    grid = _grid(ts, period)
    wall = pl.col(TS).dt.replace_time_zone(None)

    def minute_of(e: pl.Expr) -> pl.Expr:
        return e.dt.hour().cast(pl.Int32) * 60 + e.dt.minute().cast(pl.Int32)

    shift = pl.duration(microseconds=p_us)
    session = _session_of(minute_of(wall), calendar_spec)
    prev_session = _session_of(minute_of(wall - shift), calendar_spec)
    next_session = _session_of(minute_of(wall + shift), calendar_spec)

    sod = (wall - wall.dt.truncate("1d")).dt.total_microseconds()  # microseconds since UTC midnight
    day_us = 86_400_000_000
    crosses = pl.lit(p_us >= day_us)
    for h in calendar_spec.funding_hours_utc:
        for f in (h * 3_600_000_000, h * 3_600_000_000 + day_us):
            crosses = crosses | ((sod < f) & (sod + p_us >= f))

    macro: pl.Expr = pl.lit(None, pl.String)
    windows = [(e.name, a, b) for e in calendar_spec.macro_events for a, b in e.windows()]
    if windows:
        chain: Any = None
        for name, a, b in windows:
            cond = (pl.col(TS) <= pl.lit(b).cast(TS_DTYPE)) & (pl.col(TS) + shift > pl.lit(a).cast(TS_DTYPE))
            chain = pl.when(cond).then(pl.lit(name)) if chain is None else chain.when(cond).then(pl.lit(name))
        assert chain is not None
        macro = chain.otherwise(pl.lit(None, pl.String))

    hol = holiday_dates(calendar_spec.holiday_calendar, datetime(1990, 1, 1).date(), datetime(2100, 12, 31).date())
    return (
        pl.DataFrame(grid)
        .lazy()
        .select(
            pl.col(TS),
            session.alias("session"),
            (session != prev_session).alias("session_open"),
            (session != next_session).alias("session_close"),
            crosses.alias("is_funding_ts"),
            macro.alias("macro_window"),
            wall.dt.weekday().cast(pl.Int8).alias("weekday"),
            wall.dt.hour().cast(pl.Int8).alias("hour"),
            ((wall + pl.duration(days=1)).dt.month() != wall.dt.month()).alias("is_month_end"),
            wall.dt.date().is_in(pl.Series(hol, dtype=pl.Date).implode()).alias("is_holiday"),
        )
        .collect()
    )
