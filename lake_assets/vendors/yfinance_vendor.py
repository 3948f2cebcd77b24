"""Equity and index OHLCV from Yahoo Finance through `yfinance`.

Prices: the vendor always asks yfinance for raw OHLC plus `Adj Close` (auto_adjust=False) and adjusts itself, so
the choice is explicit and checkable. With `adjust=True` (the default) open/high/low/close are scaled by
Adj Close / Close, the split- and dividend-adjusted series yfinance's own `auto_adjust` produces (Yahoo's Close is
already split-adjusted; volume is left as delivered). With `adjust=False` the canonical columns hold Yahoo's
unadjusted-for-dividends OHLC. A dividend Yahoo forgot to adjust for is logged (`repair=True` asks yfinance to fix it).

Timestamps: a daily bar's ts is its exchange-local session DATE at 00:00 UTC (an NYSE session of 2024-08-21 is
2024-08-21T00:00Z, not 04:00Z), so daily bars line up across exchanges and time zones. Intraday bars are the
tz-aware bar-open instants converted to UTC. Funding, open interest and trades do not exist here: empty frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from lake_assets.specs import Instrument
from lake_assets.vendors.base import VendorError
from lake_assets.vocabulary import (
    CLOSE,
    HIGH,
    INGESTED_AT,
    INSTRUMENT,
    LOW,
    OPEN,
    RAW_SCHEMAS,
    TS,
    VENDOR,
    VOLUME,
    DataKind,
    conform,
)

log = logging.getLogger(__name__)

# qlake base timeframe -> yfinance interval; Yahoo has no 4h bars.
INTERVALS = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1h", "1d": "1d"}
PRICE_COLUMNS = ("Open", "High", "Low", "Close")


def _default_ticker_factory(symbol: str) -> Any:
    import yfinance as yf

    return yf.Ticker(symbol)


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying: Yahoo rate limiting and network failures of the HTTP client yfinance uses."""
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    try:
        from yfinance.exceptions import YFRateLimitError

        errors.append(YFRateLimitError)
    except ImportError:  # pragma: no cover - yfinance is a dependency
        pass
    try:
        from curl_cffi.requests.exceptions import RequestException

        errors.append(RequestException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def history_to_raw(history: pd.DataFrame, *, daily: bool, adjust: bool) -> pl.DataFrame:
    """A yfinance `history(auto_adjust=False)` frame -> ts/open/high/low/close/volume (no instrument/vendor yet).

    Rows whose four prices are all missing (Yahoo's placeholders) are dropped; nothing is filled in.
    """
    missing = [c for c in (*PRICE_COLUMNS, "Volume", *(("Adj Close",) if adjust else ())) if c not in history.columns]
    if missing:
        raise ValueError(f"yfinance history lacks columns {missing} (has {list(history.columns)})")
    if not isinstance(history.index, pd.DatetimeIndex):
        raise ValueError(f"yfinance history index must be a DatetimeIndex, got {type(history.index).__name__}")
    frame = history.loc[~history[list(PRICE_COLUMNS)].isna().all(axis=1)]
    index = frame.index
    if daily:
        # the session date in the exchange's own time zone, stamped 00:00 UTC
        ts = pd.DatetimeIndex(pd.to_datetime(index.date)).tz_localize("UTC")
    else:
        if index.tz is None:
            raise ValueError("intraday yfinance history must have a tz-aware index")
        ts = index.tz_convert("UTC")
    prices = {c: frame[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS}
    if adjust:
        ratio = frame["Adj Close"].to_numpy(dtype=np.float64) / prices["Close"]
        prices = {c: v * ratio for c, v in prices.items()}
    return pl.DataFrame(
        {
            TS: pl.Series(TS, ts.to_numpy(dtype="datetime64[us]")).dt.replace_time_zone("UTC"),
            OPEN: prices["Open"],
            HIGH: prices["High"],
            LOW: prices["Low"],
            CLOSE: prices["Close"],
            VOLUME: frame["Volume"].to_numpy(dtype=np.float64),
        },
        nan_to_null=True,
    )


def missing_dividend_adjustments(history: pd.DataFrame, tolerance: float = 1e-6) -> list[date]:
    """Ex-dividend dates where Adj Close/Close does not step down across the ex-date (Yahoo forgot to adjust).

    For a dividend D on day t, Yahoo's factor before t is (1 - D / Close[t-1]) times the factor from t on.
    """
    if not {"Dividends", "Adj Close", "Close"} <= set(history.columns):
        return []
    ratio = (history["Adj Close"] / history["Close"]).to_numpy(dtype=np.float64)
    close = history["Close"].to_numpy(dtype=np.float64)
    divs = history["Dividends"].fillna(0.0).to_numpy(dtype=np.float64)
    bad = []
    for i in np.flatnonzero(divs > 0):
        if i == 0 or not np.isfinite(ratio[i - 1]) or not np.isfinite(ratio[i]) or ratio[i] == 0:
            continue
        if abs(ratio[i - 1] / ratio[i] - 1.0) < tolerance and divs[i] / close[i - 1] > tolerance:
            bad.append(history.index[i].date())
    return bad


class YFinanceVendor:
    """Yahoo Finance bars; `ticker_factory(symbol)` returns an object with yfinance's `Ticker.history` signature."""

    name = "yfinance"

    def __init__(
        self,
        *,
        adjust: bool = True,
        repair: bool = False,
        prepost: bool = False,
        ticker_factory: Callable[[str], Any] | None = None,
        max_retries: int = 3,
        base_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if max_retries < 0 or base_delay < 0:
            raise ValueError("max_retries and base_delay must be >= 0")
        self.adjust = adjust
        self.repair = repair
        self.prepost = prepost
        self.ticker_factory = ticker_factory or _default_ticker_factory
        self.max_retries = max_retries
        self.base_delay = base_delay
        self._sleep = sleep
        self._clock = clock

    def fetch(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        kind = DataKind(kind)
        schema = RAW_SCHEMAS[kind]
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(f"start/end must be timezone-aware UTC datetimes, got {start!r}, {end!r}")
        if kind != DataKind.OHLCV:
            return pl.DataFrame(schema=schema)
        symbol = instrument.vendor_symbol
        lo, hi = instrument.life_window(start, end)
        context = f"vendor {self.name}: {symbol} ({instrument.id}) {kind.value} [{lo.isoformat()}, {hi.isoformat()})"
        interval = INTERVALS.get(instrument.base_timeframe)
        if interval is None:
            raise VendorError(f"{context}: Yahoo has no {instrument.base_timeframe} bars; use one of {list(INTERVALS)}")
        if hi <= lo:
            return pl.DataFrame(schema=schema)
        daily = interval == "1d"
        # Yahoo's `end` is exclusive; daily requests are by session date
        req_start: date | datetime = lo.date() if daily else lo
        req_end: date | datetime = (hi - timedelta(microseconds=1)).date() + timedelta(days=1) if daily else hi
        history = self._history(symbol, interval, req_start, req_end, context)
        if history is None or history.empty:
            return pl.DataFrame(schema=schema)
        if self.adjust:
            for day in missing_dividend_adjustments(history):
                log.warning("%s: Yahoo did not adjust for the dividend on %s (try repair=True)", context, day)
        try:
            bars = history_to_raw(history, daily=daily, adjust=self.adjust)
        except ValueError as exc:
            raise VendorError(f"{context}: {exc}") from exc
        bars = (
            bars.filter((pl.col(TS) >= lo) & (pl.col(TS) < hi))
            .unique(subset=[TS], keep="last", maintain_order=True)
            .sort(TS)
            .with_columns(
                pl.lit(instrument.id).alias(INSTRUMENT),
                pl.lit(self.name).alias(VENDOR),
                pl.lit(self._clock()).alias(INGESTED_AT),
            )
        )
        return conform(bars, schema)

    def _history(
        self, symbol: str, interval: str, start: date | datetime, end: date | datetime, context: str
    ) -> pd.DataFrame | None:
        from yfinance.exceptions import YFException, YFPricesMissingError, YFTzMissingError

        transient = _transient_errors()
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                ticker = self.ticker_factory(symbol)
                result: pd.DataFrame = ticker.history(
                    start=start,
                    end=end,
                    interval=interval,
                    auto_adjust=False,
                    actions=True,
                    repair=self.repair,
                    prepost=self.prepost,
                    raise_errors=True,
                )
                return result
            except YFTzMissingError as exc:  # unknown or delisted symbol
                raise VendorError(f"{context}: {exc}") from exc
            except YFPricesMissingError as exc:  # a range with no sessions (holidays, before listing)
                log.info("%s: no prices: %s", context, exc)
                return None
            except transient as exc:
                if attempt + 1 == attempts:
                    raise VendorError(
                        f"{context}: gave up after {attempts} attempts; last error {type(exc).__name__}: {exc}"
                    ) from exc
                delay = self.base_delay * 2**attempt
                log.warning("%s: %s, retrying in %.1fs", context, type(exc).__name__, delay)
                self._sleep(delay)
            except YFException as exc:
                raise VendorError(f"{context}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover
