"""Training sets: features and labels joined point in time, the row-exclusion rules, purged walk-forward splits.

Features at each frequency (a choice, documented in the README's model section):
- 5m: the `features` rows themselves (bar t's features are known at t's close) and `window_embeddings.emb_32`.
- 1h, 1d: the 5m feature row of the last real base bar inside the coarse bar, i.e. the catalogue as it stood at the
  coarse bar's close (no new computation, nothing later than the close), and the window embedding of the coarse
  bars themselves (`features.compute.window_embeddings`, the same definition as `window_embeddings`). An instrument
  whose base timeframe is the coarse frequency (daily indices at 1d) uses its own rows.

Row-exclusion rules (each row kept has every one):
1. its label exists: bar t and the window (t, t + h] hold no gap and lie inside the data (see `labels.py`);
2. bar t is not a gap and has a feature row with at least one non-null feature;
3. it is past the instrument's warm-up: the first `warmup_bars` bars of the instrument's history at that frequency
   (features whose lookback is not filled yet) never train or test;
4. the most recent `max_rows_per_instrument` rows per instrument are kept (memory and trial time).

Splits (`purged_walk_forward`, Lopez de Prado ch. 7): the distinct timestamps after `min_train_fraction` of the span are
cut into `folds` consecutive test blocks [start_k, end_k). Fold k trains on rows before start_k whose label window
ends before start_k (`label_end_ts < start_k`: purge) and outside the embargo [end_j, end_j + embargo) after every
earlier test block j. Pooled instruments share the clock, so no instrument's future trains another's past.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from lake_assets.features.compute import window_embeddings
from lake_assets.models.labels import LABEL_COLUMN
from lake_assets.vocabulary import INSTRUMENT, IS_GAP, TIMEFRAMES, TS, TS_DTYPE

EMB = "emb"
EMB_SIZE = 32
META_COLUMNS = (TS, INSTRUMENT, "label", "label_end_ts", EMB)


def encode_features(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Feature columns as float32: flags 0/1, integers as numbers, categories as the rank of the value among the
    column's sorted distinct values (deterministic for the same data), nulls as NaN."""
    exprs = []
    for c in columns:
        if c not in frame.columns:
            exprs.append(pl.lit(None, dtype=pl.Float32).alias(c))
            continue
        dt = frame.schema[c]
        if dt == pl.String or isinstance(dt, pl.Categorical | pl.Enum):
            values = sorted(v for v in frame[c].cast(pl.String).unique().to_list() if v is not None)
            mapping = {v: float(i) for i, v in enumerate(values)}
            exprs.append(pl.col(c).cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.Float32)
                         .alias(c))  # fmt: skip
        else:
            exprs.append(pl.col(c).cast(pl.Float32).alias(c))
    return frame.with_columns(exprs)


def features_at(frequency: str, base_timeframe: str, features: pl.DataFrame) -> pl.DataFrame:
    """An instrument's feature rows at `frequency`: its own rows at its base timeframe, else the row of the last real
    base bar inside each coarse bar (keyed by the coarse bar's open)."""
    if features.is_empty() or base_timeframe == frequency:
        return features
    f = features.sort(TS)
    if IS_GAP in f.columns:
        f = f.filter(~pl.col(IS_GAP).fill_null(False))
    every = {"1h": "1h", "1d": "1d"}[frequency]
    return (
        f.with_columns(pl.col(TS).dt.truncate(every).alias("_coarse"))
        .group_by("_coarse", maintain_order=True)
        .last()
        .drop(TS)
        .rename({"_coarse": TS})
    )


def embeddings_at(frequency: str, bars: pl.DataFrame) -> pl.DataFrame:
    """ts, emb (Array(Float32, 32)) for bars at `frequency`: the window_embeddings definition."""
    if bars.is_empty():
        return pl.DataFrame(schema={TS: TS_DTYPE, EMB: pl.Array(pl.Float32, EMB_SIZE)})
    e = window_embeddings(bars.sort(TS), (EMB_SIZE,))
    return e.select(TS, pl.col(f"emb_{EMB_SIZE}").alias(EMB))


