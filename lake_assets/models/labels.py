"""Labels: the lake's only forward-looking columns, one row per bar and frequency.

A row at bar t (frequency f, horizon h bars from spec/models) has the label window (t, t + h]: its labels compare the
close h bars later with the close of t.

- `y_r`  (R):  100 x ln(close[t+h] / close[t]), the log return in %.
- `y_b1` (B1): 1 if close[t+h] > close[t] (up), 0 otherwise (down or unchanged).
- `y_t3` (T3): +1 if close[t+h] / close[t] - 1 > +x%, -1 if < -x%, 0 within +-x% inclusive (x from the spec,
  0.2 by default; a 1e-12 tolerance keeps a move of exactly x% in the dead band despite floating-point rounding).

A label is null when it cannot be known without inventing data: bar t or t+h is a gap or has no close, any bar inside
the window is a gap (the horizon crosses a gap), or t+h lies beyond the data. Nothing is forward-filled.

Only training (lake_assets/models/training.py) may read the labels table; tests/models/test_label_guard.py fails
if any other module of the lake reads it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from lake_assets.vocabulary import CLOSE, INSTRUMENT, IS_GAP, TIMEFRAMES, TS, TS_DTYPE

T3_TOLERANCE = 1e-12
LABEL_SCHEMA = pl.Schema(
    [
        (TS, TS_DTYPE),
        (INSTRUMENT, pl.String()),
        ("frequency", pl.String()),
        ("horizon_bars", pl.Int32()),
        ("label_end_ts", TS_DTYPE),
        ("y_b1", pl.Int8()),
        ("y_t3", pl.Int8()),
        ("y_r", pl.Float64()),
    ]
)
LABEL_COLUMN = {"B1": "y_b1", "T3": "y_t3", "R": "y_r"}


def compute_labels(bars: pl.DataFrame, frequency: str, horizon: int, t3_threshold_pct: float) -> pl.DataFrame:
    """Labels of one instrument's bars at `frequency` (regular grid, sorted by ts; gaps as null rows with is_gap).

    Returns LABEL_SCHEMA rows, one per bar of `bars` (null labels where the window is not fully known)."""
    if bars.is_empty():
        return pl.DataFrame(schema=LABEL_SCHEMA)
    b = bars.sort(TS)
    n = b.height
    close = b[CLOSE].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    gap = b[IS_GAP].fill_null(False).to_numpy() if IS_GAP in b.columns else np.zeros(n, dtype=bool)
    bad = gap | ~np.isfinite(close) | (close <= 0)
    # bad[j] for any j in [t, t+h]: a window sum over the bad flags
    csum = np.concatenate([[0], np.cumsum(bad.astype(np.int64))])
    valid = np.zeros(n, dtype=bool)
    fwd = np.full(n, np.nan)
    if n > horizon:
        idx = np.arange(n - horizon)
        bad_in_window = csum[idx + horizon + 1] - csum[idx]
        valid[: n - horizon] = bad_in_window == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            fwd[: n - horizon] = close[horizon:] / close[: n - horizon]
    # the grid is regular: a window that spans a jump of the grid (missing rows, not gap rows) is not a window
    ts = b[TS].cast(TS_DTYPE).to_numpy().astype("datetime64[us]").astype(np.int64)
    step = int(TIMEFRAMES[frequency].total_seconds() * 1e6)
    if n > horizon and frequency != "1d":  # daily bars of an exchange calendar skip weekends and holidays
        span = np.zeros(n, dtype=np.int64)
        span[: n - horizon] = ts[horizon:] - ts[: n - horizon]
        valid &= (span == horizon * step) | (np.arange(n) >= n - horizon)
    valid &= np.isfinite(fwd)
    move = fwd - 1.0
    thr = t3_threshold_pct / 100.0
    y_r = np.where(valid, 100.0 * np.log(np.where(valid, fwd, 1.0)), np.nan)
    y_b1 = np.where(move > 0, 1, 0).astype(np.int8)
    y_t3 = np.where(move > thr + T3_TOLERANCE, 1, np.where(move < -thr - T3_TOLERANCE, -1, 0)).astype(np.int8)
    end = np.full(n, 0, dtype=np.int64)
    end[: max(n - horizon, 0)] = ts[horizon:] if n > horizon else end[:0]
    vs = pl.Series(valid)
    out = pl.DataFrame(
        {
            TS: b[TS].cast(TS_DTYPE),
            INSTRUMENT: b[INSTRUMENT] if INSTRUMENT in b.columns else pl.Series([None] * n, dtype=pl.String),
            "frequency": pl.Series([frequency] * n, dtype=pl.String),
            "horizon_bars": pl.Series([horizon] * n, dtype=pl.Int32),
            "label_end_ts": pl.Series(end).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "y_b1": pl.Series(y_b1),
            "y_t3": pl.Series(y_t3),
            "y_r": pl.Series(y_r),
        }
    )
    return out.with_columns(
        *(pl.when(vs).then(pl.col(c)).otherwise(None).alias(c) for c in ("label_end_ts", "y_b1", "y_t3", "y_r"))
    ).cast(dict(LABEL_SCHEMA))  # type: ignore[arg-type]
