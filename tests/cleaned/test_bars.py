from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from lake_assets.cleaned.bars import build_bars, dedupe, resample_bars
from lake_assets.raw.ingest import validate_raw_ohlcv
from lake_assets.vocabulary import BARS_SCHEMA, TS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)


def raw(n: int = 12, drop: tuple[int, ...] = (), **overrides: list[float]) -> pl.DataFrame:
    rows = [
        {"ts": T0 + i * STEP, "open": 100.0 + i, "high": 101.5 + i, "low": 99.5 + i, "close": 101.0 + i,
         "volume": 10.0, "ingested_at": T0}
        for i in range(n) if i not in drop
    ]  # fmt: skip
    df = pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    for col, values in overrides.items():
        df = df.with_columns(pl.Series(col, values))
    return df


def test_gaps_are_null_rows_never_zero() -> None:
    bars = build_bars(raw(drop=(3, 4)), instrument="X", timeframe="5m", start=T0, end=T0 + 12 * STEP)
    assert bars.schema == BARS_SCHEMA
    assert bars.height == 12
    assert bars["is_gap"].to_list() == [i in (3, 4) for i in range(12)]
    gaps = bars.filter(pl.col("is_gap"))
    assert gaps.select(pl.col("open", "close", "volume").null_count()).row(0) == (2, 2, 2)
    assert bars["ret"][5] is None and bars["ret"][3] is None  # no return across a gap
    assert (bars.drop_nulls("close")["close"] != 0).all()


def test_dedupe_keeps_last_ingested_and_sorts() -> None:
    df = raw(4)
    later = df[1:2].with_columns(pl.lit(999.0).alias("close"), (pl.col("ingested_at") + STEP).alias("ingested_at"))
    out, n = dedupe(pl.concat([df[::-1], later]))
    assert n == 1
    assert out["ts"].is_sorted()
    assert out.filter(pl.col("ts") == T0 + STEP)["close"].item() == 999.0


def test_validation_rejects_with_reason() -> None:
    df = raw(4, close=[1.0, float("nan"), -1.0, 2.0], volume=[1.0, 1.0, 1.0, -5.0])
    good, bad = validate_raw_ohlcv(df)
    assert good.height == 1
    assert bad["reason"].to_list() == ["missing or non-finite price", "non-positive price",
                                       "negative or non-finite volume"]  # fmt: skip


def test_ohlc_violation_and_outlier_flagged_not_altered() -> None:
    n = 60
    df = raw(n)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 40).then(pl.col("high") * 3).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.int_range(pl.len()) == 20).then(pl.col("high") + 5).otherwise(pl.col("low")).alias("low"),
    )
    bars = build_bars(df, instrument="X", timeframe="5m", start=T0, end=T0 + n * STEP)
    assert bars["ohlc_violation"].arg_true().to_list() == [20]
    assert 40 in bars["is_outlier"].arg_true().to_list()
    assert bars["high"][40] == df["high"][40]


def test_funding_and_oi_joined_as_of_backward() -> None:
    funding = pl.DataFrame({"ts": [T0 - timedelta(hours=8), T0 + 6 * STEP], "funding_rate": [0.001, 0.002]})
    funding = funding.with_columns(pl.col("ts").dt.cast_time_unit("us"))
    bars = build_bars(raw(), instrument="X", timeframe="5m", start=T0, end=T0 + 12 * STEP, funding=funding)
    assert bars["funding_rate"].to_list() == [0.001] * 6 + [0.002] * 6


def test_basis_bps() -> None:
    spot = raw().with_columns(pl.col("close") * 0.999)
    bars = build_bars(raw(), instrument="X", timeframe="5m", start=T0, end=T0 + 12 * STEP, spot=spot)
    assert abs(bars["basis_bps"][0] - (1 / 0.999 - 1) * 1e4) < 1e-9


def test_resample_hourly_gap_only_when_all_gaps() -> None:
    bars = build_bars(raw(24, drop=tuple(range(12, 24))), instrument="X", timeframe="5m", start=T0,
                      end=T0 + 24 * STEP)  # fmt: skip
    h = resample_bars(bars, "1h")
    assert h.height == 2
    assert h["is_gap"].to_list() == [False, True]
    assert h["open"][0] == 100.0 and h["close"][0] == 112.0 and h["high"][0] == 112.5
    assert h["volume"][0] == 120.0 and h["volume"][1] is None


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=2, max_value=59), dropped=st.sets(st.integers(0, 59), max_size=8))
def test_bars_for_the_past_do_not_change_when_the_future_arrives(cut: int, dropped: set[int]) -> None:
    full_raw = raw(60, drop=tuple(dropped))
    full = build_bars(full_raw, instrument="X", timeframe="5m", start=T0, end=T0 + 60 * STEP)
    past = build_bars(full_raw.filter(pl.col(TS) < T0 + cut * STEP), instrument="X", timeframe="5m", start=T0,
                      end=T0 + cut * STEP)  # fmt: skip
    assert full.head(cut).equals(past)
