"""YFinanceVendor fed with DataFrames recorded from yfinance's own `Ticker.history` (yfinance's tests/data).

A recorded Ticker stands in for `yf.Ticker`: it answers `history(...)` with the recorded frame sliced by Yahoo's
start-inclusive / end-exclusive date rules, and remembers the arguments so the request itself is checked.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from yfinance import utils as yf_utils
from yfinance.exceptions import YFPricesMissingError, YFRateLimitError, YFTzMissingError

from lake_assets.specs import Instrument
from lake_assets.vendors.base import VendorError
from lake_assets.vendors.yfinance_vendor import YFinanceVendor, history_to_raw, missing_dividend_adjustments
from lake_assets.vocabulary import CLOSE, HIGH, LOW, OPEN, RAW_SCHEMAS, TS, VOLUME, DataKind, Market

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "vendors" / "yfinance"
NOW = datetime(2024, 9, 1, tzinfo=UTC)


def load(name: str, index_col: str, tz: str) -> pd.DataFrame:
    """As the fixture README says: parse as UTC, then back to the exchange's zone."""
    df = pd.read_csv(DATA / name, index_col=index_col)
    df.index = pd.to_datetime(df.index, utc=True).tz_convert(tz)
    return df


CALM = load("CALM-1d-no-bad-divs.csv", "Datetime", "America/New_York")
TRA_BAD = load("8TRA-DE-1d-missing-div-adjust.csv", "Date", "Europe/Berlin")
TRA_FIXED = load("8TRA-DE-1d-missing-div-adjust-fixed.csv", "Date", "Europe/Berlin")


class RecordedTicker:
    """`yf.Ticker` replaced by a recording; `history` keeps yfinance's argument names and date semantics."""

    def __init__(self, frames: dict[str, pd.DataFrame], calls: list[dict[str, Any]], errors: list[Exception]):
        self.frames, self.calls, self.errors = frames, calls, errors

    def factory(self, symbol: str) -> RecordedTicker:
        self.symbol = symbol
        return self

    def history(self, **kwargs: Any) -> pd.DataFrame:
        self.calls.append({"symbol": self.symbol, **kwargs})
        if self.errors:
            raise self.errors.pop(0)
        if self.symbol not in self.frames:
            raise YFTzMissingError(self.symbol)
        df = self.frames[self.symbol]
        days = pd.Index(df.index.date)
        sel = df.loc[(days >= kwargs["start"]) & (days < kwargs["end"])]
        if sel.empty:
            raise YFPricesMissingError(self.symbol, f"(1d {kwargs['start']} -> {kwargs['end']})")
        return sel if not kwargs["auto_adjust"] else yf_utils.auto_adjust(sel)


def make(adjust: bool = True, errors: list[Exception] | None = None, **kwargs: Any) -> tuple[YFinanceVendor, list]:
    calls: list[dict[str, Any]] = []
    rec = RecordedTicker({"CALM": CALM, "8TRA.DE": TRA_FIXED, "8TRA.BAD": TRA_BAD}, calls, errors or [])
    kwargs.setdefault("base_delay", 0.0)
    return YFinanceVendor(adjust=adjust, ticker_factory=rec.factory, clock=lambda: NOW, **kwargs), calls


def equity(symbol: str = "CALM", tf: str = "1d") -> Instrument:
    return Instrument(id="CALM", vendor="yfinance", market=Market.EQUITY, base_timeframe=tf, start=date(2000, 1, 1),
                      symbol=symbol, calendar="XNYS")  # fmt: skip


FULL = (datetime(2022, 1, 1, tzinfo=UTC), datetime(2024, 9, 1, tzinfo=UTC))


def test_calm_full_history_row_count_schema_and_utc_session_dates() -> None:
    v, calls = make()
    df = v.fetch(equity(), *FULL, DataKind.OHLCV)
    assert df.schema == RAW_SCHEMAS[DataKind.OHLCV]
    assert df.height == 662
    assert df[TS][0] == datetime(2022, 1, 3, tzinfo=UTC)
    assert df[TS][-1] == datetime(2024, 8, 21, tzinfo=UTC)
    # exchange-local midnights (-05:00 and -04:00 across DST) all become the session date at 00:00 UTC
    assert (df[TS].dt.hour() == 0).all() and df[TS].is_sorted() and df[TS].is_unique().all()
    assert df[TS].dt.date().to_list() == list(CALM.index.date)
    assert df["instrument"].unique().to_list() == ["CALM"] and df["vendor"].unique().to_list() == ["yfinance"]
    assert df["ingested_at"].unique().to_list() == [NOW]
    assert df[VOLUME].to_list() == CALM["Volume"].astype(float).tolist()
    (call,) = calls
    assert call["symbol"] == "CALM" and call["interval"] == "1d"
    assert call["auto_adjust"] is False and call["actions"] is True and call["raise_errors"] is True
    assert (call["start"], call["end"]) == (date(2022, 1, 1), date(2024, 9, 1))


