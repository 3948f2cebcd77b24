"""PackagedVendor over the real S&P 500 / NASDAQ daily series shipped in `arch.data`."""

from __future__ import annotations

from datetime import UTC, date, datetime

import arch.data.nasdaq
import arch.data.sp500
import numpy as np
import pytest

from lake_assets.specs import Instrument
from lake_assets.vendors.base import VendorError
from lake_assets.vendors.packaged import DATASETS, PackagedVendor, load_dataset
from lake_assets.vocabulary import CLOSE, HIGH, LOW, OPEN, RAW_SCHEMAS, TOP_OF_BOOK, TS, VOLUME, DataKind

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALL = (datetime(1990, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))


def index(symbol: str = "sp500", inst_id: str = "SPX", **kw: object) -> Instrument:
    return Instrument.model_validate(
        {"id": inst_id, "vendor": "packaged", "market": "index", "base_timeframe": "1d", "start": date(1990, 1, 1),
         "symbol": symbol, "calendar": "XNYS", **kw}
    )  # fmt: skip


def vendor() -> PackagedVendor:
    return PackagedVendor(clock=lambda: NOW)


def test_sp500_full_series_schema_and_values() -> None:
    df = vendor().fetch(index(), *ALL, DataKind.OHLCV)
    assert df.schema == RAW_SCHEMAS[DataKind.OHLCV]
    assert df.height == 5031
    assert df[TS][0] == datetime(1999, 1, 4, tzinfo=UTC) and df[TS][-1] == datetime(2018, 12, 31, tzinfo=UTC)
    assert df[TS].is_sorted() and df[TS].is_unique().all() and (df[TS].dt.hour() == 0).all()
    assert df["instrument"].unique().to_list() == ["SPX"] and df["vendor"].unique().to_list() == ["packaged"]
    assert df["ingested_at"].unique().to_list() == [NOW]
    src = arch.data.sp500.load()
    for col, name in ((OPEN, "Open"), (HIGH, "High"), (LOW, "Low"), (CLOSE, "Close"), (VOLUME, "Volume")):
        np.testing.assert_array_equal(df[col].to_numpy(), src[name].to_numpy(dtype=float))
    quotes = [c for c in TOP_OF_BOOK if c in df.columns]  # the packaged indices have no top of book: all null
    assert df.drop(quotes).null_count().sum_horizontal().item() == 0
    assert df.select(quotes).null_count().row(0) == (df.height,) * len(quotes)
    assert ((df[HIGH] >= df[LOW]) & (df[HIGH] >= df[CLOSE]) & (df[LOW] <= df[OPEN])).all()


def test_window_slice_is_start_inclusive_end_exclusive() -> None:
    v = vendor()
    df = v.fetch(index(), datetime(2008, 9, 15, tzinfo=UTC), datetime(2008, 10, 1, tzinfo=UTC), DataKind.OHLCV)
    assert df[TS].to_list()[0] == datetime(2008, 9, 15, tzinfo=UTC)
    assert df[TS].to_list()[-1] == datetime(2008, 9, 30, tzinfo=UTC)
    assert df.height == 12  # 15..30 September 2008, weekdays, no holiday
    assert df[CLOSE][0] == pytest.approx(1192.70, abs=0.01)  # the Lehman Monday close
    month = v.fetch(index(), datetime(2018, 12, 1, tzinfo=UTC), datetime(2019, 1, 1, tzinfo=UTC), DataKind.OHLCV)
    assert month.height == 19  # Dec 2018: 5th (Bush funeral) and 25th closed
    empty = v.fetch(index(), datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 2, 1, tzinfo=UTC), DataKind.OHLCV)
    assert empty.is_empty() and empty.schema == RAW_SCHEMAS[DataKind.OHLCV]


def test_window_is_clipped_to_the_instruments_life_and_nasdaq_loads() -> None:
    spx = index(start=date(2016, 1, 1), end=date(2018, 12, 31))
    df = vendor().fetch(spx, *ALL, DataKind.OHLCV)
    assert (
        df[TS].min() == datetime(2016, 1, 4, tzinfo=UTC) and df.height == 754
    )  # 252 + 251 + 251 sessions in 2016-2018
    ndx = vendor().fetch(index("nasdaq", "NDX"), *ALL, DataKind.OHLCV)
    assert ndx.height == 5031 and ndx["instrument"].unique().to_list() == ["NDX"]
    np.testing.assert_array_equal(ndx[CLOSE].to_numpy(), arch.data.nasdaq.load()["Close"].to_numpy())


def test_other_kinds_are_empty_frames_of_their_schema() -> None:
    for kind in (DataKind.FUNDING, DataKind.OPEN_INTEREST, DataKind.TRADES):
        df = vendor().fetch(index(), *ALL, kind)
        assert df.is_empty() and df.schema == RAW_SCHEMAS[kind]


def test_unknown_symbol_error_lists_the_known_ones() -> None:
    with pytest.raises(
        VendorError, match=r"instrument DAX: unknown symbol 'dax'; known symbols: \['nasdaq', 'sp500'\]"
    ):
        vendor().fetch(index("dax", "DAX"), *ALL, DataKind.OHLCV)
    with pytest.raises(VendorError, match="known symbols"):
        load_dataset("ftse")
    with pytest.raises(ValueError, match="timezone-aware"):
        vendor().fetch(index(), datetime(2000, 1, 1), datetime(2001, 1, 1), DataKind.OHLCV)


def test_loaded_frame_is_cached_per_process() -> None:
    assert set(DATASETS) == {"sp500", "nasdaq"}
    assert load_dataset("sp500") is load_dataset("sp500")
    before = load_dataset.cache_info().hits
    vendor().fetch(index(), *ALL, DataKind.OHLCV)
    assert load_dataset.cache_info().hits == before + 1
