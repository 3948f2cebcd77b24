"""Expectation suites in spec/expectations/ run with Great Expectations: shipped suites, counts, samples, bad files.

GX takes ~4 s to import, so one cached context serves the whole module (the `gx` fixture warms it up).
Every failing case compares GX's unexpected_count with a polars computation of the same condition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_assets.checks.expectations import (
    ASSET_SCHEMAS,
    ExpectationSpec,
    SuiteResult,
    expectation_names,
    gx_context,
    load_suites,
    run_expectations,
    run_expectations_by_partition,
)
from lake_assets.checks.quality import timestamps_unique_increasing
from lake_assets.specs import VENDORS, SpecError
from lake_assets.vocabulary import (
    BARS_SCHEMA,
    BASIS_BPS,
    BUY_VOLUME,
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    INSTRUMENT_ID_PATTERN,
    IS_GAP,
    IS_OUTLIER,
    LOW,
    OHLC_VIOLATION,
    OPEN,
    OPEN_INTEREST,
    PRICE,
    RAW_FUNDING_SCHEMA,
    RAW_OHLCV_SCHEMA,
    RAW_OPEN_INTEREST_SCHEMA,
    RAW_TRADES_SCHEMA,
    RETURN,
    SELL_VOLUME,
    SIDE,
    SIZE,
    SPOT_CLOSE,
    TRADE_COUNT,
    TRADE_ID,
    TS,
    VENDOR,
    VOLUME,
    conform,
    empty_frame,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INGESTED = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def gx() -> object:
    """Create this process's GX context once for the module."""
    return gx_context()


# --- frames ---------------------------------------------------------------------------------------


def _grid(n: int, step: timedelta) -> list[datetime]:
    return [T0 + i * step for i in range(n)]


def make_bars(n: int = 240, step: timedelta = timedelta(minutes=5), gaps: tuple[int, ...] = (), seed: int = 0):
    """A valid cleaned bars frame: consistent OHLC, gaps as NULL rows, returns null at and after gaps."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    volume = rng.uniform(0.0, 10.0, n)
    buy = volume * rng.uniform(0, 1, n)
    gap = np.zeros(n, dtype=bool)
    gap[list(gaps)] = True
    df = pl.DataFrame(
        {
            TS: _grid(n, step),
            INSTRUMENT: ["BTCUSDT-PERP"] * n,
            OPEN: open_,
            HIGH: high,
            LOW: low,
            CLOSE: close,
            VOLUME: volume,
            TRADE_COUNT: rng.integers(1, 100, n),
            BUY_VOLUME: buy,
            SELL_VOLUME: volume - buy,
            IS_GAP: gap,
            IS_OUTLIER: [False] * n,
            OHLC_VIOLATION: [False] * n,
            FUNDING_RATE: rng.normal(1e-4, 2e-4, n),
            OPEN_INTEREST: rng.uniform(1e6, 2e6, n),
            SPOT_CLOSE: close * (1 - 1e-4),
        }
    )
    priced = [OPEN, HIGH, LOW, CLOSE, VOLUME, TRADE_COUNT, BUY_VOLUME, SELL_VOLUME, SPOT_CLOSE]
    df = df.with_columns(pl.when(~pl.col(IS_GAP)).then(pl.col(c)).alias(c) for c in priced)
    df = df.with_columns(
        (pl.col(CLOSE).log().diff()).alias(RETURN),
        ((pl.col(CLOSE) / pl.col(SPOT_CLOSE) - 1) * 1e4).alias(BASIS_BPS),
    )
    return conform(df, BARS_SCHEMA)


def make_raw_ohlcv(n: int = 240) -> pl.DataFrame:
    bars = make_bars(n)
    return conform(
        bars.with_columns(pl.lit("synthetic").alias(VENDOR), pl.lit(INGESTED).alias(INGESTED_AT)), RAW_OHLCV_SCHEMA
    )


def make_raw_funding(n: int = 90, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    df = pl.DataFrame(
        {
            TS: _grid(n, timedelta(hours=8)),
            INSTRUMENT: ["BTCUSDT-PERP"] * n,
            FUNDING_RATE: rng.normal(1e-4, 2e-4, n),
            VENDOR: ["ccxt"] * n,
            INGESTED_AT: [INGESTED] * n,
        }
    )
    return conform(df, RAW_FUNDING_SCHEMA)


def make_raw_open_interest(n: int = 200, seed: int = 2) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    df = pl.DataFrame(
        {
            TS: _grid(n, timedelta(minutes=5)),
            INSTRUMENT: ["BTCUSDT-PERP"] * n,
            OPEN_INTEREST: rng.uniform(1e6, 2e6, n),
            VENDOR: ["synthetic"] * n,
            INGESTED_AT: [INGESTED] * n,
        }
    )
    return conform(df, RAW_OPEN_INTEREST_SCHEMA)


def make_raw_trades(n: int = 300, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ms = np.sort(rng.integers(0, 3_600_000, n))  # sorted, with ties
    df = pl.DataFrame(
        {
            TS: [T0 + timedelta(milliseconds=int(x)) for x in ms],
            INSTRUMENT: ["BTCUSDT-PERP"] * n,
            PRICE: 100.0 + rng.normal(0, 0.1, n),
            SIZE: rng.uniform(0.001, 2.0, n),
            SIDE: rng.choice(["buy", "sell"], n).tolist(),
            TRADE_ID: [str(10_000 + i) for i in range(n)],
            VENDOR: ["trade_files"] * n,
            INGESTED_AT: [INGESTED] * n,
        }
    )
    return conform(
        df.with_columns(pl.when(pl.int_range(n) % 17 == 0).then(None).otherwise(pl.col(SIDE)).alias(SIDE)),
        RAW_TRADES_SCHEMA,
    )


VALID = {
    "raw_ohlcv": ("raw", make_raw_ohlcv),
    "raw_funding": ("raw", make_raw_funding),
    "raw_open_interest": ("raw", make_raw_open_interest),
    "raw_trades": ("raw", make_raw_trades),
    "bars": ("cleaned", lambda: make_bars(gaps=(10, 11, 12, 100))),
    "bars_1d": ("cleaned", lambda: make_bars(60, timedelta(days=1), gaps=(7, 8))),
}


def _failed(result: SuiteResult) -> list[str]:
    return [
        f"{r.expectation}{r.columns}: {r.unexpected_count} {r.observed_value} {r.exception}"
        for r in result.results
        if not r.success
    ]


# --- shipped suites -------------------------------------------------------------------------------


def test_shipped_suites_cover_raw_and_cleaned_assets() -> None:
    assert set(load_suites("raw")) == {"raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades"}
    assert set(load_suites("cleaned")) == {"bars", "bars_1h", "bars_1d"}


@pytest.mark.parametrize("asset", sorted(VALID))
def test_shipped_suites_agree_with_vocabulary(asset: str) -> None:
    layer = VALID[asset][0]
    specs = load_suites(layer)[asset]
    schema = ASSET_SCHEMAS[asset]
    ordered = [s for s in specs if s.expectation == "expect_table_columns_to_match_ordered_list"]
    assert len(ordered) == 1 and ordered[0].kwargs["column_list"] == list(schema)
    regexes = [s.kwargs["regex"] for s in specs if s.expectation == "expect_column_values_to_match_regex"]
    assert regexes == [INSTRUMENT_ID_PATTERN.pattern]
    for s in specs:
        if s.kwargs.get("column") == VENDOR and s.expectation == "expect_column_values_to_be_in_set":
            assert sorted(s.kwargs["value_set"]) == sorted(VENDORS)
    kinds = {s.expectation for s in specs}
    assert {"expect_column_values_to_not_be_null", "expect_compound_columns_to_be_unique"} <= kinds
    # a run spans several instruments: time ordering is the per-instrument polars check, never a GX column rule
    assert "expect_column_values_to_be_increasing" not in kinds
    if OPEN in schema:  # every OHLC pair the design asks for
        pairs = {(s.kwargs["column_A"], s.kwargs["column_B"]) for s in specs if "column_A" in s.kwargs}
        assert pairs == {(HIGH, LOW), (HIGH, OPEN), (HIGH, CLOSE), (OPEN, LOW), (CLOSE, LOW)}
        assert all(s.kwargs.get("or_equal") for s in specs if "column_A" in s.kwargs)


@pytest.mark.parametrize("asset", sorted(VALID))
def test_valid_frames_pass_every_expectation(asset: str) -> None:
    layer, make = VALID[asset]
    df = make()
    result = run_expectations(df, asset, layer)
    assert result.success, _failed(result)
    assert not result.errors and not result.warnings, _failed(result)
    assert result.evaluated_rows == df.height
    assert len(result.results) == len(load_suites(layer)[asset])


def test_resampled_bars_share_the_bars_suite() -> None:
    """bars_1h/bars_1d alias the bars suite (bars_1d also runs on a daily grid above)."""
    suites = load_suites("cleaned")
    assert suites["bars_1h"] == suites["bars_1d"] == suites["bars"]


@pytest.mark.parametrize("asset", ["raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades", "bars"])
def test_empty_frames_succeed(asset: str) -> None:
    layer = VALID[asset][0]
    result = run_expectations(empty_frame(ASSET_SCHEMAS[asset]), asset, layer)
    assert result.success, _failed(result)
    assert result.evaluated_rows == 0
    assert "0 rows" in result.to_markdown()


# --- failing data: GX counts equal polars counts -------------------------------------------------


def _break_order(df: pl.DataFrame) -> pl.DataFrame:
    """Duplicate row 40 over row 41, move row 80 back to T0, repeat the last row: 6 duplicate rows, 3 back-steps."""
    return pl.concat([df[:41], df[40:41], df[42:80], df[80:81].with_columns(pl.lit(T0).alias(TS)), df[81:], df[-1:]])


@pytest.mark.parametrize(("asset", "layer", "severity"), [("raw_ohlcv", "raw", "warn"), ("bars", "cleaned", "error")])
def test_duplicate_timestamps(asset: str, layer: str, severity: str) -> None:
    df = _break_order(make_raw_ohlcv(120) if layer == "raw" else make_bars(120))
    result = run_expectations(df, asset, layer)
    unique = result.result("expect_compound_columns_to_be_unique", INSTRUMENT, TS)
    assert unique.unexpected_count == df.select(pl.struct(INSTRUMENT, TS).is_duplicated().sum()).item() == 6
    assert not unique.success
    # raw keeps data as delivered (a warning); cleaned bars must be de-duplicated (blocking)
    assert unique.severity == severity
    assert result.success == (severity == "warn")
    listed = result.errors if severity == "error" else result.warnings
    assert unique in listed
    # the back-steps are caught by the per-instrument ordering check
    ordering = timestamps_unique_increasing(df)
    assert not ordering.passed and ordering.metadata["non_increasing_steps"] == 3


def test_one_validation_judges_each_partition_on_its_own_rows() -> None:
    """A run's partitions are validated together and judged apart: the broken partition fails with its own counts and
    samples (single- and multi-column expectations), the clean one passes, and the whole frame gives the same total."""
    clean = make_bars(120)
    broken = _break_order(make_bars(120)).with_columns(pl.col(TS) + timedelta(days=30))  # 6 duplicate rows
    negative = pl.when(pl.int_range(pl.len()) == 7).then(-1.0).otherwise(pl.col(VOLUME))
    broken = broken.with_columns(negative.alias(VOLUME))
    by_part = run_expectations_by_partition([("a", clean), ("b", broken)], "bars", "cleaned", sample_rows=3)
    whole = run_expectations(pl.concat([clean, broken]), "bars", "cleaned")
    assert not by_part["b"].success
    assert by_part["a"].success, _failed(by_part["a"])
    assert by_part["a"].evaluated_rows == clean.height and by_part["b"].evaluated_rows == broken.height
    for name, cols, n in (("expect_compound_columns_to_be_unique", (INSTRUMENT, TS), 6),
                          ("expect_column_values_to_be_between", (VOLUME,), 1)):  # fmt: skip
        mine = by_part["b"].result(name, *cols)
        assert mine.unexpected_count == n == whole.result(name, *cols).unexpected_count
        assert by_part["a"].result(name, *cols).unexpected_count == 0
        assert 0 < len(mine.sample_rows) <= 3
        assert all(row[TS] >= broken[TS].min() for row in mine.sample_rows)  # samples from b's own rows


def test_ohlc_violations_counted_on_non_gap_unflagged_rows_only() -> None:
    df = make_bars(300, gaps=(20, 21, 150))
    rng = np.random.default_rng(7)
    broken = rng.choice([i for i in range(300) if i not in (20, 21, 150)], 25, replace=False)
    factor = pl.when(pl.int_range(pl.len()).is_in(broken.tolist())).then(0.9).otherwise(1.0)
    df = df.with_columns((pl.col(HIGH) * factor).alias(HIGH))  # high below open/close (and sometimes low)
    flagged = broken[:5].tolist()  # the cleaner flagged five of them: those are out of scope for the pair checks
    df = df.with_columns(pl.int_range(pl.len()).is_in(flagged).alias(OHLC_VIOLATION))
    result = run_expectations(df, "bars", "cleaned", sample_rows=4)
    assert not result.success
    scope = pl.col(HIGH).is_not_null() & ~pl.col(OHLC_VIOLATION)
    for a, b in [(HIGH, LOW), (HIGH, OPEN), (HIGH, CLOSE), (OPEN, LOW), (CLOSE, LOW)]:
        r = result.result("expect_column_pair_values_a_to_be_greater_than_b", a, b)
        expected = df.select((scope & pl.col(b).is_not_null() & (pl.col(a) < pl.col(b))).sum()).item()
        assert r.unexpected_count == expected, (a, b)
        assert r.success == (expected == 0)
        assert len(r.sample_rows) == min(4, expected)
        for row in r.sample_rows:
            assert row[a] < row[b] and set(row) == {TS, INSTRUMENT, a, b}
    assert (result.result("expect_column_pair_values_a_to_be_greater_than_b", HIGH, CLOSE).unexpected_count or 0) > 0
    # 5 of 300 flagged (1.7%) exceeds the warn-level 0.1% share, without blocking by itself
    share = result.result("expect_column_values_to_be_in_set", OHLC_VIOLATION)
    assert not share.success and share.severity == "warn" and share.unexpected_count == 5


def test_conditional_batches_report_what_one_whole_frame_batch_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conditional expectations run on frames of just their columns; results, counts and sampled rows must equal a
    single validation of the whole frame."""
    from lake_assets.checks import expectations as ex

    df = make_bars(400, gaps=(3, 4, 200))
    bad = pl.int_range(pl.len())
    df = df.with_columns(
        pl.when(bad % 37 == 5).then(pl.col(LOW) * 0.5).otherwise(pl.col(HIGH)).alias(HIGH),
        pl.when(bad == 200).then(1.0).otherwise(pl.col(VOLUME)).alias(VOLUME),  # a value on a gap bar
        pl.when(bad == 17).then(None).otherwise(pl.col(CLOSE)).alias(CLOSE),  # a missing price on a priced bar
    )
    suite = load_suites("cleaned")["bars"]
    small = ex._validation_groups(suite, df.columns, df.height)  # small: one batch per condition, every column
    assert [g.condition for g in small] == [None, "is_gap == False", "is_gap == True", "ohlc_violation == False"]
    assert all(g.columns is None for g in small)
    assert sorted(i for g in small for i in g.indices) == list(range(len(suite)))
    monkeypatch.setattr(ex, "NARROW_FROM_ROWS", 0)
    groups = ex._validation_groups(suite, df.columns, df.height)
    assert len(groups) > 1 and any(g.columns is not None and len(g.columns) < len(df.columns) for g in groups)
    narrowed = run_expectations(df, "bars", "cleaned", sample_rows=3)
    monkeypatch.setattr(ex, "NARROW_FROM_ROWS", 10**12)
    whole = run_expectations(df, "bars", "cleaned", sample_rows=3)
    assert not whole.success and len(_failed(whole)) >= 3
    assert narrowed == whole


def test_negative_volume_fails_with_samples() -> None:
    df = make_raw_ohlcv(200)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 37 == 3).then(-pl.col(VOLUME) - 1).otherwise(pl.col(VOLUME)).alias(VOLUME)
    )
    result = run_expectations(df, "raw_ohlcv", "raw")
    r = result.result("expect_column_values_to_be_between", VOLUME)
    negatives = df.filter(pl.col(VOLUME) < 0)
    assert r.unexpected_count == negatives.height == 6
    assert r.unexpected_percent == pytest.approx(100 * 6 / 200)
    assert r.sample_values == tuple(negatives[VOLUME].head(5).to_list())
    assert [row[TS] for row in r.sample_rows] == negatives[TS].head(5).to_list()
    assert not result.success and r in result.errors


def test_nulls_and_gap_rows_that_hold_zeros() -> None:
    df = make_bars(200, gaps=(50, 51, 52, 120))
    # a null close on a priced bar, and a gap bar filled with zeros instead of NULL
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 10).then(None).otherwise(pl.col(CLOSE)).alias(CLOSE),
    ).with_columns(
        pl.when(pl.int_range(pl.len()).is_in([51, 120])).then(0.0).otherwise(pl.col(c)).alias(c)
        for c in (CLOSE, VOLUME)
    )
    result = run_expectations(df, "bars", "cleaned")
    not_null = result.result("expect_column_values_to_not_be_null", CLOSE)
    assert not_null.unexpected_count == df.filter(~pl.col(IS_GAP) & pl.col(CLOSE).is_null()).height == 1
    assert not_null.sample_rows[0][TS] == df[10, TS]
    for col in (CLOSE, VOLUME):
        is_null = result.result("expect_column_values_to_be_null", col)
        assert is_null.unexpected_count == df.filter(pl.col(IS_GAP) & pl.col(col).is_not_null()).height == 2
        assert is_null.sample_values == (0.0, 0.0)
    assert result.result("expect_column_values_to_be_null", RETURN).success
    assert not result.success


