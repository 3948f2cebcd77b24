"""Parity with vectorbt `Portfolio.from_signals` over its signal modes, run live on the same inputs: accumulation,
opposite entries, entry/exit and direction conflicts, and stop-loss / take-profit / trailing stops, in both
directions and every sizing both engines share (units, quote notional, all cash, percent), on the fast path and the
full simulator, with random signals from fixed seeds.

`fill_at="close"` is vectorbt's default (price = the signal bar's close). `fill_at="next_open"` is compared with
vectorbt filling at the open with signals shifted one bar later (the bar they fill at).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
import vectorbt as vbt
from bt_helpers import random_walk_bars

from lake_assets.backtests.engine import BacktestResult, EngineConfig, run_signals
from lake_assets.backtests.risk import RiskLimits, Sizing, fixed_notional, fixed_units, percent_equity

N = 300
FEES, FIXED, SLIP = 0.0007, 0.3, 0.0004
INIT = 100_000.0
# ours <-> vectorbt (size, size_type)
SIZINGS: dict[str, tuple[Sizing, float, str]] = {
    "units": (fixed_units(40.0), 40.0, "amount"),
    "notional": (fixed_notional(3_000.0), 3_000.0, "value"),
    "all_cash": (fixed_notional(np.inf), np.inf, "amount"),
    "percent": (percent_equity(0.5), 0.5, "percent"),
}
CASES: Counter[str] = Counter()  # parity cases per mode (printed by the last test for the report)


def _signals(seed: int, both: bool, p: float = 0.06, p_exit: float | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    px = p if p_exit is None else p_exit
    out = {"long_entry": rng.random(N) < p, "long_exit": rng.random(N) < px}
    if both:
        out |= {"short_entry": rng.random(N) < p, "short_exit": rng.random(N) < px}
    return out


def _run_both(
    seed: int,
    sizing: str,
    fill_at: str,
    both: bool,
    fast: bool,
    p: float = 0.06,
    fixed: float = FIXED,
    p_exit: float | None = None,
    **modes: Any,
) -> tuple[BacktestResult, Any]:
    bars = random_walk_bars(N, seed=seed)
    sig = _signals(seed + 1000, both, p, p_exit)
    ours_sizing, size, size_type = SIZINGS[sizing]
    cfg = EngineConfig.vectorbt_compatible(fees=FEES, slippage=SLIP, fixed_fee=fixed, init_cash=INIT, fill_at=fill_at)
    signals = bars.select("ts", "instrument").with_columns(**{k: pl.Series(v) for k, v in sig.items()})
    res = run_signals(bars, signals, cfg, sizing=ours_sizing, fast=fast, **modes)
    assert res.used_fast_path == fast

    if fill_at == "close":
        price = bars["close"].to_numpy()
        vsig = sig
    else:  # fill at the next open: vectorbt trades at the open with the signals moved to their fill bar
        price = bars["open"].to_numpy()
        vsig = {k: np.r_[False, v[:-1]] for k, v in sig.items()}
    names = {"long_entry": "entries", "long_exit": "exits", "short_entry": "short_entries", "short_exit": "short_exits"}
    kw = {names[k]: pd.Series(v) for k, v in vsig.items()}
    if "sl_stop" in modes or "tp_stop" in modes:
        kw |= {c: pd.Series(bars[c].to_numpy()) for c in ("open", "high", "low")}
    pf = vbt.Portfolio.from_signals(
        pd.Series(bars["close"].to_numpy()),
        price=pd.Series(price),
        size=size,
        size_type=size_type,
        fees=FEES,
        fixed_fees=fixed,
        slippage=SLIP,
        init_cash=INIT,
        **kw,
        **modes,
    )
    return res, pf


def _assert_same(res: BacktestResult, pf: Any) -> int:
    ref = pf.trades.records.sort_values(["entry_idx", "exit_idx", "size"]).reset_index(drop=True)
    ours = res.trades.sort("entry_bar", "exit_bar", "size")
    assert ours.height == len(ref), (ours.height, len(ref))
    np.testing.assert_array_equal(ours["entry_bar"].to_numpy(), ref["entry_idx"].to_numpy())
    np.testing.assert_array_equal(ours["exit_bar"].to_numpy(), ref["exit_idx"].to_numpy())
    np.testing.assert_array_equal(ours["direction"].to_numpy(), np.where(ref["direction"] == 0, "LONG", "SHORT"))
    np.testing.assert_array_equal(ours["status"].to_numpy(), np.where(ref["status"] == 0, "OPEN", "CLOSED"))
    for a, b in (("entry_price", "entry_price"), ("exit_price", "exit_price"), ("size", "size"), ("pnl", "pnl")):
        np.testing.assert_allclose(ours[a].to_numpy(), ref[b].to_numpy(), rtol=1e-9, atol=1e-7)
    fees = (ref["entry_fees"] + ref["exit_fees"]).to_numpy()
    np.testing.assert_allclose(ours["fees"].to_numpy(), fees, rtol=1e-9, atol=1e-7)
    assert res.final_equity == pytest.approx(float(pf.final_value()), rel=1e-9)
    return ours.height


ACCUMULATE = [False, True, "addonly", "removeonly"]
OPPOSITE = ["ignore", "close", "closereduce", "reverse", "reversereduce"]
CONFLICT = ["ignore", "entry", "exit", "adjacent", "opposite"]
DIR_CONFLICT = ["ignore", "long", "short", "adjacent", "opposite"]
PATHS = [pytest.param(False, id="full"), pytest.param(True, id="fast")]
FILLS = ["close", "next_open"]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("fill_at", FILLS)
@pytest.mark.parametrize("sizing", ["units", "notional", "all_cash"])
@pytest.mark.parametrize("accumulate", ACCUMULATE, ids=str)
@pytest.mark.parametrize("opposite", OPPOSITE)
def test_accumulate_and_opposite_entry_match_vectorbt(
    opposite: str, accumulate: Any, sizing: str, fill_at: str, fast: bool
) -> None:
    seed = 11 + ACCUMULATE.index(accumulate) * 7 + OPPOSITE.index(opposite)
    res, pf = _run_both(seed, sizing, fill_at, True, fast, accumulate=accumulate, upon_opposite_entry=opposite)
    assert _assert_same(res, pf) > 0
    CASES[f"accumulate={accumulate}"] += 1
    CASES[f"upon_opposite_entry={opposite}"] += 1


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("sizing", ["units", "all_cash"])
@pytest.mark.parametrize("which", ["upon_long_conflict", "upon_short_conflict"])
@pytest.mark.parametrize("mode", CONFLICT)
def test_entry_exit_conflicts_match_vectorbt(mode: str, which: str, sizing: str, fast: bool) -> None:
    seed = 301 + CONFLICT.index(mode)
    for accumulate in (False, True):  # conflicts while in a position matter most with accumulation
        res, pf = _run_both(seed, sizing, "close", True, fast, p=0.25, accumulate=accumulate, **{which: mode})
        assert _assert_same(res, pf) > 0
        CASES[f"{which}={mode}"] += 1


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("sizing", ["units", "notional", "all_cash"])
@pytest.mark.parametrize("mode", DIR_CONFLICT)
def test_direction_conflicts_match_vectorbt(mode: str, sizing: str, fast: bool) -> None:
    seed = 401 + DIR_CONFLICT.index(mode)
    for accumulate in (False, True):
        # no fixed fee: frequent conflicts leave dust positions whose sale cannot pay a fixed fee, which vectorbt
        # rejects (CantCoverFees) and qlake fills (an exit means flat; README "Different by design")
        res, pf = _run_both(
            seed, sizing, "close", True, fast, p=0.25, fixed=0.0, accumulate=accumulate, upon_dir_conflict=mode
        )
        assert _assert_same(res, pf) > 0
        CASES[f"upon_dir_conflict={mode}"] += 1


@pytest.mark.parametrize("fill_at", FILLS)
@pytest.mark.parametrize("seed", range(4))
def test_percent_of_equity_long_only_matches_vectorbt_percent(seed: int, fill_at: str) -> None:
    """Long-only from flat, equity is the cash: `percent_equity(f)` commits f of it, fees included, as vectorbt's
    size_type="percent" (which cannot reverse, hence long-only). Equity-percent sizing runs on the full simulator."""
    res, pf = _run_both(500 + seed, "percent", fill_at, False, False)
    assert _assert_same(res, pf) > 0
    CASES["sizing=percent"] += 1


STOPS = [
    pytest.param({"sl_stop": 0.004}, id="sl"),
    pytest.param({"tp_stop": 0.006}, id="tp"),
    pytest.param({"sl_stop": 0.003, "tp_stop": 0.005}, id="sl+tp"),
    pytest.param({"sl_stop": 0.004, "sl_trail": True}, id="trail"),
    pytest.param({"sl_stop": 0.003, "sl_trail": True, "tp_stop": 0.008}, id="trail+tp"),
]


@pytest.mark.parametrize("fast", PATHS)
@pytest.mark.parametrize("sizing", ["units", "notional", "all_cash"])
@pytest.mark.parametrize("both", [False, True], ids=["long_only", "long_short"])
@pytest.mark.parametrize("stops", STOPS)
@pytest.mark.parametrize("seed", range(3))
def test_signal_stops_match_vectorbt(seed: int, stops: dict[str, Any], both: bool, sizing: str, fast: bool) -> None:
    res, pf = _run_both(600 + seed, sizing, "close", both, fast, p=0.03, p_exit=0.003, **stops)
    assert _assert_same(res, pf) > 0
    stop_exits = res.orders.filter(pl.col("order_type").is_in(["STOP", "LIMIT"]))
    assert stop_exits.height > 0  # the stops did fire
    for k in stops:
        CASES[f"{k}"] += 1


@pytest.mark.parametrize("fast", PATHS)
def test_stops_with_accumulation_match_vectorbt(fast: bool) -> None:
    for seed in range(3):
        res, pf = _run_both(700 + seed, "units", "close", True, fast, p=0.05, accumulate=True, sl_stop=0.004)
        assert _assert_same(res, pf) > 0
        CASES["sl_stop+accumulate"] += 1


@pytest.mark.parametrize("seed", range(3))
def test_fast_path_stops_identical_to_full_simulator_next_open(seed: int) -> None:
    """fill_at="next_open" has no vectorbt counterpart for stops (they are checked from the entry's own bar, after
    its open): the fast path and the full simulator agree exactly."""
    bars = random_walk_bars(N, seed=800 + seed)
    sig = _signals(900 + seed, True, 0.03, 0.003)
    signals = bars.select("ts", "instrument").with_columns(**{k: pl.Series(v) for k, v in sig.items()})
    cfg = EngineConfig(fill_at="next_open", taker_fee=FEES, maker_fee=FEES, slippage=SLIP, risk=RiskLimits.disabled())
    kw: dict[str, Any] = {"sl_stop": 0.003, "sl_trail": True, "tp_stop": 0.006, "accumulate": "addonly"}
    a = run_signals(bars, signals, cfg, sizing=fixed_units(5.0), fast=True, **kw)
    b = run_signals(bars, signals, cfg, sizing=fixed_units(5.0), fast=False, **kw)
    assert b.orders.filter(pl.col("order_type") == "STOP").height > 0
    cols = ["ts", "side", "price", "size", "fee", "liquidity"]
    assert a.trades.equals(b.trades) and a.fills.select(cols).equals(b.fills.select(cols))
    # the fast path rebuilds the equity curve from its fills (sums in another order)
    np.testing.assert_allclose(a.equity["equity"].to_numpy(), b.equity["equity"].to_numpy(), rtol=1e-12)


def test_mode_argument_errors() -> None:
    bars = random_walk_bars(50, seed=1)
    sig = bars.select("ts", "instrument").with_columns(long_entry=pl.lit(True))
    cfg = EngineConfig(maker_fee=0.0, taker_fee=0.001, risk=RiskLimits.disabled())
    with pytest.raises(ValueError, match="fast=True"):  # a stop fills at the maker fee: one fee on the fast path
        run_signals(bars, sig, cfg, sizing=fixed_units(1.0), fast=True, sl_stop=0.01)
    with pytest.raises(ValueError, match="upon_opposite_entry"):
        run_signals(bars, sig, upon_opposite_entry="flip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sl_trail needs sl_stop"):
        run_signals(bars, sig, sl_trail=True)


def test_zz_report_parity_case_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the parity cases per mode that ran in this session (run with -s to see them)."""
    with capsys.disabled():
        print("\nvectorbt parity cases per mode:", dict(sorted(CASES.items())))
