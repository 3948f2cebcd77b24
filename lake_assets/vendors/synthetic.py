"""The synthetic vendor: an offline, deterministic crypto market with known truths planted in it.

Perps and spot at 5m share one underlying path per `seed`. Every underlying loads on one market factor with
`params.beta` (default 0.95, BTC included) and shares the market's Markov regime-switching volatility, so crypto pairs
correlate like real ones (BTC-ETH 1-bar return correlation ~0.8); a few times a month an underlying decouples from
the market for 8-16 hours (beta 0: a correlation breakdown). Plus jumps, funding every 8h with extreme episodes, open
interest with flushes, trades, and a little dirt the cleaned layer must handle (missing bars, duplicate rows, a bad
tick, an OHLC violation).

Planted effects (absent when `params.null_effects` is true, which makes the instrument a null control):
- funding extreme onset (|funding| crosses 7 bps; an episode starts at FUNDING_EXTREME_START of the quiet funding
  prints): price drifts against the funding sign by FUNDING_EFFECT over the FUNDING_EFFECT_BARS bars starting two
  bars after the funding bar;
- open-interest flush (OI falls ~15% with a -1.5% price jump, FLUSH_RATE per bar): price drifts up by FLUSH_EFFECT
  over the following bars.
Null controls get the same funding episodes and flushes (same draws), only without the drifts. OI surges and short
squeezes (OI_SURGE_RATE, SQUEEZE_RATE) carry no effect anywhere.

Top of book (bid, ask and their sizes at each bar's close) comes from its own seeded stream, so the OHLCV, funding,
OI and trades series are exactly those of a vendor without it: a quoted spread around the close that widens with
the volatility regime (x2.5 in high volatility) and with a persistent log-normal noise, occasional blowouts (one bar
in SPREAD_BLOWOUT_BARS, 5-15x for 1-6 bars), and depth that thins in high volatility and collapses now and then
(one bar in DEPTH_COLLAPSE_BARS, to 3-10% for 3-24 bars, the spread doubling meanwhile).

Every month is generated from its own seeded generator plus the state carried from the previous month, so the data
for a month never depends on when it is asked for or on how much later data exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import polars as pl

from lake_assets.specs import Instrument
from lake_assets.vocabulary import (
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    LOW,
    OPEN,
    OPEN_INTEREST,
    PRICE,
    RAW_SCHEMAS,
    SIDE,
    SIZE,
    TIMEFRAMES,
    TRADE_ID,
    TS,
    VENDOR,
    VOLUME,
    DataKind,
    Market,
    conform,
)

BAR = timedelta(minutes=5)
FUNDING_EXTREME = 0.0007
FUNDING_EFFECT = 0.0150  # 150 bps total drift after a funding extreme onset
FUNDING_EFFECT_BARS = 48
FLUSH_EFFECT = 0.0150
FLUSH_EFFECT_BARS = 24
# How often the OI flush occurs: often enough that a test honest about dependence and multiplicity can find its
# effect in the demo's ~8 months of discovery window (~110-125 trades per perp; at the former 1 / 2500 a perp had
# ~26, too few for a test that controls FDR over ~18,000 hypotheses).
FLUSH_RATE = 1 / 500  # per bar: open interest flushes (with their price jump)
FUNDING_EXTREME_START = 0.06  # per funding print outside an episode: an extreme-funding episode starts
# OI shocks without any planted effect (own seeded stream), so that the 7-day OI-change z-score, which the frequent
# flushes widen, still sees bursts of new positions and short squeezes:
OI_SURGE_RATE = 1 / 2000  # per bar: open interest jumps +15%, the price does nothing special
SQUEEZE_RATE = 1 / 8000  # per bar: open interest falls ~15% with a +1.5% price jump (shorts covering)
EFFECT_DELAY = 2  # the drift starts this many bars after the detection bar: never inside the detection bar
BETA = 0.95  # default loading of every underlying on the market factor
DECOUPLE_RATE = 1 / 4000  # per bar: an underlying starts trading on its own (beta 0) ...
DECOUPLE_BARS = (96, 193)  # ... for 8 to 16 hours of 5m bars
SWEEP_BARS = 4000  # one bar in this many is a one-sided sweep of the book (order-flow imbalance shock)
BASIS_DISLOCATION_RATE = 1 / 2000  # per bar: the perp jumps 15-30 bps away from spot, whatever funding says
SPREAD_BPS = {True: 1.0, False: 1.5}  # calm quoted spread of a perp / a spot pair (param `spread_bps` overrides)
SPREAD_BLOWOUT_BARS = 3000
DEPTH_COLLAPSE_BARS = 4000


@dataclass(frozen=True)
class _State:
    log_price: float
    high_vol: bool
    funding: float
    extreme_left: int
    log_oi: float
    basis: float
    pending_drift: tuple[float, ...]  # drift still to apply to the first bars of the next month


@dataclass(frozen=True)
class _Chunk:
    ts: np.ndarray  # int64 microseconds, bar open
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    funding_ts: np.ndarray
    funding: np.ndarray
    oi: np.ndarray
    basis: np.ndarray
    end: _State


def _month_start(d: date) -> date:
    return date(d.year, d.month, 1)


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _from_index(i: int) -> date:
    return date(i // 12, i % 12 + 1, 1)


@lru_cache(maxsize=64)
def _market_factor(month_idx: int, n: int) -> np.ndarray:
    m = _from_index(month_idx)
    return np.random.default_rng([7, m.year, m.month]).standard_normal(n)


@lru_cache(maxsize=64)
def _market_regime(month_idx: int, n: int) -> np.ndarray:
    """The market's high-volatility state per bar (a sticky two-state Markov chain, shared by every underlying; each
    month starts from its own seeded draw, so a month never depends on the months before it)."""
    m = _from_index(month_idx)
    rng = np.random.default_rng([7, m.year, m.month, 1])
    switch = rng.random(n)
    high = np.empty(n, dtype=bool)
    state = bool(rng.random() < 0.3)
    for i in range(n):
        if switch[i] < (0.002 if state else 0.0008):
            state = not state
        high[i] = state
    return high


def _decoupled(seed: int, month_idx: int, n: int) -> np.ndarray:
    """Bars where the underlying ignores the market factor (own seeded stream: the main draws stay as they were)."""
    m = _from_index(month_idx)
    rng = np.random.default_rng([seed, m.year, m.month, 5])
    starts = np.flatnonzero(rng.random(n) < DECOUPLE_RATE)
    lengths = rng.integers(*DECOUPLE_BARS, starts.size)
    out = np.zeros(n, dtype=bool)
    for s, k in zip(starts, lengths, strict=True):
        out[s : s + k] = True
    return out


def _oi_shocks(seed: int, month_idx: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bars of effect-free OI surges and short squeezes (own seeded stream: the main draws stay as they were)."""
    m = _from_index(month_idx)
    u = np.random.default_rng([seed, m.year, m.month, 6]).random((2, n))
    return u[0] < OI_SURGE_RATE, u[1] < SQUEEZE_RATE


