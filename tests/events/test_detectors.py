"""Each detector template on hand-built frames: the exact bars where it fires, its direction and severity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from event_helpers import fired, make_frame, make_spec, run_one

# --- threshold crossing -----------------------------------------------------------------------

X_CROSS = [0.0, 0.5, 1.5, 2.0, 0.5, 1.2, 1.0, 1.1]


@pytest.mark.parametrize(
    ("side", "mode", "expected"),
    [
        ("above", "cross", [2, 5, 7]),
        ("above", "level", [2, 3, 5, 7]),
        ("below", "cross", [4]),
        ("either", "cross", [2, 4, 5, 7]),
    ],
)
def test_threshold_cross_fires_on_the_crossing_bar(side: str, mode: str, expected: list[int]) -> None:
    spec = make_spec("threshold_cross", {"column": "ret_1", "value": 1.0, "side": side, "mode": mode}, ["ret_1"])
    assert fired(make_frame(ret_1=X_CROSS), spec) == expected


def test_threshold_cross_either_gives_the_direction_of_the_cross() -> None:
    spec = make_spec("threshold_cross", {"column": "ret_1", "value": 1.0, "side": "either"}, ["ret_1"])
    events = run_one(make_frame(ret_1=X_CROSS), spec)
    assert events["direction"].to_list() == ["long", "short", "long", "long"]
    assert events["severity"].to_list() == pytest.approx([1.5, 0.5, 1.2, 1.1])


def test_threshold_cross_abs_above_and_excess_severity() -> None:
    x = [0.0, -1.5, -0.5, 2.0, 3.0, 0.2, -0.9, -1.1]
    spec = make_spec(
        "threshold_cross", {"column": "oi_z", "value": 1.0, "side": "abs_above", "severity": "excess"}, ["oi_z"]
    )
    events = run_one(make_frame(oi_z=x), spec)
    assert fired(make_frame(oi_z=x), spec) == [1, 3, 7]
    assert events["direction"].to_list() == ["short", "long", "short"]
    assert events["severity"].to_list() == pytest.approx([0.5, 1.0, 0.1])


def test_threshold_cross_against_another_column() -> None:
    fast = [1.0, 1.0, 2.0, 3.0, 2.0, 1.0]
    slow = [2.0, 2.0, 2.5, 2.5, 2.0, 2.0]
    spec = make_spec(
        "threshold_cross", {"column": "sma_50", "other_column": "sma_200", "side": "either"}, ["sma_50", "sma_200"]
    )
    events = run_one(make_frame(sma_50=fast, sma_200=slow), spec)
    # 3: 3 > 2.5 after 2 <= 2.5; 4: 2 == 2 is not below; 5: 1 < 2 after 2 >= 2
    assert fired(make_frame(sma_50=fast, sma_200=slow), spec) == [3, 5]
    assert events["direction"].to_list() == ["long", "short"]


# --- z-score spike ------------------------------------------------------------------------------

Z_X = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 10.0, 2.0, 1.0, -20.0]


def _reference_z(x: list[float], t: int, window: int) -> float:
    prior = np.array(x[t - window : t])
    return float((x[t] - prior.mean()) / prior.std(ddof=1))


@pytest.mark.parametrize(("side", "expected"), [("both", [6, 9]), ("up", [6]), ("down", [9])])
def test_zscore_spike_uses_the_prior_window_only(side: str, expected: list[int]) -> None:
    spec = make_spec("zscore_spike", {"column": "rv_12", "window": 5, "z": 3.0, "side": side}, ["rv_12"])
    assert fired(make_frame(rv_12=Z_X), spec) == expected


def test_zscore_spike_severity_matches_a_numpy_reference() -> None:
    spec = make_spec("zscore_spike", {"column": "rv_12", "window": 5, "z": 3.0}, ["rv_12"])
    events = run_one(make_frame(rv_12=Z_X), spec)
    assert events["severity"].to_list() == pytest.approx([abs(_reference_z(Z_X, 6, 5)), abs(_reference_z(Z_X, 9, 5))])
    assert events["direction"].to_list() == ["long", "short"]


def test_zscore_spike_abs_transform_takes_direction_from_the_raw_sign() -> None:
    x = [0.1, -0.2, 0.1, -0.2, 0.1, -0.2, -5.0, 0.1]  # |x| varies, so its std is not 0
    spec = make_spec(
        "zscore_spike", {"column": "ret_1", "window": 6, "z": 3.0, "side": "up", "transform": "abs"}, ["ret_1"]
    )
    events = run_one(make_frame(ret_1=x), spec)
    assert events["direction"].to_list() == ["short"]
    assert fired(make_frame(ret_1=x), spec) == [6]


def test_zscore_spike_needs_a_full_window_by_default() -> None:
    x = [1.0, 2.0, 1.0, 50.0, 1.0, 2.0, 1.0, 2.0]
    spec = make_spec("zscore_spike", {"column": "rv_12", "window": 5, "z": 3.0}, ["rv_12"])
    assert fired(make_frame(rv_12=x), spec) == []
    short = make_spec("zscore_spike", {"column": "rv_12", "window": 5, "z": 3.0, "min_periods": 3}, ["rv_12"])
    assert fired(make_frame(rv_12=x), short) == [3]


# --- regime shift / level shift ---------------------------------------------------------------

STATES = ["a", "a", "a", "b", "b", "b", "a", "b", "b", "c"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"to": ["b"], "persist": 1}, [3, 7]),
        ({"to": ["b"], "persist": 2}, [4, 8]),
        ({"to": ["b"], "persist": 3}, [5]),
        ({"to": ["b", "c"], "from": ["b"], "persist": 1}, [9]),
        ({"to": ["b"], "from": ["c"], "persist": 1}, []),
    ],
)
def test_regime_shift(params: dict[str, object], expected: list[int]) -> None:
    spec = make_spec("regime_shift", {"column": "vol_regime", **params}, ["vol_regime"], direction="neutral")
    assert fired(make_frame(vol_regime=STATES), spec) == expected


def test_regime_shift_does_not_count_through_unknown_states() -> None:
    spec = make_spec("regime_shift", {"column": "trend_state", "to": ["up"], "persist": 2}, ["trend_state"])
    assert fired(make_frame(trend_state=["chop", "chop", None, "up", "up", "up"]), spec) == []
    assert fired(make_frame(trend_state=["chop", "chop", "chop", "up", "up", "up"]), spec) == [4]


def test_level_shift_fires_when_the_ratio_first_reaches_the_factor() -> None:
    x = [1.0] * 10 + [3.0] * 4
    spec = make_spec("level_shift", {"column": "spread_bps", "short": 2, "long": 4, "factor": 2.0}, ["spread_bps"])
    events = run_one(make_frame(spread_bps=x), spec)
    assert fired(make_frame(spread_bps=x), spec) == [10]
    assert events["severity"].to_list() == pytest.approx([math.log(2.0)])
    down = make_spec(
        "level_shift", {"column": "spread_bps", "short": 2, "long": 4, "factor": 2.0, "side": "down"}, ["spread_bps"]
    )
    y = [4.0] * 10 + [1.0] * 4
    assert fired(make_frame(spread_bps=y), down) == [11]  # 10: (4+1)/2 / 4 = 0.625 > 0.5; 11: 1/4 = 0.25
    assert run_one(make_frame(spread_bps=y), down)["direction"].to_list() == ["short"]


# --- range breakout / false breakout ----------------------------------------------------------


def _ohlc(close: list[float]) -> dict[str, list[float]]:
    return {"close": close, "high": [c + 0.5 for c in close], "low": [c - 0.5 for c in close]}


def test_range_breakout_fires_on_the_first_close_outside_the_channel() -> None:
    frame = make_frame(**_ohlc([10, 10, 10, 10, 12, 13, 10, 10, 7, 7]))
    spec = make_spec("range_breakout", {"window": 3}, ["high", "low", "close"])
    events = run_one(frame, spec)
    assert fired(frame, spec) == [4, 8]  # 5 continues the breakout of 4; 9 stays inside the new channel
    assert events["direction"].to_list() == ["long", "short"]
    # excess / channel width: (12 - 10.5) / (10.5 - 9.5); (9.5 - 7) / (13.5 - 9.5)
    assert events["severity"].to_list() == pytest.approx([1.5, 0.625])
    up_only = make_spec("range_breakout", {"window": 3, "side": "up"}, ["high", "low", "close"])
    assert fired(frame, up_only) == [4]


def test_false_breakout_fades_a_breakout_that_closes_back_inside() -> None:
    frame = make_frame(**_ohlc([10, 10, 10, 10, 12, 10, 10, 10, 10, 7, 10]))
    spec = make_spec("false_breakout", {"window": 3, "within": 2}, ["high", "low", "close"])
    events = run_one(frame, spec)
    assert fired(frame, spec) == [5, 10]
    assert events["direction"].to_list() == ["short", "long"]


@pytest.mark.parametrize(("within", "expected"), [(2, []), (3, [7])])
def test_false_breakout_only_within_the_window(within: int, expected: list[int]) -> None:
    frame = make_frame(**_ohlc([10, 10, 10, 10, 12, 12, 12, 10]))
    spec = make_spec("false_breakout", {"window": 3, "within": within}, ["high", "low", "close"])
    assert fired(frame, spec) == expected


# --- divergence -------------------------------------------------------------------------------


def test_divergence_bearish_and_bullish() -> None:
    price = [1.0, 2.0, 3.0, 2.0, 4.0, 3.0, 2.0, 0.5]
    osc = [10.0, 30.0, 20.0, 15.0, 25.0, 20.0, 20.0, 12.0]
    spec = make_spec(
        "divergence", {"oscillator": "rsi_14", "window": 3, "min_gap": 2.0}, ["close", "rsi_14"], direction="both"
    )
    frame = make_frame(close=price, rsi_14=osc)
    events = run_one(frame, spec)
    # 4: price 4 > max(2, 3, 2) and osc 25 < max(30, 20, 15) - 2 -> bearish
    # 7: price 0.5 < min(4, 3, 2) but osc 12 is not above min(25, 20, 20) + 2
    assert fired(frame, spec) == [4]
    assert events["direction"].to_list() == ["short"]
    assert events["severity"].to_list() == pytest.approx([5.0])
    osc[7] = 23.0  # now 23 > 20 + 2 -> bullish
    assert fired(make_frame(close=price, rsi_14=osc), spec) == [4, 7]
    bullish = make_spec("divergence", {"oscillator": "rsi_14", "window": 3, "side": "bullish"}, ["close", "rsi_14"])
    assert fired(make_frame(close=price, rsi_14=osc), bullish) == [7]


# --- onset / normalisation / run length -------------------------------------------------------


def test_onset_after_min_off_quiet_bars() -> None:
    spec = make_spec("onset", {"when": {"column": "vol_rank", "op": "gt", "value": 1.0}, "min_off": 2}, ["vol_rank"])
    x = [0.0, 0.0, 2.0, 2.0, 0.0, 2.0, 0.0, 0.0, 2.0]
    assert fired(make_frame(vol_rank=x), spec) == [2, 8]
    # a gap right before the onset bar makes "was off" unknown
    assert fired(make_frame(gaps=(7,), vol_rank=x), spec) == [2]


def test_normalisation_after_min_on_bars() -> None:
    spec = make_spec(
        "normalisation", {"when": {"column": "funding_z", "op": "abs_gt", "value": 1.0}, "min_on": 2}, ["funding_z"]
    )
    x = [2.0, -2.0, 0.0, 2.0, 0.0, 2.0, 2.0, 2.0, 0.5]
    assert fired(make_frame(funding_z=x), spec) == [2, 8]


def test_run_length_fires_once_per_run_and_a_gap_restarts_the_run() -> None:
    spec = make_spec(
        "run_length", {"when": {"column": "oi_change", "op": "lt", "value": 0.0}, "bars": 3}, ["oi_change"]
    )
    x = [-1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0]
    assert fired(make_frame(oi_change=x), spec) == [2, 7]
    y = [-1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0]
    assert fired(make_frame(gaps=(6,), oi_change=y), spec) == [2, 9]


def test_predicates_on_booleans_strings_and_nulls() -> None:
    flag = make_spec("onset", {"when": {"column": "corr_breakdown", "op": "is_true"}}, ["corr_breakdown"])
    assert fired(make_frame(corr_breakdown=[False, True, True, False, True]), flag) == [1, 4]
    macro = make_spec("onset", {"when": {"column": "macro_window", "op": "not_null"}}, ["macro_window"])
    assert fired(make_frame(macro_window=[None, "FOMC", "FOMC", None, "CPI"]), macro) == [1, 4]
    trend = make_spec(
        "onset", {"when": {"column": "trend_state", "op": "in", "value": ["up", "down"]}}, ["trend_state"]
    )
    assert fired(make_frame(trend_state=["chop", "up", "down", "chop", "down"]), trend) == [1, 4]


# --- timestamp match and filters ---------------------------------------------------------------


def test_timestamp_match() -> None:
    spec = make_spec("timestamp_match", {"column": "session_open"}, ["session_open"], direction="neutral")
    events = run_one(make_frame(session_open=[False, True, False, True]), spec)
    assert fired(make_frame(session_open=[False, True, False, True]), spec) == [1, 3]
    assert events["direction"].to_list() == ["neutral", "neutral"]
    us = make_spec("timestamp_match", {"column": "session", "equals": "us"}, ["session"])
    assert fired(make_frame(session=["asia", "us", "europe", "us"]), us) == [1, 3]


def test_filters_are_anded_with_the_detector() -> None:
    spec = make_spec(
        "threshold_cross",
        {"column": "volume_z", "value": 3.0, "mode": "level"},
        ["volume_z", "body_atr", "trend_state"],
        filters=[
            {"column": "body_atr", "op": "lt", "value": 0.25},
            {"column": "trend_state", "op": "ne", "value": "chop"},
        ],
    )
    frame = make_frame(
        volume_z=[4.0, 4.0, 4.0, 1.0, 4.0],
        body_atr=[0.1, 0.5, 0.1, 0.1, None],
        trend_state=["up", "up", "chop", "up", "up"],
    )
    assert fired(frame, spec) == [0]