def _clean_emb(frame: pl.DataFrame) -> pl.DataFrame:
    """emb as Array(Float32, 32) with null entries 0 (a null window: all zeros)."""
    if EMB not in frame.columns:
        return frame.with_columns(pl.lit(None, dtype=pl.Array(pl.Float32, EMB_SIZE)).alias(EMB))
    arr = frame[EMB].cast(pl.Array(pl.Float64, EMB_SIZE))
    vals = np.nan_to_num(arr.to_numpy().astype(np.float32) if arr.null_count() < len(arr) else
                         np.zeros((len(arr), EMB_SIZE), np.float32))  # fmt: skip
    if arr.null_count():
        vals[arr.is_null().to_numpy()] = 0.0
    return frame.with_columns(pl.Series(EMB, vals, dtype=pl.Array(pl.Float32, EMB_SIZE)))


@dataclass(frozen=True)
class InstrumentInputs:
    """What one instrument contributes to a training set at one frequency."""

    instrument: str
    labels: pl.DataFrame  # labels rows at the frequency (LABEL_SCHEMA)
    features: pl.DataFrame  # feature rows at the frequency (features_at)
    embeddings: pl.DataFrame  # ts, emb


def instrument_rows(
    inputs: InstrumentInputs,
    label_scheme: str,
    feature_columns: Sequence[str],
    warmup_bars: int,
    max_rows: int,
    since: datetime | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """One instrument's training rows after the exclusion rules, and how many rows each rule removed. `labels` is
    the instrument's whole label history at the frequency (the warm-up counts from its first bar); `since` drops
    older rows before the features are joined (the caller read features from there on)."""
    lab = inputs.labels.sort(TS).with_row_index("_bar")
    counts = {"bars": lab.height}
    ycol = LABEL_COLUMN[label_scheme]
    frame = lab.select(TS, "_bar", pl.col(ycol).cast(pl.Float64).alias("label"), "label_end_ts")
    n0 = frame.height
    frame = frame.filter(pl.col("label").is_not_null())
    counts["no_label"] = n0 - frame.height
    n0 = frame.height
    frame = frame.filter(pl.col("_bar") >= warmup_bars)
    counts["warmup"] = n0 - frame.height
    n0 = frame.height
    if since is not None:
        frame = frame.filter(pl.col(TS) >= pl.lit(since).cast(TS_DTYPE))
    counts["before_window"] = n0 - frame.height
    feats = inputs.features
    if IS_GAP in feats.columns:
        feats = feats.filter(~pl.col(IS_GAP).fill_null(False))
    keep = [c for c in feature_columns if c in feats.columns]
    feats = feats.select(pl.col(TS).cast(TS_DTYPE), *keep).unique(TS, keep="last")
    n0 = frame.height
    frame = frame.join(feats, on=TS, how="inner")
    if keep:
        frame = frame.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in keep))
    counts["no_features"] = n0 - frame.height
    if inputs.embeddings.height:
        frame = frame.join(inputs.embeddings.select(pl.col(TS).cast(TS_DTYPE), EMB), on=TS, how="left")
    n0 = frame.height
    frame = frame.sort(TS).tail(max_rows)
    counts["over_max_rows"] = n0 - frame.height
    counts["kept"] = frame.height
    return frame.drop("_bar").with_columns(pl.lit(inputs.instrument).alias(INSTRUMENT)), counts


