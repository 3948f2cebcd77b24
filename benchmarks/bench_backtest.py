"""Backtest engine budget: qlake vs vectorbt from_signals (100 strategies x 100,000 bars, identical trades asserted)
and single-strategy bars/s vs backtesting.py. Prints one JSON object.

The 100x budget is end to end: `run_signals` on a polars bars frame and a polars signals frame, returning all result
frames (orders, fills, trades, equity, ...), against backtesting.py's `Backtest.run` in the same process. The
compiled core on numpy arrays is reported next to it for reference.

Run: NUMBA_CACHE_DIR=/work/main/.numba_cache .venv/bin/python benchmarks/bench_backtest.py
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", "/work/main/.numba_cache")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402

N_BARS = int(os.environ.get("BENCH_BARS", 100_000))
N_STRATS = int(os.environ.get("BENCH_STRATS", 100))
BT_BARS = int(os.environ.get("BENCH_BT_BARS", 10_000))
FEES, SLIP = 0.0005, 0.0002


def _sma(x: np.ndarray, k: int) -> np.ndarray:
    c = np.cumsum(np.r_[0.0, x])
    out = np.full(x.shape[0], np.nan)
    out[k - 1 :] = (c[k:] - c[:-k]) / k
    return out


def _signals(close: np.ndarray, n_strats: int) -> tuple[np.ndarray, np.ndarray]:
    """SMA crossovers over a grid of (fast, slow) windows, one column per strategy."""
    pairs = [(f, s) for f in range(5, 55, 5) for s in range(60, 260, 20)][:n_strats]
    entries = np.zeros((close.shape[0], len(pairs)), dtype=bool)
    exits = np.zeros_like(entries)
    for c, (f, s) in enumerate(pairs):
        above = _sma(close, f) > _sma(close, s)
        prev = np.r_[False, above[:-1]]
        entries[:, c] = above & ~prev
        exits[:, c] = ~above & prev
    return entries, exits


def _timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> dict[str, object]:
    rng = np.random.default_rng(42)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, N_BARS)))
    entries, exits = _signals(close, N_STRATS)

    t = time.perf_counter()
    from lake_assets.backtests.engine import EngineConfig, run_signals, run_signals_batch, signal_flags

    flags = signal_flags(entries, exits)
    run_signals_batch(close[:1000], flags[:1000, :1].copy(), size=np.inf, fees=FEES, slippage=SLIP)
    qlake_cold = time.perf_counter() - t

    def ours():  # type: ignore[no-untyped-def]
        return run_signals_batch(close, signal_flags(entries, exits), size=np.inf, fees=FEES, slippage=SLIP)

    qlake_warm, res = _timed(ours)

    t = time.perf_counter()
    import vectorbt as vbt

    close_s = pd.Series(close)
    _ = vbt.Portfolio.from_signals(
        close_s[:1000], entries[:1000, :1], exits[:1000, :1], size=np.inf, fees=FEES
    ).trades.records
    vbt_cold = time.perf_counter() - t

    def theirs():  # type: ignore[no-untyped-def]
        pf = vbt.Portfolio.from_signals(
            close_s, pd.DataFrame(entries), pd.DataFrame(exits), size=np.inf, fees=FEES, slippage=SLIP, init_cash=1e5
        )
        return pf, pf.trades.records

    vbt_warm, (pf, ref) = _timed(theirs)

    # identical trades and final equity
    ours_t = res.trades[np.lexsort((res.trades["entry_bar"], res.trades["slot"]))]
    ref = ref.sort_values(["col", "entry_idx"])
    assert ours_t.shape[0] == len(ref), (ours_t.shape[0], len(ref))
    assert np.array_equal(ours_t["slot"], ref["col"].to_numpy())
    assert np.array_equal(ours_t["entry_bar"], ref["entry_idx"].to_numpy())
    assert np.array_equal(ours_t["exit_bar"], ref["exit_idx"].to_numpy())
    assert np.allclose(ours_t["size"], ref["size"].to_numpy(), rtol=1e-9, atol=0)
    assert np.allclose(res.final_equity, pf.final_value().to_numpy(), rtol=1e-9, atol=0)

    # single SMA strategy: bars/s of qlake (full simulator and fast path) vs backtesting.py
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma_ind(x: np.ndarray, k: int) -> np.ndarray:
        return _sma(np.asarray(x, dtype=float), k)

    class SmaCross(Strategy):
        def init(self) -> None:
            self.a = self.I(sma_ind, self.data.Close, 10)
            self.b = self.I(sma_ind, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.a, self.b):
                self.buy(size=10)
            elif crossover(self.b, self.a):
                self.sell(size=10)

    sub = close[:BT_BARS]
    idx = pd.date_range("2020-01-01", periods=BT_BARS, freq="5min")
    df = pd.DataFrame({"Open": sub, "High": sub * 1.001, "Low": sub * 0.999, "Close": sub, "Volume": 1e6}, index=idx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt_s, _ = _timed(lambda: Backtest(df, SmaCross, cash=1e9, exclusive_orders=True).run(), repeat=1)
    bt_rate = BT_BARS / bt_s

    ts = pl.datetime_range(pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 1) + pl.duration(minutes=5 * (N_BARS - 1)),
                           "5m", eager=True, time_zone="UTC")  # fmt: skip
    bars = pl.DataFrame({"ts": ts, "instrument": "SYN", "open": close, "high": close * 1.001, "low": close * 0.999,
                         "close": close, "volume": 1e6})  # fmt: skip
    f, s = _sma(close, 10), _sma(close, 30)
    up = (f > s) & ~np.r_[False, (f > s)[:-1]]
    dn = (f < s) & ~np.r_[False, (f < s)[:-1]]
    sig = bars.select("ts", "instrument").with_columns(long_entry=pl.Series(up), short_entry=pl.Series(dn))
    from lake_assets.backtests.risk import RiskLimits, fixed_units

    cfg = EngineConfig(init_cash=1e9, risk=RiskLimits.disabled())
    run_signals(bars, sig, cfg, sizing=fixed_units(10.0), fast=False)
    run_signals(bars, sig, cfg, sizing=fixed_units(10.0))
    full_s, full_res = _timed(lambda: run_signals(bars, sig, cfg, sizing=fixed_units(10.0), fast=False))
    fast_s, fast_res = _timed(lambda: run_signals(bars, sig, cfg, sizing=fixed_units(10.0), fast=True))
    e2e_s, e2e_res = _timed(lambda: run_signals(bars, sig, cfg, sizing=fixed_units(10.0)))  # default: auto path
    one = signal_flags(up, None, dn)
    core_s, core_res = _timed(
        lambda: run_signals_batch(
            close, one, open_=close, size=10.0, notional=False, fill_at="next_open", init_cash=cfg.init_cash
        )
    )
    # the timed end-to-end runs produce the same trades as the compiled core (and as each other)
    for r in (full_res, fast_res, e2e_res):
        assert r.trades.height == core_res.trades.shape[0], (r.trades.height, core_res.trades.shape[0])
        assert np.array_equal(r.trades["entry_bar"].to_numpy(), core_res.trades["entry_bar"])
        assert np.isclose(r.final_equity, core_res.final_equity[0], rtol=1e-12, atol=0)
    assert e2e_res.used_fast_path and not full_res.used_fast_path
    full_rate, fast_rate, core_rate = N_BARS / full_s, N_BARS / fast_s, N_BARS / core_s
    e2e_rate = N_BARS / e2e_s
    out: dict[str, object] = {
        "strategies": N_STRATS,
        "bars": N_BARS,
        "trades": int(ours_t.shape[0]),
        "identical_trades": True,
        "qlake_warm_s": round(qlake_warm, 4),
        "vectorbt_warm_s": round(vbt_warm, 4),
        "speedup_vs_vectorbt": round(vbt_warm / qlake_warm, 2),
        "qlake_cold_first_call_s": round(qlake_cold, 3),
        "vectorbt_cold_first_call_s": round(vbt_cold, 3),
        "backtesting_py_bars_per_s": round(bt_rate, 1),
        "qlake_full_simulator_bars_per_s": round(full_rate, 1),
        "qlake_fast_path_bars_per_s": round(fast_rate, 1),
        "qlake_compiled_core_bars_per_s": round(core_rate, 1),
        "qlake_end_to_end_bars_per_s": round(e2e_rate, 1),
        "qlake_end_to_end_s": round(e2e_s, 4),
        "qlake_full_simulator_s": round(full_s, 4),
        "full_vs_backtesting_py": round(full_rate / bt_rate, 1),
        "core_vs_backtesting_py": round(core_rate / bt_rate, 1),
        "fast_vs_backtesting_py": round(fast_rate / bt_rate, 1),
        # run_signals(bars frame, signals frame) -> all result frames, default (auto-selected) path
        "end_to_end_ratio_vs_backtesting_py": round(e2e_rate / bt_rate, 1),
        "ok_no_slower_than_vectorbt": bool(qlake_warm <= vbt_warm),
        "ok_100x_backtesting_py": bool(e2e_rate / bt_rate >= 100),
        "ok_100x_full_simulator": bool(full_rate / bt_rate >= 100),
    }
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok_no_slower_than_vectorbt"] and result["ok_100x_backtesting_py"] else 1)
