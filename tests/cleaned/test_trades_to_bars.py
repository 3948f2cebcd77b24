"""trades -> candles: a hand computation, a pandas reference, and line-order independence of dumps."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_assets.trades import TRADE_BARS_SCHEMA, sort_trades, trades_to_bars
from lake_assets.vendors.trade_files import ParseResult, parse_trade_file
from lake_assets.vocabulary import RAW_OHLCV_SCHEMA, RAW_TRADES_SCHEMA, TOP_OF_BOOK, conform

T0 = datetime(2024, 3, 1, tzinfo=UTC)
INGESTED = datetime(2024, 6, 1, tzinfo=UTC)


def trades(
    rows: list[tuple[float, float, float | None, str | None, str | None]], instrument: str = "X"
) -> pl.DataFrame:
    """rows: (seconds after T0, price, size, side, trade id)."""
    return conform(
        pl.DataFrame(
            {
                "ts": [T0 + timedelta(seconds=s) for s, *_ in rows],
                "instrument": [instrument] * len(rows),
                "price": [r[1] for r in rows],
                "size": [r[2] for r in rows],
                "side": [r[3] for r in rows],
                "trade_id": [r[4] for r in rows],
                "vendor": ["trade_files"] * len(rows),
                "ingested_at": [INGESTED] * len(rows),
            },
            schema_overrides={"size": pl.Float64, "side": pl.String, "trade_id": pl.String},
        ),
        RAW_TRADES_SCHEMA,
    )


def test_candles_match_a_hand_computation() -> None:
    t = trades(
        [
            (10, 100.0, 1.0, "buy", "1"),
            (20, 103.0, 2.0, "sell", "2"),
            (299.999, 99.0, 0.5, "buy", "3"),  # last trade of bar 0
            (300, 101.0, 4.0, "sell", "4"),  # exactly on the boundary: opens bar 1
            (420, 102.5, 1.0, "sell", "5"),
            # 00:10 bar has no trades: no row (a gap is the cleaned layer's business)
            (900, 104.0, 3.0, "buy", "6"),
        ]
    )
    bars = trades_to_bars(t.reverse(), "5m")  # input order must not matter
    assert bars.schema == TRADE_BARS_SCHEMA
    expected = pl.DataFrame(
        {
            "ts": [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=15)],
            "instrument": ["X"] * 3,
            "open": [100.0, 101.0, 104.0],
            "high": [103.0, 102.5, 104.0],
            "low": [99.0, 101.0, 104.0],
            "close": [99.0, 102.5, 104.0],
            "volume": [3.5, 5.0, 3.0],
            "trade_count": [3, 2, 1],
            "buy_volume": [1.5, 0.0, 3.0],
            "sell_volume": [2.0, 5.0, 0.0],
            "vendor": ["trade_files"] * 3,
            "ingested_at": [INGESTED] * 3,
        },
        schema=TRADE_BARS_SCHEMA,
    )
    assert bars.equals(expected)
    # Hourly and daily grids are UTC-aligned.
    hourly = trades_to_bars(t, "1h")
    assert hourly.select("ts", "open", "close", "volume", "trade_count").rows() == [(T0, 100.0, 104.0, 11.5, 6)]
    late = trades([(86_399, 7.0, 1.0, None, None), (86_400, 8.0, 1.0, None, None)])
    assert trades_to_bars(late, "1d")["ts"].to_list() == [T0, T0 + timedelta(days=1)]


def test_unknown_side_or_size_makes_the_sums_unknown() -> None:
    t = trades(
        [
            (0, 10.0, 1.0, "buy", "1"),
            (1, 11.0, 2.0, None, "2"),  # bar 0: one unknown side
            (300, 10.0, 1.0, "buy", "3"),
            (301, 10.0, None, "sell", "4"),  # bar 1: one unknown size
            (600, 10.0, 1.0, "SELL", "5"),  # case-insensitive side
        ]
    )
    bars = trades_to_bars(t, "5m")
    assert bars.select("volume", "buy_volume", "sell_volume", "trade_count").rows() == [
        (3.0, None, None, 2),
        (None, None, None, 2),
        (1.0, 0.0, 1.0, 1),
    ]


def test_same_timestamp_ties_are_ordered_by_content() -> None:
    rows = [(0, 10.0, 1.0, "buy", "9"), (0, 12.0, 1.0, "buy", "10"), (0, 11.0, 1.0, "sell", None)]
    # Numeric trade ids order ties (9 before 10, not "10" < "9"); id-less trades come last.
    assert sort_trades(trades(rows))["price"].to_list() == [10.0, 12.0, 11.0]
    first = trades_to_bars(trades(rows), "5m")
    for perm in ([2, 1, 0], [1, 2, 0], [0, 2, 1]):
        assert trades_to_bars(trades([rows[i] for i in perm]), "5m").equals(first)
    assert first.select("open", "close").row(0) == (10.0, 11.0)


def test_instruments_are_aggregated_separately() -> None:
    both = pl.concat(
        [
            trades([(0, 1.0, 1.0, "buy", "1")], "B"),
            trades([(0, 5.0, 2.0, "sell", "1"), (1, 6.0, 2.0, "sell", "2")], "A"),
        ]
    )
    bars = trades_to_bars(both, "5m")
    assert bars.select("instrument", "open", "close", "volume", "trade_count").rows() == [
        ("A", 5.0, 6.0, 4.0, 2),
        ("B", 1.0, 1.0, 1.0, 1),
    ]


def test_empty_input_and_errors() -> None:
    empty = trades_to_bars(pl.DataFrame(schema=RAW_TRADES_SCHEMA), "5m")
    assert empty.is_empty() and empty.schema == TRADE_BARS_SCHEMA
    assert list(TRADE_BARS_SCHEMA)[:7] == list(RAW_OHLCV_SCHEMA)[:7]
    assert set(RAW_OHLCV_SCHEMA) - set(TOP_OF_BOOK) <= set(TRADE_BARS_SCHEMA)  # trades carry no quotes
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        trades_to_bars(trades([(0, 1.0, 1.0, None, None)]), "7m")
    with pytest.raises(ValueError, match="lacks required column"):
        trades_to_bars(pl.DataFrame({"ts": [T0]}), "5m")
    with pytest.raises(ValueError, match="null ts or null/non-finite price"):
        trades_to_bars(trades([(0, float("nan"), 1.0, None, None)]), "5m")


def test_matches_pandas_resample_reference() -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    seconds = np.sort(rng.uniform(0, 6 * 3600, n))
    seconds[100:110] = seconds[100]  # some ties
    price = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    size = rng.exponential(1.0, n)
    side = rng.choice(["buy", "sell"], n)
    t = trades(
        [
            (float(s), float(p), float(q), str(d), str(i))
            for i, (s, p, q, d) in enumerate(zip(seconds, price, size, side, strict=True))
        ]
    )
    ours = trades_to_bars(t, "15m")

    df = t.to_pandas().set_index("ts")
    grid = df.resample("15min")
    ref = pd.DataFrame(
        {
            "open": grid["price"].first(),
            "high": grid["price"].max(),
            "low": grid["price"].min(),
            "close": grid["price"].last(),
            "volume": grid["size"].sum(),
            "trade_count": grid["price"].count(),
            "buy_volume": df["size"].where(df["side"] == "buy", 0.0).resample("15min").sum(),
            "sell_volume": df["size"].where(df["side"] == "sell", 0.0).resample("15min").sum(),
        }
    )
    ref = ref[ref["trade_count"] > 0]
    assert ours["ts"].to_list() == [ts.to_pydatetime() for ts in ref.index]
    for col in ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume"):
        np.testing.assert_allclose(ours[col].to_numpy(), ref[col].to_numpy(), rtol=1e-12, err_msg=col)
    assert ours["trade_count"].to_list() == ref["trade_count"].astype(int).tolist()


# --- property: the line order of a dump never changes the candles --------------------------------------------

HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
BASE_MS = 1709251200000  # 2024-03-01T00:00:00Z

good_line = st.builds(
    lambda i, ms, p, q, m: f"{i},{p},{q},{i},{i},{BASE_MS + ms},{m}",
    st.integers(1, 40),  # few ids: duplicates and id conflicts happen often
    st.one_of(st.integers(0, 24).map(lambda k: k * 450_000), st.integers(0, 3 * 3_600_000)),  # many ties
    st.sampled_from(["100", "100.5", "99.25", "101", "0", "-3"]),
    st.sampled_from(["1", "0.5", "2.25", "0", "-1"]),
    st.sampled_from(["true", "false", ""]),
)
bad_line = st.sampled_from(["", "garbage", "1,2,3", "5,nan,1,5,5,1709251200000,true", '7,"100",1,7,7,1709251200000'])


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(good_line, good_line, bad_line), min_size=1, max_size=40), seed=st.integers(0, 2**32))
def test_shuffling_lines_never_changes_candles(lines: list[str], seed: int) -> None:
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for name, body in (("a.csv", lines), ("b.csv", shuffled)):
            path = Path(tmp) / name
            path.write_text("\n".join([HEADER, *body]) + "\n")
            results.append(parse_trade_file(path, "BTCUSDT", ingested_at=INGESTED))
    a, b = results
    assert (a.parsed, a.accepted, a.skipped, a.malformed) == (b.parsed, b.accepted, b.skipped, b.malformed)
    assert a.trades.equals(b.trades)
    # Which lines are rejected and why is order-free too ("first seen at line N" names lines, which move).
    assert _kinds(a) == _kinds(b)
    for timeframe in ("5m", "1h"):
        assert trades_to_bars(a.trades, timeframe).equals(trades_to_bars(b.trades, timeframe))


def _kinds(r: ParseResult) -> list[str]:
    return sorted(reason.split(" (first seen")[0] for reason in r.quarantine["reason"].to_list())