def test_null_instrument_and_bad_ids() -> None:
    df = make_raw_funding(30)
    ids = ["BTCUSDT-PERP"] * 27 + [None, "btc usdt", "../ETC"]
    df = df.with_columns(pl.Series(INSTRUMENT, ids, dtype=pl.String))
    result = run_expectations(df, "raw_funding", "raw")
    assert result.result("expect_column_values_to_not_be_null", INSTRUMENT).unexpected_count == 1
    regex = result.result("expect_column_values_to_match_regex", INSTRUMENT)
    pattern = INSTRUMENT_ID_PATTERN.pattern
    assert regex.unexpected_count == df.select((~pl.col(INSTRUMENT).str.contains(pattern)).sum()).item() == 2
    assert set(regex.sample_values) == {"btc usdt", "../ETC"}


def test_warn_severity_does_not_fail_the_suite() -> None:
    df = make_raw_funding(90)
    extreme = pl.int_range(pl.len()).is_in([5, 6, 7])
    df = df.with_columns(pl.when(extreme).then(0.03).otherwise(pl.col(FUNDING_RATE)).alias(FUNDING_RATE))
    result = run_expectations(df, "raw_funding", "raw")
    assert result.success and not result.errors
    (warn,) = result.warnings
    assert warn.columns == (FUNDING_RATE,) and warn.unexpected_count == 3
    # beyond the hard bound it is an error
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 9).then(-0.2).otherwise(pl.col(FUNDING_RATE)).alias(FUNDING_RATE)
    )
    result = run_expectations(df, "raw_funding", "raw")
    assert not result.success
    (err,) = result.errors
    assert err.columns == (FUNDING_RATE,) and err.unexpected_count == 1 and err.sample_values == (-0.2,)