def test_adjusted_prices_equal_yfinance_auto_adjust_and_raw_prices_are_untouched() -> None:
    adjusted = make(adjust=True)[0].fetch(equity(), *FULL, DataKind.OHLCV)
    raw = make(adjust=False)[0].fetch(equity(), *FULL, DataKind.OHLCV)
    reference = yf_utils.auto_adjust(CALM)  # yfinance's own adjustment, the reference implementation
    for col, src in ((OPEN, "Open"), (HIGH, "High"), (LOW, "Low"), (CLOSE, "Close")):
        np.testing.assert_allclose(adjusted[col].to_numpy(), reference[src].to_numpy(), rtol=1e-12)
        np.testing.assert_array_equal(raw[col].to_numpy(), CALM[src].to_numpy())
    np.testing.assert_array_equal(adjusted[CLOSE].to_numpy(), CALM["Adj Close"].to_numpy())
    assert (adjusted[CLOSE] < raw[CLOSE]).sum() > 600  # dividends before the last ex-date shrink history
    assert adjusted[CLOSE][-1] == raw[CLOSE][-1]  # nothing to adjust after the last dividend


def test_month_window_slice_matches_the_trading_days() -> None:
    v, calls = make()
    df = v.fetch(equity(), datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC), DataKind.OHLCV)
    assert df.height == 20  # NYSE January 2023: 20 sessions (2nd and 16th closed)
    assert df[TS].min() == datetime(2023, 1, 3, tzinfo=UTC) and df[TS].max() == datetime(2023, 1, 31, tzinfo=UTC)
    assert (calls[0]["start"], calls[0]["end"]) == (date(2023, 1, 1), date(2023, 2, 1))
    # an intraday `end` still includes the session of that day's date only if its 00:00 UTC stamp is before `end`
    df2 = v.fetch(
        equity(), datetime(2023, 1, 3, 12, tzinfo=UTC), datetime(2023, 1, 5, 0, 1, tzinfo=UTC), DataKind.OHLCV
    )
    assert df2[TS].to_list() == [datetime(2023, 1, 4, tzinfo=UTC), datetime(2023, 1, 5, tzinfo=UTC)]


def test_dividend_adjustment_on_the_8tra_pair(caplog: pytest.LogCaptureFixture) -> None:
    start, end = datetime(2023, 5, 29, tzinfo=UTC), datetime(2023, 6, 7, tzinfo=UTC)
    inst = equity("8TRA.DE")
    fixed = make()[0].fetch(inst, start, end, DataKind.OHLCV)
    raw = make(adjust=False)[0].fetch(inst, start, end, DataKind.OHLCV)
    assert fixed.height == raw.height == 5
    assert fixed[TS].to_list()[2] == datetime(2023, 6, 2, tzinfo=UTC)  # +02:00 midnight -> same date, 00:00 UTC
    factor = (fixed[CLOSE] / raw[CLOSE]).to_numpy()
    # before the 0.70 ex-date every price is scaled by 1 - D / Close(the day before the ex-date) ...
    np.testing.assert_allclose(factor[:2], 1 - 0.7 / raw[CLOSE][1], rtol=1e-6)
    np.testing.assert_allclose((fixed[OPEN] / raw[OPEN]).to_numpy()[:2], factor[:2], rtol=1e-12)
    # ... and not from the ex-date on
    np.testing.assert_allclose(factor[2:], 1.0, rtol=1e-12)
    assert missing_dividend_adjustments(TRA_FIXED) == []
    # the "bad" recording has Adj Close == Close across the dividend: used as delivered, but flagged
    caplog.set_level(logging.WARNING)
    bad = make()[0].fetch(equity("8TRA.BAD"), start, end, DataKind.OHLCV)
    np.testing.assert_array_equal(bad[CLOSE].to_numpy(), TRA_BAD["Close"].to_numpy())
    assert missing_dividend_adjustments(TRA_BAD) == [date(2023, 6, 2)]
    assert "did not adjust for the dividend on 2023-06-02" in caplog.text
    assert missing_dividend_adjustments(CALM) == []  # yfinance marks CALM as clean