def build_training_set(
    parts: Sequence[InstrumentInputs],
    label_scheme: str,
    feature_columns: Sequence[str],
    warmup_bars: int,
    max_rows: int,
    since: dict[str, datetime] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training set, per-instrument exclusion counts). Columns: META_COLUMNS then the features as float32."""
    frames, rows = [], []
    for p in parts:
        f, counts = instrument_rows(p, label_scheme, feature_columns, warmup_bars, max_rows,
                                    (since or {}).get(p.instrument))
        rows.append({INSTRUMENT: p.instrument, **counts})
        if f.height:
            frames.append(f)
    if not frames:
        return pl.DataFrame(), pl.DataFrame(rows)
    frame = pl.concat(frames, how="diagonal_relaxed")
    frame = encode_features(frame, feature_columns)
    frame = _clean_emb(frame)
    frame = frame.select(*META_COLUMNS, *feature_columns).sort(TS, INSTRUMENT)
    return frame, pl.DataFrame(rows)


def feature_label_correlation(frame: pl.DataFrame, feature_columns: Sequence[str]) -> pl.DataFrame:
    """|Pearson correlation| of each feature with the label, on rows where both exist, largest first."""
    if frame.is_empty():
        return pl.DataFrame(schema={"feature": pl.String, "abs_corr": pl.Float64})
    y = frame["label"].to_numpy().astype(np.float64)
    out = []
    for c in feature_columns:
        x = frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 10:
            continue
        xs, ys = x[ok], y[ok]
        if xs.std() == 0 or ys.std() == 0:
            continue
        out.append({"feature": c, "abs_corr": float(abs(np.corrcoef(xs, ys)[0, 1]))})
    df = pl.DataFrame(out, schema={"feature": pl.String, "abs_corr": pl.Float64})
    return df.sort("abs_corr", descending=True)


def fingerprint(frame: pl.DataFrame) -> str:
    """A content fingerprint of a training set (its rows and columns): a study runs on one fingerprint."""
    if frame.is_empty():
        return "empty"
    h = frame.drop(EMB, strict=False).hash_rows(seed=0)
    digest = hashlib.sha256(h.to_numpy().tobytes())
    digest.update(",".join(frame.columns).encode())
    return digest.hexdigest()[:12]


# --- splits ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    fold: int
    train: np.ndarray  # row indices
    test: np.ndarray
    purged: int  # rows before the test block dropped because their label window reaches into it
    embargoed: int
    test_start: np.datetime64
    test_end: np.datetime64


def purged_walk_forward(
    ts: np.ndarray,
    label_end: np.ndarray,
    folds: int,
    min_train_fraction: float,
    embargo: timedelta,
) -> list[Fold]:
    """Purged, embargoed walk-forward folds over rows with times `ts` and label-window ends `label_end`
    (datetime64[us]); see the module docstring."""
    ts = ts.astype("datetime64[us]")
    label_end = label_end.astype("datetime64[us]")
    uniq = np.unique(ts)
    if uniq.size < folds + 2:
        return []
    first_test = int(np.floor(uniq.size * min_train_fraction))
    bounds = np.linspace(first_test, uniq.size, folds + 1).astype(int)
    emb = np.timedelta64(int(embargo.total_seconds() * 1e6), "us")
    out: list[Fold] = []
    ends: list[np.datetime64] = []
    for k in range(folds):
        lo, hi = bounds[k], bounds[k + 1]
        if hi <= lo:
            continue
        start = uniq[lo]
        end = uniq[hi] if hi < uniq.size else uniq[-1] + np.timedelta64(1, "us")
        test = np.flatnonzero((ts >= start) & (ts < end))
        before = ts < start
        clean = before & (label_end < start)
        embargoed = np.zeros(ts.shape[0], dtype=bool)
        for e in ends:
            embargoed |= (ts >= e) & (ts < e + emb)
        train = np.flatnonzero(clean & ~embargoed)
        out.append(Fold(k, train, test, int(before.sum() - clean.sum()), int((clean & embargoed).sum()), start, end))
        ends.append(end)
    return out


def shuffled_kfold(n: int, folds: int, seed: int = 0) -> list[Fold]:
    """Unpurged shuffled k-fold: the split that leaks through overlapping label windows. Only for comparison
    (`leakage_gap` in the tests): never used to select or rank a model."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    parts = np.array_split(perm, folds)
    zero = np.datetime64(0, "us")
    return [Fold(k, np.sort(np.concatenate([p for j, p in enumerate(parts) if j != k])), np.sort(parts[k]), 0, 0,
                 zero, zero) for k in range(folds)]  # fmt: skip


def bar_step(frequency: str) -> timedelta:
    return TIMEFRAMES[frequency]
