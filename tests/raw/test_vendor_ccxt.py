"""CcxtBinanceVendor against a real `ccxt.binance` whose HTTP layer is answered from recordings.

The recordings are ccxt's own static test fixtures (tests/fixtures/vendors, see README.txt there). Where ccxt has
no recorded body (multi-page klines, funding-rate and open-interest history, paged aggTrades), small servers below
answer in Binance's documented response shapes and honour startTime/endTime/limit/fromId, so ccxt's request
building, pagination by the adapter, ccxt's parsing and the adapter's type conversion all run for real.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import polars as pl
import pytest

from lake_assets.specs import Instrument
from lake_assets.vendors.base import VendorError
from lake_assets.vendors.ccxt_binance import CcxtBinanceVendor
from lake_assets.vocabulary import (
    CLOSE,
    FUNDING_RATE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    LOW,
    OPEN,
    OPEN_INTEREST,
    PRICE,
    RAW_SCHEMAS,
    SIDE,
    SIZE,
    TRADE_ID,
    TS,
    VENDOR,
    VOLUME,
    DataKind,
    Market,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vendors"
RESPONSES = json.loads((FIXTURES / "ccxt_binance_responses.json").read_text())
REQUESTS = json.loads((FIXTURES / "ccxt_binance_requests.json").read_text())
MARKETS = json.loads((FIXTURES / "ccxt_binance_markets.json").read_text())
NOW = datetime(2024, 5, 1, tzinfo=UTC)
MIN5 = 300_000


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


RECORDED_ENDPOINTS = {_endpoint(e["url"]) for entries in REQUESTS["methods"].values() for e in entries}


def recorded_response(method: str, description: str) -> dict[str, Any]:
    return next(e for e in RESPONSES["methods"][method] if e["description"] == description)


def recorded_url(method: str, description: str) -> str:
    return str(next(e for e in REQUESTS["methods"][method] if e["description"] == description)["url"])


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def assert_matches_recorded(url: str, recorded: str, *, exact: bool = False) -> None:
    """Same endpoint; every recorded query parameter is present with the recorded value (all of them if exact)."""
    assert _endpoint(url) == _endpoint(recorded)
    got, want = query(url), query(recorded)
    if exact:
        assert got == want
    else:
        assert {k: got.get(k) for k in want} == want, (url, recorded)


class BinanceReplay:
    """Stands in for ccxt's HTTP `fetch`: answers by URL path, records every URL, can fail the first calls."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[dict[str, str]], Any]] = {}
        self.urls: list[str] = []
        self.failures: list[Exception] = []

    def route(self, path: str, handler: Callable[[dict[str, str]], Any]) -> BinanceReplay:
        self.routes[path] = handler
        return self

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        assert method == "GET" and body is None
        assert _endpoint(url) in RECORDED_ENDPOINTS, f"ccxt called an endpoint with no recorded request: {url}"
        self.urls.append(url)
        if self.failures:
            raise self.failures.pop(0)
        return self.routes[urlsplit(url).path](query(url))

    def exchange(self) -> Any:
        ex = ccxt.binance({"options": RESPONSES["options"]})
        ex.set_markets(MARKETS["markets"])
        ex.rateLimit = 1  # keep ccxt's throttle in the path, but at 1 ms per cost unit
        ex.fetch = self.fetch
        return ex


def vendor(replay: BinanceReplay, **kwargs: Any) -> CcxtBinanceVendor:
    kwargs.setdefault("base_delay", 0.0)
    kwargs.setdefault("clock", lambda: NOW)
    return CcxtBinanceVendor(replay.exchange(), **kwargs)


def spot(tf: str = "1h") -> Instrument:
    return Instrument(
        id="BTCUSDT", vendor="ccxt", market=Market.SPOT, base_timeframe=tf, start=date(2020, 1, 1), symbol="BTC/USDT"
    )


def perp(tf: str = "5m") -> Instrument:
    return Instrument(
        id="BTCUSDT-PERP",
        vendor="ccxt",
        market=Market.PERP,
        spot="BTCUSDT",
        base_timeframe=tf,
        start=date(2020, 1, 1),
        symbol="BTC/USDT:USDT",
    )


def utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def assert_canonical(df: pl.DataFrame, kind: DataKind, instrument_id: str) -> None:
    assert df.schema == RAW_SCHEMAS[kind]
    assert df[INSTRUMENT].unique().to_list() in ([instrument_id], [])
    assert df[VENDOR].unique().to_list() in (["ccxt"], [])
    assert df[INGESTED_AT].unique().to_list() in ([NOW], [])


