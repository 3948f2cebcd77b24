"""Phase-2 hypotheses: forward returns after each event, per instrument x horizon x rule template x state.

Point-in-time rules (why the code looks the way it does):
- an event's `ts` is the OPEN of the detection bar and the event is known at that bar's close, so the trade enters
  at the open of bar `detection + entry_lag_bars` (lag >= 1, enforced by the spec) and exits at the close of the
  horizon's last bar; nothing at or before the detection bar enters the forward return;
- a holding window that touches a gap bar (or a bar with a null open/close) is skipped, never filled;
- windows of the same event type on the same instrument and horizon may overlap; overlapping samples would inflate
  the t-statistic, so entries are thinned greedily to non-overlapping windows;
- non-overlapping trades are still dependent when the market's mean drifts slowly (a trend regime moves consecutive
  trades together), so the standard error is Newey-West over the trades in time order with the bandwidth
  ceil(1.3 sqrt(n)), divided by its fixed-b mean 1 - b + b^2/3 (b = lags / n), and p-values come from the exact
  fixed-b null at that b (`t_df` = 3n / (2 lags) ~ 1.15 sqrt(n) is its equivalent degrees of freedom; see
  lake_assets.stats.hac); `se_iid_bps` keeps std / sqrt(n);
- every trade is paired with `draws_per_trade` random entries on the same instrument at the same time of day on
  random bars of the same window (same direction, horizon and state), seeded from the event id: `baseline_mean_bps`
  is what entering at random times would have earned, reported next to each effect.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.discovery.spec_model import SPEC_HASH_COL, STATE_ALL, DiscoverySpec, load_discovery_spec
from lake_assets.stats.hac import fixed_b_mean, grouped_nw_variance, nw_bandwidth, nw_dof
from lake_assets.vocabulary import CLOSE, INSTRUMENT, IS_GAP, OPEN, TIMEFRAMES, TS, TS_DTYPE

EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
FAMILY = "family"
DIRECTION = "direction"
DIRECTIONS = ("long", "short", "both", "neutral")
EVENT_COLUMNS = (EVENT_ID, EVENT_TYPE, FAMILY, INSTRUMENT, TS, DIRECTION)

TIMEFRAME = "timeframe"
INSTRUMENT_CLASS = "instrument_class"
HORIZON = "horizon"
TEMPLATE = "template"
VERB = "verb"
STATE_COL = "state_col"
STATE_VALUE = "state_value"
ENTRY_TS = "entry_ts"
EXIT_TS = "exit_ts"
RET_BPS = "ret_bps"
WINDOW = "window"
BASE_SIGN = "base_sign"
BASELINE_SUM = "baseline_sum_bps"  # per trade: sum of its random-entry returns (continuation direction)
BASELINE_N = "baseline_n"  # per trade: how many of its random entries were valid
_DAY_US = 86_400_000_000

HYPOTHESIS_KEYS = (FAMILY, EVENT_TYPE, INSTRUMENT, TIMEFRAME, INSTRUMENT_CLASS, HORIZON, TEMPLATE, VERB, STATE_COL,
                   STATE_VALUE)  # fmt: skip

_TF_BY_US = {int(td / timedelta(microseconds=1)): name for name, td in TIMEFRAMES.items()}


def _require(frame: pl.DataFrame, cols: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; have {frame.columns}")


def instrument_classes_from_universe() -> dict[str, str]:
    """crypto for perps/spot, equity for equities/indices, from spec/universe.yaml."""
    from lake_assets.specs import universe

    return {i.id: ("crypto" if i.is_crypto else "equity") for i in universe().instruments}


def _bar_table(bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sorted bars with a global row index and per-instrument span and timeframe."""
    _require(bars, [TS, INSTRUMENT, OPEN, CLOSE, IS_GAP], "bars")
    b = (
        bars.select(TS, INSTRUMENT, OPEN, CLOSE, IS_GAP)
        .sort(INSTRUMENT, TS)
        .with_columns(
            _bad=pl.col(IS_GAP).fill_null(True)
            | pl.col(OPEN).is_null()
            | pl.col(CLOSE).is_null()
            | ~(pl.col(OPEN) > 0)
            | ~(pl.col(CLOSE) > 0)  # fmt: skip
        )
        .with_row_index("_row")
    )
    spans = b.group_by(INSTRUMENT).agg(
        _first=pl.col("_row").min(),
        _last=pl.col("_row").max(),
        _ts_min=pl.col(TS).min(),
        _ts_max=pl.col(TS).max(),
        _step_us=pl.col(TS).diff().dt.total_microseconds().median().round().cast(pl.Int64),
    )
    unknown = spans.filter(~pl.col("_step_us").is_in(list(_TF_BY_US)))
    if unknown.height:
        raise ValueError(
            f"bars: cannot infer a known timeframe for {unknown[INSTRUMENT].to_list()} "
            f"(median step us {unknown['_step_us'].to_list()}); expected one of {sorted(TIMEFRAMES)}"
        )
    spans = spans.with_columns(pl.col("_step_us").replace_strict(_TF_BY_US, return_dtype=pl.String).alias(TIMEFRAME))
    return b, spans


