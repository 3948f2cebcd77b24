"""Synthetic bars + event registry with planted event->return effects, for discovery tests and the benchmark.

Prices follow a Gaussian log random walk per bar (open = previous close); gap rows have null OHLC and is_gap True.
An event type can plant a drift over the `effect_bars` bars after the detection bar (what discovery must find) or on
the detection bar itself (what discovery must NOT find: it is already over when the event is known).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.vocabulary import BARS_SCHEMA, conform

STATE_VALUES = {
    "vol_regime": ["low", "mid", "high"],
    "carry_state": ["neg", "neutral", "pos", None],
    "trend_state": ["up", "down", "chop"],
}


@dataclass(frozen=True)
class EventKind:
    event_type: str
    family: str
    direction: str = "mixed"  # long | short | both | neutral | mixed (random long/short per event)
    rate: float = 0.01  # probability per bar
    effect_bps: float = 0.0  # total log drift planted in the event's direction
    effect_bars: int = 12
    at_detection: bool = False  # plant on the detection bar itself instead of after it
    effect_until: float = 1.0  # plant only for events in the first fraction of the sample (regime that ends)


def simulate(
    seed: int,
    kinds: list[EventKind],
    instruments: tuple[str, ...] = ("AAA", "BBB"),
    n_bars: int = 12_000,
    vol_bps: float = 10.0,
    gap_rate: float = 0.001,
    step: timedelta = timedelta(minutes=5),
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    bar_frames, event_frames = [], []
    ts = pl.datetime_range(start, start + step * (n_bars - 1), step, eager=True, time_zone="UTC")
    hours = ts.dt.hour().to_numpy()
    session = np.where(hours < 8, "asia", np.where(hours < 14, "europe", "us"))
    for inst in instruments:
        r = rng.normal(0.0, vol_bps / 1e4, n_bars)
        gap = rng.random(n_bars) < gap_rate
        evs = []
        for kind in kinds:
            rows = np.flatnonzero((rng.random(n_bars) < kind.rate) & ~gap)
            rows = rows[rows < n_bars - 1]
            if kind.direction == "mixed":
                dirs = rng.choice(["long", "short"], len(rows))
            else:
                dirs = np.full(len(rows), kind.direction)
            for i, d in zip(rows.tolist(), dirs.tolist(), strict=True):
                # undirected events take the direction of the detection bar's own move
                move = 1.0 if r[i] >= 0 else -1.0
                s = {"long": 1.0, "short": -1.0}.get(d, move)
                if kind.effect_bps and i < kind.effect_until * n_bars:
                    if kind.at_detection:
                        r[i] += s * kind.effect_bps / 1e4
                    else:
                        r[i + 1 : i + 1 + kind.effect_bars] += s * kind.effect_bps / 1e4 / kind.effect_bars
                evs.append((kind.event_type, kind.family, i, d))
        close = 100.0 * np.exp(np.cumsum(r))
        open_ = np.concatenate([[100.0], close[:-1]])
        bars = pl.DataFrame(
            {
                "ts": ts,
                "instrument": inst,
                "open": np.where(gap, np.nan, open_),
                "close": np.where(gap, np.nan, close),
                "high": np.where(gap, np.nan, np.maximum(open_, close)),
                "low": np.where(gap, np.nan, np.minimum(open_, close)),
                "is_gap": gap,
            }
        ).with_columns(pl.col("open", "close", "high", "low").fill_nan(None))
        bar_frames.append(conform(bars, BARS_SCHEMA))
        if evs:
            et, fam, rows_, dirs_ = map(list, zip(*evs, strict=True))
            idx = np.array(rows_)
            n = len(idx)
            event_frames.append(
                pl.DataFrame(
                    {
                        "event_id": [f"{inst}-{e}-{i}" for e, i in zip(et, rows_, strict=True)],
                        "event_type": et,
                        "family": fam,
                        "instrument": inst,
                        "ts": ts.gather(idx),
                        "direction": dirs_,
                        "severity": rng.random(n),
                        "vol_regime": rng.choice(STATE_VALUES["vol_regime"], n),
                        "carry_state": [STATE_VALUES["carry_state"][k] for k in rng.integers(0, 4, n)],
                        "session": session[idx],
                        "trend_state": rng.choice(STATE_VALUES["trend_state"], n),
                    }
                )
            )
    return pl.concat(bar_frames), pl.concat(event_frames).sort("instrument", "ts")


CLASSES = {"AAA": "crypto", "BBB": "crypto", "CCC": "crypto", "DDD": "crypto", "EQ1": "equity"}