def test_trades_side_price_and_duplicate_ids() -> None:
    df = make_raw_trades(120)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("BUY")).otherwise(pl.col(SIDE)).alias(SIDE),
        pl.when(pl.int_range(pl.len()) == 4).then(0.0).otherwise(pl.col(PRICE)).alias(PRICE),
        pl.when(pl.int_range(pl.len()).is_in([8, 9])).then(pl.lit("dup")).otherwise(pl.col(TRADE_ID)).alias(TRADE_ID),
    )
    result = run_expectations(df, "raw_trades", "raw")
    assert result.result("expect_column_values_to_be_in_set", SIDE).sample_values == ("BUY",)
    assert result.result("expect_column_values_to_be_between", PRICE).unexpected_count == 1
    dup = result.result("expect_compound_columns_to_be_unique", INSTRUMENT, TRADE_ID)
    assert dup.unexpected_count == 2 and dup.severity == "warn"
    assert not result.success


def test_schema_drift_and_missing_column() -> None:
    df = make_raw_open_interest(50).drop(OPEN_INTEREST)
    result = run_expectations(df, "raw_open_interest", "raw")
    assert not result.success
    schema = result.result("expect_table_columns_to_match_ordered_list")
    assert not schema.success and schema.columns == ()
    between = result.result("expect_column_values_to_be_between", OPEN_INTEREST)
    assert not between.success and between.exception and OPEN_INTEREST in between.exception
    md = result.to_markdown()
    assert "error:" in md and "**FAIL**" in md


