"""Binance spot and USDT-margined perps through the real ccxt client.

OHLCV (klines), funding-rate history, open-interest history and aggregate trades, each paginated until `end`,
rate-limited by ccxt (`enableRateLimit`) and retried with exponential backoff on transient network errors.
Everything is converted to the canonical raw schemas: ms epochs -> tz-aware UTC, floats, de-duplicated and
clipped to start <= ts < end. The exchange object can be injected, so tests answer ccxt's HTTP layer from
recordings while pagination, request building and parsing run for real.

Top of book is live only (Binance keeps no history of it): `top_of_book(instrument)` snapshots the book ticker
(`fetch_ticker`: bid, bidVolume, ask, askVolume) or, with `depth_levels`, the order book (`fetch_order_book`), as
one row in the raw OHLCV top-of-book columns (bid, ask, bid_size, ask_size) stamped with the exchange's time; the
paper-trading loop or a recorder joins such snapshots onto the bar they close.

Open interest is ccxt's `openInterestAmount` (Binance `sumOpenInterest`: base-asset units for USDT-M perps).
Binance serves open-interest history for the last ~30 days only; older ranges are clipped (not an error).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
import polars as pl

from lake_assets.specs import Instrument
from lake_assets.vendors.base import VendorError
from lake_assets.vocabulary import (
    ASK,
    ASK_SIZE,
    BID,
    BID_SIZE,
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
    conform,
)

log = logging.getLogger(__name__)

# ccxt's transient failures: all are NetworkError subclasses, listed to make the policy explicit.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    ccxt.NetworkError,
    ccxt.ExchangeNotAvailable,
    ccxt.RequestTimeout,
    ccxt.DDoSProtection,
)
OPEN_INTEREST_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
API_KEY_ENV = "QLAKE_BINANCE_API_KEY"
API_SECRET_ENV = "QLAKE_BINANCE_API_SECRET"
_HOUR_MS = 3_600_000


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} must be timezone-aware (UTC)")
    return int(moment.timestamp() * 1000)


def _ms_to_ts(values: Sequence[int]) -> pl.Series:
    return pl.Series(TS, values, dtype=pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


class CcxtBinanceVendor:
    """Binance market data via ccxt: public endpoints, paginated, rate-limited, retried.

    `exchange` defaults to `ccxt.binance` with rate limiting on and credentials (optional; public data does not
    need them) read from the environment variables named by `api_key_env` / `api_secret_env`. `sleep` and `clock`
    are injectable so tests run without waiting and with a fixed "now".
    """

    name = "ccxt"

    def __init__(
        self,
        exchange: Any | None = None,
        *,
        max_retries: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        ohlcv_limit: int = 1000,
        funding_limit: int = 1000,
        open_interest_limit: int = 500,
        trades_limit: int = 1000,
        open_interest_period: str | None = None,
        open_interest_retention: timedelta | None = timedelta(days=30),
        timeout_ms: int = 30_000,
        max_pages: int = 100_000,
        api_key_env: str = API_KEY_ENV,
        api_secret_env: str = API_SECRET_ENV,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if max_retries < 0 or base_delay < 0 or max_delay < 0:
            raise ValueError("max_retries, base_delay and max_delay must be >= 0")
        for label, value in (("ohlcv_limit", ohlcv_limit), ("funding_limit", funding_limit),
                             ("open_interest_limit", open_interest_limit), ("trades_limit", trades_limit),
                             ("max_pages", max_pages)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        if open_interest_period is not None and open_interest_period not in OPEN_INTEREST_PERIODS:
            raise ValueError(f"open_interest_period {open_interest_period!r} not in {OPEN_INTEREST_PERIODS}")
        self._exchange = exchange
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.ohlcv_limit = ohlcv_limit
        self.funding_limit = funding_limit
        self.open_interest_limit = open_interest_limit
        self.trades_limit = trades_limit
        self.open_interest_period = open_interest_period
        self.open_interest_retention = open_interest_retention
        self.timeout_ms = timeout_ms
        self.max_pages = max_pages
        self.api_key_env = api_key_env
        self.api_secret_env = api_secret_env
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:  # never shows credentials
        return f"CcxtBinanceVendor(max_retries={self.max_retries}, base_delay={self.base_delay})"

    @property
    def exchange(self) -> Any:
        """The ccxt exchange, built on first use (so constructing the vendor never touches the network)."""
        if self._exchange is None:
            config: dict[str, Any] = {"enableRateLimit": True, "timeout": self.timeout_ms}
            key, secret = os.environ.get(self.api_key_env), os.environ.get(self.api_secret_env)
            if key and secret:
                config |= {"apiKey": key, "secret": secret}
            self._exchange = ccxt.binance(config)
            log.info("ccxt binance client created (rate limit on, credentials %s)", "set" if key else "not set")
        return self._exchange

    # --- public interface -----------------------------------------------------------------

    def fetch(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        kind = DataKind(kind)
        schema = RAW_SCHEMAS[kind]
        lo, hi = instrument.life_window(start, end)
        symbol = instrument.vendor_symbol
        context = f"vendor {self.name}: {symbol} ({instrument.id}) {kind.value} [{lo.isoformat()}, {hi.isoformat()})"
        if hi <= lo:
            return pl.DataFrame(schema=schema)
        market = self._market(instrument, symbol, context)
        if kind in (DataKind.FUNDING, DataKind.OPEN_INTEREST) and not market.get("contract"):
            return pl.DataFrame(schema=schema)
        lo_ms, hi_ms = _ms(lo), _ms(hi)
        if kind == DataKind.OHLCV:
            df = self._ohlcv(symbol, instrument.base_timeframe, lo_ms, hi_ms, context)
        elif kind == DataKind.FUNDING:
            df = self._funding(symbol, lo_ms, hi_ms, context)
        elif kind == DataKind.OPEN_INTEREST:
            df = self._open_interest(symbol, instrument.base_timeframe, lo_ms, hi_ms, context)
        else:
            df = self._trades(symbol, lo_ms, hi_ms, context)
        key = TRADE_ID if kind == DataKind.TRADES else TS
        df = (
            df.filter((pl.col(TS) >= lo) & (pl.col(TS) < hi))
            .unique(subset=[key], keep="last", maintain_order=True)
            .sort(TS, maintain_order=True)
            .with_columns(
                pl.lit(instrument.id).alias(INSTRUMENT),
                pl.lit(self.name).alias(VENDOR),
                pl.lit(self._clock()).alias(INGESTED_AT),
            )
        )
        log.info("%s: %d rows", context, df.height)
        return conform(df, schema)

    def top_of_book(self, instrument: Instrument, depth_levels: int | None = None) -> pl.DataFrame:
        """A live snapshot of the best bid/ask and their sizes (one row; see the module docstring)."""
        symbol = instrument.vendor_symbol
        context = f"vendor {self.name}: {symbol} ({instrument.id}) top of book"
        self._market(instrument, symbol, context)
        if depth_levels:
            row = order_book_row(self._call(context, self.exchange.fetch_order_book, symbol, depth_levels))
        else:
            row = book_ticker_row(self._call(context, self.exchange.fetch_ticker, symbol))
        if row[TS] is None:  # a spot depth snapshot carries no time: stamp it with when it was taken
            row[TS] = _ms(self._clock())
        return top_of_book_frame([row], instrument.id, self.name, self._clock())

    # --- kinds ------------------------------------------------------------------------------

    def _market(self, instrument: Instrument, symbol: str, context: str) -> dict[str, Any]:
        self._call(context, self.exchange.load_markets)
        try:
            market: dict[str, Any] = self.exchange.market(symbol)
        except ccxt.BaseError as exc:
            raise VendorError(f"{context}: unknown ccxt symbol {symbol!r}: {exc}") from exc
        is_contract = bool(market.get("contract"))
        if instrument.market == Market.PERP and not (is_contract and market.get("linear") and market.get("swap")):
            raise VendorError(f"{context}: instrument is a perp but {symbol!r} is not a USDT-margined perpetual")
        if instrument.market == Market.SPOT and not market.get("spot"):
            raise VendorError(f"{context}: instrument is spot but {symbol!r} is not a spot market")
        if instrument.market not in (Market.PERP, Market.SPOT):
            raise VendorError(f"{context}: ccxt/binance serves crypto spot and perps, not {instrument.market.value}")
        return market

    def _ohlcv(self, symbol: str, timeframe: str, lo_ms: int, hi_ms: int, context: str) -> pl.DataFrame:
        tf_ms = int(self.exchange.parse_timeframe(timeframe)) * 1000
        rows: list[list[Any]] = []
        cursor = lo_ms
        for _ in range(self.max_pages):
            if cursor >= hi_ms:
                break
            page = self._call(
                context, self.exchange.fetch_ohlcv, symbol, timeframe, cursor, self.ohlcv_limit, {"until": hi_ms - 1}
            )
            page = [r for r in page if r[0] is not None and cursor <= r[0] < hi_ms]
            if not page:
                break
            rows.extend(page)
            if len(page) < self.ohlcv_limit:
                break
            cursor = max(int(r[0]) for r in page) + tf_ms
        else:
            raise VendorError(f"{context}: more than max_pages={self.max_pages} OHLCV pages")
        names = (OPEN, HIGH, LOW, CLOSE, VOLUME)
        return pl.DataFrame(
            [
                _ms_to_ts([int(r[0]) for r in rows]),
                *(pl.Series(name, [r[i] for r in rows], dtype=pl.Float64) for i, name in enumerate(names, 1)),
            ]
        )

    def _funding(self, symbol: str, lo_ms: int, hi_ms: int, context: str) -> pl.DataFrame:
        records: list[dict[str, Any]] = []
        cursor = lo_ms
        for _ in range(self.max_pages):
            if cursor >= hi_ms:
                break
            page = self._call(
                context,
                self.exchange.fetch_funding_rate_history,
                symbol,
                cursor,
                self.funding_limit,
                {"until": hi_ms - 1},
            )
            page = [r for r in page if r.get("timestamp") is not None and cursor <= r["timestamp"] < hi_ms]
            if not page:
                break
            records.extend(page)
            if len(page) < self.funding_limit:
                break
            cursor = max(int(r["timestamp"]) for r in page) + 1
        else:
            raise VendorError(f"{context}: more than max_pages={self.max_pages} funding pages")
        return pl.DataFrame(
            [
                _ms_to_ts([int(r["timestamp"]) for r in records]),
                pl.Series(FUNDING_RATE, [r.get("fundingRate") for r in records], dtype=pl.Float64),
            ]
        )

    def _open_interest_period(self, base_timeframe: str) -> str:
        if self.open_interest_period is not None:
            return self.open_interest_period
        return base_timeframe if base_timeframe in OPEN_INTEREST_PERIODS else "5m"

    def _open_interest(self, symbol: str, base_timeframe: str, lo_ms: int, hi_ms: int, context: str) -> pl.DataFrame:
        """Deterministic windows of exactly `limit` periods, so the answer never depends on which end of an
        over-long range the exchange chooses to truncate."""
        period = self._open_interest_period(base_timeframe)
        period_ms = int(self.exchange.parse_timeframe(period)) * 1000
        if self.open_interest_retention is not None:
            oldest = _ms(self._clock()) - int(self.open_interest_retention.total_seconds() * 1000)
            oldest = math.ceil(oldest / period_ms) * period_ms + period_ms  # one period of margin
            if oldest > lo_ms:
                log.info("%s: Binance keeps ~%s of OI history; clipping start", context, self.open_interest_retention)
                lo_ms = oldest
        window = self.open_interest_limit * period_ms
        records: list[dict[str, Any]] = []
        for pages, w in enumerate(range(lo_ms, hi_ms, window), 1):
            if pages > self.max_pages:
                raise VendorError(f"{context}: more than max_pages={self.max_pages} open-interest pages")
            until = min(w + window, hi_ms) - 1
            page = self._call(
                context,
                self.exchange.fetch_open_interest_history,
                symbol,
                period,
                w,
                self.open_interest_limit,
                {"until": until},
            )
            records.extend(r for r in page if r.get("timestamp") is not None and w <= r["timestamp"] <= until)
        return pl.DataFrame(
            [
                _ms_to_ts([int(r["timestamp"]) for r in records]),
                pl.Series(OPEN_INTEREST, [r.get("openInterestAmount") for r in records], dtype=pl.Float64),
            ]
        )

    def _trades(self, symbol: str, lo_ms: int, hi_ms: int, context: str) -> pl.DataFrame:
        """Aggregate trades: find the first trade by hour windows (Binance limits startTime..endTime to < 1h),
        then walk forward by `fromId` until past `end` or a short page (the newest trade)."""
        trades: list[dict[str, Any]] = []
        pages = 0
        cursor = lo_ms
        while cursor < hi_ms and not trades:
            pages += 1
            until = min(cursor + _HOUR_MS, hi_ms) - 1
            page = self._call(context, self.exchange.fetch_trades, symbol, cursor, self.trades_limit, {"until": until})
            trades = [t for t in page if t.get("timestamp") is not None and cursor <= t["timestamp"] <= until]
            cursor = until + 1
        if trades:
            while True:
                pages += 1
                if pages > self.max_pages:
                    raise VendorError(f"{context}: more than max_pages={self.max_pages} trade pages")
                last_id = max(int(t["id"]) for t in trades)
                page = self._call(
                    context, self.exchange.fetch_trades, symbol, None, self.trades_limit, {"fromId": last_id + 1}
                )
                fresh = [t for t in page if t.get("timestamp") is not None and int(t["id"]) > last_id]
                trades.extend(t for t in fresh if t["timestamp"] < hi_ms)
                if not fresh or len(page) < self.trades_limit or max(t["timestamp"] for t in fresh) >= hi_ms:
                    break
        return pl.DataFrame(
            [
                _ms_to_ts([int(t["timestamp"]) for t in trades]),
                pl.Series(PRICE, [t.get("price") for t in trades], dtype=pl.Float64),
                pl.Series(SIZE, [t.get("amount") for t in trades], dtype=pl.Float64),
                pl.Series(SIDE, [t.get("side") for t in trades], dtype=pl.String),
                pl.Series(TRADE_ID, [str(t["id"]) for t in trades], dtype=pl.String),
            ]
        )

    # --- retries ----------------------------------------------------------------------------

    def _call(self, context: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ccxt; retry transient errors with exponential backoff, turn everything else into VendorError."""
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                return fn(*args)
            except RETRYABLE_ERRORS as exc:
                if attempt + 1 == attempts:
                    raise VendorError(
                        f"{context}: gave up after {attempts} attempts; last error {type(exc).__name__}: {exc}"
                    ) from exc
                delay = min(self.max_delay, self.base_delay * 2**attempt)
                log.warning("%s: %s (attempt %d/%d), retrying in %.1fs", context, type(exc).__name__,
                            attempt + 1, attempts, delay)  # fmt: skip
                self._sleep(delay)
            except ccxt.BaseError as exc:
                raise VendorError(f"{context}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def book_ticker_row(ticker: dict[str, Any]) -> dict[str, Any]:
    """ccxt's unified ticker (Binance bookTicker / 24hr ticker) -> ts (ms), bid, ask, bid_size, ask_size."""
    return {TS: ticker.get("timestamp"), BID: ticker.get("bid"), ASK: ticker.get("ask"),
            BID_SIZE: ticker.get("bidVolume"), ASK_SIZE: ticker.get("askVolume")}  # fmt: skip


def order_book_row(book: dict[str, Any]) -> dict[str, Any]:
    """ccxt's unified order book -> the best level: its prices, and the sizes summed over the levels fetched
    (the depth the book shows on each side)."""
    bids, asks = book.get("bids") or [], book.get("asks") or []
    return {
        TS: book.get("timestamp"),
        BID: bids[0][0] if bids else None,
        ASK: asks[0][0] if asks else None,
        BID_SIZE: float(sum(level[1] for level in bids)) if bids else None,
        ASK_SIZE: float(sum(level[1] for level in asks)) if asks else None,
    }


def top_of_book_frame(rows: list[dict[str, Any]], instrument: str, vendor: str, ingested_at: datetime) -> pl.DataFrame:
    """Snapshot rows (ts in ms) -> a typed frame: ts, instrument, bid, ask, bid_size, ask_size, vendor, ingested_at."""
    df = pl.DataFrame(rows, schema={TS: pl.Int64, BID: pl.Float64, ASK: pl.Float64, BID_SIZE: pl.Float64,
                                    ASK_SIZE: pl.Float64}, strict=False)  # fmt: skip
    return df.with_columns(
        pl.col(TS).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").cast(pl.Datetime("us", "UTC")),
        pl.lit(instrument).alias(INSTRUMENT),
        pl.lit(vendor).alias(VENDOR),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias(INGESTED_AT),
    ).select(TS, INSTRUMENT, BID, ASK, BID_SIZE, ASK_SIZE, VENDOR, INGESTED_AT)
