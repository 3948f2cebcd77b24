"""Month keys and month arithmetic: the one calendar of partitions, used by every layer, the sensors and the CLI.

A month key is "YYYY-MM"; a month is the UTC interval [first day, first day of the next month).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from lake_assets.specs import Instrument
from lake_assets.vocabulary import TIMEFRAMES

__all__ = ["instrument_window", "month_bounds", "month_key", "months_between", "previous_month", "warmup_month_keys"]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """'2026-03' -> [2026-03-01, 2026-04-01) in UTC."""
    try:
        d = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"invalid month key {month!r}: expected YYYY-MM") from exc
    nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return d, nxt


def month_key(d: date | datetime) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Month keys from `first` to `last` inclusive (empty when last < first)."""
    out, m = [], first
    while m <= last:
        out.append(m)
        m = month_key(month_bounds(m)[1])
    return out


def warmup_month_keys(inst: Instrument, month: str, lookback_bars: int) -> list[str]:
    """The months of the instrument's life that `month`'s computation reads with `lookback_bars` bars of warm-up
    (the feature history reads them; the partition mappings declare them)."""
    warm_start = month_bounds(month)[0] - TIMEFRAMES[inst.base_timeframe] * lookback_bars
    return months_between(max(month_key(warm_start), month_key(inst.start)), month)


def previous_month(month: str) -> str:
    start, _ = month_bounds(month)
    return month_key(datetime(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1))


def instrument_window(inst: Instrument, month: str) -> tuple[datetime, datetime] | None:
    """The part of a month inside the instrument's [start, end] span, or None."""
    lo, hi = inst.life_window(*month_bounds(month))
    return (lo, hi) if lo < hi else None
