"""The compiled bracket-order planner against the pure-Python one it replaced (`bracket_reference`): on random OHLC
paths with gaps and random signal, size and bracket-distance columns, both must produce the same order frame (rows,
ids, nulls, exact floats) or the same RISK_PERCENT error."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_reference import bracket_orders_reference  # noqa: E402

from lake_assets.backtests.brackets import bracket_orders  # noqa: E402
from lake_assets.backtests.schema import ORDER_INPUT_SCHEMA, SizeType  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
TICK = 0.25  # prices and distances on a tick grid, so levels are often touched exactly (the `<=`/`>=` ties)
FRACS = st.one_of(st.none(), st.sampled_from([0.0, 0.01, 0.02, 0.05, 0.1]), st.floats(0.0, 0.3))


def with_nulls(values: np.ndarray, nulls: np.ndarray) -> pl.Series:
    return pl.Series([None if m else bool(v) for v, m in zip(values, nulls, strict=True)], dtype=pl.Boolean)


def random_frame(
    n: int, seed: int, gap_rate: float, signal_rate: float, columns: set[str], shuffle: bool
) -> pl.DataFrame:
    """A tick-grid random walk with gap bars (flagged, or NaN/null prices, or a null flag) and sparse signals."""
    rng = np.random.default_rng(seed)
    close = np.maximum(TICK, 100.0 + np.cumsum(rng.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], n)))
    open_ = np.maximum(TICK, np.r_[100.0, close[:-1]] + rng.choice([-1.0, 0.0, 0.0, 1.0], n))
    high = np.maximum(open_, close) + TICK * rng.integers(0, 8, n)
    low = np.maximum(TICK, np.minimum(open_, close) - TICK * rng.integers(0, 8, n))
    gap = rng.random(n) < gap_rate
    holes = rng.random(n) < gap_rate / 2  # missing prices on bars not flagged as gaps
    open_[holes & (rng.random(n) < 0.5)] = np.nan
    cols: dict[str, Any] = {
        "ts": [START + STEP * i for i in range(n)],
        "instrument": "X-PERP",
        "open": pl.Series(open_).fill_nan(None) if rng.random() < 0.5 else open_,
        "high": np.where(gap, np.nan, high),
        "low": low,
        "close": np.where(holes & (rng.random(n) < 0.5), np.nan, close),
        "is_gap": with_nulls(gap, ~gap & (rng.random(n) < 0.1)),
    }
    for name in ("long_entry", "long_exit", "short_entry", "short_exit"):
        cols[name] = with_nulls(rng.random(n) < signal_rate, rng.random(n) < 0.05)
    if "size" in columns:
        cols["size"] = pl.Series(rng.choice([np.nan, -1.0, 0.0, 0.5, 2.0, np.inf], n)).fill_nan(None)
    if "stop_distance" in columns:
        cols["stop_distance"] = pl.Series(rng.choice([np.nan, -1.0, 0.0, 1.0, 2.5, 7.0], n)).fill_nan(None)
    if "take_profit_distance" in columns:
        cols["take_profit_distance"] = pl.Series(rng.choice([np.nan, -2.0, 0.0, 1.0, 3.5], n)).fill_nan(None)
    if "no_gap_column" in columns:
        del cols["is_gap"]
    frame = pl.DataFrame(cols, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    return frame.sample(fraction=1.0, shuffle=True, seed=seed) if shuffle else frame


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 120),
    seed=st.integers(0, 2**32 - 1),
    gap_rate=st.sampled_from([0.0, 0.05, 0.3]),
    signal_rate=st.sampled_from([0.05, 0.2, 0.6]),
    columns=st.sets(st.sampled_from(["size", "stop_distance", "take_profit_distance", "no_gap_column"])),
    shuffle=st.booleans(),
    size_type=st.sampled_from(list(SizeType)),
    size=st.one_of(st.none(), st.sampled_from([0.0, -1.0, 1.0, 0.5, float("inf")]), st.floats(0.01, 100.0)),
    stop_frac=FRACS,
    target_frac=FRACS,
    max_hold_bars=st.one_of(st.none(), st.integers(0, 12)),
    allow_reverse=st.booleans(),
    allow_short=st.booleans(),
    first_order_id=st.sampled_from([0, 1, 10_000_000]),
)
def test_compiled_planner_matches_the_python_reference(
    n: int, seed: int, gap_rate: float, signal_rate: float, columns: set[str], shuffle: bool, **kw: Any
) -> None:
    frame = random_frame(n, seed, gap_rate, signal_rate, columns, shuffle)
    kw["strategy"] = "s"
    try:
        expected = bracket_orders_reference(frame, **kw)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            bracket_orders(frame, **kw)
        assert str(got.value) == str(exc)
        return
    assert_frame_equal(bracket_orders(frame, **kw), expected, check_exact=True)


def test_many_orders_outgrow_the_first_capacity_guess() -> None:
    """Reversals on every bar emit ~6 orders per bar, far past the kernel's first guess: the rerun keeps them all."""
    frame = random_frame(400, 3, 0.0, 0.0, set(), False).with_columns(
        pl.Series("long_entry", [i % 2 == 0 for i in range(400)]),
        pl.Series("short_entry", [i % 2 == 1 for i in range(400)]),
    )
    kw: dict[str, Any] = dict(strategy="s", size_type=SizeType.SHARES, size=1.0, stop_frac=0.5, target_frac=0.5)
    got = bracket_orders(frame, **kw)
    assert got.height > 400 // 2 + 64
    assert_frame_equal(got, bracket_orders_reference(frame, **kw), check_exact=True)
    assert got.schema == ORDER_INPUT_SCHEMA
