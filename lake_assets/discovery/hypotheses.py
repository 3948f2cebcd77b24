"""Phase-2 hypotheses: forward returns after each event, per instrument x horizon x rule template x state.

Point-in-time rules (why the code looks the way it does):
- an event's `ts` is the OPEN of the detection bar and the event is known at that bar's close, so the trade enters
  at the open of bar `detection + entry_lag_bars` (lag >= 1, enforced by the spec) and exits at the close of the
  horizon's last bar; nothing at or before the detection bar enters the forward return;
- a holding window that touches a gap bar (or a bar with a null open/close) is skipped, never filled;
- windows of the same event type on the same instrument and horizon may overlap; overlapping samples would inflate
  the t-statistic, so entries are thinned greedily to non-overlapping windows and the plain one-sample t is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.discovery.spec_model import SPEC_HASH_COL, STATE_ALL, DiscoverySpec, load_discovery_spec
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
    return (
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
        .select(
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
            WINDOW,
            *state_cols,
        )  # fmt: skip
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
                (pl.col(RET_BPS) * (1.0 if t.verb == "continuation" else -1.0)).alias(RET_BPS),
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
    agg = long.group_by(HYPOTHESIS_KEYS, maintain_order=True).agg(
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
    return finish_hypotheses(agg, spec)


def finish_hypotheses(agg: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """Derived columns shared by real and simulated hypothesis frames: se, t, costs, half signs, key, spec hash."""
    costs = pl.DataFrame(
        {
            INSTRUMENT_CLASS: list(spec.gates.costs),
            "round_trip_cost_bps": [c.round_trip_bps for c in spec.gates.costs.values()],
        }
    )
    mult = spec.gates.conservative_cost_multiplier
    se = pl.col("std_bps") / pl.col("n").cast(pl.Float64).sqrt()
    return (
        agg.join(costs, on=INSTRUMENT_CLASS, how="left", maintain_order="left")
        .with_columns(
            se_bps=se,
            t_stat=pl.col("mean_bps") / se,
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