# --- servers answering in Binance's documented shapes ------------------------------------------------


def kline(t: int, i: int, interval_ms: int) -> list[Any]:
    """One Binance kline: [openTime, o, h, l, c, v, closeTime, quoteVolume, count, takerBase, takerQuote, ignore]."""
    c = 40_000 + 150 * math.sin(i / 9) + 0.25 * i
    o, v = c - 3 * math.cos(i / 4), 10 + (i % 13) * 0.125
    h, lo = max(o, c) + 4.5, min(o, c) - 4.25
    q = v * c
    return [t, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{v:.5f}", t + interval_ms - 1, f"{q:.8f}", 7 + i % 5,
            f"{v / 2:.5f}", f"{q / 2:.8f}", "0"]  # fmt: skip


class KlineServer:
    def __init__(self, first: int, count: int, interval_ms: int, missing: range = range(0)) -> None:
        self.bars = [kline(first + i * interval_ms, i, interval_ms) for i in range(count) if i not in missing]

    def __call__(self, p: dict[str, str]) -> list[list[Any]]:
        lo, hi = int(p["startTime"]), int(p.get("endTime", 2**62))
        return [b for b in self.bars if lo <= b[0] <= hi][: int(p["limit"])]


class FundingServer:
    def __init__(self, first: int, count: int, symbol: str = "BTCUSDT") -> None:
        step = 8 * 3_600_000
        self.rows: list[dict[str, Any]] = [
            {"symbol": symbol, "fundingTime": first + i * step, "fundingRate": f"{(i % 7 - 3) * 1.25e-5:.8f}",
             "markPrice": f"{40_000 + i:.8f}"}
            for i in range(count)
        ]  # fmt: skip

    def __call__(self, p: dict[str, str]) -> list[dict[str, Any]]:
        lo, hi = int(p.get("startTime", 0)), int(p.get("endTime", 2**62))
        return [r for r in self.rows if lo <= r["fundingTime"] <= hi][: int(p.get("limit", 100))]


class OpenInterestServer:
    """Answers the NEWEST `limit` records of the range, so an adapter that paged by cursor would skip data."""

    def __init__(self, first: int, count: int, period_ms: int) -> None:
        self.rows: list[dict[str, Any]] = [
            {"symbol": "BTCUSDT", "sumOpenInterest": f"{80_000 + 3.5 * i:.8f}",
             "sumOpenInterestValue": f"{(80_000 + 3.5 * i) * 40_000:.8f}", "timestamp": str(first + i * period_ms)}
            for i in range(count)
        ]  # fmt: skip

    def __call__(self, p: dict[str, str]) -> list[dict[str, Any]]:
        lo, hi = int(p["startTime"]), int(p["endTime"])
        return [r for r in self.rows if lo <= int(r["timestamp"]) <= hi][-int(p.get("limit", 30)) :]


class AggTradeServer:
    def __init__(self, first: int, count: int, gap_ms: int) -> None:
        self.rows: list[dict[str, Any]] = [
            {
                "a": 1000 + i,
                "p": f"{40_000 + i * 0.1:.2f}",
                "q": f"{0.001 * (1 + i % 4):.5f}",
                "f": 5000 + 2 * i,
                "l": 5001 + 2 * i,
                "T": first + i * gap_ms + (3_600_000 if i >= count // 2 else 0),
                "m": i % 3 == 0,
            }
            for i in range(count)
        ]  # fmt: skip  (the second half comes an hour later: the fromId walk crosses quiet hours)

    def __call__(self, p: dict[str, str]) -> list[dict[str, Any]]:
        limit = int(p.get("limit", 500))
        if "fromId" in p:
            return [r for r in self.rows if r["a"] >= int(p["fromId"])][:limit]
        lo, hi = int(p["startTime"]), int(p["endTime"])
        assert hi - lo < 3_600_000, "Binance rejects aggTrades windows of an hour or more"
        return [r for r in self.rows if lo <= r["T"] <= hi][:limit]


# --- recorded responses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "instrument", "path"),
    [("Spot OHLCV with since and limit", spot("1h"), "/api/v3/klines"), ("swap ohlcv", perp("1m"), "/fapi/v1/klines")],
)
def test_ohlcv_equals_recorded_parsed_response(description: str, instrument: Instrument, path: str) -> None:
    entry = recorded_response("fetchOHLCV", description)
    replay = BinanceReplay().route(path, lambda p: entry["httpResponse"])
    parsed = entry["parsedResponse"]
    start = utc_ms(entry["input"][2]) if entry["input"][2] else utc_ms(parsed[0][0])
    end = utc_ms(parsed[-1][0]) + timedelta(minutes=1 if instrument.base_timeframe == "1m" else 60)
    df = vendor(replay, ohlcv_limit=3).fetch(instrument, start, end, DataKind.OHLCV)
    assert_canonical(df, DataKind.OHLCV, instrument.id)
    got = df.select(TS, OPEN, HIGH, LOW, CLOSE, VOLUME).rows()
    assert got == [(utc_ms(r[0]), *map(float, r[1:])) for r in parsed]
    assert len(replay.urls) == 1  # a full page that reaches `end` needs no second request
    assert query(replay.urls[0])["endTime"] == str(int(end.timestamp() * 1000) - 1)


