"""Exchange holiday calendars: full-day closures by calendar name ("XNYS" = NYSE, "NONE" = trades every day).

NYSE holidays come from `pandas.tseries.holiday` rules plus the exchange's one-off closures, so no calendar package is
needed. The cleaned layer grids daily bars on them; the features layer's calendar features read them.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

__all__ = ["HOLIDAY_CALENDARS", "holiday_dates"]


class NYSEHolidayCalendar(AbstractHolidayCalendar):
    """Full-day NYSE closures by rule (New Year's Day is not moved back to a Friday, per NYSE rule 7.2)."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas", month=12, day=25, observance=nearest_workday),
    ]


# Unscheduled NYSE closures (national days of mourning, 9/11, Hurricane Sandy).
NYSE_SPECIAL_CLOSURES: tuple[date, ...] = (
    date(1994, 4, 27),
    date(2001, 9, 11),
    date(2001, 9, 12),
    date(2001, 9, 13),
    date(2001, 9, 14),
    date(2004, 6, 11),
    date(2007, 1, 2),
    date(2012, 10, 29),
    date(2012, 10, 30),
    date(2018, 12, 5),
    date(2025, 1, 9),
)

HOLIDAY_CALENDARS = ("XNYS", "NONE")


@lru_cache(maxsize=32)
def _holidays(calendar: str, start: date, end: date) -> tuple[date, ...]:
    if calendar == "NONE":
        return ()
    if calendar != "XNYS":
        raise ValueError(f"unknown holiday calendar {calendar!r}; expected one of {list(HOLIDAY_CALENDARS)}")
    idx = NYSEHolidayCalendar().holidays(start=pd.Timestamp(start), end=pd.Timestamp(end))
    days = {d.date() for d in idx} | {d for d in NYSE_SPECIAL_CLOSURES if start <= d <= end}
    return tuple(sorted(days))


def holiday_dates(calendar: str, start: date, end: date) -> list[date]:
    """Full-day closures of `calendar` ("XNYS" = NYSE; "NONE" = trades every day) between start and end inclusive."""
    return list(_holidays(calendar, start, end))
