"""Durations written in specs: '<int><unit>' with unit s, m, h, d or w ('90m', '2h', '4d', '1w')."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: object, *, allow_zero: bool = False) -> timedelta:
    """'90m', '2h', '4d', '1w' -> timedelta (a timedelta passes through); anything else raises ValueError naming it.
    Zero is refused unless `allow_zero` (a window that may have no margin)."""
    if isinstance(text, timedelta):
        value = text
    else:
        match = _DURATION.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError("expected a duration like '30m', '2h', '4d' (<int><s|m|h|d|w>)")
        value = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        raise ValueError(f"duration must be {'non-negative' if allow_zero else 'positive'}, got {text!r}")
    return value