def test_recorded_trade_is_parsed_to_canonical_row() -> None:
    entry = recorded_response("fetchTrades", "public spot trades")
    replay = BinanceReplay().route("/api/v3/aggTrades", lambda p: entry["httpResponse"] if "startTime" in p else [])
    want = entry["parsedResponse"][0]
    start = utc_ms(want["timestamp"]) - timedelta(minutes=1)
    df = vendor(replay, trades_limit=5).fetch(spot(), start, start + timedelta(minutes=2), DataKind.TRADES)
    assert_canonical(df, DataKind.TRADES, "BTCUSDT")
    assert df.select(TS, PRICE, SIZE, SIDE, TRADE_ID).rows() == [
        (utc_ms(want["timestamp"]), want["price"], want["amount"], want["side"], want["id"])
    ]


def test_request_urls_match_recorded_requests() -> None:
    """The first request of each kind is the one ccxt's own static request tests record for that call."""
    empty = BinanceReplay()
    for path in ("/api/v3/klines", "/fapi/v1/klines", "/fapi/v1/fundingRate", "/futures/data/openInterestHist",
                 "/api/v3/aggTrades"):  # fmt: skip
        empty.route(path, lambda p: [])
    v = vendor(empty)
    since, until = 1714921949000, 1725549149000
    # default page size: since + until gives ccxt's maxLimit (1000), exactly as recorded
    v.fetch(spot("1h"), utc_ms(since), utc_ms(until + 1), DataKind.OHLCV)
    max_limit = "ohlcv with since and until should use maxLimit"
    assert_matches_recorded(empty.urls[-1], recorded_url("fetchOHLCV", f"{max_limit} spot"), exact=True)
    v.fetch(perp("1h"), utc_ms(since), utc_ms(until + 1), DataKind.OHLCV)
    assert_matches_recorded(empty.urls[-1], recorded_url("fetchOHLCV", f"{max_limit} swap"), exact=True)
    small = vendor(empty, ohlcv_limit=5)
    small.fetch(perp("1m"), utc_ms(1699381234000), utc_ms(1699381234000 + 300_000), DataKind.OHLCV)
    assert_matches_recorded(empty.urls[-1], recorded_url("fetchOHLCV", "Fetch OHLCV - linear"))
    small.fetch(spot("1m"), utc_ms(1699381234000), utc_ms(1699381234000 + 300_000), DataKind.OHLCV)
    assert_matches_recorded(empty.urls[-1], recorded_url("fetchOHLCV", "Fetch OHLCV - spot"))
    v.fetch(perp(), utc_ms(since), utc_ms(until), DataKind.FUNDING)
    assert_matches_recorded(empty.urls[-1], recorded_url("fetchFundingRateHistory", "fundingRateHistory"))
    assert query(empty.urls[-1])["startTime"] == str(since)
    oi_start = NOW - timedelta(days=2)
    v.fetch(perp(), oi_start, oi_start + timedelta(hours=1), DataKind.OPEN_INTEREST)
    oi_recorded = recorded_url("fetchOpenInterestHistory", "Fetch Open Interest History - linear")
    assert_matches_recorded(empty.urls[-1], oi_recorded)
    small_trades = vendor(empty, trades_limit=5)
    small_trades.fetch(spot(), utc_ms(1699381234000), utc_ms(1699381234000 + 600_000), DataKind.TRADES)
    recorded = recorded_url("fetchTrades", "Fetch Trades - spot")
    got = query(empty.urls[-1])
    assert _endpoint(empty.urls[-1]) == _endpoint(recorded)
    assert {k: got[k] for k in ("symbol", "limit", "startTime")} == {
        k: query(recorded)[k] for k in ("symbol", "limit", "startTime")
    }
    assert int(got["endTime"]) == 1699381234000 + 600_000 - 1  # clipped to `end`, inside Binance's 1 h window