def test_intraday_index_is_converted_to_utc_bar_open() -> None:
    idx = pd.date_range("2024-03-08 09:30", periods=4, freq="5min", tz="America/New_York")
    hist = pd.DataFrame({"Open": [1.0, 2, 3, 4], "High": [2.0, 3, 4, 5], "Low": [0.5, 1, 2, 3],
                         "Close": [1.5, 2.5, 3.5, 4.5], "Adj Close": [1.5, 2.5, 3.5, 4.5], "Volume": [10, 0, 5, 7]},
                        index=idx)  # fmt: skip
    out = history_to_raw(hist, daily=False, adjust=True)
    assert out[TS].to_list()[0] == datetime(2024, 3, 8, 14, 30, tzinfo=UTC)  # EST = UTC-5
    assert out.schema[TS] == pl.Datetime("us", "UTC")
    hist.iloc[1, :4] = np.nan  # a Yahoo placeholder row: dropped, not filled
    assert history_to_raw(hist, daily=False, adjust=False).height == 3
    with pytest.raises(ValueError, match=r"lacks columns \['Adj Close'\]"):
        history_to_raw(hist.drop(columns="Adj Close"), daily=True, adjust=True)
    # through the adapter: 5m bars are requested as such, with the exact UTC instants, and clipped to [start, end)
    calls: list[dict[str, Any]] = []

    class IntradayTicker:
        def history(self, **kwargs: Any) -> pd.DataFrame:
            calls.append(kwargs)
            return hist

    v = YFinanceVendor(ticker_factory=lambda symbol: IntradayTicker(), clock=lambda: NOW)
    start, end = datetime(2024, 3, 8, 14, 35, tzinfo=UTC), datetime(2024, 3, 8, 14, 45, tzinfo=UTC)
    df = v.fetch(equity(tf="5m"), start, end, DataKind.OHLCV)
    assert df[TS].to_list() == [datetime(2024, 3, 8, 14, 40, tzinfo=UTC)]  # 14:35 is the placeholder row
    assert (calls[0]["interval"], calls[0]["start"], calls[0]["end"]) == ("5m", start, end)
    assert df.schema == RAW_SCHEMAS[DataKind.OHLCV]


def test_other_kinds_are_empty_and_unsupported_timeframes_are_errors() -> None:
    v, calls = make()
    for kind in (DataKind.FUNDING, DataKind.OPEN_INTEREST, DataKind.TRADES):
        df = v.fetch(equity(), *FULL, kind)
        assert df.is_empty() and df.schema == RAW_SCHEMAS[kind]
    assert calls == []
    with pytest.raises(VendorError, match=r"yfinance: CALM .*no 4h bars"):
        v.fetch(equity(tf="4h"), *FULL, DataKind.OHLCV)


def test_empty_ranges_unknown_symbols_and_retries() -> None:
    v, _ = make()
    weekend = v.fetch(equity(), datetime(2023, 1, 14, tzinfo=UTC), datetime(2023, 1, 16, tzinfo=UTC), DataKind.OHLCV)
    assert weekend.is_empty() and weekend.schema == RAW_SCHEMAS[DataKind.OHLCV]
    with pytest.raises(VendorError, match=r"vendor yfinance: NOPE .*no timezone found"):
        v.fetch(equity("NOPE"), *FULL, DataKind.OHLCV)
    sleeps: list[float] = []
    flaky, calls = make(errors=[YFRateLimitError(), ConnectionError("reset")], base_delay=1.5, sleep=sleeps.append)
    assert flaky.fetch(equity(), *FULL, DataKind.OHLCV).height == 662
    assert len(calls) == 3 and sleeps == [1.5, 3.0]
    down, calls = make(errors=[YFRateLimitError()] * 5, max_retries=2)
    with pytest.raises(VendorError, match=r"CALM .*gave up after 3 attempts.*YFRateLimitError"):
        down.fetch(equity(), *FULL, DataKind.OHLCV)
    assert len(calls) == 3
