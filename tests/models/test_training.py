"""Training-set rules and splits: the row-exclusion rules on hand-made rows, purging and embargo of the walk-forward
folds, the leak check on feature-label correlation, and 5m features sampled at a coarse bar's close."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_lake import training_frame  # noqa: E402

from lake_assets.models.labels import compute_labels  # noqa: E402
from lake_assets.models.training import (  # noqa: E402
    InstrumentInputs,
    build_training_set,
    feature_label_correlation,
    features_at,
    purged_walk_forward,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_row_exclusion_rules() -> None:
    n = 40
    closes = [100.0 + i for i in range(n)]
    closes[20] = None  # a gap
    bars = pl.DataFrame({"ts": [T0 + H * i for i in range(n)], "instrument": "X", "close": closes,
                         "is_gap": [c is None for c in closes]}, schema_overrides={"close": pl.Float64})  # fmt: skip
    labels = compute_labels(bars, "1h", 2, 0.2)
    feats = pl.DataFrame({"ts": bars["ts"], "is_gap": bars["is_gap"], "a": np.arange(n, dtype=float),
                          "b": ["lo", "hi"] * (n // 2)})  # fmt: skip
    feats = feats.with_columns(pl.when(pl.col("ts") == T0 + H * 30).then(None).otherwise(pl.col("a")).alias("a"),
                               pl.when(pl.col("ts") == T0 + H * 30).then(None).otherwise(pl.col("b")).alias("b"))
    frame, counts = build_training_set([InstrumentInputs("X", labels, feats, pl.DataFrame())], "R", ["a", "b"],
                                       warmup_bars=5, max_rows=25)  # fmt: skip
    c = counts.row(0, named=True)
    # no label: the two windows reaching the gap (18, 19), the gap (20), the last two bars (38, 39)
    assert c["no_label"] == 5 and c["warmup"] == 5
    assert c["no_features"] == 1  # bar 30: every feature null
    assert c["kept"] == 25 and c["over_max_rows"] == 40 - 5 - 5 - 1 - 25
    kept = set(frame["ts"].to_list())
    assert T0 + H * 30 not in kept and T0 + H * 37 in kept and T0 + H * 38 not in kept
    assert frame["b"].dtype == pl.Float32 and set(frame["b"].unique().to_list()) == {0.0, 1.0}  # "hi" < "lo"
    assert frame.schema["emb"] == pl.Array(pl.Float32, 32)


def test_purged_embargoed_walk_forward() -> None:
    n, h = 1000, 6
    ts = np.array([np.datetime64("2026-01-01T00:00") + np.timedelta64(i, "h") for i in range(n)], "datetime64[us]")
    ends = ts + np.timedelta64(h, "h")
    folds = purged_walk_forward(ts, ends, 4, 0.4, timedelta(hours=10))
    assert len(folds) == 4
    for k, f in enumerate(folds):
        assert ts[f.train].max() < f.test_start and ends[f.train].max() < f.test_start  # purged
        assert f.purged == h  # the last h rows before the block have windows reaching into it
        for g in folds[:k]:  # embargo after every earlier test block
            window = (ts[f.train] >= g.test_end) & (ts[f.train] < g.test_end + np.timedelta64(10, "h"))
            assert not window.any()
        assert ts[f.test].min() == f.test_start
        if k:
            # the embargo after the block just before lies inside this test block: it removes nothing here
            assert f.test_start == folds[k - 1].test_end and f.embargoed == 10 * (k - 1)
    assert sum(f.test.size for f in folds) == n - int(n * 0.4)


def test_leaky_feature_is_flagged_by_correlation() -> None:
    clean = training_frame(2000, 0.3, label="R")
    leaky = training_frame(2000, 0.3, label="R", leaky=True)
    assert feature_label_correlation(clean, [f"f{i}" for i in range(8)])["abs_corr"].max() < 0.5
    corr = feature_label_correlation(leaky, [*(f"f{i}" for i in range(8)), "leak"])
    assert corr.row(0, named=True)["feature"] == "leak" and corr["abs_corr"][0] > 0.9


def test_coarse_features_are_the_last_base_bar_of_the_coarse_bar() -> None:
    ts = [T0 + timedelta(minutes=5 * i) for i in range(36)]
    f = pl.DataFrame({"ts": ts, "is_gap": [i == 23 for i in range(36)], "x": [float(i) for i in range(36)]})
    out = features_at("1h", "5m", f)
    assert out["ts"].to_list() == [T0, T0 + H, T0 + 2 * H]
    assert out["x"].to_list() == [11.0, 22.0, 35.0]  # bar 23 is a gap: the hour's last real bar is 22