def test_markdown_and_metadata_show_counts_and_samples() -> None:
    df = make_raw_ohlcv(100).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(-5.0).otherwise(pl.col(VOLUME)).alias(VOLUME)
    )
    result = run_expectations(df, "raw_ohlcv", "raw")
    md = result.to_markdown()
    assert md.startswith("**raw.raw_ohlcv** FAILED")
    assert "| **FAIL** | error | column_values_to_be_between | volume | min_value=0 | 1 | 1 | -5 |" in md
    assert "Failing rows, column_values_to_be_between (volume):" in md
    assert str(df[7, TS].isoformat(sep=" ")) in md
    assert md.count("\n| ok |") == len(result.results) - 1
    meta = result.to_metadata()
    assert meta["failed_errors"] == 1 and meta["evaluated_rows"] == 100
    assert meta["unexpected:column_values_to_be_between(volume)"] == 1
    assert all(isinstance(v, str | int | float) for v in meta.values())


def test_sample_rows_limit() -> None:
    df = make_raw_ohlcv(100).with_columns((-pl.col(VOLUME) - 1).alias(VOLUME))
    r = run_expectations(df, "raw_ohlcv", "raw", sample_rows=2).result("expect_column_values_to_be_between", VOLUME)
    assert r.unexpected_count == 100 and len(r.sample_rows) == 2 and len(r.sample_values) == 2
    r = run_expectations(df, "raw_ohlcv", "raw", sample_rows=0).result("expect_column_values_to_be_between", VOLUME)
    assert r.unexpected_count == 100 and r.sample_rows == () and r.sample_values == ()


# --- suite files ----------------------------------------------------------------------------------


def _write_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layer: str, text: str) -> Path:
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(tmp_path))
    path = tmp_path / "expectations" / f"{layer}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


