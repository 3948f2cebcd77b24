"""A small lake written directly with `Lake.write`: cleaned bars (+ raw funding, features, events) for a couple of
instruments over a few weeks, so backtest/report tests run in seconds without the upstream layers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.discovery.blueprints import Blueprint, blueprint_id
from lake_assets.events.columns import STATE_COLUMNS
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import BARS_SCHEMA, RAW_FUNDING_SCHEMA, conform

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)


def synthetic_bars(instrument: str, n: int, seed: int, base: float = 100.0, gaps: int = 0) -> pl.DataFrame:
    """5m bars on a regular grid (BARS_SCHEMA): a mean-reverting log price with noise; `gaps` NULL gap bars."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = 0.995 * x[i - 1] + rng.normal(0.0, 0.003)
    close = base * np.exp(x + np.linspace(0, 0.05, n))
    open_ = np.r_[base, close[:-1]] * np.exp(rng.normal(0.0, 0.0004, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0015, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0015, n)))
    volume = rng.uniform(5e3, 2e4, n)
    is_gap = np.zeros(n, dtype=bool)
    if gaps:
        is_gap[rng.choice(np.arange(50, n - 50), gaps, replace=False)] = True
    nan = np.where(is_gap, np.nan, 1.0)
    ts = [START + STEP * i for i in range(n)]
    df = pl.DataFrame({
        "ts": ts, "instrument": instrument, "open": open_ * nan, "high": high * nan, "low": low * nan,
        "close": close * nan, "volume": volume * nan, "trade_count": np.full(n, 10), "buy_volume": volume / 2,
        "sell_volume": volume / 2, "is_gap": is_gap, "is_outlier": False, "ohlc_violation": False,
    }).with_columns(pl.col(c).fill_nan(None) for c in ("open", "high", "low", "close", "volume"))  # fmt: skip
    df = df.with_columns((pl.col("close") / pl.col("close").shift(1)).log().alias("ret"))
    return conform(df, BARS_SCHEMA)


def write_bars(lake: Lake, bars: pl.DataFrame) -> None:
    for (inst, month), part in bars.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias("_m")).group_by(
        "instrument", "_m"
    ):
        lake.write(part.drop("_m"), "cleaned", "bars", {"instrument": str(inst), "month": str(month)})


def write_funding(lake: Lake, instrument: str, start: datetime, end: datetime, rate: float = 1e-4) -> pl.DataFrame:
    ts, t = [], start
    while t < end:
        ts.append(t)
        t += timedelta(hours=8)
    df = pl.DataFrame({"ts": ts, "instrument": instrument, "funding_rate": rate, "vendor": "synthetic",
                       "ingested_at": start})  # fmt: skip
    df = conform(df, RAW_FUNDING_SCHEMA)
    lake.write(df, "raw", "raw_funding", {"instrument": instrument, "month": start.strftime("%Y-%m")})
    return df


def write_events(lake: Lake, bars: pl.DataFrame, event_type: str, every: int, seed: int = 0) -> pl.DataFrame:
    """Events of one type on every `every`-th real bar, alternating long/short, with a state snapshot."""
    real = bars.filter(~pl.col("is_gap")).gather_every(every, offset=every)
    rng = np.random.default_rng(seed)
    n = real.height
    df = pl.DataFrame({
        "event_id": [hashlib.sha1(f"{event_type}{t}".encode()).hexdigest()[:16] for t in real["ts"].to_list()],
        "event_type": event_type, "family": "test_family", "instrument": real["instrument"], "ts": real["ts"],
        "direction": ["long" if k % 2 == 0 else "short" for k in range(n)], "severity": rng.uniform(1, 3, n),
        **{c: ["high" if k % 3 else "low" for k in range(n)] if c == "vol_regime" else [None] * n
           for c in STATE_COLUMNS},
    }).with_columns(pl.col(c).cast(pl.String) for c in STATE_COLUMNS)  # fmt: skip
    lake.write(df, "events", "event_registry", {"event_type": event_type})
    return df


def make_blueprint(instrument: str, event_type: str, *, state: tuple[str, str] | None = ("vol_regime", "high"),
                   direction: str = "with_event", horizon: int = 12, method: str = "vol_target",
                   last_entry: datetime | None = None) -> Blueprint:  # fmt: skip
    """A hand-made, valid blueprint (its id is the hash of its definition, as discovery computes it)."""
    body = {
        "event_type": event_type, "family": "test_family", "instrument": instrument, "timeframe": "5m",
        "template": "continuation" if direction == "with_event" else "reversal", "direction": direction,
        "undirected_events": "detection_bar_body",
        "state": None if state is None else {"column": state[0], "value": state[1]},
        "entry": {"lag_bars": 1, "price": "open"},
        "exits": {"time_stop_bars": horizon, "stop_loss_atr": 2.0, "take_profit_atr": 3.0, "atr_period": 14},
        "sizing": {"method": method, "target_annual_vol": 0.2, "max_leverage": 1.0, "risk_per_trade": 0.01},
        "costs": {"instrument_class": "crypto", "fee_bps": 5.0, "spread_bps": 1.0, "slippage_bps": 2.0,
                  "round_trip_bps": 16.0, "conservative_multiplier": 1.5},
    }  # fmt: skip
    evidence = {
        "n": 40, "raw_effect_bps": 12.0, "shrunk_effect_bps": 9.0, "t_stat": 3.1, "t_shrunk": 2.5, "p_value": 0.002,
        "q_value": 0.02, "fdr_method": "bh", "hit_rate": 0.58, "family_weight": 0.5, "event_weight": 0.5,
        "state_weight": 0.5, "after_cost_bps": 4.0, "holdout_n": 10, "holdout_mean_bps": 8.0,
        "holdout_after_cost_bps": 2.0, "holdout_sign_agrees": True, "cost_stress_bps": {"1x": 4.0, "2x": -1.0},
        "discovery_last_entry": (last_entry or START + timedelta(days=10)).isoformat(),
    }  # fmt: skip
    return Blueprint(blueprint_id=blueprint_id(body), name=f"{event_type} {instrument}", evidence=evidence,
                     spec_hash="test", **body)  # fmt: skip


STRATEGY_PERPS = ("BTCUSDT-PERP", "ETHUSDT-PERP")
STRATEGY_DAYS = 21
STRATEGY_EVENT = "vol_spike_test"


def build_strategy_lake(lake: Lake) -> str:
    """Two perps x three weeks of 5m bars with funding, one event type on the first, and one blueprint trading it
    (written to blueprints.jsonl); returns the blueprint id."""
    from lake_assets.discovery.blueprints import blueprints_path, write_blueprints_jsonl

    n = 288 * STRATEGY_DAYS
    perps = STRATEGY_PERPS
    bars = pl.concat([synthetic_bars(perps[0], n, 1, 60_000.0, gaps=4), synthetic_bars(perps[1], n, 2, 3_000.0)])
    write_bars(lake, bars)
    for inst in perps:
        write_funding(lake, inst, START, START + timedelta(days=STRATEGY_DAYS), rate=2e-4)
    write_events(lake, bars.filter(pl.col("instrument") == perps[0]), STRATEGY_EVENT, every=61)
    bp = make_blueprint(perps[0], STRATEGY_EVENT)
    write_blueprints_jsonl([bp], blueprints_path(lake))
    return bp.blueprint_id
