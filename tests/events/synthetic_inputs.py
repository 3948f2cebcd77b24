"""Synthetic event-registry inputs (bars + features + context + market context) for benchmarks and tests.

Not a substitute for the feature layer: the columns follow the cross-team contract closely enough to exercise every
shipped event type at realistic rates (regime-switching volatility, jumps, 8h funding with extremes, open interest,
basis, gap runs), built with plain backward-looking polars expressions. Deterministic by seed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.vocabulary import (
    BASIS_BPS,
    BUY_VOLUME,
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INSTRUMENT,
    IS_GAP,
    IS_OUTLIER,
    LOW,
    OHLC_VIOLATION,
    OPEN,
    OPEN_INTEREST,
    RETURN,
    SELL_VOLUME,
    SPOT_CLOSE,
    TRADE_COUNT,
    TS,
    TS_DTYPE,
    VOLUME,
)

BAR = timedelta(minutes=5)
_MARKET_CONTEXT = ("session", "is_funding_ts", "session_open", "session_close", "macro_window")


def _raw_bars(n: int, seed: int, perp: bool, gap_rate: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    levels = np.array([0.0008, 0.0016, 0.0035])
    switches = rng.random(n) < 1 / 1500
    regime = np.cumsum(switches) % 3
    vol = levels[regime] * np.exp(0.3 * np.sin(np.arange(n) * 2 * np.pi / 288))
    ret = vol * rng.standard_t(4, n) / np.sqrt(2.0)
    jumps = rng.random(n) < 0.0015
    ret[jumps] += rng.normal(0, 8, jumps.sum()) * vol[jumps]
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.concatenate([[100.0], close[:-1]])
    hi = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.6, n)) * vol)
    lo = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.6, n)) * vol)
    activity = np.zeros(n)  # slow liquidity cycles, so dry-ups persist for hours
    shocks = rng.normal(0, 0.05, n)
    for i in range(1, n):
        activity[i] = 0.995 * activity[i - 1] + shocks[i]
    volume = rng.lognormal(3, 0.35, n) * np.exp(activity) * (1 + 3 * np.abs(ret) / vol)
    buy_share = np.clip(0.5 + 0.5 * np.tanh(ret / vol) * 0.6 + rng.normal(0, 0.08, n), 0.01, 0.99)
    out = {
        OPEN: open_,
        HIGH: hi,
        LOW: lo,
        CLOSE: close,
        VOLUME: volume,
        BUY_VOLUME: volume * buy_share,
        SELL_VOLUME: volume * (1 - buy_share),
        TRADE_COUNT: (volume * 3).astype(np.int64),
        SPOT_CLOSE: np.full(n, np.nan),
        FUNDING_RATE: np.full(n, np.nan),
        OPEN_INTEREST: np.full(n, np.nan),
        "spread_bps": np.full(n, np.nan),
    }
    if perp:
        n_f = n // 96 + 1
        f = np.zeros(n_f)
        for k in range(1, n_f):
            f[k] = 0.9 * f[k - 1] + rng.normal(0, 0.00004) + (rng.random() < 0.03) * rng.choice([-1, 1]) * 0.0006
        out[FUNDING_RATE] = np.repeat(f, 96)[:n] + 0.0001
        oi_ret = rng.normal(0, 0.002, n) - 0.02 * jumps * rng.random(n)
        out[OPEN_INTEREST] = 1e6 * np.exp(np.cumsum(oi_ret))
        basis = np.zeros(n)
        shocks = rng.normal(0, 1.0, n) + (rng.random(n) < 0.001) * rng.normal(0, 25, n)
        for i in range(1, n):
            basis[i] = 0.995 * basis[i - 1] + shocks[i]
        out[SPOT_CLOSE] = close / (1 + (basis + 3) / 1e4)
        out["spread_bps"] = 1.0 + 4000 * vol * rng.lognormal(0, 0.3, n)
    gap = np.zeros(n, dtype=bool)
    for start in np.flatnonzero(rng.random(n) < gap_rate):
        gap[start : start + rng.integers(1, 6)] = True
    for key in (OPEN, HIGH, LOW, CLOSE, VOLUME, BUY_VOLUME, SELL_VOLUME, SPOT_CLOSE, "spread_bps"):
        out[key] = np.where(gap, np.nan, out[key])
    out[IS_GAP] = gap
    return out


def _z(e: pl.Expr, n: int) -> pl.Expr:
    sd = e.rolling_std(n, min_samples=n // 2)
    return pl.when(sd > 0).then((e - e.rolling_mean(n, min_samples=n // 2)) / sd)


def _rsi(c: pl.Expr, n: int) -> pl.Expr:
    d = c.diff()
    up = d.clip(lower_bound=0).ewm_mean(alpha=1 / n, adjust=False, ignore_nulls=True)
    dn = (-d).clip(lower_bound=0).ewm_mean(alpha=1 / n, adjust=False, ignore_nulls=True)
    return 100 - 100 / (1 + up / dn)


def synthetic_event_frame(
    n_bars: int,
    instrument: str = "SYNTH-PERP",
    seed: int = 0,
    perp: bool = True,
    gap_rate: float = 0.0005,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
) -> pl.DataFrame:
    """One instrument's joined event input on a 5m grid (`perp=False`: spot, so funding/OI/basis/spread are null)."""
    raw = _raw_bars(n_bars, seed, perp, gap_rate)
    ts = pl.datetime_range(start, start + BAR * (n_bars - 1), BAR, eager=True, time_zone="UTC").cast(TS_DTYPE)
    # a venue fee schedule (perps): 5 bps, cut to 3.5 bps for a while every 6,000 bars (a fee regime change)
    fee = np.where((np.arange(n_bars) // 6000) % 2 == 1, 3.5, 5.0) if perp else np.full(n_bars, np.nan)
    df = pl.DataFrame({TS: ts, INSTRUMENT: [instrument] * n_bars, **raw, "taker_fee_bps": fee}).with_columns(
        pl.col(pl.Float64).fill_nan(None),
        pl.lit(False).alias(IS_OUTLIER),
        pl.lit(False).alias(OHLC_VIOLATION),
    )
    c, h, lo, o = pl.col(CLOSE), pl.col(HIGH), pl.col(LOW), pl.col(OPEN)
    tr = pl.max_horizontal(h - lo, (h - c.shift(1)).abs(), (lo - c.shift(1)).abs())
    df = df.with_columns(
        c.log().diff().alias(RETURN),
        ((c / pl.col(SPOT_CLOSE) - 1) * 1e4).alias(BASIS_BPS),
        tr.ewm_mean(alpha=1 / 14, adjust=False, ignore_nulls=True).alias("atr_14"),
        c.rolling_mean(50, min_samples=40).alias("sma_50"),
        c.rolling_mean(200, min_samples=160).alias("sma_200"),
        c.ewm_mean(span=200, adjust=False, ignore_nulls=True).alias("ema_200"),
        _rsi(c, 14).alias("rsi_14"),
        (
            c.ewm_mean(span=12, adjust=False, ignore_nulls=True) - c.ewm_mean(span=26, adjust=False, ignore_nulls=True)
        ).alias("_macd"),
        ((h - h.shift(1)).clip(lower_bound=0)).alias("_pdm"),
        ((lo.shift(1) - lo).clip(lower_bound=0)).alias("_mdm"),
        tr.alias("_tr"),
    )

    def wilder(e: pl.Expr) -> pl.Expr:
        return e.ewm_mean(alpha=1 / 14, adjust=False, ignore_nulls=True)

    r = pl.col(RETURN)
    df = df.with_columns(
        r.alias("ret_1"),
        *[r.rolling_std(n, min_samples=n // 2).alias(f"rv_{n}") for n in (12, 48, 288)],
        (pl.col("_macd") - pl.col("_macd").ewm_mean(span=9, adjust=False, ignore_nulls=True)).alias(
            "macd_12_26_9_hist"
        ),
        (100 * wilder(pl.col("_pdm")) / wilder(pl.col("_tr"))).alias("_pdi"),
        (100 * wilder(pl.col("_mdm")) / wilder(pl.col("_tr"))).alias("_mdi"),
        ((c - o).abs() / pl.col("atr_14")).alias("body_atr"),
        ((h - pl.max_horizontal(o, c)) / (h - lo)).alias("upper_wick_ratio"),
        ((pl.min_horizontal(o, c) - lo) / (h - lo)).alias("lower_wick_ratio"),
        ((h - lo) / pl.col("atr_14")).alias("range_atr"),
        _z(pl.col(VOLUME), 288).alias("volume_z"),
        (r.abs() / (pl.col(VOLUME) * c) * 1e6).rolling_mean(12, min_samples=6).alias("amihud"),
        (2 * ((r * r.shift(1)).rolling_mean(48, min_samples=24) * -1).clip(lower_bound=0).sqrt() * 1e4).alias(
            "roll_spread"
        ),
        ((pl.col(BUY_VOLUME) - pl.col(SELL_VOLUME)) / pl.col(VOLUME)).alias("ofi"),
        pl.col("taker_fee_bps").alias("fee_bps"),
        pl.col(OPEN_INTEREST).pct_change().alias("oi_change"),
        (pl.col(OPEN_INTEREST) / pl.col(VOLUME).rolling_sum(288, min_samples=144)).alias("oi_volume_ratio"),
        _z(pl.col(FUNDING_RATE), 2016).alias("funding_z"),
        (pl.col(FUNDING_RATE) * 3 * 365).alias("funding_carry_ann"),
        _z(pl.col(BASIS_BPS), 288).alias("basis_z"),
    )
    di_sum = pl.col("_pdi") + pl.col("_mdi")
    dx = pl.when(di_sum > 0).then(100 * (pl.col("_pdi") - pl.col("_mdi")).abs() / di_sum)
    rank_lo = pl.col("rv_48").rolling_min(2016, min_samples=288)
    rank_hi = pl.col("rv_48").rolling_max(2016, min_samples=288)
    fsign = pl.col(FUNDING_RATE).sign()
    run_id = (fsign != fsign.shift(1)).fill_null(True).cum_sum()
    df = df.with_columns(
        wilder(dx).alias("adx_14"),
        ((pl.col("rv_48") - rank_lo) / (rank_hi - rank_lo)).alias("vol_rank"),
        (pl.col("rv_12").rolling_std(288, min_samples=144) / pl.col("rv_12").rolling_mean(288, min_samples=144)).alias(
            "vol_of_vol"
        ),
        (pl.col("funding_z").abs() > 2).alias("funding_extreme"),
        pl.when(pl.col(FUNDING_RATE).is_not_null())
        .then((pl.int_range(pl.len()).cum_count().over(run_id)) * fsign)
        .cast(pl.Float64)
        .alias("funding_persistence"),
        _z(pl.col("oi_change"), 288).alias("oi_z"),
        ((-pl.col("oi_change")).clip(lower_bound=0.0) * r.abs() * 1e6).alias("liquidation_proxy"),
    )
    fz = pl.col("funding_z")
    brng = np.random.default_rng(seed + 1)
    coupled = (np.cumsum(brng.random(n_bars) < 1 / 3000) % 4) != 3  # decoupled a quarter of the time
    own = pl.Series(raw[CLOSE]).log().diff().to_numpy() * coupled
    bench = pl.Series(brng.normal(0, 0.0015, n_bars) + own)
    df = df.with_columns(bench.fill_nan(None).alias("_bench"))
    corr = pl.rolling_corr(r, pl.col("_bench"), window_size=288, min_samples=144)
    df = df.with_columns(
        pl.when(pl.col("vol_rank") < 1 / 3)
        .then(pl.lit("low"))
        .when(pl.col("vol_rank") < 2 / 3)
        .then(pl.lit("mid"))
        .when(pl.col("vol_rank").is_not_null())
        .then(pl.lit("high"))
        .alias("vol_regime"),
        pl.when(fz < -2)
        .then(pl.lit("neg_extreme"))
        .when(fz < -0.5)
        .then(pl.lit("neg"))
        .when(fz <= 0.5)
        .then(pl.lit("neutral"))
        .when(fz <= 2)
        .then(pl.lit("pos"))
        .when(fz.is_not_null())
        .then(pl.lit("pos_extreme"))
        .alias("carry_state"),
        pl.when((c > pl.col("ema_200")) & (pl.col("sma_50") > pl.col("sma_200")) & (pl.col("adx_14") > 20))
        .then(pl.lit("up"))
        .when((c < pl.col("ema_200")) & (pl.col("sma_50") < pl.col("sma_200")) & (pl.col("adx_14") > 20))
        .then(pl.lit("down"))
        .when(pl.col("adx_14").is_not_null())
        .then(pl.lit("chop"))
        .alias("trend_state"),
        corr.alias("corr_bench"),
        (corr * r.rolling_std(288, min_samples=144) / pl.col("_bench").rolling_std(288, min_samples=144)).alias(
            "beta_bench"
        ),
        (r - pl.col("_bench")).abs().rolling_mean(12, min_samples=6).alias("dispersion"),
        (corr < 0.2).alias("corr_breakdown"),
        pl.col(TS).dt.weekday().cast(pl.Int64).alias("weekday"),
        pl.col(TS).dt.hour().cast(pl.Int64).alias("hour"),
        (pl.col(TS).dt.month_end().dt.date() == pl.col(TS).dt.date()).alias("is_month_end"),
        pl.lit(False).alias("is_holiday"),
    )
    df = df.drop("_macd", "_pdm", "_mdm", "_tr", "_pdi", "_mdi", "_bench")
    keep = {TS, INSTRUMENT, IS_GAP, "weekday", "hour", "is_month_end", "is_holiday"}
    df = df.with_columns(
        pl.when(pl.col(IS_GAP)).then(None).otherwise(pl.col(col)).alias(col) for col in df.columns if col not in keep
    ).with_columns(pl.col(pl.Float64).fill_nan(None))
    return df.with_columns(_market_context(df.get_column(TS)))


def _market_context(ts: pl.Series) -> list[pl.Series]:
    """Session as spec/calendar.yaml has it (asia 21:00-07:00, europe 07:00-13:30, us 13:30-21:00 UTC), its open/close
    bars, funding stamps, a few macro windows."""
    hour = ts.dt.hour()

    def session_of(t: pl.Series) -> pl.Series:
        minute = (t.dt.hour().cast(pl.Int32) * 60 + t.dt.minute().cast(pl.Int32)).to_numpy()
        names = np.where((minute >= 21 * 60) | (minute < 7 * 60), "asia", np.where(minute < 13 * 60 + 30, "europe",
                                                                                     "us"))  # fmt: skip
        return pl.Series(names, dtype=pl.String)

    session, next_session, prev_session = session_of(ts), session_of(ts + BAR), session_of(ts - BAR)
    close_time = ts + BAR
    is_funding = (close_time.dt.minute() == 0) & close_time.dt.hour().is_in([0, 8, 16])
    day = ts.dt.ordinal_day()
    macro = pl.select(
        pl.when((day % 14 == 3) & (hour == 18)).then(pl.lit("FOMC")).otherwise(pl.lit(None, dtype=pl.String))
    ).to_series()
    return [
        session.alias("session"),
        is_funding.alias("is_funding_ts"),
        (session != prev_session).alias("session_open"),
        (session != next_session).alias("session_close"),
        macro.alias("macro_window"),
    ]
