"""Synthetic bars + event registry with planted event->return effects, for discovery tests and the benchmark.

Prices follow a Gaussian log random walk per bar (open = previous close); gap rows have null OHLC and is_gap True.
An event type can plant a drift over the `effect_bars` bars after the detection bar (what discovery must find) or on
the detection bar itself (what discovery must NOT find: it is already over when the event is known). A planted
effect can be restricted to some instruments, to events in one state (`state=("vol_regime", "high")`) and delayed
by `effect_delay` bars (so short horizons see nothing); `truth()` says which hypothesis rows then have a positive
expected return. `drift_phi` / `drift_sd_bps` add a zero-mean AR(1) drift to every bar's mean return (persistent
trends that move consecutive trades together).
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
    instruments: tuple[str, ...] | None = None  # plant only on these instruments (None: all)
    state: tuple[str, str] | None = None  # plant only on events in this state (column, value)
    effect_delay: int = 0  # the drift starts this many bars after the entry bar


def simulate(
    seed: int,
    kinds: list[EventKind],
    instruments: tuple[str, ...] = ("AAA", "BBB"),
    n_bars: int = 12_000,
    vol_bps: float = 10.0,
    gap_rate: float = 0.001,
    step: timedelta = timedelta(minutes=5),
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    drift_phi: float = 0.0,
    drift_sd_bps: float = 0.0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    bar_frames, event_frames = [], []
    ts = pl.datetime_range(start, start + step * (n_bars - 1), step, eager=True, time_zone="UTC")
    hours = ts.dt.hour().to_numpy()
    session = np.where(hours < 8, "asia", np.where(hours < 14, "europe", "us"))
    for inst in instruments:
        r = rng.normal(0.0, vol_bps / 1e4, n_bars)
        gap = rng.random(n_bars) < gap_rate
        if drift_sd_bps:
            r += _ar1(rng, n_bars, drift_phi, drift_sd_bps / 1e4)
        evs = []
        deferred = []  # state-conditional plants, applied once the events' states are drawn
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
                planted = kind.instruments is None or inst in kind.instruments
                if kind.effect_bps and planted and kind.state is not None:
                    deferred.append((len(evs), i, s, kind))
                elif kind.effect_bps and planted and i < kind.effect_until * n_bars:
                    if kind.at_detection:
                        r[i] += s * kind.effect_bps / 1e4
                    else:
                        a = i + 1 + kind.effect_delay
                        r[a : a + kind.effect_bars] += s * kind.effect_bps / 1e4 / kind.effect_bars
                evs.append((kind.event_type, kind.family, i, d))
        n_ev = len(evs)
        severity = rng.random(n_ev)
        states = {
            "vol_regime": rng.choice(STATE_VALUES["vol_regime"], n_ev),
            "carry_state": [STATE_VALUES["carry_state"][k] for k in rng.integers(0, 4, n_ev)],
            "trend_state": rng.choice(STATE_VALUES["trend_state"], n_ev),
        }
        for k, i, s, kind in deferred:
            col, value = kind.state  # type: ignore[misc]
            here = session[i] if col == "session" else states[col][k]
            if here == value and i < kind.effect_until * n_bars:
                a = i + 1 + kind.effect_delay
                r[a : a + kind.effect_bars] += s * kind.effect_bps / 1e4 / kind.effect_bars
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
            event_frames.append(
                pl.DataFrame(
                    {
                        "event_id": [f"{inst}-{e}-{i}" for e, i in zip(et, rows_, strict=True)],
                        "event_type": et,
                        "family": fam,
                        "instrument": inst,
                        "ts": ts.gather(idx),
                        "direction": dirs_,
                        "severity": severity,
                        "vol_regime": states["vol_regime"],
                        "carry_state": states["carry_state"],
                        "session": session[idx],
                        "trend_state": states["trend_state"],
                    }
                )
            )
    return pl.concat(bar_frames), pl.concat(event_frames).sort("instrument", "ts")


CLASSES = {"AAA": "crypto", "BBB": "crypto", "CCC": "crypto", "DDD": "crypto", "EQ1": "equity"}


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary zero-mean AR(1) path with marginal standard deviation `sd`."""
    from scipy.signal import lfilter

    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    shocks[0] = rng.normal(0.0, sd)  # start in the stationary distribution
    return np.asarray(lfilter([1.0], [1.0, -phi], shocks))


def truth(cands: pl.DataFrame, kinds: list[EventKind]) -> pl.Series:
    """Per hypothesis row: True when its expected return in the template's direction is positive under the plants.

    A plant on (event, instrument[, state]) with delay d makes the continuation rows with horizon > d true: the
    unconditional row, the row of the planted state value, and every row of the other state columns (their values
    are drawn independently of the planted state, so each contains planted events). Reversal rows, other
    instruments, other values of the planted state column and horizons <= d are null (expected return <= 0).
    """
    true = pl.lit(False)
    for k in kinds:
        if not k.effect_bps or k.at_detection or k.effect_until < 1.0:
            continue
        verb = "continuation" if k.effect_bps > 0 else "reversal"
        row = (pl.col("event_type") == k.event_type) & (pl.col("template") == verb)
        row = row & (pl.col("horizon") > k.effect_delay)
        if k.instruments is not None:
            row = row & pl.col("instrument").is_in(list(k.instruments))
        if k.state is not None:
            col, value = k.state
            row = row & ((pl.col("state_col") != col) | (pl.col("state_value") == value))
        true = true | row
    return cands.select(true.alias("true_effect")).to_series()