# --- pagination ----------------------------------------------------------------------------------------


def test_ohlcv_paginates_until_end_across_a_gap() -> None:
    first = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    server = KlineServer(first, 3 * 288, MIN5, missing=range(300, 310))
    replay = BinanceReplay().route("/fapi/v1/klines", server)
    start, end = utc_ms(first + 120_000), utc_ms(first + 2 * 288 * MIN5)  # start is not on the 5m grid
    df = vendor(replay, ohlcv_limit=100).fetch(perp(), start, end, DataKind.OHLCV)
    assert_canonical(df, DataKind.OHLCV, "BTCUSDT-PERP")
    expected = [b for b in server.bars if start <= utc_ms(b[0]) < end]
    assert df.height == len(expected) == 2 * 288 - 1 - 10
    assert df[TS].to_list() == [utc_ms(b[0]) for b in expected]
    assert df[CLOSE].to_list() == [float(b[4]) for b in expected]
    assert df[VOLUME].to_list() == [float(b[5]) for b in expected]
    starts = [int(query(u)["startTime"]) for u in replay.urls]
    assert len(starts) == 6  # 565 bars at 100 a page
    assert starts[0] == first + 120_000
    assert all(query(u)["endTime"] == str(first + 2 * 288 * MIN5 - 1) for u in replay.urls)
    for prev_url, nxt in zip(replay.urls, starts[1:], strict=False):
        prev_page = server(query(prev_url))
        assert nxt == prev_page[-1][0] + MIN5  # the cursor moves one bar past the last bar received


def test_ohlcv_duplicates_are_removed_keeping_the_last_revision() -> None:
    first = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    server = KlineServer(first, 50, MIN5)

    def with_revised_bar(p: dict[str, str]) -> list[list[Any]]:
        page = server(p)
        revised = list(page[10])
        revised[4] = "12345.67"
        return page[:11] + [revised] + page[11:]  # bar 10 delivered twice; the later copy wins

    replay = BinanceReplay().route("/fapi/v1/klines", with_revised_bar)
    df = vendor(replay).fetch(perp(), utc_ms(first), utc_ms(first + 50 * MIN5), DataKind.OHLCV)
    assert df.height == 50 and df[TS].is_unique().all() and df[TS].is_sorted()
    assert df[CLOSE][10] == 12345.67


def test_funding_history_is_paginated_and_typed() -> None:
    first = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1000)
    server = FundingServer(first, 40)
    replay = BinanceReplay().route("/fapi/v1/fundingRate", server)
    start, end = datetime(2024, 2, 2, 4, tzinfo=UTC), datetime(2024, 2, 12, tzinfo=UTC)
    df = vendor(replay, funding_limit=7).fetch(perp(), start, end, DataKind.FUNDING)
    assert_canonical(df, DataKind.FUNDING, "BTCUSDT-PERP")
    expected = [r for r in server.rows if start <= utc_ms(r["fundingTime"]) < end]
    assert df.height == len(expected) == 29  # 02-02 08:00 .. 02-11 16:00
    assert df[TS].to_list() == [utc_ms(r["fundingTime"]) for r in expected]
    assert df[FUNDING_RATE].to_list() == [float(r["fundingRate"]) for r in expected]
    assert set(df[TS].dt.hour().to_list()) == {0, 8, 16}
    assert len(replay.urls) == 5  # 29 events at 7 a page: 7+7+7+7+1
    assert all(query(u)["symbol"] == "BTCUSDT" for u in replay.urls)


def test_open_interest_history_uses_fixed_windows_and_base_units() -> None:
    first = int(datetime(2024, 4, 20, tzinfo=UTC).timestamp() * 1000)
    server = OpenInterestServer(first, 3 * 288, MIN5)
    replay = BinanceReplay().route("/futures/data/openInterestHist", server)
    start, end = utc_ms(first), utc_ms(first + 3 * 288 * MIN5)
    df = vendor(replay, open_interest_limit=100).fetch(perp(), start, end, DataKind.OPEN_INTEREST)
    assert_canonical(df, DataKind.OPEN_INTEREST, "BTCUSDT-PERP")
    assert df.height == 864 and df[TS].is_unique().all()
    assert df[OPEN_INTEREST].to_list() == [float(r["sumOpenInterest"]) for r in server.rows]
    assert len(replay.urls) == 9  # 864 / 100, rounded up
    assert all(query(u)["period"] == "5m" and query(u)["limit"] == "100" for u in replay.urls)
    hourly = BinanceReplay().route("/futures/data/openInterestHist", OpenInterestServer(first, 72, 3_600_000))
    df_h = vendor(hourly).fetch(perp("1h"), start, end, DataKind.OPEN_INTEREST)
    assert df_h.height == 72 and query(hourly.urls[0])["period"] == "1h"


