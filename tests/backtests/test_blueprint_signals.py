"""Blueprint -> signals (direction, lag, state, gaps, point-in-time) and the bracket-order planner against the engine:
same trades as `run_signals` without brackets, stops/targets filled at their levels, time stops on time."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import START, STEP, make_blueprint, synthetic_bars  # noqa: E402

from lake_assets.backtests.blueprint_signals import (  # noqa: E402
    LONG_ENTRY,
    SHORT_ENTRY,
    STOP_DISTANCE,
    average_true_range,
    blueprint_entries,
    blueprint_signals,
)
from lake_assets.backtests.brackets import bracket_orders
from lake_assets.backtests.engine import EngineConfig, run_orders, run_signals  # noqa: E402
from lake_assets.backtests.risk import RiskLimits, Sizing  # noqa: E402
from lake_assets.backtests.schema import SizeType  # noqa: E402
from lake_assets.backtests.strategies import parse_key
from lake_assets.backtests.strategy_spec import compile_signals as compile_spec  # noqa: E402
from lake_assets.backtests.strategy_spec import load_strategies  # noqa: E402
from lake_assets.backtests.walkforward_runs import choose_sizes  # noqa: E402

INST = "BTCUSDT-PERP"
ZERO_COST = EngineConfig(risk=RiskLimits(max_leverage=None))


def event_frame(ts: list, directions: list[str], vol_regime: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"event_id": [f"e{i}" for i in range(len(ts))], "event_type": "x", "family": "f", "instrument": INST,
         "ts": ts, "direction": directions, "severity": 1.0, "vol_regime": vol_regime, "carry_state": None,
         "session": None, "trend_state": None},
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "carry_state": pl.String, "session": pl.String,
                          "trend_state": pl.String},
    )  # fmt: skip


def test_entries_follow_direction_template_lag_and_state() -> None:
    bars = synthetic_bars(INST, 800, 3, 100.0)
    ts = bars["ts"]
    events = event_frame([ts[300], ts[400], ts[500], ts[600]], ["long", "short", "both", "long"],
                         ["high", "high", "high", "low"])  # fmt: skip
    body = float(np.sign(bars["close"][500] - bars["open"][500]))
    with_bp = make_blueprint(INST, "x", state=("vol_regime", "high"))
    e = blueprint_entries(with_bp, events, bars)
    assert e.height == 3  # the low-vol event fails the state condition
    assert e["side"].to_list() == [1.0, -1.0, body]
    assert e["signal_ts"].to_list() == [ts[300], ts[400], ts[500]]  # lag 1: submitted at the detection close
    assert e["traded"].all()  # ATR and realised vol (one day of 5m bars) are known by then
    against = blueprint_entries(make_blueprint(INST, "x", state=None, direction="against_event"), events, bars)
    assert against["side"].to_list() == [-1.0, 1.0, -body, -1.0]
    sig = blueprint_signals(with_bp, events, bars)
    assert sig.filter(pl.col(LONG_ENTRY))["ts"].to_list() == sorted(
        [t for t, s in zip([ts[300], ts[400], ts[500]], [1.0, -1.0, body], strict=True) if s > 0]
    )
    atr = average_true_range(bars, 14)
    stop = sig.filter(pl.col(LONG_ENTRY) | pl.col(SHORT_ENTRY))[STOP_DISTANCE].to_list()
    assert stop == pytest.approx([2.0 * atr[i] for i in (300, 400, 500)])


def test_gap_detection_bars_and_unknown_atr_are_not_traded() -> None:
    bars = synthetic_bars(INST, 300, 4, 100.0, gaps=3)
    gap_row = int(np.flatnonzero(bars["is_gap"].to_numpy())[0])
    ts = bars["ts"]
    events = event_frame([ts[5], ts[gap_row], ts[100], ts[299]], ["long"] * 4, ["high"] * 4)
    e = blueprint_entries(make_blueprint(INST, "x"), events, bars)
    reasons = dict(zip(e["event_id"], e["reason"], strict=True))
    assert reasons["e0"].startswith("ATR(14) not known")
    assert reasons["e1"] == "detection bar is a gap"
    assert reasons["e2"] == "realised volatility not known at the signal bar"  # vol target needs 144 returns
    assert reasons["e3"] == "entry bar is beyond the data"
    fixed = blueprint_entries(make_blueprint(INST, "x", method="fixed_fraction"), events, bars)
    assert fixed.filter(pl.col("event_id") == "e2")["traded"].item()  # risk sizing needs only the ATR


def test_blueprint_signals_are_point_in_time_under_truncation() -> None:
    bars = synthetic_bars(INST, 2000, 5, 100.0, gaps=5)
    ts = bars["ts"]
    events = event_frame([ts[i] for i in range(100, 1900, 37)], ["both"] * 49, ["high"] * 49)
    bp = make_blueprint(INST, "x", state=None)
    full = blueprint_signals(bp, events, bars)
    cut = ts[1200]
    part = blueprint_signals(bp, events.filter(pl.col("ts") < cut), bars.filter(pl.col("ts") < cut))
    # signals at bars whose entry bar is still in the truncated data are identical
    common = part.filter(pl.col("ts") < ts[1199])
    assert common.equals(full.filter(pl.col("ts") < ts[1199]), null_equal=True)


@pytest.mark.parametrize("name", ["sma_crossover", "macd_momentum"])
def test_bracket_planner_reproduces_run_signals_without_brackets(name: str) -> None:
    spec = load_strategies()[name]
    bars = synthetic_bars(INST, 3000, 6, 100.0)
    sig = compile_spec(bars, spec).with_columns(pl.lit("s").alias("strategy"))
    by_signals = run_signals(bars, sig.select("ts", "instrument", "strategy", "long_entry", "long_exit",
                                              "short_entry", "short_exit"), ZERO_COST,
                             sizing=Sizing(SizeType.EQUITY_PERCENT, 0.5))  # fmt: skip
    orders = bracket_orders(sig, strategy="s", size_type=SizeType.EQUITY_PERCENT, size=0.5)
    by_orders = run_orders(bars, orders, ZERO_COST)
    cols = ["direction", "entry_bar", "exit_bar", "entry_price", "exit_price", "status"]
    assert by_signals.trades.height > 10
    assert by_orders.trades.select(cols).equals(by_signals.trades.select(cols))
    assert by_orders.final_equity == pytest.approx(by_signals.final_equity, rel=1e-9)


def scripted_bars(path: list[tuple[float, float, float, float]]) -> pl.DataFrame:
    n = len(path)
    o, h, lo, c = (list(x) for x in zip(*path, strict=True))
    return pl.DataFrame(
        {"ts": [START + STEP * i for i in range(n)], "instrument": INST, "open": o, "high": h, "low": lo, "close": c,
         "volume": 1e6, "is_gap": False, "long_entry": [i == 1 for i in range(n)], "long_exit": False,
         "short_entry": False, "short_exit": False},
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )  # fmt: skip


FLAT = (100.0, 100.5, 99.5, 100.0)


def test_stop_fills_at_its_level_and_the_target_leg_is_cancelled() -> None:
    # signal at bar 1 close, entry at bar 2 open (100), stop 5% below = 95 hit in bar 4 (low 94)
    bars = scripted_bars([FLAT, FLAT, FLAT, (99.0, 99.5, 97.0, 98.0), (98.0, 98.5, 94.0, 96.0), FLAT, FLAT])
    orders = bracket_orders(bars, strategy="s", size_type=SizeType.SHARES, size=10.0, stop_frac=0.05,
                            target_frac=0.10)  # fmt: skip
    res = run_orders(bars, orders, ZERO_COST)
    [trade] = res.trades.to_dicts()
    assert (trade["entry_bar"], trade["exit_bar"], trade["entry_price"], trade["exit_price"]) == (2, 4, 100.0, 95.0)
    status = dict(zip(res.orders["order_type"] + ":" + res.orders["action"], res.orders["status"], strict=True))
    assert status["LIMIT:EXIT"] == "CANCELLED" and status["STOP:EXIT"] == "FILLED"
    assert res.risk_events.height == 0  # no rejected CANCEL/EXIT noise


def test_take_profit_fills_at_the_limit_and_a_gap_through_fills_at_the_open() -> None:
    bars = scripted_bars([FLAT, FLAT, FLAT, (100.0, 111.0, 99.8, 108.0), FLAT])
    res = run_orders(bars, bracket_orders(bars, strategy="s", size_type=SizeType.SHARES, size=1.0, stop_frac=0.05,
                                          target_frac=0.10), ZERO_COST)  # fmt: skip
    [trade] = res.trades.to_dicts()
    assert (trade["exit_bar"], trade["exit_price"]) == (3, pytest.approx(110.0))
    gap_down = scripted_bars([FLAT, FLAT, FLAT, (90.0, 91.0, 89.0, 90.0), FLAT])
    res = run_orders(gap_down, bracket_orders(gap_down, strategy="s", size_type=SizeType.SHARES, size=1.0,
                                              stop_frac=0.05), ZERO_COST)  # fmt: skip
    assert res.trades["exit_price"].to_list() == [90.0]  # stop gapped through: filled at the open


def test_time_stop_exits_at_the_open_after_the_holding_period() -> None:
    bars = scripted_bars([FLAT] * 12)
    res = run_orders(bars, bracket_orders(bars, strategy="s", size_type=SizeType.SHARES, size=1.0, max_hold_bars=4),
                     ZERO_COST)  # fmt: skip
    [trade] = res.trades.to_dicts()
    assert (trade["entry_bar"], trade["exit_bar"]) == (2, 6)  # held bars 2..5, exit at the open of bar 6


def test_keys_and_walkforward_sizes() -> None:
    assert parse_key("json.rsi_reversal") == ("json", "rsi_reversal")
    assert parse_key("bp_0123456789abcdef") == ("blueprint", "bp_0123456789abcdef")
    with pytest.raises(ValueError, match="expected 'json.<name>'"):
        parse_key("json:rsi")
    sizes = choose_sizes(6000)
    assert sizes is not None and (sizes.train_bars, sizes.test_bars) == (2000, 1000)
    assert sizes.train_bars + 4 * sizes.test_bars == 6000
    assert choose_sizes(200) is None


def test_runner_errors_name_strategy_and_instrument(tmp_path: Path) -> None:
    from lake_assets.backtests.book_runs import run_blueprint, run_json_strategy
    from lake_assets.backtests.strategies import NoDataError
    from lake_assets.specs import universe
    from lake_assets.storage.lake import Lake

    lake = Lake(tmp_path)
    bp = make_blueprint(INST, "x")
    with pytest.raises(NoDataError, match=rf"{bp.blueprint_id}: instrument {INST}: no cleaned bars"):
        run_blueprint(lake, bp, universe().instruments)
    with pytest.raises(NoDataError, match=r"json.funding_fade: no cleaned bars .*BTCUSDT-PERP"):
        run_json_strategy(lake, load_strategies()["funding_fade"], universe().instruments)
    _ = timedelta  # keeps the import used when the file is trimmed
