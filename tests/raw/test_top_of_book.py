"""Top of book: the synthetic spread/depth process, Binance book ticker / order book mapping (recorded responses),
the book-ticker landing reader, bars carrying the quote, and the cost model's real half-spread."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import polars as pl

from lake_assets.backtests.costs import HALF_SPREAD, CostProfile, cost_inputs
from lake_assets.cleaned.bars import build_bars, resample_bars
from lake_assets.specs import Instrument
from lake_assets.vendors.book_ticker_files import book_ticker_bars
from lake_assets.vendors.ccxt_binance import CcxtBinanceVendor, order_book_row
from lake_assets.vendors.synthetic import SyntheticVendor, _market_regime, _month_index
from lake_assets.vendors.trade_files import TradeFilesVendor
from lake_assets.vocabulary import ASK, ASK_SIZE, BID, BID_SIZE, CLOSE, INGESTED_AT, TS, DataKind, Market

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vendors"
JAN, MAR = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)


def perp() -> Instrument:
    return Instrument(id="TESTUSDT-PERP", vendor="synthetic", market="perp", spot="TESTUSDT", start=JAN.date(),
                      params={"seed": 5, "base_price": 100.0})  # fmt: skip


def test_synthetic_top_of_book_spread_and_depth_process() -> None:
    df = SyntheticVendor(as_of=MAR).fetch(perp(), JAN, MAR, DataKind.OHLCV).unique(TS, keep="first").sort(TS)
    assert df.select(pl.col(BID, ASK, BID_SIZE, ASK_SIZE).null_count()).row(0) == (0, 0, 0, 0)
    assert (df[BID] < df[ASK]).all() and (df[BID_SIZE] > 0).all() and (df[ASK_SIZE] > 0).all()
    mid = (df[BID] + df[ASK]) / 2
    assert ((mid / df[CLOSE] - 1).abs() < 1e-12).all()  # quoted around the bar's close
    spread = ((df[ASK] - df[BID]) / mid * 1e4).to_numpy()
    jan = df[TS].dt.month().to_numpy() == 1
    high = _market_regime(_month_index(date(2026, 1, 1)), int(jan.sum() + 40))  # Jan bars (the vendor dropped a few)
    minute = ((df[TS].filter(pl.Series(jan)) - JAN).dt.total_minutes() // 5).to_numpy()
    hv = high[minute]
    assert np.median(spread[jan][hv]) > 2 * np.median(spread[jan][~hv])  # wider in high volatility
    assert spread.max() > 8 * np.median(spread)  # blowouts
    depth = (df[BID_SIZE] + df[ASK_SIZE]).to_numpy()
    assert np.quantile(depth, 0.002) < 0.2 * np.median(depth)  # depth collapses


def test_synthetic_top_of_book_is_deterministic() -> None:
    a = SyntheticVendor(as_of=MAR).fetch(perp(), JAN, MAR, DataKind.OHLCV).drop(INGESTED_AT)
    b = SyntheticVendor(as_of=MAR).fetch(perp(), JAN, MAR, DataKind.OHLCV).drop(INGESTED_AT)
    assert a.equals(b)


class _Replay:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.urls = answers, []

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.urls.append(url)
        return next(v for k, v in self.answers.items() if k in url)


def _exchange(answers: dict[str, Any]) -> Any:
    responses = json.loads((FIXTURES / "ccxt_binance_responses.json").read_text())
    markets = json.loads((FIXTURES / "ccxt_binance_markets.json").read_text())
    ex = ccxt.binance({"options": responses["options"]})
    ex.set_markets(markets["markets"])
    ex.rateLimit = 1
    ex.fetch = _Replay(answers).fetch
    return ex


def _spot() -> Instrument:
    return Instrument(id="BTCUSDT", vendor="ccxt", market=Market.SPOT, base_timeframe="1h", start=date(2020, 1, 1),
                      symbol="BTC/USDT")  # fmt: skip


def test_ccxt_book_ticker_from_the_recorded_ticker() -> None:
    responses = json.loads((FIXTURES / "ccxt_binance_responses.json").read_text())
    entry = responses["methods"]["fetchTicker"][0]
    now = datetime(2024, 3, 13, 12, tzinfo=UTC)
    vendor = CcxtBinanceVendor(_exchange({"ticker/24hr": entry["httpResponse"]}), clock=lambda: now)
    row = vendor.top_of_book(_spot()).row(0, named=True)
    parsed = entry["parsedResponse"]
    assert (row[BID], row[ASK], row[BID_SIZE], row[ASK_SIZE]) == (
        parsed["bid"], parsed["ask"], parsed["bidVolume"], parsed["askVolume"]
    )
    assert row[TS] == datetime(2024, 3, 13, 11, 10, 45, 391000, tzinfo=UTC)


def test_ccxt_order_book_snapshot_sums_the_levels() -> None:
    # Binance's documented GET /api/v3/depth shape; ccxt parses it into its unified order book
    depth = {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"], ["3.99", "9.0"]],
             "asks": [["4.00000200", "12.00000000"], ["4.1", "3.0"]]}  # fmt: skip
    now = datetime(2024, 3, 13, 12, tzinfo=UTC)
    vendor = CcxtBinanceVendor(_exchange({"/depth": depth}), clock=lambda: now)
    row = vendor.top_of_book(_spot(), depth_levels=5).row(0, named=True)
    assert (row[BID], row[ASK], row[BID_SIZE], row[ASK_SIZE]) == (4.0, 4.000002, 440.0, 15.0)
    assert row[TS] == now  # a spot depth snapshot has no time of its own
    assert order_book_row({"bids": [], "asks": []})[BID] is None


def test_book_ticker_landing_reader(tmp_path: Path) -> None:
    folder = tmp_path / "book_ticker" / "XUSDT"
    folder.mkdir(parents=True)
    t0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    lines = ["update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"]
    lines += [f"{i},{100 + i},{1 + i},{100.5 + i},{2 + i},{t0 + i * 120_000},{t0 + i * 120_000}" for i in range(6)]
    lines += ["7,garbage,1,2,3,x,y", f"8,101,1,100,1,{t0},{t0}"]  # unparseable; crossed
    (folder / "XUSDT-bookTicker-2026-01-01.csv").write_text("\n".join(lines) + "\n")
    scan = book_ticker_bars(tmp_path / "book_ticker", "XUSDT", "5m", JAN, JAN + timedelta(hours=1))
    assert scan.lines == 8 and scan.malformed == 2
    # updates at 0, 2, 4 | 6, 8 | 10 minutes: each bar takes its last update
    assert scan.bars[BID].to_list() == [102.0, 104.0, 105.0]
    assert scan.bars[ASK_SIZE].to_list() == [4.0, 6.0, 7.0]


def test_trade_files_candles_get_the_book_ticker(tmp_path: Path) -> None:
    trades = tmp_path / "trade_files" / "XUSDT"
    trades.mkdir(parents=True)
    t0 = int(JAN.timestamp() * 1000)
    (trades / "t.csv").write_text("time,price,qty,side\n" + "".join(
        f"{t0 + i * 60_000},{100 + i},1,buy\n" for i in range(10)))  # fmt: skip
    book = tmp_path / "book_ticker" / "XUSDT"
    book.mkdir(parents=True)
    (book / "b.csv").write_text(f"ts,bid,ask,bid_size,ask_size\n{t0 + 1000},99.9,100.1,5,6\n")
    inst = Instrument(id="XUSDT", vendor="trade_files", market="spot", start=JAN.date(), end=date(2026, 1, 31))
    bars = TradeFilesVendor(tmp_path / "trade_files").fetch(inst, JAN, JAN + timedelta(hours=1), DataKind.OHLCV)
    assert bars[BID].to_list() == [99.9, None]
    assert bars[ASK_SIZE].to_list() == [6.0, None]


def test_bars_carry_the_quote_and_drop_crossed_ones() -> None:
    step = timedelta(minutes=5)
    raw = pl.DataFrame({
        TS: [JAN + i * step for i in range(4)], "open": [100.0] * 4, "high": [101.0] * 4, "low": [99.0] * 4,
        "close": [100.0] * 4, "volume": [1.0] * 4, BID: [99.9, 99.8, 100.2, 99.9], ASK: [100.1, 100.2, 100.1, 100.1],
        BID_SIZE: [1.0, 2.0, 3.0, 4.0], ASK_SIZE: [1.0, 1.0, 1.0, 1.0],
    }).with_columns(pl.col(TS).dt.cast_time_unit("us"))  # fmt: skip
    bars = build_bars(raw, instrument="X", timeframe="5m", start=JAN, end=JAN + 4 * step)
    assert bars[BID].to_list() == [99.9, 99.8, None, 99.9]  # bar 2's book is crossed: no quote
    assert bars[BID_SIZE].to_list() == [1.0, 2.0, None, 4.0]
    hourly = resample_bars(bars, "1h")
    assert hourly[BID].to_list() == [99.9] and hourly[BID_SIZE].to_list() == [4.0]


def test_cost_model_uses_the_previous_quote_as_half_spread() -> None:
    bars = pl.DataFrame({
        TS: [JAN + timedelta(minutes=5 * i) for i in range(3)], "instrument": ["X"] * 3, CLOSE: [100.0] * 3,
        "volume": [1.0] * 3, BID: [99.0, 99.9, None], ASK: [101.0, 100.1, None],
    })  # fmt: skip
    out = cost_inputs(bars, CostProfile(default_spread_bps=4.0))
    assert np.allclose(out[HALF_SPREAD].to_list(), [2e-4, 0.01, 0.001], rtol=1e-12)
