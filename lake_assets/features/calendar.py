"""`spec/calendar.yaml` (sessions, funding times, macro-event windows; holidays are `lake_assets.calendars`).

`load_calendar_spec` validates the YAML with errors naming file, key and problem.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from lake_assets.calendars import HOLIDAY_CALENDARS
from lake_assets.durations import parse_duration
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, read_yaml, spec_hash, validate_model

# --- spec/calendar.yaml -----------------------------------------------------------------------

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def _minutes(hhmm: str) -> int:
    if not _HHMM.fullmatch(hhmm):
        raise ValueError(f"time {hhmm!r} must be HH:MM (UTC, 00:00..24:00)")
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class Session(StrictModel):
    """A trading session as a UTC [start, end) clock interval; end < start wraps over midnight."""

    name: str
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, v: str) -> str:
        _minutes(v)
        return v

    @property
    def start_min(self) -> int:
        return _minutes(self.start) % 1440

    @property
    def end_min(self) -> int:
        return _minutes(self.end) % 1440


class MacroEvent(StrictModel):
    """A scheduled macro release; bars overlapping [time - before, time + after] are inside its window."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    before: str = "0m"
    after: str = "0m"
    times: tuple[datetime, ...]

    @field_validator("before", "after")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v, allow_zero=True)
        return v

    @field_validator("times")
    @classmethod
    def _aware(cls, v: tuple[datetime, ...]) -> tuple[datetime, ...]:
        if not v:
            raise ValueError("times must list at least one timestamp")
        for t in v:
            if t.tzinfo is None:
                raise ValueError(f"time {t.isoformat()} has no timezone; write it in UTC with a trailing Z")
        return tuple(t.astimezone(UTC) for t in v)

    def windows(self) -> list[tuple[datetime, datetime]]:
        b, a = parse_duration(self.before, allow_zero=True), parse_duration(self.after, allow_zero=True)
        return [(t - b, t + a) for t in self.times]


class CalendarSpec(StrictModel):
    holiday_calendar: str = "XNYS"
    bar_period: str = "5m"
    funding_hours_utc: tuple[int, ...] = (0, 8, 16)
    sessions: tuple[Session, ...]
    macro_events: tuple[MacroEvent, ...] = ()
    spec_hash: str = ""

    @field_validator("holiday_calendar")
    @classmethod
    def _known_calendar(cls, v: str) -> str:
        if v not in HOLIDAY_CALENDARS:
            raise ValueError(f"unknown holiday calendar {v!r}; expected one of {list(HOLIDAY_CALENDARS)}")
        return v

    @field_validator("bar_period")
    @classmethod
    def _period(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("funding_hours_utc")
    @classmethod
    def _hours(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(h < 0 or h > 23 for h in v) or len(set(v)) != len(v):
            raise ValueError(f"funding_hours_utc must be distinct hours in 0..23, got {list(v)}")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _tiles_day(self) -> CalendarSpec:
        if not self.sessions:
            raise ValueError("sessions must declare at least one session")
        covered = [0] * 1440
        for s in self.sessions:
            if s.start_min == s.end_min:
                raise ValueError(f"session {s.name!r} is empty (start == end)")
            m = s.start_min
            while m != s.end_min:
                covered[m] += 1
                m = (m + 1) % 1440
        holes = [m for m, c in enumerate(covered) if c == 0]
        overlaps = [m for m, c in enumerate(covered) if c > 1]
        if holes or overlaps:
            what = "leave minute" if holes else "overlap at minute"
            m = (holes or overlaps)[0]
            raise ValueError(f"sessions must tile the UTC day exactly; they {what} {m // 60:02d}:{m % 60:02d}")
        names = [s.name for s in self.sessions]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate session names {names}")
        events = [e.name for e in self.macro_events]
        if len(set(events)) != len(events):
            raise ValueError(f"duplicate macro event names {events}")
        return self

    @property
    def period(self) -> timedelta:
        return parse_duration(self.bar_period)


def load_calendar_spec(path: Path | None = None) -> CalendarSpec:
    """Read and validate `spec/calendar.yaml`; its hash travels with the market-context outputs."""
    path = path or spec_dir() / "calendar.yaml"
    data: Any = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(path, "<root>", "expected a mapping with `sessions`")
    spec: CalendarSpec = validate_model(CalendarSpec, data, path)
    return spec.model_copy(update={"spec_hash": spec_hash(path.name, root=path.parent)})
