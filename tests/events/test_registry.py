"""Registry-wide rules: cooldown, gaps, not-applicable reporting, ids, output schema, flags, prevalence."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from event_helpers import START, fired, make_frame, make_spec, run_one
from synthetic_inputs import synthetic_event_frame

from lake_assets.events.cooldown import apply_cooldown
from lake_assets.events.registry import (
    APPLICABILITY_SCHEMA,
    EVENT_REGISTRY_SCHEMA,
    bars_by_instrument,
    detect_events,
    event_flags,
    event_id,
    prevalence_report,
    run_registry,
)
from lake_assets.events.spec_model import CANONICAL_FAMILIES, EventCatalog
from lake_assets.vocabulary import INSTRUMENT, TS

ALWAYS = {"session_open": [True] * 12}


def _always(cooldown: int, **kw: object) -> object:
    return make_spec("timestamp_match", {"column": "session_open"}, ["session_open"], cooldown=cooldown, **kw)


# --- cooldown ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("cooldown", "expected"), [(0, list(range(12))), (1, [0, 2, 4, 6, 8, 10]), (3, [0, 4, 8])])
def test_cooldown_in_bars(cooldown: int, expected: list[int]) -> None:
    assert fired(make_frame(**ALWAYS), _always(cooldown)) == expected


def test_cooldown_counts_bars_not_events_and_is_per_instrument() -> None:
    spec = _always(3)
    flags = [True, False, True, False, True, True, False, False, False, True, True, True]
    assert fired(make_frame(session_open=flags), spec) == [0, 4, 9]
    a = make_frame(instrument="AAA", session_open=flags)
    b = make_frame(instrument="BBB", session_open=[False, True] + flags[2:])
    events, _ = run_registry([a, b], [spec])
    per = dict(events.group_by(INSTRUMENT).agg(pl.col(TS).sort()).iter_rows())
    assert len(per["AAA"]) == 3 and len(per["BBB"]) == 3
    assert (per["BBB"][0] - START).total_seconds() == 300  # BBB's first event is not suppressed by AAA's


def test_apply_cooldown_matches_a_python_reference() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        cand = np.flatnonzero(rng.random(500) < 0.2)
        cooldown = int(rng.integers(0, 15))
        expected, last = [], -(10**9)
        for i in cand:
            if i - last > cooldown:
                expected.append(i)
                last = i
        assert apply_cooldown(cand, cooldown).tolist() == expected
    with pytest.raises(ValueError, match="strictly increasing"):
        apply_cooldown(np.array([3, 2]), 1)


# --- gaps -------------------------------------------------------------------------------------


def test_gap_rows_never_fire_even_if_their_values_say_so() -> None:
    assert fired(make_frame(gaps=(2, 3, 7), **ALWAYS), _always(0)) == [0, 1, 4, 5, 6, 8, 9, 10, 11]


def test_conditions_reading_the_previous_bar_do_not_fire_right_after_a_gap() -> None:
    spec = make_spec("threshold_cross", {"column": "ret_1", "value": 1.0}, ["ret_1"])
    x = [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 2.0]
    assert fired(make_frame(ret_1=x), spec) == [3, 6]
    # gap at 2 (its value 0 is not trusted): the cross at 3 has no known previous bar
    assert fired(make_frame(gaps=(2,), ret_1=x), spec) == [6]
    # a timestamp match does not read the previous bar, so it still fires after a gap
    assert fired(make_frame(gaps=(2,), session_open=[False, False, False, True]), _always(0)) == [3]


def test_gap_values_do_not_enter_rolling_windows() -> None:
    spec = make_spec("zscore_spike", {"column": "rv_12", "window": 4, "z": 3.0, "min_periods": 3}, ["rv_12"])
    x = [1.0, 2.0, 1.0, 2.0, 1.0, 9.0]
    assert fired(make_frame(rv_12=x), spec) == [5]
    # a huge value on a gap row would inflate the std and hide the spike if it were used
    assert fired(make_frame(gaps=(3,), rv_12=[1.0, 2.0, 1.0, 1000.0, 1.5, 9.0]), spec) == [5]


def test_nan_is_treated_as_missing() -> None:
    spec = make_spec("threshold_cross", {"column": "ret_1", "value": 1.0}, ["ret_1"])
    assert fired(make_frame(ret_1=[0.0, float("nan"), 2.0, 0.0, 2.0]), spec) == [4]


# --- applicability --------------------------------------------------------------------------


def test_events_whose_columns_are_all_null_or_missing_are_not_applicable() -> None:
    funding = make_spec("threshold_cross", {"column": "funding_z", "value": 2.0}, ["funding_z"], name="FUND_EVENT")
    spread = make_spec(
        "zscore_spike", {"column": "spread_bps", "window": 3, "z": 2.0}, ["spread_bps"], name="SPREAD_EV"
    )
    clock = _always(0, name="CLOCK_EVENT")
    frame = make_frame(funding_z=[None] * 4, session_open=[True] * 4)
    events, app = detect_events(frame, [funding, spread, clock])
    assert app.schema == APPLICABILITY_SCHEMA
    rows = {r["event_type"]: r for r in app.iter_rows(named=True)}
    assert rows["FUND_EVENT"]["applicable"] is False
    assert rows["FUND_EVENT"]["reason"] == (
        "all-null column funding_z: needs bar column(s) funding_rate, which the instrument does not have"
    )
    assert rows["SPREAD_EV"]["applicable"] is False
    assert rows["SPREAD_EV"]["reason"] == "missing column(s) spread_bps"
    assert rows["CLOCK_EVENT"]["applicable"] is True and rows["CLOCK_EVENT"]["reason"] is None
    assert {r["instrument"] for r in rows.values()} == {"TEST-PERP"}
    assert all(r["n_bars"] == 4 for r in rows.values())
    assert events["event_type"].unique().to_list() == ["CLOCK_EVENT"]


def test_an_event_never_fires_where_one_of_its_declared_columns_is_null() -> None:
    spec = make_spec("timestamp_match", {"column": "is_funding_ts"}, ["is_funding_ts", "funding_rate"])
    frame = make_frame(is_funding_ts=[True, True, True], funding_rate=[None, 0.0001, None])
    assert fired(frame, spec) == [1]


def test_spot_instruments_are_not_applicable_for_funding_and_basis_events(shipped_specs: EventCatalog) -> None:
    spot = synthetic_event_frame(3000, instrument="SPOT-X", seed=1, perp=False)
    events, app = detect_events(spot, shipped_specs)
    na = app.filter(~pl.col("applicable"))
    na_types = set(na["event_type"].to_list())
    assert {"FUNDING_FLIP", "FUNDING_TIMESTAMP_EVENT", "SPOT_PERP_BASIS_SHOCK", "SPREAD_BLOWOUT"} <= na_types
    assert "SESSION_OPEN_EVENT" not in na_types and "RANGE_BREAKOUT" not in na_types
    reason = na.filter(pl.col("event_type") == "FUNDING_FLIP")["reason"].item()
    assert reason == "all-null column funding_rate: the instrument has no funding_rate data"
    assert not set(events["event_type"].to_list()) & na_types


# --- output ---------------------------------------------------------------------------------


def test_event_ids_are_deterministic_sha1_prefixes() -> None:
    ts = datetime(2024, 3, 1, 8, 5, tzinfo=UTC)
    expected = hashlib.sha1(b"VOL_SHOCK|BTCUSDT-PERP|2024-03-01T08:05:00+00:00").hexdigest()[:16]
    assert event_id("VOL_SHOCK", "BTCUSDT-PERP", ts) == expected
    frame = make_frame(instrument="BTCUSDT-PERP", session_open=[False, True, False])
    spec = _always(0, name="VOL_SHOCK")
    first, second = run_one(frame, spec), run_one(frame, spec)
    assert first["event_id"].to_list() == second["event_id"].to_list()
    assert first["event_id"].item() == event_id("VOL_SHOCK", "BTCUSDT-PERP", START.replace(minute=5))
    other = run_one(make_frame(instrument="ETHUSDT-PERP", session_open=[False, True, False]), spec)
    assert other["event_id"].item() != first["event_id"].item()


def test_event_rows_carry_schema_family_severity_and_state_snapshot() -> None:
    spec = make_spec(
        "threshold_cross",
        {"column": "volume_z", "value": 3.0},
        ["volume_z", "ret_1", "funding_z"],
        family="LIQUIDITY_DISLOCATION",
        severity_column="funding_z",
        sign_column="ret_1",
    )
    frame = make_frame(
        volume_z=[0.0, 4.0, 0.0, 5.0],
        ret_1=[0.0, -0.01, 0.0, 0.02],
        funding_z=[1.0, -2.5, 1.0, 0.5],
        vol_regime=["low", "high", "mid", "mid"],
        carry_state=["neutral", "neg_extreme", "pos", "pos"],
        session=["asia", "asia", "europe", "us"],
    )
    events = run_one(frame, spec)
    assert events.schema == EVENT_REGISTRY_SCHEMA
    assert events["family"].to_list() == ["LIQUIDITY_DISLOCATION"] * 2
    assert events["direction"].to_list() == ["short", "long"]
    assert events["severity"].to_list() == [2.5, 0.5]
    assert events["vol_regime"].to_list() == ["high", "mid"]
    assert events["carry_state"].to_list() == ["neg_extreme", "pos"]
    assert events["session"].to_list() == ["asia", "us"]
    assert events["trend_state"].to_list() == [None, None]  # not in the input


def test_input_must_be_one_sorted_instrument() -> None:
    spec = _always(0)
    frame = make_frame(**ALWAYS)
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_events(frame.reverse(), [spec])
    with pytest.raises(ValueError, match="exactly one instrument"):
        detect_events(pl.concat([frame, make_frame(instrument="OTHER", **ALWAYS)]), [spec])


def test_event_flags_wide_frame() -> None:
    a = _always(2, name="EVERY_THIRD")
    b = make_spec("threshold_cross", {"column": "ret_1", "value": 1.0}, ["ret_1"], name="RET_CROSS")
    frame = make_frame(session_open=[True] * 6, ret_1=[0.0, 2.0, 0.0, 0.0, 2.0, 2.0])
    events, _ = detect_events(frame, [a, b])
    flags = event_flags(events, frame.select(TS, INSTRUMENT), event_types=["EVERY_THIRD", "RET_CROSS", "NEVER"])
    assert flags.columns == [TS, INSTRUMENT, "EVERY_THIRD", "RET_CROSS", "NEVER"]
    assert flags.height == 6
    assert flags["EVERY_THIRD"].to_list() == [True, False, False, True, False, False]
    assert flags["RET_CROSS"].to_list() == [False, True, False, False, True, False]
    assert flags["NEVER"].to_list() == [False] * 6
    assert event_flags(events, frame.select(TS, INSTRUMENT)).columns == [TS, INSTRUMENT, "EVERY_THIRD", "RET_CROSS"]


def test_prevalence_report_against_bounds() -> None:
    ok = _always(0, name="OK_EVENT", prevalence=(100.0, 600.0))
    rare = _always(0, name="TOO_OFTEN", prevalence=(0.01, 10.0))
    nope = make_spec("threshold_cross", {"column": "funding_z", "value": 2.0}, ["funding_z"], name="NA_EVENT")
    frame = make_frame(session_open=[True, False] * 5, funding_z=[None] * 10)
    events, app = detect_events(frame, [ok, rare, nope])
    report = prevalence_report(events, bars_by_instrument(app), [ok, rare, nope], app)
    rows = {r["event_type"]: r for r in report.iter_rows(named=True)}
    assert rows["OK_EVENT"]["n_events"] == 5 and rows["OK_EVENT"]["per_1000"] == pytest.approx(500.0)
    assert rows["OK_EVENT"]["status"] == "pass" and rows["OK_EVENT"]["passed"]
    assert rows["TOO_OFTEN"]["status"] == "fail" and not rows["TOO_OFTEN"]["passed"]
    assert rows["NA_EVENT"]["status"] == "not_applicable" and rows["NA_EVENT"]["passed"]
    # without applicability, an instrument with zero bars or out-of-bounds rate fails
    bare = prevalence_report(events, {"TEST-PERP": 10, "EMPTY": 0}, [ok])
    assert bare.filter(pl.col(INSTRUMENT) == "EMPTY")["status"].item() == "fail"


# --- the shipped registry -------------------------------------------------------------------

REQUIRED = {
    "LIQUIDITY_DISLOCATION": ["DEPTH_COLLAPSE", "SPREAD_BLOWOUT", "ORDERFLOW_IMBALANCE_SHOCK", "LIQUIDITY_VACUUM"],
    "VOLATILITY_TRANSITION": ["VOL_SHOCK", "VOL_SPIKE", "VOL_RELAXATION_START", "VOL_CLUSTER_SHIFT"],
    "FUNDING_EPISODE": [
        "FUNDING_EXTREME_ONSET", "FUNDING_PERSISTENCE_TRIGGER", "FUNDING_NORMALIZATION_TRIGGER", "FUNDING_FLIP",
    ],
    "POSITIONING_EXTREMES": [
        "OI_SPIKE_POSITIVE", "OI_SPIKE_NEGATIVE", "OI_FLUSH", "DELEVERAGING_WAVE", "LIQUIDATION_CASCADE",
    ],
    "FORCED_FLOW": ["FORCED_FLOW_EXHAUSTION", "TREND_EXHAUSTION_TRIGGER", "MOMENTUM_DIVERGENCE_TRIGGER"],
    "TREND_STRUCTURE": ["RANGE_BREAKOUT", "FALSE_BREAKOUT", "TREND_ACCELERATION", "PULLBACK_PIVOT"],
    "REGIME_TRANSITION": ["VOL_REGIME_SHIFT_EVENT", "TREND_TO_CHOP_SHIFT", "CORRELATION_BREAKDOWN_EVENT"],
    "INFORMATION_DESYNC": ["CROSS_VENUE_DESYNC", "INDEX_COMPONENT_DIVERGENCE", "SPOT_PERP_BASIS_SHOCK"],
    "TEMPORAL_STRUCTURE": ["SESSION_OPEN_EVENT", "SESSION_CLOSE_EVENT", "FUNDING_TIMESTAMP_EVENT"],
    "EXECUTION_FRICTION": ["SPREAD_REGIME_WIDENING_EVENT", "SLIPPAGE_SPIKE_EVENT", "FEE_REGIME_CHANGE_EVENT"],
}  # fmt: skip


def test_shipped_catalog_covers_the_ten_families(shipped_specs: EventCatalog) -> None:
    assert 35 <= len(shipped_specs) <= 57
    families = shipped_specs.families()
    assert set(families) == set(CANONICAL_FAMILIES)
    for family, names in REQUIRED.items():
        assert set(names) <= set(families[family]), family
    assert len(shipped_specs.spec_hash) == 16


def test_shipped_events_fire_within_their_prevalence_bounds(shipped_specs: EventCatalog) -> None:
    frames = [synthetic_event_frame(20000, instrument=f"P{i}-PERP", seed=100 + i) for i in range(2)]
    frames.append(synthetic_event_frame(20000, instrument="S0", seed=200, perp=False))
    events, app = run_registry(frames, shipped_specs)
    assert app.height == 3 * len(shipped_specs)
    perp_app = app.filter(pl.col(INSTRUMENT).str.ends_with("-PERP"))
    assert perp_app["applicable"].all(), perp_app.filter(~pl.col("applicable"))
    report = prevalence_report(events, bars_by_instrument(app), shipped_specs, app)
    # upper bounds: this hand-rolled generator does not exercise every type (a few never fire in it, so their positive
    # minimum fails here); that every applicable type fires is tested on a demo-like lake (test_demo_lake.py)
    failing = report.filter(~pl.col("passed") & (pl.col("n_events") > 0))
    assert failing.height == 0, failing
    fired_types = set(events["event_type"].to_list())
    assert len(fired_types) >= 45, sorted(set(shipped_specs.names) - fired_types)
    assert events["event_id"].n_unique() == events.height
