"""Label definitions against hand-computed cases: B1, T3 at and around the +-0.2% boundaries, R, gaps, the end of
the data, a horizon longer than one bar, and the month boundary (a month's last labels read the next month)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lake_assets.models.labels import compute_labels
from lake_assets.models.spec_model import load_model_spec, model_spec, models_spec_path
from lake_assets.specs import SpecError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bars(closes: list[float | None], step: timedelta = timedelta(minutes=5)) -> pl.DataFrame:
    return pl.DataFrame({
        "ts": [T0 + step * i for i in range(len(closes))], "instrument": "X",
        "close": closes, "is_gap": [c is None for c in closes],
    }, schema_overrides={"close": pl.Float64})  # fmt: skip


def test_hand_computed_next_step_labels() -> None:
    # 100 -> 100.2 (exactly +0.2%: dead band) -> 100.4004 (+0.2% again, exact) -> 100.61 (+0.21%: up)
    # -> 100.39 (-0.2187%: down) -> 100.39 (unchanged) -> gap -> 101 -> 100.798 (exactly -0.2%)
    closes = [100.0, 100.2, 100.4004, 100.61, 100.39, 100.39, None, 101.0, 100.798]
    out = compute_labels(bars(closes), "5m", 1, 0.2)
    assert out.height == len(closes)
    b1, t3, r = out["y_b1"].to_list(), out["y_t3"].to_list(), out["y_r"].to_list()
    assert b1 == [1, 1, 1, 0, 0, None, None, 0, None]
    assert t3 == [0, 0, 1, -1, 0, None, None, 0, None]  # +-0.2% exactly is inside the band (inclusive)
    assert r[0] == pytest.approx(100 * math.log(100.2 / 100.0))
    assert r[3] == pytest.approx(100 * math.log(100.39 / 100.61))
    assert r[4] == 0.0
    # the bar before a gap, the gap itself and the last bar have no label
    assert r[5] is None and r[6] is None and r[8] is None
    ends = out["label_end_ts"].to_list()
    assert ends[0] == T0 + timedelta(minutes=5) and ends[5] is None


def test_a_horizon_crossing_a_gap_has_no_label() -> None:
    closes = [100.0, 101.0, None, 103.0, 104.0, 105.0, 106.0]
    out = compute_labels(bars(closes, timedelta(hours=1)), "1h", 3, 0.2)
    # windows (t, t+3]: rows 0..2 hold the gap at 2 (row 2 is the gap itself); row 3 -> 6 is clean
    assert out["y_r"].to_list()[:4] == [None, None, None, pytest.approx(100 * math.log(106 / 103))]
    assert out["y_b1"].to_list()[3] == 1 and out["y_t3"].to_list()[3] == 1


def test_a_jump_in_the_grid_is_not_a_window() -> None:
    df = bars([100.0, 101.0, 102.0])
    df = df.with_columns(pl.Series("ts", [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=20)]))
    out = compute_labels(df, "5m", 1, 0.2)
    assert out["y_r"].to_list()[0] is not None and out["y_r"].to_list()[1] is None


def test_spec_defaults_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = model_spec()
    assert spec.labels.t3_threshold_pct.of("5m") == 0.2 and spec.labels.horizon_bars.of("1d") == 1
    assert len(spec.variant_keys) == 27 and spec.study.trials == 60 and spec.study.n_warmup_steps == 3
    text = (spec_path := tmp_path / "models.yaml")
    src = models_spec_path().read_text()
    text.write_text(src.replace("families: [lightgbm, linear, nlinear]", "families: [lightgbm, xgb]"))
    with pytest.raises(SpecError) as err:
        load_model_spec(spec_path)
    assert "families.1" in str(err.value) and "xgb" in str(err.value)
    text.write_text(src.replace("  trials: 60 ", "  trails: 60 "))
    with pytest.raises(SpecError, match="study.trails"):
        load_model_spec(spec_path)
