"""Helpers for event-registry tests: hand-built single-instrument frames and in-memory event specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from lake_assets.events.registry import detect_events
from lake_assets.events.spec_model import EventSpec, event_spec_from_dict
from lake_assets.vocabulary import INSTRUMENT, IS_GAP, TS, TS_DTYPE

START = datetime(2024, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=5)


def make_frame(gaps: tuple[int, ...] = (), instrument: str = "TEST-PERP", **columns: list[Any]) -> pl.DataFrame:
    """A 5m-grid frame with the given columns; rows in `gaps` are gap bars."""
    n = len(next(iter(columns.values())))
    ts = pl.Series(TS, [START + i * BAR for i in range(n)], dtype=TS_DTYPE)
    return pl.DataFrame(
        {TS: ts, INSTRUMENT: [instrument] * n, IS_GAP: [i in gaps for i in range(n)], **columns},
        strict=False,
    )


def make_spec(
    template: str,
    params: dict[str, Any],
    columns: list[str],
    *,
    name: str = "TEST_EVENT",
    family: str = "VOLATILITY_TRANSITION",
    direction: str = "both",
    cooldown: int = 0,
    prevalence: tuple[float, float] = (0.01, 1000.0),
    **extra: Any,
) -> EventSpec:
    data = {
        "name": name,
        "family": family,
        "detector": {"template": template, "params": params},
        "columns": columns,
        "direction": direction,
        "cooldown": cooldown,
        "prevalence": {"min_per_1000": prevalence[0], "max_per_1000": prevalence[1]},
        **extra,
    }
    return event_spec_from_dict(data, f"{name}.yaml")


def fired(frame: pl.DataFrame, spec: EventSpec) -> list[int]:
    """Row indices of `frame` where `spec` fired."""
    events, _ = detect_events(frame, [spec])
    index = {t: i for i, t in enumerate(frame.get_column(TS).to_list())}
    return [index[t] for t in events.get_column(TS).to_list()]


def run_one(frame: pl.DataFrame, spec: EventSpec) -> pl.DataFrame:
    return detect_events(frame, [spec])[0]