def test_open_interest_older_than_binance_retention_is_clipped() -> None:
    first = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    server = OpenInterestServer(first, 40 * 288, MIN5)
    replay = BinanceReplay().route("/futures/data/openInterestHist", server)
    now = datetime(2024, 4, 9, 12, tzinfo=UTC)
    v = vendor(replay, clock=lambda: now)
    df = v.fetch(perp(), utc_ms(first), now, DataKind.OPEN_INTEREST)
    oldest = now - timedelta(days=30) + timedelta(minutes=5)
    assert df[TS].min() == oldest
    assert df[TS].max() == now - timedelta(minutes=5)
    assert min(int(query(u)["startTime"]) for u in replay.urls) == int(oldest.timestamp() * 1000)
    before = len(replay.urls)
    assert v.fetch(perp(), utc_ms(first), utc_ms(first) + timedelta(days=5), DataKind.OPEN_INTEREST).is_empty()
    assert len(replay.urls) == before  # nothing Binance could serve: no request at all


def test_trades_walk_hour_windows_then_from_id() -> None:
    first = int(datetime(2024, 3, 13, 10, 30, tzinfo=UTC).timestamp() * 1000)
    server = AggTradeServer(first, 60, 250)
    replay = BinanceReplay().route("/api/v3/aggTrades", server)
    start = utc_ms(first) - timedelta(hours=2)
    end = utc_ms(server.rows[-5]["T"])  # the last four trades are at or after `end`
    df = vendor(replay, trades_limit=8).fetch(spot(), start, end, DataKind.TRADES)
    assert_canonical(df, DataKind.TRADES, "BTCUSDT")
    expected = server.rows[:-5]
    assert df[TRADE_ID].to_list() == [str(r["a"]) for r in expected]
    assert df[PRICE].to_list() == [float(r["p"]) for r in expected]
    assert df[SIDE].to_list() == ["sell" if r["m"] else "buy" for r in expected]
    windows = [u for u in replay.urls if "startTime" in query(u)]
    assert len(windows) == 3  # two empty hours, then the hour with the first trade
    assert all("fromId" in query(u) for u in replay.urls[3:])


def test_spot_has_no_funding_or_open_interest_and_makes_no_request() -> None:
    replay = BinanceReplay()
    v = vendor(replay)
    for kind in (DataKind.FUNDING, DataKind.OPEN_INTEREST):
        df = v.fetch(spot(), NOW - timedelta(days=1), NOW, kind)
        assert df.is_empty() and df.schema == RAW_SCHEMAS[kind]
    assert replay.urls == []


# --- retries and errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [ccxt.NetworkError, ccxt.RequestTimeout, ccxt.DDoSProtection, ccxt.ExchangeNotAvailable]
)
def test_transient_errors_are_retried_with_exponential_backoff(error: type[Exception]) -> None:
    first = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    replay = BinanceReplay().route("/fapi/v1/klines", KlineServer(first, 12, MIN5))
    replay.failures = [error("connection reset"), error("connection reset")]
    sleeps: list[float] = []
    v = vendor(replay, max_retries=3, base_delay=0.5, sleep=sleeps.append)
    df = v.fetch(perp(), utc_ms(first), utc_ms(first + 12 * MIN5), DataKind.OHLCV)
    assert df.height == 12
    assert sleeps == [0.5, 1.0]
    assert len(replay.urls) == 3 and len(set(replay.urls)) == 1  # the same request, retried


def test_retries_with_zero_delay_still_recover() -> None:
    first = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    replay = BinanceReplay().route("/fapi/v1/fundingRate", FundingServer(first, 3))
    replay.failures = [ccxt.NetworkError("boom"), ccxt.NetworkError("boom")]
    df = vendor(replay, max_retries=2).fetch(perp(), utc_ms(first), utc_ms(first) + timedelta(days=1), DataKind.FUNDING)
    assert df.height == 3


