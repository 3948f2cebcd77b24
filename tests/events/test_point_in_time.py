"""Point-in-time: events for any window are identical whether or not later bars exist (truncation tests)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from synthetic_inputs import synthetic_event_frame

from lake_assets.events.registry import detect_events
from lake_assets.events.spec_model import EventCatalog
from lake_assets.vocabulary import TS

N_BARS = 3000
LATE_COLUMNS = ("funding_rate", "funding_z", "funding_extreme", "carry_state", "funding_carry_ann", "spread_bps")


def _late_vendor(frame: pl.DataFrame, start: int) -> pl.DataFrame:
    """Funding and top-of-book only exist from row `start` on (a vendor that began later)."""
    row = pl.int_range(pl.len())
    return frame.with_columns(pl.when(row >= start).then(pl.col(c)).alias(c) for c in LATE_COLUMNS)


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    perp = synthetic_event_frame(N_BARS, instrument="PIT-PERP", seed=7, gap_rate=0.004)
    return {"perp": perp, "late": _late_vendor(perp, 1500)}


@pytest.fixture(scope="module")
def full_events(frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog) -> dict[str, pl.DataFrame]:
    return {k: detect_events(f, shipped_specs)[0] for k, f in frames.items()}


def _check_cut(frame: pl.DataFrame, full: pl.DataFrame, specs: EventCatalog, cut: int) -> None:
    head = frame.head(cut)
    truncated, _ = detect_events(head, specs)
    boundary = frame.get_column(TS)[cut] if cut < frame.height else None
    expected = full if boundary is None else full.filter(pl.col(TS) < boundary)
    assert_frame_equal(truncated, expected)


def test_full_run_is_rich_enough_to_mean_something(full_events: dict[str, pl.DataFrame]) -> None:
    events = full_events["perp"]
    assert events.height > 200
    assert events["event_type"].n_unique() >= 30


@pytest.mark.parametrize("cut", [1, 1000, 1500, 2305, 2999])
@pytest.mark.parametrize("which", ["perp", "late"])
def test_truncation_at_fixed_cut_points(
    frames: dict[str, pl.DataFrame],
    full_events: dict[str, pl.DataFrame],
    shipped_specs: EventCatalog,
    which: str,
    cut: int,
) -> None:
    _check_cut(frames[which], full_events[which], shipped_specs, cut)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=N_BARS), which=st.sampled_from(["perp", "late"]))
def test_truncation_at_random_cut_points(
    frames: dict[str, pl.DataFrame],
    full_events: dict[str, pl.DataFrame],
    shipped_specs: EventCatalog,
    cut: int,
    which: str,
) -> None:
    _check_cut(frames[which], full_events[which], shipped_specs, cut)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.floats(min_value=0.0, max_value=1.0, exclude_max=True), which=st.sampled_from(["perp", "late"]))
def test_each_event_is_known_when_its_bar_is_the_last_one(
    frames: dict[str, pl.DataFrame],
    full_events: dict[str, pl.DataFrame],
    shipped_specs: EventCatalog,
    pick: float,
    which: str,
) -> None:
    """Cut right after a randomly chosen event's bar: the sharpest test, since lookahead shows at the edge."""
    frame, full = frames[which], full_events[which]
    event_ts = full.get_column(TS)[int(pick * full.height)]
    cut = frame.get_column(TS).search_sorted(event_ts) + 1
    _check_cut(frame, full, shipped_specs, int(cut))


@pytest.mark.parametrize("which", ["perp", "late"])
def test_every_event_type_at_its_own_event_bars(
    frames: dict[str, pl.DataFrame], full_events: dict[str, pl.DataFrame], shipped_specs: EventCatalog, which: str
) -> None:
    """For each type, cut right after its first, middle and last event (and one bar earlier): no lookahead anywhere."""
    frame, full = frames[which], full_events[which]
    grid = frame.get_column(TS)
    for spec in shipped_specs:
        mine = full.filter(pl.col("event_type") == spec.name)
        for k in sorted({0, mine.height // 2, mine.height - 1}) if mine.height else []:
            row = int(grid.search_sorted(mine.get_column(TS)[k]))
            for cut in [c for c in (row + 1, row) if c > 0]:
                got, _ = detect_events(frame.head(cut), [spec])
                assert_frame_equal(got, mine.filter(pl.col(TS) < grid[cut] if cut < len(grid) else pl.lit(True)))


def test_late_vendor_columns_are_not_applicable_on_early_windows(
    frames: dict[str, pl.DataFrame], shipped_specs: EventCatalog, full_events: dict[str, pl.DataFrame]
) -> None:
    _, app = detect_events(frames["late"].head(1000), shipped_specs)
    na = app.filter(~pl.col("applicable"))
    assert "FUNDING_FLIP" in na["event_type"].to_list()
    early = full_events["late"].filter(pl.col(TS) < frames["late"].get_column(TS)[1000])
    assert "FUNDING_FLIP" not in early["event_type"].to_list()
    assert "FUNDING_TIMESTAMP_EVENT" not in early["event_type"].to_list()
    assert "FUNDING_TIMESTAMP_EVENT" in full_events["late"]["event_type"].to_list()