@lru_cache(maxsize=512)
def _chunk(seed: int, base_price: float, beta: float, null_effects: bool, start_idx: int, month_idx: int) -> _Chunk:
    if month_idx > start_idx:
        prev = _chunk(seed, base_price, beta, null_effects, start_idx, month_idx - 1).end
    else:
        prev = _State(float(np.log(base_price)), False, 0.0001, 0, float(np.log(1e9 / base_price)), 0.0, ())
    month = _from_index(month_idx)
    t0 = datetime(month.year, month.month, 1, tzinfo=UTC)
    t1 = datetime(_next_month(month).year, _next_month(month).month, 1, tzinfo=UTC)
    n = int((t1 - t0) / BAR)
    rng = np.random.default_rng([seed, month.year, month.month])
    ts = np.int64(t0.timestamp() * 1e6) + np.arange(n, dtype=np.int64) * np.int64(BAR.total_seconds() * 1e6)

    # the market's regime-switching volatility; the market factor, except while the underlying is decoupled
    rng.random(n)  # (the draw of a former per-underlying regime chain: keeps the later draws where they were)
    high = _market_regime(month_idx, n)
    sigma = np.where(high, 0.0035, 0.0012)
    eps = rng.standard_normal(n)
    loading = np.where(_decoupled(seed, month_idx, n), 0.0, beta)
    r = sigma * (loading * _market_factor(month_idx, n) + np.sqrt(1 - loading**2) * eps)
    jumps = rng.random(n) < 1 / 3000
    r += jumps * rng.normal(0.0, 0.015, n)
    drift = np.zeros(n + FUNDING_EFFECT_BARS + EFFECT_DELAY + 8)
    drift[: len(prev.pending_drift)] += prev.pending_drift

    # funding every 8h with extreme episodes
    hours = (ts // 3_600_000_000) % 24
    minutes = (ts // 60_000_000) % 60
    f_idx = np.flatnonzero((hours % 8 == 0) & (minutes == 0))
    funding = np.empty(len(f_idx))
    f, left, level = prev.funding, prev.extreme_left, prev.funding
    f_shocks = rng.normal(0.0, 0.00004, len(f_idx))
    f_starts = rng.random(len(f_idx))
    f_levels = rng.uniform(0.0009, 0.0025, len(f_idx)) * np.where(rng.random(len(f_idx)) < 0.5, -1.0, 1.0)
    f_lengths = rng.integers(2, 6, len(f_idx))
    for k, bar in enumerate(f_idx):
        was_extreme = abs(f) > FUNDING_EXTREME
        if left > 0:
            left -= 1
            f = level
        elif f_starts[k] < FUNDING_EXTREME_START:
            left = int(f_lengths[k])
            f = level = float(f_levels[k])
        else:
            f = 0.0001 + 0.7 * (f - 0.0001) * (abs(f) <= FUNDING_EXTREME) + f_shocks[k]
        funding[k] = f
        if not null_effects and abs(f) > FUNDING_EXTREME and not was_extreme:
            s = bar + EFFECT_DELAY
            drift[s : s + FUNDING_EFFECT_BARS] += -np.sign(f) * FUNDING_EFFECT / FUNDING_EFFECT_BARS

    # open interest with flushes that carry a price jump
    oi_steps = rng.normal(0.0, 0.002, n)
    flush = rng.random(n) < FLUSH_RATE
    oi_steps[flush] = np.log(0.85)
    r[flush] += -0.015
    surge, squeeze = _oi_shocks(seed, month_idx, n)
    surge &= ~flush
    squeeze &= ~flush & ~surge
    oi_steps[surge] = np.log(1.15)
    oi_steps[squeeze] = np.log(0.85)
    r[squeeze] += 0.015
    if not null_effects:
        for bar in np.flatnonzero(flush):
            s = bar + EFFECT_DELAY
            drift[s : s + FLUSH_EFFECT_BARS] += FLUSH_EFFECT / FLUSH_EFFECT_BARS
    r += drift[:n]
    log_close = prev.log_price + np.cumsum(r)
    log_open = np.concatenate([[prev.log_price], log_close[:-1]])
    wick = np.abs(rng.standard_normal((2, n))) * sigma * 0.6
    close = np.exp(log_close)
    open_ = np.exp(log_open)
    high_p = np.maximum(open_, close) * np.exp(wick[0])
    low_p = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.exp(rng.normal(3.0, 0.5, n)) * (1 + 2.5 * high) * (1 + np.abs(r) / sigma * 0.3) * 1e6 / base_price
    log_oi = prev.log_oi + np.cumsum(oi_steps)

    # perp basis: mean-reverting, pulled by funding
    f_at_bar = np.full(n, np.nan)
    f_at_bar[f_idx] = funding
    f_ff = _ffill(f_at_bar, prev.funding)
    basis = np.empty(n)
    b = prev.basis
    b_noise = rng.normal(0.0, 0.00015, n)
    b_noise += _basis_dislocations(seed, month_idx, n)
    for i in range(n):
        b = 0.97 * b + 0.03 * (f_ff[i] * 3) + b_noise[i]
        basis[i] = b

    pending = drift[n:]
    end = _State(
        float(log_close[-1]), bool(high[-1]), float(f), int(left), float(log_oi[-1]), float(b),
        tuple(float(x) for x in pending[: np.flatnonzero(pending).max() + 1]) if pending.any() else (),
    )  # fmt: skip
    return _Chunk(ts, open_, high_p, low_p, close, volume, ts[f_idx], funding, np.exp(log_oi), basis, end)


def _basis_dislocations(seed: int, month_idx: int, n: int) -> np.ndarray:
    """Basis jumps (own seeded stream) that then decay with the basis' mean reversion: dislocations of the perp
    from spot that funding does not explain (a perp trading rich while funding is negative happens)."""
    m = _from_index(month_idx)
    rng = np.random.default_rng([seed, m.year, m.month, 6])
    at = rng.random(n) < BASIS_DISLOCATION_RATE
    return np.where(at, rng.uniform(0.0015, 0.003, n) * np.where(rng.random(n) < 0.5, -1.0, 1.0), 0.0)


def _top_of_book(
    seed: int, month_idx: int, is_perp: bool, high_vol: np.ndarray, close: np.ndarray, volume: np.ndarray,
    spread_bps: float,
) -> dict[str, np.ndarray]:
    """Bid, ask and sizes at each bar's close, from their own seeded stream (see the module docstring)."""
    n = close.shape[0]
    m = _from_index(month_idx)
    rng = np.random.default_rng([seed, m.year, m.month, 8, int(is_perp)])
    noise: np.ndarray = np.asarray(rng.normal(0.0, 0.08, n))
    log_noise = np.empty(n)
    level = 0.0
    for i in range(n):  # AR(1) in logs: a spread that wanders a little around its regime level
        level = 0.9 * level + float(noise[i])
        log_noise[i] = level
    spread = spread_bps * np.where(high_vol, 2.5, 1.0) * np.exp(log_noise)
    blowout = np.zeros(n)
    for s in np.flatnonzero(rng.random(n) < 1 / SPREAD_BLOWOUT_BARS):
        blowout[s : s + int(rng.integers(1, 7))] = rng.uniform(5.0, 15.0)
    collapse = np.zeros(n, dtype=bool)
    for s in np.flatnonzero(rng.random(n) < 1 / DEPTH_COLLAPSE_BARS):
        collapse[s : s + int(rng.integers(3, 25))] = True
    spread = spread * np.where(blowout > 0, blowout, 1.0) * np.where(collapse, 2.0, 1.0)
    depth = np.median(volume) * 0.05 * np.where(high_vol, 0.5, 1.0) * np.where(collapse, rng.uniform(0.03, 0.1), 1.0)
    tilt = np.clip(rng.normal(0.0, 0.35, n), -0.95, 0.95)  # depth imbalance (bid - ask) / (bid + ask)
    total = 2 * depth * np.exp(rng.normal(0.0, 0.3, n))
    half = spread / 2e4
    return {
        "bid": close * (1 - half), "ask": close * (1 + half),
        "bid_size": total * (1 + tilt) / 2, "ask_size": total * (1 - tilt) / 2,
    }  # fmt: skip


def _ffill(a: np.ndarray, first: float) -> np.ndarray:
    idx = np.where(np.isnan(a), 0, np.arange(len(a)))
    np.maximum.accumulate(idx, out=idx)
    out = a[idx]
    out[np.isnan(out)] = first
    return out


class SyntheticVendor:
    """Deterministic synthetic perps + spot; `as_of` caps the data at a moment (default: now)."""

    name = "synthetic"

    def __init__(self, as_of: datetime | None = None) -> None:
        self.as_of = as_of

    def revised_since(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind,
                      since: datetime) -> bool:  # fmt: skip
        """Never: its history is fixed once delivered (so a closed month is not fetched again)."""
        return False

    def fetch(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        schema = RAW_SCHEMAS[kind]
        if not instrument.is_crypto or TIMEFRAMES[instrument.base_timeframe] != BAR:
            raise ValueError(f"synthetic vendor makes 5m crypto bars only, not {instrument.id} ({instrument.market})")
        if kind in (DataKind.FUNDING, DataKind.OPEN_INTEREST) and instrument.market != Market.PERP:
            return pl.DataFrame(schema=schema)
        if kind == DataKind.TRADES and not instrument.params.get("trades", False):
            return pl.DataFrame(schema=schema)
        cap = min(end, self.as_of or datetime.now(UTC))
        first = max(_month_start(start.date()), _month_start(instrument.start))
        last = _month_start((cap - timedelta(microseconds=1)).date())
        if cap <= start or last < first:
            return pl.DataFrame(schema=schema)
        frames = [self._month_frame(instrument, m, kind) for m in range(_month_index(first), _month_index(last) + 1)]
        df = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
        lo, hi = instrument.life_window(start, cap)
        df = df.filter((pl.col(TS) >= lo) & (pl.col(TS) < hi))
        return conform(df.with_columns(pl.lit(self.name).alias(VENDOR), pl.lit(datetime.now(UTC)).alias(INGESTED_AT)),
                       schema)  # fmt: skip

    def _month_frame(self, inst: Instrument, month_idx: int, kind: DataKind) -> pl.DataFrame:
        p = inst.params
        seed = int(p.get("seed", 1))
        chunk = _chunk(
            seed,
            float(p.get("base_price", 100.0)),
            float(p.get("beta", BETA)),
            bool(p.get("null_effects", False)),
            _month_index(_month_start(inst.start)),
            month_idx,
        )
        ts = pl.Series(TS, chunk.ts).cast(pl.Datetime("us", "UTC"))
        if kind == DataKind.FUNDING:
            funding_ts = pl.Series(chunk.funding_ts).cast(pl.Datetime("us", "UTC"))
            return pl.DataFrame({TS: funding_ts, FUNDING_RATE: chunk.funding}).with_columns(
                pl.lit(inst.id).alias(INSTRUMENT)
            )
        if kind == DataKind.OPEN_INTEREST:
            return pl.DataFrame({TS: ts, OPEN_INTEREST: chunk.oi}).with_columns(pl.lit(inst.id).alias(INSTRUMENT))
        mult = np.exp(chunk.basis) if inst.market == Market.PERP else 1.0
        bars = pl.DataFrame(
            {
                TS: ts,
                OPEN: chunk.open * mult,
                HIGH: chunk.high * mult,
                LOW: chunk.low * mult,
                CLOSE: chunk.close * mult,
                VOLUME: chunk.volume,
            }
        ).with_columns(pl.lit(inst.id).alias(INSTRUMENT))
        if kind == DataKind.OHLCV:
            perp = inst.market == Market.PERP
            high_vol = _market_regime(month_idx, chunk.ts.shape[0])
            spread = float(p.get("spread_bps", SPREAD_BPS[perp]))
            bars = bars.with_columns(
                **_top_of_book(seed, month_idx, perp, high_vol, chunk.close * mult, chunk.volume, spread)
            )
        rng = np.random.default_rng([int(p.get("seed", 1)), month_idx, 99, inst.market == Market.PERP])
        if kind == DataKind.TRADES:
            return _trades(bars, rng)
        return _add_dirt(bars, rng)


def _add_dirt(bars: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Vendor dirt the cleaned layer must handle: an outage (missing bars), duplicates, a bad tick, an OHLC slip."""
    n = bars.height
    if n < 200:
        return bars
    outage = int(rng.integers(50, n - 50))
    keep = np.ones(n, dtype=bool)
    keep[outage : outage + int(rng.integers(3, 13))] = False
    dup_rows = rng.integers(0, n, 2)
    bad_tick = int(rng.integers(0, n))
    slip = int(rng.integers(0, n))
    idx = pl.int_range(pl.len())
    bars = bars.with_columns(
        pl.when(idx == bad_tick).then(pl.col(HIGH) * 1.6).otherwise(pl.col(HIGH)).alias(HIGH),
        pl.when(idx == slip).then(pl.col(HIGH) * 1.001).otherwise(pl.col(LOW)).alias(LOW),
    )
    return pl.concat([bars.filter(pl.Series(keep)), bars[dup_rows.tolist()]])  # duplicates arrive late, out of order


def _trades(bars: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """~36 trades per bar inside its range, the first at the open, the last at the close. The aggressor volume share
    follows where the bar closes in its range (0.5 +- 0.15), except in sweeps (one bar in SWEEP_BARS), where 97% of
    the volume hits one side: sides are dealt in random order until the bar's buy volume reaches its share."""
    counts = rng.poisson(30, bars.height) + 6
    rep = np.repeat(np.arange(bars.height), counts)
    o, h, lo, c = (bars[col].to_numpy()[rep] for col in (OPEN, HIGH, LOW, CLOSE))
    pos = np.concatenate([np.arange(k) for k in counts])
    last = np.repeat(counts - 1, counts)
    price = np.where(pos == 0, o, np.where(pos == last, c, lo + (h - lo) * rng.random(len(rep))))
    bar_us = bars[TS].dt.epoch("us").to_numpy()[rep]
    offset = ((pos + 0.5) / (last + 1) * BAR.total_seconds() * 1e6).astype(np.int64)
    size = rng.exponential(bars[VOLUME].to_numpy()[rep] / (last + 1))
    bo, bh, bl, bc = (bars[col].to_numpy() for col in (OPEN, HIGH, LOW, CLOSE))
    location = np.divide(bc - bo, bh - bl, out=np.zeros(bars.height), where=bh > bl)
    share = 0.5 + 0.15 * np.tanh(2.0 * location)
    sweep = rng.random(bars.height) < 1 / SWEEP_BARS
    share = np.where(sweep, np.where(bc >= bo, 0.97, 0.03), share)
    order = np.lexsort((rng.random(len(rep)), rep))  # trades of a bar in random order
    cum = np.cumsum(size[order])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    before = cum - size[order] - np.repeat(np.r_[0.0, cum[starts[1:] - 1]], counts)
    total = np.repeat(np.add.reduceat(size[order], starts), counts)
    buy = np.empty(len(rep), dtype=bool)
    buy[order] = (before + size[order] / 2) / total < share[rep[order]]
    side = np.where(buy, "buy", "sell")
    inst = bars[INSTRUMENT][0]
    return pl.DataFrame(
        {
            TS: pl.Series(bar_us + offset).cast(pl.Datetime("us", "UTC")),
            INSTRUMENT: inst,
            PRICE: price,
            SIZE: size,
            SIDE: side,
            TRADE_ID: pl.Series(bar_us + offset).cast(pl.String),
        }
    )
