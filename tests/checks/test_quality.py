"""Plain-polars quality checks against pure-Python reference implementations, plus thresholds.yaml loading."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_assets.checks.quality import (
    CheckOutcome,
    gap_ratio,
    gap_ratio_check,
    gap_runs,
    load_thresholds,
    ohlc_consistency,
    schema_check,
    staleness_check,
    timestamps_unique_increasing,
)
from lake_assets.durations import parse_duration
from lake_assets.specs import SpecError
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    CLOSE,
    HIGH,
    INSTRUMENT,
    IS_GAP,
    LOW,
    OHLC_VIOLATION,
    OPEN,
    RAW_OHLCV_SCHEMA,
    TS,
    TS_DTYPE,
    conform,
    empty_frame,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def ts_frame(rows: Sequence[tuple[str, int | None]]) -> pl.DataFrame:
    """(instrument, minutes after T0) rows, in the given order."""
    return pl.DataFrame(
        {
            INSTRUMENT: [r[0] for r in rows],
            TS: [None if r[1] is None else T0 + timedelta(minutes=r[1]) for r in rows],
        },
        schema={INSTRUMENT: pl.String, TS: TS_DTYPE},
    )


def _assert_outcome_types(outcome: CheckOutcome) -> None:
    assert isinstance(outcome.passed, bool) and outcome.description
    assert all(isinstance(v, str | int | float) for v in outcome.metadata.values())


# --- timestamps -----------------------------------------------------------------------------------


def _reference_ts(rows: list[tuple[str, int | None]]) -> tuple[int, int, int]:
    duplicates = non_increasing = nulls = 0
    seen: set[tuple[str, int]] = set()
    last: dict[str, int | None] = {}
    for inst, t in rows:
        if t is None:
            nulls += 1
        else:
            if (inst, t) in seen:
                duplicates += 1
            seen.add((inst, t))
        prev = last.get(inst)
        if prev is not None and t is not None and t <= prev:
            non_increasing += 1
        last[inst] = t
    return duplicates, non_increasing, nulls


def test_clean_interleaved_instruments_pass() -> None:
    rows = [(inst, 5 * i) for i in range(50) for inst in ("A", "B")]  # interleaved, each increasing
    outcome = timestamps_unique_increasing(ts_frame(rows))
    _assert_outcome_types(outcome)
    assert outcome.passed and outcome.samples_markdown == ""
    assert outcome.metadata["instruments"] == 2 and outcome.metadata["duplicate_rows"] == 0


def test_duplicates_and_back_steps_are_counted_with_samples() -> None:
    rows = [("A", 0), ("A", 5), ("A", 5), ("A", 10), ("A", 3), ("B", 0), ("B", 0), ("A", 15), ("B", None)]
    outcome = timestamps_unique_increasing(ts_frame(rows), sample_rows=10)
    assert not outcome.passed
    assert outcome.metadata["duplicate_rows"] == 2
    assert outcome.metadata["non_increasing_steps"] == 3
    assert outcome.metadata["null_timestamps"] == 1
    assert outcome.metadata["instruments_failing"] == 2
    md = outcome.samples_markdown
    assert md.startswith("| row | instrument | previous_ts | ts | problem |")
    assert "goes back in time" in md and "| duplicate |" in md and "null ts" in md
    assert outcome.description == "2 duplicate timestamp row(s), 3 non-increasing step(s), 1 null timestamp(s) in A, B"


@FAST
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.one_of(st.none(), st.integers(0, 30))), max_size=40))
def test_timestamp_counts_match_reference(rows: list[tuple[str, int | None]]) -> None:
    outcome = timestamps_unique_increasing(ts_frame(rows))
    duplicates, non_increasing, nulls = _reference_ts(rows)
    assert outcome.metadata["duplicate_rows"] == duplicates
    assert outcome.metadata["non_increasing_steps"] == non_increasing
    assert outcome.metadata["null_timestamps"] == nulls
    assert outcome.passed == (duplicates == non_increasing == nulls == 0)


def test_empty_frame_and_missing_ts_column() -> None:
    assert timestamps_unique_increasing(empty_frame(BARS_SCHEMA)).passed
    with pytest.raises(ValueError, match="lacks column"):
        timestamps_unique_increasing(pl.DataFrame({"x": [1]}))


# --- gaps -----------------------------------------------------------------------------------------


def bars_with_gaps(mask: Sequence[bool | None], instrument: str = "A") -> pl.DataFrame:
    return pl.DataFrame(
        {TS: [T0 + i * STEP for i in range(len(mask))], INSTRUMENT: [instrument] * len(mask), IS_GAP: list(mask)},
        schema={TS: TS_DTYPE, INSTRUMENT: pl.String, IS_GAP: pl.Boolean},
    )


def _reference_runs(mask: list[bool]) -> list[int]:
    runs, current = [], 0
    for gap in mask:
        if gap:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs + ([current] if current else [])


@FAST
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.lists(st.booleans(), max_size=30))
def test_gap_ratio_and_runs_match_reference(mask_a: list[bool], mask_b: list[bool]) -> None:
    df = pl.concat([bars_with_gaps(list(mask_a), "A"), bars_with_gaps(list(mask_b), "B")])
    total = len(mask_a) + len(mask_b)
    assert gap_ratio(df) == pytest.approx((sum(mask_a) + sum(mask_b)) / total)
    runs = gap_runs(df)
    for inst, mask in (("A", mask_a), ("B", mask_b)):
        assert sorted(runs.filter(pl.col(INSTRUMENT) == inst)["bars"].to_list()) == sorted(_reference_runs(mask))
    assert runs["bars"].to_list() == sorted(runs["bars"].to_list(), reverse=True)


def test_unknown_gap_status_counts_as_gap() -> None:
    assert gap_ratio(bars_with_gaps([False, None, False, True])) == 0.5


@FAST
@given(st.sets(st.integers(0, 80), min_size=1, max_size=40))
def test_raw_gap_ratio_from_timestamps_matches_reference(slots: set[int]) -> None:
    df = pl.DataFrame({TS: [T0 + i * STEP for i in sorted(slots)]}, schema={TS: TS_DTYPE})
    expected = max(slots) - min(slots) + 1
    assert gap_ratio(df, "5m") == pytest.approx((expected - len(slots)) / expected)
    runs = gap_runs(df, "5m")
    assert runs["bars"].sum() == expected - len(slots)
    present = set(slots)
    for start, end, n in runs.select("gap_start", "gap_end", "bars").iter_rows():
        first, last = (start - T0) // STEP, (end - T0) // STEP
        assert last - first + 1 == n
        assert all(i not in present for i in range(first, last + 1))
        assert first - 1 in present and last + 1 in present


def test_gap_ratio_check_bounds_and_samples() -> None:
    df = bars_with_gaps([False] * 16 + [True] * 3 + [False] + [True])  # 4 of 21 missing
    ok = gap_ratio_check(df, max_ratio=4 / 21)
    _assert_outcome_types(ok)
    assert ok.passed and ok.metadata["bars_missing"] == 4 and ok.metadata["longest_gap_bars"] == 3
    bad = gap_ratio_check(df, max_ratio=0.05)
    assert not bad.passed and "exceeds" in bad.description
    assert bad.samples_markdown.splitlines()[2].startswith(
        "| A | 2026-01-01 01:20:00+00:00 | 2026-01-01 01:30:00+00:00 | 3"
    )
    assert gap_ratio_check(empty_frame(BARS_SCHEMA), 0.0).passed
    assert gap_ratio(empty_frame(BARS_SCHEMA)) == 0.0
    with pytest.raises(ValueError, match="share in"):
        gap_ratio_check(df, 1.5)
    with pytest.raises(ValueError, match="pass the bar timeframe"):
        gap_ratio(pl.DataFrame({TS: [T0]}, schema={TS: TS_DTYPE}))
    with pytest.raises(ValueError, match="unknown timeframe"):
        gap_ratio(pl.DataFrame({TS: [T0]}, schema={TS: TS_DTYPE}), "7m")


# --- staleness ------------------------------------------------------------------------------------


def test_staleness() -> None:
    now = T0 + timedelta(hours=3)
    fresh = staleness_check(T0 + timedelta(hours=1), now, timedelta(hours=2))
    _assert_outcome_types(fresh)
    assert fresh.passed and fresh.metadata["age_hours"] == 2.0
    assert staleness_check(T0 + timedelta(hours=1), now, timedelta(hours=2) - timedelta(seconds=1)).passed is False
    stale = staleness_check(T0, now, timedelta(hours=2))
    assert not stale.passed and "3.0h old (bound 2.0h)" in stale.description
    none = staleness_check(None, now, timedelta(hours=2))
    assert not none.passed and none.metadata["latest_ts"] == "none"
    future = staleness_check(now + timedelta(hours=1), now, timedelta(hours=2))
    assert future.passed and "future" in future.description
    with pytest.raises(ValueError, match="timezone-aware"):
        staleness_check(datetime(2026, 1, 1), now, timedelta(hours=2))


# --- OHLC -----------------------------------------------------------------------------------------

price = st.one_of(st.none(), st.just(math.nan), st.floats(1.0, 5.0))


def _reference_ohlc(rows: list[tuple], exclude_flagged: bool) -> tuple[int, int]:
    checked = violating = 0
    for o, h, lo, c, gap, flag in rows:
        missing = any(v is None or math.isnan(v) for v in (o, h, lo, c))
        if missing or gap is not False or (exclude_flagged and flag):  # a null is_gap counts as a gap
            continue
        checked += 1
        if lo > o or lo > c or h < o or h < c or h < lo:
            violating += 1
    return checked, violating


@FAST
@given(
    st.lists(
        st.tuples(price, price, price, price, st.one_of(st.none(), st.booleans()), st.booleans()),
        max_size=30,
    ),
    st.booleans(),
)
def test_ohlc_counts_match_reference(rows: list[tuple], exclude_flagged: bool) -> None:
    df = pl.DataFrame(
        rows,
        schema={
            OPEN: pl.Float64,
            HIGH: pl.Float64,
            LOW: pl.Float64,
            CLOSE: pl.Float64,
            IS_GAP: pl.Boolean,
            OHLC_VIOLATION: pl.Boolean,
        },
        orient="row",
    )
    outcome = ohlc_consistency(df, exclude_flagged=exclude_flagged)
    checked, violating = _reference_ohlc(rows, exclude_flagged)
    assert outcome.metadata["checked_rows"] == checked
    assert outcome.metadata["violating_rows"] == violating
    assert outcome.passed == (violating == 0)


def test_ohlc_samples_and_rule_counts() -> None:
    df = pl.DataFrame(
        {
            TS: [T0 + i * STEP for i in range(5)],
            INSTRUMENT: ["A"] * 5,
            OPEN: [1.0, 2.0, None, 1.0, 1.0],
            HIGH: [2.0, 1.5, None, 0.5, 1.0],
            LOW: [0.5, 1.0, None, 0.8, 1.0],
            CLOSE: [1.5, 1.2, None, 1.0, 1.0],
            IS_GAP: [False, False, True, False, False],
        }
    )
    outcome = ohlc_consistency(df)
    _assert_outcome_types(outcome)
    assert not outcome.passed
    meta = outcome.metadata
    assert (meta["checked_rows"], meta["violating_rows"]) == (4, 2)
    assert (meta["high_below_open"], meta["high_below_close"], meta["high_below_low"], meta["low_above_open"]) == (
        2,
        1,
        1,
        0,
    )
    lines = outcome.samples_markdown.splitlines()
    assert lines[0] == "| row | ts | instrument | open | high | low | close | rules |"
    assert lines[3].endswith("| high_below_open, high_below_close, high_below_low |")
    assert "flagged_rows" not in meta
    assert ohlc_consistency(empty_frame(BARS_SCHEMA)).passed


# --- schema ---------------------------------------------------------------------------------------


def test_schema_check() -> None:
    good = conform(pl.DataFrame({TS: [T0], INSTRUMENT: ["A"], CLOSE: [1.0]}), RAW_OHLCV_SCHEMA)
    assert schema_check(good, RAW_OHLCV_SCHEMA).passed
    naive = good.with_columns(pl.col(TS).dt.replace_time_zone(None))
    outcome = schema_check(naive, RAW_OHLCV_SCHEMA)
    assert not outcome.passed and outcome.metadata["dtype_mismatches"] == 1
    assert (
        "| ts | Datetime(time_unit='us', time_zone='UTC') | Datetime(time_unit='us', time_zone=None) |"
        in outcome.samples_markdown
    )
    outcome = schema_check(good.drop(CLOSE).with_columns(pl.lit(1).alias("extra")), RAW_OHLCV_SCHEMA)
    assert (
        not outcome.passed
        and outcome.metadata["missing_columns"] == "close"
        and outcome.metadata["extra_columns"] == "extra"
    )
    reordered = schema_check(good.select(INSTRUMENT, pl.exclude(INSTRUMENT)), RAW_OHLCV_SCHEMA)
    assert not reordered.passed and reordered.metadata["column_order_ok"] == 0


# --- thresholds -----------------------------------------------------------------------------------


def test_shipped_thresholds() -> None:
    t = load_thresholds()
    for layer in ("raw", "cleaned"):
        for tf in ("5m", "1h", "1d"):
            assert 0 < t.max_gap_ratio(layer, tf) < 1
    assert t.max_staleness("5m") == timedelta(hours=2) and t.max_staleness("1d") == timedelta(days=4)
    with pytest.raises(SpecError) as info:
        t.max_gap_ratio("cleaned", "4h")
    assert info.value.key == "gap_ratio.cleaned.4h" and info.value.file.endswith("thresholds.yaml")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("gap_ratio: {cleaned: {7m: 0.1}}\nstaleness: {5m: 1h}\n", "gap_ratio", "unknown timeframe '7m'"),
        ("gap_ratio: {cleaned: {5m: 1.5}}\nstaleness: {5m: 1h}\n", "gap_ratio", "share in [0, 1]"),
        ("gap_ratio: {cleaned: {5m: lots}}\nstaleness: {5m: 1h}\n", "gap_ratio.cleaned.5m", "valid number"),
        ("gap_ratio: {cleaned: {5m: 0.1}}\nstaleness: {5m: 2 hours}\n", "staleness", "expected a duration like"),
        ("gap_ratio: {cleaned: {5m: 0.1}}\n", "staleness", "Field required"),
        ("gap_ratio: {}\nstaleness: {}\nstale: {}\n", "stale", "Extra inputs"),
        ("- 1\n", "<root>", "expected a mapping"),
    ],
)
def test_bad_thresholds_name_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_thresholds(path)
    assert (info.value.file, info.value.key) == (str(path), key)
    assert problem in info.value.problem


def test_missing_thresholds_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_thresholds(tmp_path / "nope.yaml")


def test_parse_duration() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1w") == timedelta(weeks=1)
    for bad in ("0h", "2 hours", "h", True, 3.5):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_duration("0m", allow_zero=True) == timedelta(0)