def holdout_split(bars: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Per instrument, the timestamp where the holdout window starts (`holdout_start` or the span fraction)."""
    _, spans = _bar_table(bars)
    return _split_frame(spans, spec)


def _split_frame(spans: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    cfg = spec.defaults.bridge
    if cfg.holdout_start is not None:
        start = datetime(cfg.holdout_start.year, cfg.holdout_start.month, cfg.holdout_start.day)
        split = pl.lit(start).cast(TS_DTYPE)
    else:
        span = pl.col("_ts_max") - pl.col("_ts_min")
        split = pl.col("_ts_min") + span * (1.0 - cfg.holdout_fraction)
    return spans.select(INSTRUMENT, split.dt.truncate("1s").alias("holdout_start"))


def trade_samples(
    events: pl.DataFrame,
    bars: pl.DataFrame,
    spec: DiscoverySpec | None = None,
    instrument_classes: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One row per kept (event, horizon) trade: entry/exit times, continuation return in bps, state, window.

    `ret_bps` is the simple return from the entry bar's open to the exit bar's close in the event's direction
    (long/short; for 'both'/'neutral' the sign of the detection bar's body). Templates flip it later.
    `window` is discovery (exits before the holdout split), holdout (enters at/after it) or purged (straddles it).
    """
    spec = spec or load_discovery_spec()
    state_cols = list(spec.families.states.columns)
    _require(events, list(EVENT_COLUMNS) + state_cols, "events")
    lag = spec.defaults.discovery.entry_lag_bars
    b, spans = _bar_table(bars)
    classes = dict(instrument_classes) if instrument_classes is not None else instrument_classes_from_universe()
    missing = sorted(set(spans[INSTRUMENT].to_list()) - set(classes))
    if missing:
        raise ValueError(f"no instrument class (crypto/equity) for {missing}; add them to spec/universe.yaml")
    bad_dir = events.filter(~pl.col(DIRECTION).is_in(DIRECTIONS))
    if bad_dir.height:
        raise ValueError(f"events: direction must be one of {DIRECTIONS}, got {bad_dir[DIRECTION].unique().to_list()}")

    horizons = pl.DataFrame(
        [(tf, h) for tf, hs in spec.defaults.discovery.horizons_bars.items() for h in hs],
        schema={TIMEFRAME: pl.String, HORIZON: pl.Int64},
        orient="row",
    )
    ev = (
        events.select(*EVENT_COLUMNS, *state_cols)
        .with_columns(pl.col(TS).cast(TS_DTYPE), *[pl.col(c).cast(pl.String) for c in state_cols])
        .join(b.select(INSTRUMENT, TS, "_row"), on=[INSTRUMENT, TS], how="inner")
        .join(spans.select(INSTRUMENT, "_last", TIMEFRAME), on=INSTRUMENT, how="inner")
        .join(horizons, on=TIMEFRAME, how="inner")
    )
    open_ = b[OPEN].fill_null(np.nan).to_numpy()
    close = b[CLOSE].fill_null(np.nan).to_numpy()
    bad_cum = np.concatenate([[0], np.cumsum(b["_bad"].to_numpy().astype(np.int64))])  # bad_cum[k] = bad rows < k
    ts_us = b[TS].dt.epoch("us").to_numpy()

    row = ev["_row"].to_numpy().astype(np.int64)
    h = ev[HORIZON].to_numpy().astype(np.int64)
    entry = row + lag
    exit_ = entry + h - 1
    valid = exit_ <= ev["_last"].to_numpy().astype(np.int64)
    e_c, x_c = np.where(valid, entry, 0), np.where(valid, exit_, 0)
    # the detection bar and every bar of the holding window must be real bars
    valid &= (bad_cum[x_c + 1] - bad_cum[e_c]) == 0
    valid &= (bad_cum[row + 1] - bad_cum[row]) == 0
    body = np.sign(close[row] - open_[row])
    direction = ev[DIRECTION].to_numpy()
    base = np.where(direction == "long", 1.0, np.where(direction == "short", -1.0, body))
    valid &= np.isfinite(base) & (base != 0)
    ret = base * (close[x_c] / open_[e_c] - 1.0) * 1e4

    step = pl.duration(microseconds=pl.col("_step_us"))
    out = (
        ev.with_columns(
            pl.Series(BASE_SIGN, base),
            pl.Series(ENTRY_TS, ts_us[e_c]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            pl.Series(EXIT_TS, ts_us[x_c]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            pl.Series(RET_BPS, ret),
            pl.Series("_valid", valid),
        )
        .filter(pl.col("_valid"))
        .sort(EVENT_TYPE, INSTRUMENT, HORIZON, ENTRY_TS, EVENT_ID)
    )
    keep = _non_overlapping(
        out.select(pl.struct(EVENT_TYPE, INSTRUMENT, HORIZON).rank("dense")).to_series().to_numpy(),
        out[ENTRY_TS].dt.epoch("us").to_numpy(),
        out[EXIT_TS].dt.epoch("us").to_numpy(),
    )
    split = _split_frame(spans, spec)
    kept = (
        out.filter(pl.Series(keep))
        .join(spans.select(INSTRUMENT, "_step_us"), on=INSTRUMENT, how="left", maintain_order="left")
        .join(split, on=INSTRUMENT, how="left", maintain_order="left")
        .with_columns(
            pl.col(INSTRUMENT).replace_strict(classes, return_dtype=pl.String).alias(INSTRUMENT_CLASS),
            pl.when(pl.col(EXIT_TS) + step <= pl.col("holdout_start"))
            .then(pl.lit("discovery"))
            .when(pl.col(ENTRY_TS) >= pl.col("holdout_start"))
            .then(pl.lit("holdout"))
            .otherwise(pl.lit("purged"))
            .alias(WINDOW),
        )
    )
    kept = _random_entry_baseline(kept, b, spans, split, lag, spec)
    return kept.select(
            EVENT_ID,
            EVENT_TYPE,
            FAMILY,
            INSTRUMENT,
            INSTRUMENT_CLASS,
            TIMEFRAME,
            HORIZON,
            TS,
            DIRECTION,
            BASE_SIGN,
            ENTRY_TS,
            EXIT_TS,
            RET_BPS,
            BASELINE_SUM,
            BASELINE_N,
            WINDOW,
            *state_cols,
        )  # fmt: skip


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (uint64 -> well-mixed uint64), vectorised; wraps modulo 2^64 by design."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _random_entry_baseline(
    kept: pl.DataFrame, b: pl.DataFrame, spans: pl.DataFrame, split: pl.DataFrame, lag: int, spec: DiscoverySpec
) -> pl.DataFrame:
    """Per trade: the sum and count of `draws_per_trade` random-entry returns (same instrument, same UTC time of day
    as the trade's entry bar, same direction and horizon, inside the trade's own window, valid bars only).

    The draws are a pure function of (seed, event id, horizon, draw): the same data give the same baseline whatever
    other events, partitions or threads are involved.
    """
    cfg = spec.defaults.discovery.baseline
    k = cfg.draws_per_trade
    if kept.height == 0:
        return kept.with_columns(pl.lit(None, dtype=pl.Float64).alias(BASELINE_SUM),
                                 pl.lit(0, dtype=pl.Int64).alias(BASELINE_N))  # fmt: skip
    ts_us = b[TS].dt.epoch("us").to_numpy()
    inst_codes = b.select(pl.col(INSTRUMENT).rank("dense")).to_series().to_numpy().astype(np.int64)
    tod = ts_us % _DAY_US
    # bars grouped by (instrument, time of day), in time order inside each group
    order = np.lexsort((ts_us, tod, inst_codes))
    key_sorted = np.stack([inst_codes[order], tod[order]])
    new = np.r_[True, (np.diff(key_sorted, axis=1) != 0).any(axis=0)]
    g_start = np.flatnonzero(new)
    g_len = np.diff(np.r_[g_start, len(order)])
    g_of_row = np.empty(len(order), dtype=np.int64)
    g_of_row[order] = np.cumsum(new) - 1

    b_rows = b.select("_row", INSTRUMENT).join(spans.select(INSTRUMENT, "_first", "_last", "_step_us"),
                                               on=INSTRUMENT, how="left", maintain_order="left")  # fmt: skip
    first = b_rows["_first"].to_numpy().astype(np.int64)
    last = b_rows["_last"].to_numpy().astype(np.int64)
    step = b_rows["_step_us"].to_numpy().astype(np.int64)
    hs = b.select(INSTRUMENT).join(split, on=INSTRUMENT, how="left", maintain_order="left")["holdout_start"]
    hold_us = hs.dt.epoch("us").to_numpy()
    bad_cum = np.concatenate([[0], np.cumsum(b["_bad"].to_numpy().astype(np.int64))])
    open_ = b[OPEN].fill_null(np.nan).to_numpy()
    close = b[CLOSE].fill_null(np.nan).to_numpy()

    entry_row = (
        kept.select(INSTRUMENT, pl.col(ENTRY_TS).alias(TS))
        .join(b.select(INSTRUMENT, TS, "_row"), on=[INSTRUMENT, TS], how="left", maintain_order="left")["_row"]
        .to_numpy()
        .astype(np.int64)
    )
    h = kept[HORIZON].to_numpy().astype(np.int64)
    base = kept[BASE_SIGN].to_numpy()
    in_holdout = (kept[WINDOW] == "holdout").to_numpy()
    in_discovery = (kept[WINDOW] == "discovery").to_numpy()
    ids = np.array([zlib.crc32(e.encode()) for e in kept[EVENT_ID].to_list()], dtype=np.uint64)
    seed = _splitmix64(np.array([cfg.seed], dtype=np.uint64))[0]
    g = g_of_row[entry_row]
    sums = np.zeros(kept.height)
    counts = np.zeros(kept.height, dtype=np.int64)
    for d in range(k):
        with np.errstate(over="ignore"):
            z = _splitmix64(ids * np.uint64(1_000_003) + h.astype(np.uint64) * np.uint64(7919) + np.uint64(d) + seed)
        u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        pick = order[g_start[g] + np.minimum((u * g_len[g]).astype(np.int64), g_len[g] - 1)]
        x = pick + h - 1
        ok = (x <= last[pick]) & (pick - lag >= first[pick])
        xc = np.where(ok, x, pick)
        det = np.where(ok, pick - lag, pick)
        ok &= (bad_cum[xc + 1] - bad_cum[det]) == 0  # the (virtual) detection bar .. exit are real bars
        exit_us = ts_us[xc] + step[pick]
        ok &= np.where(in_discovery, exit_us <= hold_us[pick], True)
        ok &= np.where(in_holdout, ts_us[pick] >= hold_us[pick], True)
        ok &= in_discovery | in_holdout  # purged trades straddle the split: no baseline
        ret = base * (close[xc] / open_[pick] - 1.0) * 1e4
        ok &= np.isfinite(ret)
        sums += np.where(ok, ret, 0.0)
        counts += ok
    return kept.with_columns(
        pl.Series(BASELINE_SUM, sums, dtype=pl.Float64), pl.Series(BASELINE_N, counts, dtype=pl.Int64)
    )


def _non_overlapping(group: np.ndarray, entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """Greedy thinning inside each group (rows sorted by group, entry): keep an entry only after the last kept exit."""
    keep = np.zeros(len(group), dtype=bool)
    last_group, last_exit = -1, -1
    for k, (g, e, x) in enumerate(zip(group.tolist(), entry.tolist(), exit_.tolist(), strict=True)):
        if g != last_group or e > last_exit:
            keep[k] = True
            last_group, last_exit = g, x
    return keep


def expand_templates_states(samples: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Long frame: each sample once per rule template and once per conditioning state it belongs to."""
    state_cols = list(spec.families.states.columns)
    base = samples.drop(*state_cols)
    templated = pl.concat(
        [
            samples.with_columns(
                pl.lit(t.name).alias(TEMPLATE),
                pl.lit(t.verb).alias(VERB),
                *[
                    (pl.col(c) * (1.0 if t.verb == "continuation" else -1.0)).alias(c)
                    for c in (RET_BPS, BASELINE_SUM)
                    if c in samples.columns
                ],
            )
            for t in spec.templates
        ]
    )
    parts = []
    cols = [*base.columns, TEMPLATE, VERB, STATE_COL, STATE_VALUE]
    if spec.families.states.include_all:
        parts.append(templated.with_columns(pl.lit(STATE_ALL).alias(STATE_COL), pl.lit(STATE_ALL).alias(STATE_VALUE)))
    for c in state_cols:
        parts.append(
            templated.filter(pl.col(c).is_not_null()).with_columns(
                pl.lit(c).alias(STATE_COL), pl.col(c).cast(pl.String).alias(STATE_VALUE)
            )
        )
    return pl.concat([p.select(cols) for p in parts])


def aggregate_hypotheses(samples: pl.DataFrame, spec: DiscoverySpec | None = None) -> pl.DataFrame:
    """Per-hypothesis statistics (n, mean/median/std bps, t, hit rate, after-cost, half-sample signs, spec hash)."""
    spec = spec or load_discovery_spec()
    # a total order (an event enters once per horizon): every statistic sums its trades in the same order
    long = expand_templates_states(samples, spec).sort(*HYPOTHESIS_KEYS, ENTRY_TS, EVENT_ID, maintain_order=True)
    r = pl.col(RET_BPS)
    k = pl.int_range(pl.len())
    first = k < pl.len() // 2
    has_baseline = BASELINE_SUM in long.columns and BASELINE_N in long.columns
    baseline = (
        {
            "baseline_n": pl.col(BASELINE_N).sum().cast(pl.Int64),
            "_baseline_sum": pl.col(BASELINE_SUM).sum(),
        }
        if has_baseline
        else {}
    )
    agg = long.group_by(HYPOTHESIS_KEYS, maintain_order=True).agg(
        **baseline,
        n=pl.len().cast(pl.Int64),
        mean_bps=r.mean(),
        median_bps=r.median(),
        std_bps=r.std(ddof=1),
        hit_rate=(r > 0).mean(),
        skew=r.skew(bias=True),  # conventions of lake_assets.stats.sharpe.return_moments
        kurtosis=r.kurtosis(fisher=False, bias=True),
        first_half_mean_bps=r.filter(first).mean(),
        second_half_mean_bps=r.filter(~first).mean(),
        first_entry_ts=pl.col(ENTRY_TS).min(),
        last_entry_ts=pl.col(ENTRY_TS).max(),
    )
    if has_baseline:
        agg = agg.with_columns(
            baseline_mean_bps=pl.when(pl.col("baseline_n") > 0).then(
                pl.col("_baseline_sum") / pl.col("baseline_n").cast(pl.Float64)
            )
        ).drop("_baseline_sum")
    if spec.defaults.discovery.standard_error == "newey_west_fixed_b":
        agg = agg.with_columns(_hac_columns(long, agg))
    return finish_hypotheses(agg, spec)


def _hac_columns(long: pl.DataFrame, agg: pl.DataFrame) -> list[pl.Series]:
    """Newey-West standard error, its bandwidth and the t reference degrees of freedom per hypothesis; `long` is
    sorted by the hypothesis keys then entry time, and `agg` has one row per group in that same order."""
    if long.height == 0:
        return [pl.Series("se_bps", [], dtype=pl.Float64), pl.Series("hac_lags", [], dtype=pl.Int64),
                pl.Series("t_df", [], dtype=pl.Float64)]  # fmt: skip
    new = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in HYPOTHESIS_KEYS])
    starts = np.unique(np.r_[0, np.flatnonzero(long.select(new).to_series().to_numpy())])
    if len(starts) != agg.height:
        raise AssertionError(f"HAC: {len(starts)} groups in the sorted samples but {agg.height} hypotheses")
    sizes = np.diff(np.r_[starts, long.height])
    lags = nw_bandwidth(sizes)
    var = grouped_nw_variance(long[RET_BPS].to_numpy(), starts, lags) / fixed_b_mean(sizes, lags)
    se = np.sqrt(np.where(var > 0, var, np.nan))
    return [
        pl.Series("se_bps", se, dtype=pl.Float64).fill_nan(None),
        pl.Series("hac_lags", lags, dtype=pl.Int64),
        pl.Series("t_df", nw_dof(sizes, lags), dtype=pl.Float64),
    ]


def finish_hypotheses(agg: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Derived columns shared by real and simulated hypothesis frames: se, t, costs, half signs, key, spec hash."""
    costs = pl.DataFrame(
        {
            INSTRUMENT_CLASS: list(spec.gates.costs),
            "round_trip_cost_bps": [c.round_trip_bps for c in spec.gates.costs.values()],
        }
    )
    mult = spec.gates.conservative_cost_multiplier
    se_iid = pl.col("std_bps") / pl.col("n").cast(pl.Float64).sqrt()
    # frames without a HAC estimate (simulated summaries, standard_error: iid) use the iid one with n - 1 df
    if "se_bps" not in agg.columns:
        agg = agg.with_columns(se_bps=se_iid, hac_lags=pl.lit(0, dtype=pl.Int64),
                               t_df=(pl.col("n") - 1).clip(lower_bound=1).cast(pl.Float64))  # fmt: skip
    for c, dtype in (("baseline_n", pl.Int64), ("baseline_mean_bps", pl.Float64)):
        if c not in agg.columns:
            agg = agg.with_columns(pl.lit(None, dtype=dtype).alias(c))
    return (
        agg.join(costs, on=INSTRUMENT_CLASS, how="left", maintain_order="left")
        .with_columns(
            se_iid_bps=se_iid,
            t_stat=pl.col("mean_bps") / pl.col("se_bps"),
            excess_vs_baseline_bps=pl.col("mean_bps") - pl.col("baseline_mean_bps"),
            after_cost_bps=pl.col("mean_bps") - pl.col("round_trip_cost_bps"),
            after_cost_conservative_bps=pl.col("mean_bps") - mult * pl.col("round_trip_cost_bps"),
            sign_first_half=pl.col("first_half_mean_bps").sign().cast(pl.Int8),
            sign_second_half=pl.col("second_half_mean_bps").sign().cast(pl.Int8),
            hypothesis_id=pl.concat_str(
                [
                    pl.col(EVENT_TYPE),
                    pl.col(INSTRUMENT),
                    pl.lit("h") + pl.col(HORIZON).cast(pl.String),
                    pl.col(TEMPLATE),
                    pl.col(STATE_COL) + pl.lit("=") + pl.col(STATE_VALUE),
                ],
                separator="|",
            ),  # fmt: skip
            **{SPEC_HASH_COL: pl.lit(spec.spec_hash)},
        )
        .with_columns(
            pl.when(pl.col("se_bps") > 0).then(pl.col("t_stat")).otherwise(None).alias("t_stat"),
        )
    )


def phase2_hypotheses(
    events: pl.DataFrame,
    bars: pl.DataFrame,
    spec: DiscoverySpec | None = None,
    instrument_classes: Mapping[str, str] | None = None,
    window: str = "discovery",
) -> pl.DataFrame:
    """The `phase2_hypotheses` asset body for one event type (or several): statistics on the discovery window."""
    spec = spec or load_discovery_spec()
    samples = trade_samples(events, bars, spec, instrument_classes)
    return aggregate_hypotheses(samples.filter(pl.col(WINDOW) == window), spec)