NOT_NULL_TS = "  - expectation: expect_column_values_to_not_be_null\n    kwargs: {column: ts}\n"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            "bars:\n" + NOT_NULL_TS + "  - expectation: expect_column_values_to_be_nonnull\n    kwargs: {column: ts}\n",
            "bars.1.expectation",
            "unknown expectation 'expect_column_values_to_be_nonnull'",
        ),
        ("bars:\n  - expectation: expect_column_values_to_not_be_null\n", "bars.0.kwargs.column", "field required"),
        ("bars:\n" + NOT_NULL_TS + "    severity: fatal\n", "bars.0.severity", "'error' or 'warn'"),
        (
            "bars:\n  - expectation: expect_column_values_to_not_be_null\n    kwargs: {column: tss}\n",
            "bars.0.kwargs.column",
            "unknown column 'tss'",
        ),
        (
            "bars:\n  - expectation: expect_column_values_to_not_be_null\n    kwargs: {column: ts, colour: red}\n",
            "bars.0.kwargs.colour",
            "extra fields",
        ),
        (
            "bars:\n  - expectation: expect_column_values_to_not_be_null\n    kwargs: {column: ts, severity: warn}\n",
            "bars.0.kwargs",
            "cannot be set in kwargs",
        ),
        (
            "bars:\n  - expectation: expect_column_values_to_not_be_null\n    kwarg: {column: ts}\n",
            "bars.0.kwarg",
            "Extra inputs",
        ),
        (
            "bars:\n  - expectation: expect_column_values_to_not_be_null\n    kwargs: {column: ts, mostly: 1.5}\n",
            "bars.0.kwargs.mostly",
            "less than or equal to 1",
        ),
        (
            "bars:\n  - expectation: expect_compound_columns_to_be_unique\n"
            "    kwargs: {column_list: [ts, instrumnt]}\n",
            "bars.0.kwargs.column_list.1",
            "unknown column 'instrumnt'",
        ),
        (
            "bars:\n  - expectation: expect_column_values_to_not_be_null\n"
            "    kwargs: {column: ts, row_condition: 'nope == 1'}\n",
            "bars.0.kwargs.row_condition",
            "unknown column 'nope'",
        ),
        (
            "features:\n  - expectation: expect_column_values_to_be_between\n    kwargs: {column: 3}\n",
            "features.0.kwargs.column",
            "str type expected",
        ),
        ("bars: []\n", "bars", "non-empty list"),
        ("bars:\n  expectation: expect_column_values_to_not_be_null\n", "bars", "non-empty list"),
        ("Bars:\n" + NOT_NULL_TS, "Bars", "lower_snake_case"),
        ("- just a list\n", "<root>", "mapping of asset name"),
        ("bars: [\n", "line 2", "not valid YAML"),
    ],
)
def test_bad_suite_files_name_file_key_and_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, problem: str
) -> None:
    path = _write_suite(tmp_path, monkeypatch, "broken", text)
    with pytest.raises(SpecError) as info:
        load_suites("broken")
    assert info.value.file == str(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_unknown_expectation_suggests_the_closest_name() -> None:
    with pytest.raises(ValueError, match="did you mean 'expect_column_values_to_be_null'"):
        ExpectationSpec(expectation="expect_column_values_to_be_nul")
    assert "expect_column_pair_values_a_to_be_greater_than_b" in expectation_names()


def test_missing_file_unknown_asset_and_bad_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_suite(tmp_path, monkeypatch, "raw", "raw_ohlcv:\n" + NOT_NULL_TS)
    with pytest.raises(SpecError, match="file not found"):
        load_suites("features")
    with pytest.raises(SpecError) as info:
        run_expectations(make_raw_funding(3), "raw_funding", "raw")
    assert info.value.file == str(path) and info.value.key == "raw_funding"
    for bad in ("../raw", "Raw", "thresholds"):
        with pytest.raises(ValueError, match="invalid expectation layer"):
            load_suites(bad)


def test_custom_layer_suite_runs_and_edits_are_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = (
        "features:\n"
        "  - expectation: expect_column_values_to_be_between\n"
        "    kwargs: {column: vol, min_value: 0, row_condition: 'warm == True'}\n"
        "    notes: realized vol is non-negative once warmed up\n"
    )
    path = _write_suite(tmp_path, monkeypatch, "features", suite)
    df = pl.DataFrame({"vol": [0.1, -0.2, None, -1.0, 0.3], "warm": [True, True, True, False, True]})
    r = run_expectations(df, "features", "features").result("expect_column_values_to_be_between", "vol")
    assert r.unexpected_count == 1 and r.element_count == 4 and r.notes and r.sample_values == (-0.2,)
    path.write_text(suite.replace("min_value: 0,", "min_value: -0.5,") + "    severity: warn\n")
    result = run_expectations(df, "features", "features")
    assert result.success and result.results[0].success and result.results[0].severity == "warn"