def test_persistent_failure_raises_vendor_error_naming_the_request() -> None:
    replay = BinanceReplay().route("/api/v3/klines", lambda p: [])
    replay.failures = [ccxt.RequestTimeout(f"binance GET timed out #{i}") for i in range(10)]
    sleeps: list[float] = []
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    with pytest.raises(VendorError) as info:
        vendor(replay, max_retries=3, base_delay=2.0, max_delay=5.0, sleep=sleeps.append).fetch(
            spot(), start, end, DataKind.OHLCV
        )
    msg = str(info.value)
    for part in ("ccxt", "BTC/USDT", "ohlcv", start.isoformat(), end.isoformat(), "4 attempts", "RequestTimeout"):
        assert part in msg, (part, msg)
    assert len(replay.urls) == 4
    assert sleeps == [2.0, 4.0, 5.0]  # exponential, capped at max_delay


def test_non_transient_exchange_error_is_not_retried() -> None:
    replay = BinanceReplay().route("/fapi/v1/fundingRate", lambda p: [])
    replay.failures = [ccxt.BadRequest('binance {"code":-1130,"msg":"Data sent for parameter is not valid."}')]
    with pytest.raises(VendorError, match=r"funding .*BadRequest.*-1130"):
        vendor(replay, max_retries=5).fetch(perp(), NOW - timedelta(days=1), NOW, DataKind.FUNDING)
    assert len(replay.urls) == 1


def test_symbol_errors_are_clear() -> None:
    v = vendor(BinanceReplay())
    unknown = spot().model_copy(update={"symbol": "NOPE/USDT"})
    with pytest.raises(VendorError, match=r"unknown ccxt symbol 'NOPE/USDT'"):
        v.fetch(unknown, NOW - timedelta(days=1), NOW, DataKind.OHLCV)
    wrong = perp().model_copy(update={"symbol": "BTC/USDT"})
    with pytest.raises(VendorError, match=r"perp but 'BTC/USDT' is not a USDT-margined perpetual"):
        v.fetch(wrong, NOW - timedelta(days=1), NOW, DataKind.OHLCV)
    with pytest.raises(ValueError, match="timezone-aware"):
        v.fetch(spot(), datetime(2024, 1, 1), datetime(2024, 1, 2), DataKind.OHLCV)


def test_window_is_clipped_to_the_instruments_life() -> None:
    first = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
    replay = BinanceReplay().route("/fapi/v1/klines", KlineServer(first, 3 * 288, MIN5))
    inst = perp().model_copy(update={"start": date(2024, 3, 2), "end": date(2024, 3, 2)})
    df = vendor(replay).fetch(inst, utc_ms(first), utc_ms(first) + timedelta(days=3), DataKind.OHLCV)
    assert df.height == 288
    assert df[TS].min() == datetime(2024, 3, 2, tzinfo=UTC) and df[TS].max() == datetime(2024, 3, 2, 23, 55, tzinfo=UTC)


def test_default_exchange_is_rate_limited_and_credentials_are_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("QLAKE_BINANCE_API_KEY", "key-0123456789")
    monkeypatch.setenv("QLAKE_BINANCE_API_SECRET", "secret-abcdefghij")
    caplog.set_level(logging.DEBUG)
    v = CcxtBinanceVendor(max_retries=0)
    ex = v.exchange
    assert isinstance(ex, ccxt.binance)
    assert ex.enableRateLimit is True
    assert (ex.apiKey, ex.secret) == ("key-0123456789", "secret-abcdefghij")
    ex.set_markets(MARKETS["markets"])
    ex.fetch = BinanceReplay().route("/api/v3/klines", lambda p: []).fetch
    v.fetch(spot(), NOW - timedelta(hours=1), NOW, DataKind.OHLCV)
    shown = caplog.text + repr(v) + str(v)
    assert "key-0123456789" not in shown and "secret-abcdefghij" not in shown
    monkeypatch.delenv("QLAKE_BINANCE_API_KEY")
    assert not CcxtBinanceVendor().exchange.apiKey  # public data needs no credentials


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="ohlcv_limit"):
        CcxtBinanceVendor(ohlcv_limit=0)
    with pytest.raises(ValueError, match="open_interest_period"):
        CcxtBinanceVendor(open_interest_period="1m")
    with pytest.raises(ValueError, match="max_retries"):
        CcxtBinanceVendor(max_retries=-1)
