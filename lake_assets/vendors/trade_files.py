"""The `trade_files` vendor: exchange trade dumps dropped into the landing folder, parsed tolerantly with counts.

Top of book for the candles comes from book-ticker dumps beside the trade dumps, `<landing>/book_ticker/<INSTRUMENT>/`
(`vendors/book_ticker_files.py`).

Layout: `<landing_dir>/<INSTRUMENT>/<anything>.csv|.jsonl|.csv.gz|.jsonl.gz`, where `landing_dir` is normally
`<data_root>/landing/trade_files` and the folder name is the instrument id. Dumps are read line by line: one bad line
never costs the file, a bad file never costs the others, and every line that is not kept lands in quarantine with a
reason. Nothing here imports dagster; the raw asset puts `ScanResult` counts in its metadata.

Accepted formats
- CSV with a header (comma, or tab/semicolon detected from the header). Column aliases (case-insensitive, `_`/`-`
  and spaces ignored; single letters are case-sensitive because Binance uses `t` for ids and `T` for times):
  time: transact_time, trade_time, timestamp, time, ts, datetime, T;  price: price, px, p;
  size: quantity, qty, size, amount, volume, q;  side: side, taker_side, aggressor_side;
  is_buyer_maker: is_buyer_maker, m;  trade id: trade_id, agg_trade_id, id, tid, a.
  Extra columns are ignored. price and time columns are required; size, side and id are optional.
- CSV without a header, recognised by an all-numeric first line in a Binance public-data layout:
  aggTrades (agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time, is_buyer_maker
  [, is_best_match]) or trades (id, price, qty, quote_qty, time, is_buyer_maker [, is_best_match]).
- JSONL: one JSON object per line with the same keys (Binance `{"a","p","q","f","l","T","m"}` included).
- Timestamps: epoch numbers (unit by magnitude: < 1e11 seconds, < 1e14 ms, < 1e17 us, else ns; fractions allowed)
  or ISO-8601 strings with an explicit offset, `Z` or a trailing ` UTC`.
- side: buy/b/bid/buyer or sell/s/ask/seller; when absent, is_buyer_maker gives it (buyer is maker -> the aggressor
  sold). A present `side` wins over is_buyer_maker.
- UTF-8 with or without BOM, LF/CRLF/CR line endings, optional gzip.

Speed: clean CSV lines are taken by a vectorised polars fast path that only accepts what the line-by-line reference
(`_accept`) would accept with identical values; every other line goes through `_accept`, which owns all rejection
reasons (a property test checks the two agree). JSONL always goes line by line.
"""

from __future__ import annotations

import atexit
import csv
import gzip
import json
import logging
import math
import os
import re
import shutil
import uuid
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from lake_assets.months import month_bounds, month_key
from lake_assets.processes import alive
from lake_assets.settings import landing_root
from lake_assets.specs import Instrument
from lake_assets.trades import BUY, SELL, in_slice, sort_trades, time_slices, trades_to_bars
from lake_assets.vendors.book_ticker_files import FOLDER as BOOK_TICKER_FOLDER
from lake_assets.vendors.book_ticker_files import book_ticker_bars
from lake_assets.vocabulary import (
    INGESTED_AT,
    INSTRUMENT,
    PRICE,
    QUARANTINE_SCHEMA,
    RAW_OHLCV_SCHEMA,
    RAW_SCHEMAS,
    RAW_TRADES_SCHEMA,
    SIDE,
    SIZE,
    TIMEFRAMES,
    TRADE_ID,
    TS,
    VENDOR,
    DataKind,
    InvalidIdentifierError,
    conform,
    empty_frame,
    validate_instrument_id,
)

log = logging.getLogger(__name__)

VENDOR_NAME = "trade_files"
QUARANTINE_ASSET = "raw_trades"
RECORD_MAX_CHARS = 500
SUFFIXES = (".csv", ".jsonl", ".csv.gz", ".jsonl.gz")

# Plausible trade times; anything outside is a unit mix-up or garbage, not a trade.
TS_MIN = datetime(1990, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_TS_MIN_US = int(TS_MIN.timestamp()) * 1_000_000
_TS_MAX_US = int(TS_MAX.timestamp()) * 1_000_000

# Logical fields and their aliases in priority order: normalised multi-letter names, then case-sensitive letters.
_ALIASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "time": (("transacttime", "tradetime", "timestamp", "time", "ts", "datetime"), ("T",)),
    "price": (("price", "px"), ("p",)),
    "size": (("quantity", "qty", "size", "amount", "volume"), ("q",)),
    "side": (("side", "takerside", "aggressorside"), ()),
    "maker": (("isbuyermaker", "buyermaker"), ("m",)),
    "id": (("tradeid", "aggtradeid", "id", "tid"), ("a",)),
}
_REQUIRED = ("price", "time")
_SIDES = {"buy": BUY, "b": BUY, "bid": BUY, "buyer": BUY, "sell": SELL, "s": SELL, "ask": SELL, "seller": SELL}
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
# Headerless Binance public-data layouts: field -> column index.
_BINANCE_AGG = {"id": 0, "price": 1, "size": 2, "time": 5, "maker": 6}
_BINANCE_TRADES = {"id": 0, "price": 1, "size": 2, "time": 4, "maker": 5}
_NUMERIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class _Malformed(ValueError):
    """The line cannot be turned into a trade (syntax, missing or non-numeric field)."""


class _Rejected(ValueError):
    """The line is a well-formed trade that fails validation (counted as skipped)."""


@dataclass
class ParseResult:
    """What one dump yielded.

    Counts (blank lines are ignored entirely and counted nowhere):
    - parsed: non-blank data lines read (the header line is not a data line). parsed = accepted + skipped + malformed.
    - accepted: rows kept in `trades`.
    - malformed: lines that could not be turned into a trade: bad JSON, wrong number of CSV fields (truncated or
      merged lines), missing/non-numeric/NaN/inf price, size or timestamp, unrecognised side, invalid UTF-8, or a
      file lacking a price/time column altogether.
    - skipped: well-formed trades rejected by validation: price <= 0, size <= 0, naive timestamp (no timezone:
      rejected, never guessed to be UTC), timestamp outside [1990, 2100), duplicate rows / trade ids.
    Every malformed or skipped line is one quarantine row (line = 1-based physical line, record = raw text <= 500
    chars). A file that cannot be read at all (bad gzip, binary data) gives parsed = 0 and one quarantine row with
    line = null; `file_error` then holds the reason. `file_error` is also set when the header lacks a required column.
    out_of_order counts trades (before de-duplication) earlier than the trade on the line before them; they are kept
    and `trades` is sorted.
    """

    path: Path
    instrument: str
    trades: pl.DataFrame
    quarantine: pl.DataFrame
    parsed: int = 0
    accepted: int = 0
    skipped: int = 0
    malformed: int = 0
    out_of_order: int = 0
    file_error: str | None = None

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "parsed": self.parsed,
            "accepted": self.accepted,
            "skipped": self.skipped,
            "malformed": self.malformed,
            "out_of_order": self.out_of_order,
            "file_error": self.file_error,
        }

    @property
    def ts_range(self) -> tuple[datetime, datetime] | None:
        """First and last accepted trade time (to find the partitions a file touches), or None."""
        if self.trades.is_empty():
            return None
        return self.trades[TS].min(), self.trades[TS].max()  # type: ignore[return-value]


@dataclass
class ScanResult:
    """Trades of one instrument in [start, end) from all its landing files, with quarantine and per-file counts.

    Every line read ends up in exactly one place: a trade in `trades` of the window holding its time, or one
    quarantine row placed in exactly one window. The placement rule (so the raw asset, which scans its partitions'
    windows, writes each rejected line once, into a partition that exists):
    - a rejected line with its own time (non-positive price, naive-free valid time, duplicate, ...) sits at that time;
    - a line without a usable time sits at its file's nearest dated line before it (else after it);
    - a file with no dated line at all (unreadable: bad gzip, not UTF-8; header without a time column) sits at the
      start of the instrument's life, i.e. its first life month;
    - then everything is clamped into the life `[start, end)` (`life_span`): before it -> the first life month,
      after it (or in the future) -> the last life month (today's month for a live instrument).
    Trades outside the life are quarantined ("before/after the instrument's life"), never "accepted" and dropped.
    Trades repeated across files are kept once; the later copies (by file name, line) are quarantined as duplicates
    and counted in `cross_file_duplicates`.

    `files` holds life-aware whole-file counts (parsed = accepted + skipped + malformed, where accepted trades are
    exactly the file's rows in the lake over all the instrument's months and skipped includes cross-file duplicates
    and trades outside the life) plus `in_window` (its trades in this window) and `quarantined` (its quarantine rows
    placed in this window), for every file with either in this window. An unreadable file has parsed = 0 and one
    quarantine row with line = null.

    `trades` is built on first use (sorted, RAW_TRADES_SCHEMA); a large window is better streamed with
    `write_trades` (bounded memory) or read lazily with `lazy_trades`.
    """

    instrument: str
    quarantine: pl.DataFrame
    files: list[dict[str, Any]] = field(default_factory=list)
    cross_file_duplicates: int = 0
    in_window: int = 0
    _lazy: pl.LazyFrame | None = field(default=None, repr=False)
    _ingested_at: datetime | None = field(default=None, repr=False)
    _trades: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def trades(self) -> pl.DataFrame:
        if self._trades is None:
            lazy = self.lazy_trades()
            self._trades = sort_trades(lazy.collect()) if self.in_window else empty_frame(RAW_TRADES_SCHEMA)
        return self._trades

    def lazy_trades(self) -> pl.LazyFrame:
        """The window's trades in RAW_TRADES_SCHEMA, unsorted (read from the staged parts when collected)."""
        if self._lazy is None:
            return empty_frame(RAW_TRADES_SCHEMA).lazy()
        return _lazy_trade_columns(self._lazy, self.instrument, self._ingested_at or datetime.now(UTC))

    def write_trades(self, path: Path) -> int:
        """Stream the window's trades, sorted as `sort_trades`, into one parquet file; returns the row count.
        Memory: one time slice of at most SLICE_ROWS trades at a time."""
        return write_sorted_trades(self.lazy_trades() if self.in_window else None, Path(path))

    @property
    def totals(self) -> dict[str, int]:
        keys = ("parsed", "accepted", "skipped", "malformed")
        return {k: sum(int(f[k]) for f in self.files) for k in keys} | {
            "in_window": self.in_window,
            "quarantined": self.quarantine.height,
            "cross_file_duplicates": self.cross_file_duplicates,
        }


@dataclass(frozen=True)
class LandingFile:
    """One dump in the landing folder; (path, size, mtime_ns) identifies a version for the landing sensor's cursor."""

    instrument: str
    path: Path
    size: int
    mtime: float
    mtime_ns: int


@dataclass(frozen=True)
class RejectedLandingPath:
    path: Path
    reason: str


@dataclass(frozen=True)
class LandingListing:
    files: list[LandingFile]
    rejected: list[RejectedLandingPath]


# --- the parser ------------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    """Where each logical field sits: CSV column indices, or JSON keys."""

    csv_columns: dict[str, int] | None = None
    n_fields: int = 0
    delimiter: str = ","
    json_keys: dict[str, tuple[str, ...]] | None = None


@dataclass
class _Rows:
    """Column buffers for candidate trades (compact arrays: dumps have millions of lines)."""

    ts: array = field(default_factory=lambda: array("q"))
    price: array = field(default_factory=lambda: array("d"))
    size: list[float | None] = field(default_factory=list)
    side: list[str | None] = field(default_factory=list)
    trade_id: list[str | None] = field(default_factory=list)
    line: array = field(default_factory=lambda: array("q"))


@dataclass
class _Bad:
    line: list[int | None] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    record: list[str] = field(default_factory=list)
    ts_us: list[int | None] = field(default_factory=list)  # the line's own time when known (for window attribution)

    def add(self, line: int | None, reason: str, record: str, ts_us: int | None = None) -> None:
        self.line.append(line)
        self.reason.append(reason)
        self.record.append(record[:RECORD_MAX_CHARS])
        # a time is kept for placing the row only when it is one (an epoch of 25 digits is not; it would not fit
        # the Int64 column the rows are placed by)
        self.ts_us.append(ts_us if ts_us is None or _MIN_US <= ts_us <= _MAX_US else None)


def parse_trade_file(path: Path, instrument: str, *, ingested_at: datetime | None = None) -> ParseResult:
    """Parse one trade dump (CSV/JSONL, optionally gzip) line by line into RAW_TRADES_SCHEMA plus quarantine.

    Never raises for bad content: problems become quarantine rows (see ParseResult for the exact counts).
    Raises InvalidIdentifierError for an unsafe instrument id and ValueError for an unsupported file name.
    """
    return _parse(Path(path), instrument, ingested_at=ingested_at).public()


@dataclass
class _Parsed:
    """A ParseResult plus what scan() needs: the file's staged candidates, the lines de-duplication removed, the
    quarantine with attribution times and the distinct key hashes (for cross-file duplicates)."""

    result: ParseResult
    store: _Store  # candidate trades (_INTERNAL_TRADES + _k): compact, no raw text
    excluded: pl.Series  # Int64 lines of candidates removed as within-file duplicates
    bad: pl.DataFrame  # QUARANTINE_SCHEMA + _ts (attribution time)
    keys: np.ndarray  # sorted distinct 64-bit key hashes of the candidates (empty unless asked for)

    def public(self) -> ParseResult:
        return self.result


class _Store:
    """Where one file's candidate chunks go: memory (`parse_trade_file`, small inputs) or parquet parts on disk
    (the scan: one part per chunk and month, so no file's trades are ever held at once)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.frames: list[pl.DataFrame] = []
        self.parts: list[tuple[int, Path]] = []  # (month number, part file)
        self.rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        self.rows += frame.height
        if self.folder is None:
            self.frames.append(frame)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        months = frame.select(_MONTH.alias("_m"))["_m"]
        lo, hi = months.min(), months.max()
        groups = (
            [(lo, frame)]
            if lo == hi
            else [
                (int(k[0]), g)  # type: ignore[arg-type]
                for k, g in frame.with_columns(months).partition_by("_m", as_dict=True, include_key=False).items()
            ]
        )
        for month, part in groups:
            path = self.folder / f"part-{len(self.parts):06d}.parquet"
            part.write_parquet(path, compression="lz4", statistics=True)
            self.parts.append((int(month), path))  # type: ignore[arg-type]

    def discard(self) -> None:
        for _, path in self.parts:
            path.unlink(missing_ok=True)
        self.frames, self.parts, self.rows = [], [], 0

    def lazy(self, months: tuple[int, int] | None = None) -> pl.LazyFrame | None:
        """The candidates (months in [lo, hi] when given), or None when there are none."""
        if self.folder is None:
            return pl.concat(self.frames).lazy() if self.frames else None
        paths = [str(p) for m, p in self.parts if months is None or months[0] <= m <= months[1]]
        return pl.scan_parquet(paths) if paths else None


# Month number of a trade (year * 12 + month - 1): staged parts are kept per month.
_MONTH = pl.col(TS).dt.year().cast(pl.Int32) * 12 + pl.col(TS).dt.month().cast(pl.Int32) - 1


def _month_number(value: datetime) -> int:
    return value.year * 12 + value.month - 1


# A trade's de-duplication key as a 64-bit hash: its id when it has one, else its content. Equal keys give equal
# hashes, so rows whose hash repeats are a superset of the duplicates; `_deduplicate` then decides on those exactly.
_KEY_HASH = (
    pl.when(pl.col(TRADE_ID).is_not_null())
    .then(pl.col(TRADE_ID).hash(seed=1))
    .otherwise(pl.struct(TS, PRICE, SIZE, SIDE).hash(seed=2))
)


@dataclass
class _Tracker:
    """What must be carried across chunks: out-of-order count, attribution of rejected lines to the nearest dated
    line before them (`back`), the file's first dated line, and the candidates' key hashes."""

    last_ts: int | None = None  # time (us) of the last candidate
    last_dated: int | None = None  # time (us) of the last dated line (candidate or rejected line with its own time)
    first_dated: int | None = None
    back: list[int | None] = field(default_factory=list)  # per quarantine row: nearest earlier dated time
    hashes: list[np.ndarray] = field(default_factory=list)

    def feed(self, cands: pl.DataFrame, bad: _Bad, result: ParseResult) -> None:
        n0 = len(self.back)
        ts = cands["_ts_us"]
        if cands.height:
            d = ts.diff()
            result.out_of_order += int((d < 0).sum())
            if self.last_ts is not None and ts[0] < self.last_ts:
                result.out_of_order += 1
            self.last_ts = ts[-1]
            self.hashes.append(cands["_k"].to_numpy())
        new_lines = bad.line[n0:]
        if len(new_lines) == 0:
            if cands.height:
                if self.first_dated is None:
                    self.first_dated = ts[0]
                self.last_dated = ts[-1]
            return
        own = pl.DataFrame(
            {"line": pl.Series(new_lines, dtype=pl.Int64), "_d": pl.Series(bad.ts_us[n0:], dtype=pl.Int64)}
        )
        dated = (
            pl.concat([cands.select(pl.col("_line").alias("line"), pl.col("_ts_us").alias("_d")), own.drop_nulls()])
            .sort("line")
        )
        if dated.height:
            if self.first_dated is None:
                self.first_dated = dated["_d"][0]
            lined = own.select("line").with_row_index("_i").drop_nulls("line").sort("line")
            found = lined.join_asof(dated, on="line", strategy="backward", check_sortedness=False)
            back: list[int | None] = [self.last_dated] * len(new_lines)
            for i, v in zip(found["_i"].to_list(), found["_d"].to_list(), strict=True):
                if v is not None:
                    back[i] = v
            self.last_dated = dated["_d"][-1]
        else:
            back = [self.last_dated] * len(new_lines)
        self.back.extend(back)

    def sync(self, bad: _Bad) -> None:
        """Rows added outside `feed` (none are dated by a later chunk's lines) get the current backward time."""
        self.back.extend([self.last_dated] * (len(bad.line) - len(self.back)))


def _parse(
    path: Path,
    instrument: str,
    *,
    ingested_at: datetime | None = None,
    public: bool = True,
    spill: Path | None = None,
    keys: bool = False,
) -> _Parsed:
    """Stream the file in line-aligned chunks (bounded memory): candidates keep compact columns (spilled to parquet
    parts under `spill` when given), only rejected lines keep their raw text. `public=False` skips building
    `ParseResult.trades`; `keys=True` keeps the distinct key hashes (for cross-file de-duplication)."""
    instrument = validate_instrument_id(instrument)
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise ValueError(f"{path}: unsupported trade file type; expected one of {', '.join(SUFFIXES)}")
    is_json = name.endswith((".jsonl", ".jsonl.gz"))
    now = (ingested_at or datetime.now(UTC)).astimezone(UTC)

    bad = _Bad()
    result = ParseResult(path=path, instrument=instrument, trades=empty_frame(RAW_TRADES_SCHEMA), quarantine=_EMPTY_Q)
    state = _CsvState()
    store = _Store(spill)
    tracker = _Tracker()
    missing_counts = dict.fromkeys(_REQUIRED, 0)
    try:
        first = True
        for number, raw, sep in _raw_chunks(path):
            rows = _Rows()
            fast: pl.DataFrame | None = None
            typed = None
            if not is_json and state.started and result.file_error is None:
                typed = _typed_csv(raw, number, sep, state)
            if typed is not None:  # a clean chunk: typed CSV reader; only its suspicious lines go line by line
                fast, suspects = typed
                result.parsed += fast.height
                if suspects.len():
                    lines = _some_lines(raw, number, sep, suspects)
                    slow_fast = _parse_csv(lines, rows, bad, result, state)
                    if slow_fast is not None and slow_fast.height:
                        fast = pl.concat([fast, slow_fast]).sort("_line")
            else:
                lines = _lines_frame(raw, number, sep)
                if first and lines.height:
                    first = False
                    if lines["text"][0] is None:
                        raise _UnreadableError("not UTF-8 text (binary data?)", lines["record"][0][:120])
                if is_json:
                    _parse_jsonl(lines, rows, bad, result, missing_counts)
                else:
                    fast = _parse_csv(lines, rows, bad, result, state)
            first = False
            cands = _candidates(rows, fast)
            tracker.feed(cands, bad, result)
            if cands.height:
                store.add(cands.drop("_ts_us"))
    except _UnreadableError as exc:
        store.discard()
        bad, tracker = _Bad(), _Tracker()
        result = ParseResult(path=path, instrument=instrument, trades=result.trades, quarantine=_EMPTY_Q)
        result.file_error = f"unreadable file: {exc}"
        bad.add(None, result.file_error, exc.record)
        tracker.sync(bad)
        return _finish(result, bad, tracker, store, now, public, keys)
    if is_json:
        absent = [req for req, n in missing_counts.items() if result.parsed and n == result.parsed]
        if absent:
            result.file_error = f"no record has a {' or '.join(absent)} field"
    return _finish(result, bad, tracker, store, now, public, keys)


def _candidates(rows: _Rows, fast: pl.DataFrame | None) -> pl.DataFrame:
    """One chunk's candidate trades (fast path and line-by-line), by line: _INTERNAL_TRADES + _ts_us + _k."""
    slow = pl.DataFrame(
        {
            "_ts_us": pl.Series(np.frombuffer(rows.ts, dtype=np.int64)),
            PRICE: pl.Series(np.frombuffer(rows.price, dtype=np.float64)),
            SIZE: pl.Series(rows.size, dtype=pl.Float64),
            SIDE: pl.Series(rows.side, dtype=pl.String),
            TRADE_ID: pl.Series(rows.trade_id, dtype=pl.String),
            "_line": pl.Series(np.frombuffer(rows.line, dtype=np.int64)),
        }
    )
    if fast is not None and fast.height:
        both = pl.concat([fast.cast(slow.schema), slow]) if slow.height else fast.cast(slow.schema)
        if slow.height:
            both = both.sort("_line")
    else:
        both = slow
    return both.with_columns(pl.col("_ts_us").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(TS)).select(
        *_INTERNAL_TRADES.names(), "_ts_us", _KEY_HASH.alias("_k")
    )


class _UnreadableError(Exception):
    def __init__(self, problem: str, record: str) -> None:
        super().__init__(problem)
        self.record = record


CHUNK_BYTES = 8 << 20  # bytes of text per chunk: memory per chunk is a small multiple of it


# Where each chunk of a plain file starts (first line number, byte offset, length), keyed by the file's version: a
# later lookup of a few lines' raw text (`_lookup_records`) seeks to their chunks instead of re-reading the file.
_CHUNK_INDEX: dict[tuple[str, int, int], list[tuple[int, int, int]]] = {}
_CHUNK_INDEX_MAX = 64


def _file_version(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns)


def _raw_chunks(path: Path) -> Iterator[tuple[int, bytes, bytes]]:
    """(first physical line number, whole lines of bytes, line separator), streamed from the (gzip) file.

    A corrupt or truncated gzip stream raises _UnreadableError wherever it is found, and the caller drops
    everything read so far: the whole file is rejected instead of yielding a silently truncated tail.
    """
    gz = path.name.lower().endswith(".gz")
    try:
        fh = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _UnreadableError(f"cannot read ({exc.strerror or exc})", "") from exc
    head = b""
    version = None if gz else _file_version(path)
    index: list[tuple[int, int, int]] = []
    offset = 0  # file offset of the chunk about to be yielded (plain files)
    try:
        with fh:
            carry, number, sep, first = b"", 1, b"", True
            while True:
                piece = fh.read(CHUNK_BYTES)
                if first:
                    first = False
                    head = piece[:120]
                    if piece.startswith(b"\xef\xbb\xbf"):
                        piece = piece[3:]
                        offset = 3
                if not piece:
                    break
                buf = carry + piece
                if not sep:  # decided by the first line end seen (CR-only files exist; CRLF may straddle pieces)
                    if b"\n" in buf:
                        sep = b"\n"
                    elif b"\r" in buf.rstrip(b"\r"):
                        sep = b"\r"
                    else:
                        carry = buf
                        continue
                cut = buf.rfind(sep)
                if cut < 0:
                    carry = buf
                    continue
                chunk, carry = buf[: cut + 1], buf[cut + 1 :]
                index.append((number, offset, len(chunk)))
                yield number, chunk, sep
                number += chunk.count(sep)
                offset += len(chunk)
            if carry:
                index.append((number, offset, len(carry)))
                yield number, carry, sep or (b"\n" if b"\n" in carry or b"\r" not in carry else b"\r")
        if version is not None and _file_version(path) == version:  # read whole and unchanged: seekable later
            while len(_CHUNK_INDEX) >= _CHUNK_INDEX_MAX:
                _CHUNK_INDEX.pop(next(iter(_CHUNK_INDEX)))
            _CHUNK_INDEX[version] = index
    except (OSError, EOFError, zlib.error) as exc:
        if gz:
            if not head:
                try:
                    head = path.read_bytes()[:120]
                except OSError:
                    head = b""
            raise _UnreadableError(f"bad gzip stream ({exc})", repr(head)) from exc
        raise _UnreadableError(f"cannot read ({getattr(exc, 'strerror', None) or exc})", "") from exc


def _read_chunks(path: Path) -> Iterator[pl.DataFrame]:
    """Frames of non-blank lines: `line` (1-based physical number), `text` (null when not UTF-8 text) and `record`
    (the text for quarantine, undecodable bytes replaced). Blank means only ASCII whitespace."""
    for number, raw, sep in _raw_chunks(path):
        yield _lines_frame(raw, number, sep)


def _lines_frame(raw: bytes, offset: int, sep: bytes) -> pl.DataFrame:
    if raw.endswith(sep):
        raw = raw[: -len(sep)]
    try:
        whole = raw.decode("utf-8")
    except UnicodeDecodeError:
        whole = None
    if whole is not None:  # the common case, vectorised
        lines = (
            pl.DataFrame({"record": whole.split(sep.decode())}, schema={"record": pl.String})
            .with_row_index("line", offset=offset)
            .with_columns(pl.col("line").cast(pl.Int64), pl.col("record").str.strip_chars_end("\r"))
            .filter(pl.col("record").str.strip_chars(_BLANK).str.len_bytes() > 0)
            .with_columns(
                pl.when(pl.col("record").str.contains("\x00", literal=True))
                .then(None)
                .otherwise(pl.col("record"))
                .alias("text")
            )
        )
    else:
        lines = _byte_lines(enumerate(raw.split(sep), start=offset))
    return lines.select("line", "text", "record")


def _byte_lines(numbered: Iterable[tuple[int, bytes]]) -> pl.DataFrame:
    """Lines (number, bytes) as `_lines_frame` frames them, one at a time: blank ones dropped, `text` null when not
    UTF-8 (or holding NUL), `record` the text with undecodable bytes replaced."""
    numbers: list[int] = []
    texts: list[str | None] = []
    records: list[str] = []
    for number, chunk in numbered:
        chunk = chunk.rstrip(b"\r")
        if not chunk.strip(_BLANK.encode()):
            continue
        text: str | None
        try:
            text = chunk.decode("utf-8")
            if "\x00" in text:
                text = None
        except UnicodeDecodeError:
            text = None
        numbers.append(number)
        texts.append(text)
        records.append(text if text is not None else chunk.decode("utf-8", "replace"))
    return pl.DataFrame(
        {"line": numbers, "record": records, "text": texts},
        schema={"line": pl.Int64, "record": pl.String, "text": pl.String},
    ).select("line", "text", "record")


def _some_lines(raw: bytes, offset: int, sep: bytes, wanted: pl.Series) -> pl.DataFrame:
    """`_lines_frame(raw, offset, sep)` restricted to the `wanted` line numbers, without framing the others."""
    parts = raw.split(sep)
    picked = sorted({int(n) for n in wanted.to_list() if 0 <= int(n) - offset < len(parts)})
    return _byte_lines((n, parts[n - offset]) for n in picked)


def _lookup_records(path: Path, wanted: set[int]) -> dict[int, str]:
    """The raw text (<= 500 chars) of the given physical lines, re-read from the file (a second, streaming pass:
    accepted trades do not carry their text, so a trade quarantined later, e.g. as a duplicate, is looked up)."""
    found: dict[int, str] = {}
    if not wanted:
        return found
    version = _file_version(path)
    index = _CHUNK_INDEX.get(version) if version is not None else None
    if index:
        return _lookup_indexed(path, wanted, index)
    lo, hi = min(wanted), max(wanted)
    try:
        for number, raw, sep in _raw_chunks(path):
            n = raw.count(sep) + (0 if raw.endswith(sep) else 1)
            if number + n <= lo:
                continue
            if number > hi:
                break
            for i, part in enumerate(raw.split(sep), start=number):
                if i in wanted:
                    found[i] = part.rstrip(b"\r").decode("utf-8", "replace")[:RECORD_MAX_CHARS]
    except _UnreadableError:
        pass
    return found


def _lookup_indexed(path: Path, wanted: set[int], index: list[tuple[int, int, int]]) -> dict[int, str]:
    """`_lookup_records` for a plain file read before: seek to the chunks holding the wanted lines."""
    import bisect

    firsts = [first for first, _, _ in index]
    by_chunk: dict[int, list[int]] = {}
    for line in wanted:
        i = bisect.bisect_right(firsts, line) - 1
        if i >= 0:
            by_chunk.setdefault(i, []).append(line)
    found: dict[int, str] = {}
    try:
        with open(path, "rb") as fh:
            for i, lines in sorted(by_chunk.items()):
                first, offset, length = index[i]
                fh.seek(offset)
                raw = fh.read(length)
                sep = b"\n" if b"\n" in raw else b"\r"
                parts = raw.split(sep)
                for line in lines:
                    if 0 <= line - first < len(parts):
                        found[line] = parts[line - first].rstrip(b"\r").decode("utf-8", "replace")[:RECORD_MAX_CHARS]
    except OSError:
        pass
    return found


_BLANK = " \t\r\x0b\x0c"


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.strip().strip('"').strip("'").lower())


def _match_fields(names: list[str]) -> dict[str, int]:
    """Logical field -> index of the best column among `names` (first alias in priority order wins)."""
    norm = [_normalise(n) for n in names]
    exact = [n.strip().strip('"').strip("'") for n in names]
    found: dict[str, int] = {}
    for logical, (long_names, letters) in _ALIASES.items():
        for alias in long_names:
            if alias in norm:
                found[logical] = norm.index(alias)
                break
        else:
            for letter in letters:
                if letter in exact:
                    found[logical] = exact.index(letter)
                    break
    return found


def _split(text: str, delimiter: str) -> list[str]:
    if '"' in text:
        return next(csv.reader([text], delimiter=delimiter))
    return text.split(delimiter)


@dataclass
class _CsvState:
    """What the first line of a CSV decided, carried across chunks."""

    started: bool = False
    layout: _Layout = field(default_factory=_Layout)
    has_header: bool = True
    header_text: str | None = None


def _parse_csv(
    lines: pl.DataFrame, rows: _Rows, bad: _Bad, result: ParseResult, state: _CsvState
) -> pl.DataFrame | None:
    """Header/layout detection (first chunk), then the vectorised fast path for clean lines and `_accept` for every
    other line. Returns the fast-path candidates (or None); slow-path candidates and rejects go into `rows` / `bad`.
    """
    if lines.is_empty():
        return None
    data = lines
    if not state.started:
        state.started = True
        header_text, header_record = lines["text"][0], lines["record"][0]
        delimiter = ","
        if "," not in header_text:
            delimiter = "\t" if "\t" in header_text else (";" if ";" in header_text else ",")
        header = _split(header_text, delimiter)
        layout = state.layout = _Layout(delimiter=delimiter, n_fields=len(header))
        if all(_NUMERIC.match(f.strip()) or f.strip().lower() in _TRUE | _FALSE for f in header):
            # No header: a Binance public-data dump; the first line is data.
            state.has_header = False
            n = len(header)
            if n in (7, 8) and header[5].strip().lower() not in _TRUE | _FALSE:
                layout.csv_columns = dict(_BINANCE_AGG)
            elif n in (6, 7):
                layout.csv_columns = dict(_BINANCE_TRADES)
            else:
                result.file_error = (
                    f"no header and the {n}-field layout is not a known Binance aggTrades/trades layout; add a header"
                )
        else:
            state.header_text = header_text
            layout.csv_columns = _match_fields(header)
            missing = [f for f in _REQUIRED if f not in layout.csv_columns]
            if missing:
                result.file_error = (
                    f"file has no {' or '.join(missing)} column (header: {header_record[:200]}); "
                    f"accepted names: {', '.join(a for f in missing for a in _ALIASES[f][0] + _ALIASES[f][1])}"
                )
            data = lines.slice(1)
    layout, has_header, header_text = state.layout, state.has_header, state.header_text
    delimiter = layout.delimiter
    result.parsed += data.height
    fast: pl.DataFrame | None = None
    if result.file_error is None and _FAST_CSV:
        assert layout.csv_columns is not None
        fast, data = _fast_csv(data, layout, header_text if has_header else None)
    for number, text, record in data.iter_rows():
        if result.file_error is not None:
            result.malformed += 1
            bad.add(number, result.file_error, record, _time_hint(text, delimiter, layout))
            continue
        if text is None:
            result.malformed += 1
            bad.add(number, "invalid UTF-8 / binary data in line", record)
            continue
        if has_header and text == header_text:
            result.malformed += 1
            bad.add(number, "repeated header line (concatenated dumps?)", record)
            continue
        try:
            fields = _split(text, delimiter)
            if len(fields) != layout.n_fields:
                what = "truncated line" if len(fields) < layout.n_fields else "too many fields"
                raise _Malformed(f"{what}: expected {layout.n_fields} fields, got {len(fields)}")
            cols = layout.csv_columns
            assert cols is not None
            _accept({k: fields[i] for k, i in cols.items()}, number, record, rows, bad, result)
        except _Malformed as exc:
            result.malformed += 1
            bad.add(number, str(exc), record)
        except csv.Error as exc:
            result.malformed += 1
            bad.add(number, f"bad CSV quoting: {exc}", record)
    return fast


# The fast path takes a line only when the slow path would certainly accept it with the same values: no quotes,
# the right field count, plain decimal numbers without surrounding spaces, a positive integer epoch, known side
# spellings, an id of plain characters. Anything else goes through `_accept`, which owns every rejection reason.
_FAST_CSV = True
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_PLAIN_ID = r"^[A-Za-z0-9._:-]*$"
_FAST_COLUMNS = [
    "_ts_us",
    PRICE,
    SIZE,
    SIDE,
    TRADE_ID,
    pl.col("line").alias("_line"),
]


def _epoch_us_expr(epoch: pl.Expr) -> pl.Expr:
    """Epoch numbers to microseconds, the unit told by magnitude (s, ms, us, ns), as `_epoch_us` does per value."""
    return (
        pl.when(epoch < 10**11)
        .then(epoch * 1_000_000)
        .when(epoch < 10**14)
        .then(epoch * 1_000)
        .when(epoch < 10**17)
        .then(epoch)
        .otherwise(epoch // 1_000)
    )


def _fast_csv(data: pl.DataFrame, layout: _Layout, header_text: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split `data` into (fast-path candidates in _FAST_COLUMNS, the lines left for `_accept`)."""
    cols = layout.csv_columns
    assert cols is not None
    n = layout.n_fields
    text = pl.col("text")
    fields = data.with_columns(
        (text.str.count_matches(layout.delimiter, literal=True) == n - 1).alias("_count_ok"),
        text.str.split_exact(layout.delimiter, n - 1).struct.rename_fields([f"_f{i}" for i in range(n)]).alias("_f"),
    ).unnest("_f")

    def field_(name: str) -> pl.Expr:
        return pl.col(f"_f{cols[name]}")

    ok = text.is_not_null() & pl.col("_count_ok") & ~text.str.contains('"', literal=True)
    if header_text is not None:
        ok &= text != header_text
    price = field_("price").cast(pl.Float64, strict=False)
    ok &= field_("price").str.contains(_PLAIN_NUMBER) & price.is_finite() & (price > 0)
    if "size" in cols:
        size = field_("size").cast(pl.Float64, strict=False)
        ok &= field_("size").str.contains(_PLAIN_NUMBER) & size.is_finite() & (size > 0)
    else:
        size = pl.lit(None, pl.Float64)
    epoch = field_("time").cast(pl.Int64, strict=False)
    ts_us = _epoch_us_expr(epoch)
    ok &= field_("time").str.contains(r"^\d{1,18}$") & ts_us.is_between(_TS_MIN_US, _TS_MAX_US, closed="left")
    side = pl.lit(None, pl.String)
    if "side" in cols:
        spelled = field_("side").str.to_lowercase()
        ok &= spelled.is_in(list(_SIDES)) | (field_("side") == "")
        side = spelled.replace_strict(_SIDES, default=None, return_dtype=pl.String)
    if "maker" in cols:
        flag = field_("maker").str.to_lowercase()
        ok &= flag.is_in(sorted(_TRUE | _FALSE)) | (field_("maker") == "") | side.is_not_null()
        side = pl.coalesce(
            side,
            pl.when(flag.is_in(sorted(_TRUE))).then(pl.lit(SELL)).when(flag.is_in(sorted(_FALSE))).then(pl.lit(BUY)),
        )
    trade_id = pl.lit(None, pl.String)
    if "id" in cols:
        ok &= field_("id").str.contains(_PLAIN_ID)
        trade_id = pl.when(field_("id") == "").then(None).otherwise(field_("id"))
    marked = fields.with_columns(ok.fill_null(False).alias("_ok"))
    fast = marked.filter("_ok").select(
        ts_us.alias("_ts_us"),
        price.alias(PRICE),
        size.alias(SIZE),
        side.alias(SIDE),
        trade_id.alias(TRADE_ID),
        pl.col("line").alias("_line"),
    )
    return fast, marked.filter(~pl.col("_ok")).select("line", "text", "record")


def _typed_csv(raw: bytes, number: int, sep: bytes, state: _CsvState) -> tuple[pl.DataFrame, pl.Series] | None:
    """The fastest path for chunks after the first: polars' typed CSV reader over the bytes, unreadable values as
    nulls. Taken only when the chunk has LF line ends and no quotes, NUL, CR or blank lines and is UTF-8; a line
    whose delimiter count is not n-1 (counted on the bytes) or with any null/odd required value is left for `_accept`
    (so every rejection reason stays exact). Returns (candidates in _FAST_COLUMNS order, line numbers left for
    `_accept`): a line is taken only under the same conditions as `_fast_csv`, with the same values."""
    layout = state.layout
    cols = layout.csv_columns
    if not _FAST_CSV or cols is None or sep != b"\n" or len(layout.delimiter) != 1:
        return None
    body = raw[:-1] if raw.endswith(b"\n") else raw
    if not body or any(c in body for c in (b'"', b"\x00", b"\r", b"\n\n")) or body.startswith(b"\n"):
        return None
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    n_lines = body.count(b"\n") + 1
    delim = layout.delimiter.encode()
    wrong: np.ndarray | None = None
    if body.count(delim) != n_lines * (layout.n_fields - 1):  # find the lines with the wrong field count
        arr = np.frombuffer(body, dtype=np.uint8)
        ends = np.flatnonzero(arr == 10)
        per_line = np.diff(np.searchsorted(np.flatnonzero(arr == delim[0]), ends), prepend=0)
        per_line = np.append(per_line, np.count_nonzero(arr[ends[-1] + 1 if ends.size else 0 :] == delim[0]))
        wrong = np.flatnonzero(per_line != layout.n_fields - 1)
    types: dict[str, pl.DataType] = {f"_f{i}": pl.String() for i in range(layout.n_fields)}
    types[f"_f{cols['time']}"] = pl.Int64()
    types[f"_f{cols['price']}"] = pl.Float64()
    if "size" in cols:
        types[f"_f{cols['size']}"] = pl.Float64()
    try:
        frame = pl.read_csv(
            body,
            has_header=False,
            schema=types,
            separator=layout.delimiter,
            quote_char=None,
            columns=sorted(set(cols.values())),
            ignore_errors=True,
            truncate_ragged_lines=True,
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if frame.height != n_lines:
        return None

    def field_(name: str) -> pl.Expr:
        return pl.col(f"_f{cols[name]}")

    price = field_("price")
    ok = price.is_finite() & (price > 0)
    if "size" in cols:
        size = field_("size")
        ok &= size.is_finite() & (size > 0)
    else:
        size = pl.lit(None, pl.Float64)
    epoch = field_("time")
    ts_us = _epoch_us_expr(epoch)
    ok &= (epoch >= 0) & ts_us.is_between(_TS_MIN_US, _TS_MAX_US, closed="left")
    side = pl.lit(None, pl.String)
    if "side" in cols:
        spelled = field_("side").str.to_lowercase()
        ok &= spelled.is_in(list(_SIDES)) | field_("side").is_null()
        side = spelled.replace_strict(_SIDES, default=None, return_dtype=pl.String)
    if "maker" in cols:
        flag = field_("maker").str.to_lowercase()
        ok &= flag.is_in(sorted(_TRUE | _FALSE)) | field_("maker").is_null() | side.is_not_null()
        side = pl.coalesce(
            side,
            pl.when(flag.is_in(sorted(_TRUE))).then(pl.lit(SELL)).when(flag.is_in(sorted(_FALSE))).then(pl.lit(BUY)),
        )
    trade_id = pl.lit(None, pl.String)
    if "id" in cols:
        ok &= field_("id").is_null() | field_("id").str.contains(_PLAIN_ID)
        trade_id = field_("id")
    if wrong is not None and wrong.size:
        ok &= ~pl.int_range(pl.len()).is_in(pl.Series(wrong, dtype=pl.Int64))
    marked = frame.with_row_index("_i").with_columns(ok.fill_null(False).alias("_ok"))
    line = (pl.col("_i").cast(pl.Int64) + number).alias("_line")
    fast = marked.filter("_ok").select(
        ts_us.alias("_ts_us"), price.alias(PRICE), size.alias(SIZE), side.alias(SIDE), trade_id.alias(TRADE_ID), line
    )
    return fast, marked.filter(~pl.col("_ok")).select(line)["_line"]


def _time_hint(text: str | None, delimiter: str, layout: _Layout) -> int | None:
    """The line's time when it can be read although the line cannot be a trade (only to place its quarantine row)."""
    index = (layout.csv_columns or {}).get("time")
    if text is None or index is None:
        return None
    try:
        fields = _split(text, delimiter)
        return _timestamp_us(fields[index]) if len(fields) == layout.n_fields else None
    except (ValueError, IndexError, csv.Error):
        return None


def _parse_jsonl(
    lines: pl.DataFrame, rows: _Rows, bad: _Bad, result: ParseResult, missing_counts: dict[str, int]
) -> None:
    key_cache: dict[tuple[str, ...], dict[str, str]] = {}
    for number, text, record in lines.iter_rows():
        result.parsed += 1
        if text is None:
            result.malformed += 1
            bad.add(number, "invalid UTF-8 / binary data in line", record)
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            result.malformed += 1
            bad.add(number, f"invalid JSON: {exc}", record)
            continue
        if not isinstance(obj, dict):
            result.malformed += 1
            bad.add(number, f"expected a JSON object, got {type(obj).__name__}", record)
            continue
        keys = tuple(obj)
        mapping = key_cache.get(keys)
        if mapping is None:
            mapping = {logical: keys[i] for logical, i in _match_fields(list(keys)).items()}
            key_cache[keys] = mapping
        for req in _REQUIRED:
            if req not in mapping:
                missing_counts[req] += 1
        _accept({logical: obj[key] for logical, key in mapping.items()}, number, record, rows, bad, result)


def _accept(
    values: dict[str, Any],
    number: int,
    record: str,
    rows: _Rows,
    bad: _Bad,
    result: ParseResult,
) -> None:
    """Convert one line's fields; append a candidate trade or a quarantine row (the reference for every line)."""
    ts_us: int | None = None
    naive: _Rejected | None = None
    try:
        if "price" not in values:
            raise _Malformed("missing price")
        if "time" not in values:
            raise _Malformed("missing time")
        try:
            ts_us = _timestamp_us(values["time"])
        except _Rejected as exc:  # decided after the other fields: a malformed line is malformed first
            naive = exc
        price = _number(values["price"], "price")
        size = _number(values["size"], "size") if "size" in values else None
        side = _side(values)
        trade_id = _trade_id(values.get("id"))
        if price is None:
            raise _Malformed("missing price")
        if "size" in values and size is None:
            raise _Malformed("missing size")
        if naive is not None or ts_us is None:
            raise naive or _Malformed("missing time")
        if not _TS_MIN_US <= ts_us < _TS_MAX_US:
            raise _Rejected(f"timestamp out of range [{TS_MIN:%Y}, {TS_MAX:%Y}): {values['time']!r}")
        if price <= 0:
            raise _Rejected(f"non-positive price {price!r}")
        if size is not None and size < 0:
            raise _Rejected(f"negative size {size!r}")
        if size is not None and size == 0:
            raise _Rejected("zero size")
    except _Malformed as exc:
        result.malformed += 1
        bad.add(number, str(exc), record, ts_us)
        return
    except _Rejected as exc:
        result.skipped += 1
        bad.add(number, str(exc), record, ts_us)
        return
    rows.ts.append(ts_us)
    rows.price.append(price)
    rows.size.append(size)
    rows.side.append(side)
    rows.trade_id.append(trade_id)
    rows.line.append(number)


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Malformed(f"non-numeric {what} {value!r}")
    if isinstance(value, str):
        text = value.strip().strip('"')
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise _Malformed(f"non-numeric {what} {_short(value)}") from None
    else:
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond float range
            raise _Malformed(f"{what} out of range {_short(value)}") from None
    if not math.isfinite(number):
        raise _Malformed(f"non-finite {what} {_short(value)}")
    return number


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US, _MAX_US = -(2**63) + 1, 2**63 - 1  # what an Int64 microsecond column holds


def _timestamp_us(value: Any) -> int:
    """Epoch number (unit by magnitude) or ISO string with an explicit offset -> microseconds since epoch."""
    if value is None or (isinstance(value, str) and not value.strip().strip('"')):
        raise _Malformed("missing time")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Malformed(f"unparseable timestamp {_short(value)}")
    if isinstance(value, str):
        text = value.strip().strip('"')
        if _NUMERIC.match(text):
            return _epoch_us(int(text) if text.lstrip("+-").isdigit() else float(text), value)
        if text.endswith(" UTC"):
            text = text[:-4] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _Malformed(f"unparseable timestamp {_short(value)}") from None
        if parsed.tzinfo is None:
            raise _Rejected("naive timestamp (no timezone)")
        delta = parsed - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _epoch_us(value, value)


def _epoch_us(number: int | float, original: Any) -> int:
    if isinstance(number, float) and not math.isfinite(number):
        raise _Malformed(f"non-finite timestamp {_short(original)}")
    if abs(number) >= 1e19:  # beyond nanoseconds since 1970 until the year 2286: not a time
        raise _Rejected(f"timestamp out of range {_short(original)}")
    magnitude = abs(number)
    if magnitude < 1e11:
        scale = 1_000_000
    elif magnitude < 1e14:
        scale = 1_000
    elif magnitude < 1e17:
        scale = 1
    else:
        return int(number) // 1_000 if isinstance(number, int) else math.floor(number / 1_000)
    return number * scale if isinstance(number, int) else math.floor(number * scale + 0.5)


def _side(values: dict[str, Any]) -> str | None:
    raw = values.get("side")
    if raw is not None and not (isinstance(raw, str) and not raw.strip()):
        side = _SIDES.get(str(raw).strip().strip('"').lower())
        if side is None:
            raise _Malformed(f"unrecognised side {_short(raw)}")
        return side
    maker = values.get("maker")
    if maker is None or (isinstance(maker, str) and not maker.strip()):
        return None
    if isinstance(maker, bool):
        return SELL if maker else BUY
    flag = str(maker).strip().strip('"').lower()
    if flag in _TRUE:
        return SELL
    if flag in _FALSE:
        return BUY
    raise _Malformed(f"unrecognised is_buyer_maker {_short(maker)}")


def _trade_id(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip().strip('"')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a JSON escape decoding to a lone surrogate: not text any store can hold
        raise _Malformed(f"trade id is not valid text {_short(value)}") from None
    return text or None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EMPTY_Q = empty_frame(QUARANTINE_SCHEMA)
# Candidate trades inside the parser and the scan: compact, no raw text (instrument/vendor/ingested_at are added
# when a window is cut).
_INTERNAL_TRADES = pl.Schema(
    [(c, RAW_TRADES_SCHEMA[c]) for c in (TS, PRICE, SIZE, SIDE, TRADE_ID)] + [("_line", pl.Int64())]
)
_INTERNAL_BAD = pl.Schema([*QUARANTINE_SCHEMA.items(), ("_ts", RAW_TRADES_SCHEMA[TS])])
_EMPTY_DUPES = pl.DataFrame(
    schema=pl.Schema(
        [*_INTERNAL_TRADES.items(), ("_k", pl.UInt64()), ("_src", pl.String()), ("reason", pl.String()),
         ("_own_ts", RAW_TRADES_SCHEMA[TS])]
    )
)


def _finish(
    result: ParseResult,
    bad: _Bad,
    tracker: _Tracker,
    store: _Store,
    now: datetime,
    public: bool = True,
    keep_keys: bool = False,
) -> _Parsed:
    """Within-file de-duplication (hash pre-filter, exact decision on the few rows whose hash repeats), attribution
    times, counts, and (public) the file's sorted trades."""
    hashes = _sorted_hashes(tracker.hashes, store.rows)
    tracker.hashes = []
    repeated = _repeated(hashes)
    lazy = store.lazy()
    if repeated.size and lazy is not None:
        suspects = (
            lazy.filter(pl.col("_k").is_in(pl.Series(repeated)))
            .collect()
            .with_columns(pl.lit(str(result.path)).alias("_src"))
        )
        _, dupes = _deduplicate(suspects, cross_file=False)
    else:
        dupes = _EMPTY_DUPES
    keys = _distinct(hashes) if keep_keys else np.empty(0, np.uint64)
    del hashes
    result.skipped += dupes.height
    result.accepted = store.rows - dupes.height

    ts_type = RAW_TRADES_SCHEMA[TS]
    tracker.sync(bad)
    bad_frame = pl.DataFrame(
        {
            "line": pl.Series(bad.line, dtype=pl.Int64),
            "reason": pl.Series(bad.reason, dtype=pl.String),
            "record": pl.Series(bad.record, dtype=pl.String),
            "_own_ts": pl.Series(bad.ts_us, dtype=pl.Int64),
            "_b": pl.Series(tracker.back, dtype=pl.Int64),
        }
    )
    texts = _lookup_records(result.path, set(dupes["_line"].to_list()))
    dupes_frame = dupes.select(
        pl.col("_line").alias("line"),
        "reason",
        pl.col("_line").replace_strict(texts, default=None, return_dtype=pl.String).alias("record"),
        pl.col(TS).dt.epoch("us").alias("_own_ts"),
        pl.lit(None, pl.Int64).alias("_b"),
    )
    # own time, else the nearest dated line before, else (nothing dated before it) the file's first dated line
    quarantine = (
        pl.concat([bad_frame, dupes_frame])
        .with_columns(
            pl.coalesce("_own_ts", "_b", pl.lit(tracker.first_dated, pl.Int64))
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
            .alias("_ts"),
            pl.lit(QUARANTINE_ASSET).alias("asset"),
            pl.lit(result.instrument).alias(INSTRUMENT),
            pl.lit(str(result.path)).alias("source"),
            pl.lit(now, ts_type).alias("quarantined_at"),
        )
        .sort("line", nulls_last=False)
        .select([*QUARANTINE_SCHEMA.keys(), "_ts"])
        .cast(_INTERNAL_BAD)
    )
    excluded = dupes["_line"]
    if public:
        trades = lazy.collect() if lazy is not None else pl.DataFrame(schema=_INTERNAL_TRADES)
        if excluded.len():
            trades = trades.filter(~pl.col("_line").is_in(excluded))
        trades = _content_sorted(trades.select(_INTERNAL_TRADES.names()))
        result.trades = _with_trade_columns(trades, result.instrument, now)
    result.quarantine = conform(quarantine, QUARANTINE_SCHEMA)
    return _Parsed(result=result, store=store, excluded=excluded, bad=quarantine, keys=keys)


def _sorted_hashes(chunks: list[np.ndarray], n: int) -> np.ndarray:
    """The chunks' hashes in one sorted array (filled chunk by chunk: about n * 8 bytes at peak, not twice that)."""
    out = np.empty(n, dtype=np.uint64)
    pos = 0
    while chunks:
        c = chunks.pop(0)
        out[pos : pos + c.size] = c
        pos += c.size
    out = out[:pos]
    out.sort()
    return out


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """Values occurring more than once in a sorted array."""
    if hashes.size < 2:
        return hashes[:0]
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def _distinct(hashes: np.ndarray) -> np.ndarray:
    if hashes.size < 2:
        return hashes.copy()
    keep = np.empty(hashes.size, dtype=bool)
    keep[0] = True
    np.not_equal(hashes[1:], hashes[:-1], out=keep[1:])
    return hashes[keep]


def _content_sorted(trades: pl.DataFrame) -> pl.DataFrame:
    """`sort_trades` order for one instrument's compact candidates (no instrument column needed)."""
    id_num = "__trade_id_num"
    return (
        trades.with_columns(pl.col(TRADE_ID).cast(pl.Int64, strict=False).alias(id_num))
        .sort([TS, id_num, TRADE_ID, PRICE, SIZE, SIDE], nulls_last=True, maintain_order=True)
        .drop(id_num)
    )


def _with_trade_columns(trades: pl.DataFrame, instrument: str, now: datetime) -> pl.DataFrame:
    """Compact candidates -> RAW_TRADES_SCHEMA (the constant columns are added only here)."""
    return conform(
        trades.with_columns(
            pl.lit(instrument, pl.String).alias(INSTRUMENT),
            pl.lit(VENDOR_NAME, pl.String).alias(VENDOR),
            pl.lit(now, RAW_TRADES_SCHEMA[INGESTED_AT]).alias(INGESTED_AT),
        ),
        RAW_TRADES_SCHEMA,
    )


def _deduplicate(frame: pl.DataFrame, *, cross_file: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split trades into (kept, duplicates with a `reason` and `_own_ts`), independent of line order.

    With a trade id: identical copies are kept once; if copies of one id disagree (time, price, size or side),
    every copy is quarantined because none can be trusted. Without an id: rows identical in time, price, size and
    side are one trade printed twice (an id-less dump cannot tell two identical prints apart; we choose to drop).
    Frames carry _src/_line; the first copy by (_src, _line) is the one kept.
    """
    content = [TS, PRICE, SIZE, SIDE]
    where = pl.format("{} line {}", "_first_src", "_first_line") if cross_file else pl.format("line {}", "_first_line")
    has_id = pl.col(TRADE_ID).is_not_null()
    # Only rows whose key repeats can be duplicates; the window logic below runs on those alone (dumps are large).
    with_id, without_id = frame.filter(has_id), frame.filter(~has_id)
    repeat_id = with_id[TRADE_ID].is_duplicated()
    repeat_row = without_id.select(pl.struct(content).is_duplicated()).to_series()
    clean = pl.concat([with_id.filter(~repeat_id), without_id.filter(~repeat_row)])
    frame = pl.concat([with_id.filter(repeat_id), without_id.filter(repeat_row)]).sort(["_src", "_line"])
    group = pl.when(has_id).then(pl.lit("i") + pl.col(TRADE_ID)).otherwise(pl.lit("n"))
    keys = [group.alias("_g"), pl.when(has_id).then(None).otherwise(pl.struct(content)).alias("_c")]
    marked = frame.with_columns(keys).with_columns(
        pl.struct(content).n_unique().over(["_g", "_c"]).alias("_versions"),
        pl.int_range(pl.len()).over(["_g", "_c"]).alias("_rank"),
        pl.col("_src").first().over(["_g", "_c"]).alias("_first_src"),
        pl.col("_line").first().over(["_g", "_c"]).alias("_first_line"),
    )
    conflict = pl.col("_versions") > 1
    duplicate = pl.col("_rank") > 0
    reason = (
        pl.when(conflict & has_id)
        .then(pl.format("conflicting duplicate trade id {} ({} versions)", TRADE_ID, "_versions"))
        .when(has_id)
        .then(pl.format("duplicate trade id {} (first seen at {})", TRADE_ID, where))
        .otherwise(pl.format("duplicate row (first seen at {})", where))
    )
    internal = ["_g", "_c", "_versions", "_rank", "_first_src", "_first_line"]
    kept = pl.concat([clean, marked.filter(~conflict & ~duplicate).drop(internal)]).sort(["_src", "_line"])
    dupes = (
        marked.filter(conflict | duplicate)
        .with_columns(reason.alias("reason"), pl.col(TS).alias("_own_ts"))
        .drop(internal)
    )
    return kept, dupes


# --- the landing folder and the vendor ----------------------------------------------------------------------------


def default_landing_dir() -> Path:
    """`<data_root>/landing/trade_files`."""
    return landing_root() / VENDOR_NAME


def scan_landing(landing_dir: Path) -> LandingListing:
    """Dumps under `landing_dir/<INSTRUMENT>/`, sorted, and the paths that were ignored with why.

    Ignored: hidden/temporary files (leading '.' or '~', or ending .tmp/.part/.partial: still being written), files
    outside an instrument folder, folders whose name is not a valid instrument id, nested folders, other suffixes.
    """
    landing_dir = Path(landing_dir)
    files: list[LandingFile] = []
    rejected: list[RejectedLandingPath] = []
    if not landing_dir.is_dir():
        return LandingListing(files, rejected)
    for entry in sorted(landing_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            rejected.append(RejectedLandingPath(entry, "not inside an instrument folder"))
            continue
        try:
            instrument = validate_instrument_id(entry.name)
        except InvalidIdentifierError as exc:
            rejected.append(RejectedLandingPath(entry, str(exc)))
            continue
        for item in sorted(entry.iterdir()):
            lower = item.name.lower()
            if lower.startswith((".", "~")) or lower.endswith((".tmp", ".part", ".partial")):
                continue
            if item.is_dir():
                rejected.append(RejectedLandingPath(item, "nested folders are not scanned"))
            elif not lower.endswith(SUFFIXES):
                rejected.append(RejectedLandingPath(item, f"unsupported file type; expected {', '.join(SUFFIXES)}"))
            else:
                st = item.stat()
                files.append(LandingFile(instrument, item, st.st_size, st.st_mtime, st.st_mtime_ns))
    for r in rejected:
        log.warning("trade_files landing: ignoring %s: %s", r.path, r.reason)
    return LandingListing(files, rejected)


def list_landing_files(landing_dir: Path) -> list[LandingFile]:
    """The dumps the landing sensor should watch (invalid paths are logged; see scan_landing for them)."""
    return scan_landing(landing_dir).files


Life = tuple[datetime, datetime]


def life_span(inst: Instrument, as_of: date | None = None) -> Life:
    """[first instant, end) covered by the instrument's partitions: its start date to the day after its end date, or
    to the end of today's month while it is live (exactly the union of the raw assets' partition windows)."""
    lo = datetime.combine(inst.start, time.min, UTC)
    if inst.end is not None:
        hi = datetime.combine(inst.end + timedelta(days=1), time.min, UTC)
    else:
        hi = month_bounds(month_key(as_of or datetime.now(UTC).date()))[1]
    return lo, max(lo, hi)


@dataclass
class _View:
    """Everything one instrument's landing files yield over its whole life, ready to be cut into windows. Trades stay
    on disk (each file's staged parts); memory holds only quarantine rows, counts and the excluded (file, line)s."""

    stores: list[_Store]  # per file, in `sources` order
    sources: list[str]
    excluded: pl.DataFrame  # _file (Int32), _line: candidates that are duplicates (within or across files)
    life: Life | None
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA + _at: the instant (inside the life) that places the row
    files: list[dict[str, Any]]  # life-aware whole-file counts
    cross_file_duplicates: int
    ingested_at: datetime
    folder: Path | None = None  # staging folder, removed when the view is dropped

    def window(self, start: datetime, end: datetime) -> pl.LazyFrame | None:
        """Kept trades with time in [start, end) ∩ life: _INTERNAL_TRADES + _file, lazily over the staged parts."""
        if self.life is not None:
            start, end = max(start, self.life[0]), min(end, self.life[1])
        if start >= end:
            return None
        months = (_month_number(start), _month_number(end - timedelta(microseconds=1)))
        frames = []
        for i, store in enumerate(self.stores):
            lazy = store.lazy(months)
            if lazy is not None:
                frames.append(lazy.with_columns(pl.lit(i, pl.Int32).alias("_file")))
        if not frames:
            return None
        ts_type = RAW_TRADES_SCHEMA[TS]
        out = pl.concat(frames).filter(
            (pl.col(TS) >= pl.lit(start, ts_type)) & (pl.col(TS) < pl.lit(end, ts_type))
        )
        if self.excluded.height:
            out = out.join(self.excluded.lazy(), on=["_file", "_line"], how="anti")
        return out.select(*_INTERNAL_TRADES.names(), "_file")

    def drop(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


# One instrument's view per landing state (file versions) and life: a range run scans month by month, and each
# month must not re-parse every dump. Small in memory: a view's trades are staged on disk.
_VIEWS: dict[tuple[Any, ...], _View] = {}
_VIEWS_MAX = 2
STAGING = ".staging"  # under the landing folder (hidden: the landing scan skips it); one sub-folder per view


def _drop_views() -> None:
    while _VIEWS:
        _VIEWS.pop(next(iter(_VIEWS))).drop()


atexit.register(_drop_views)


def _staging_folder(landing_dir: Path, instrument_id: str) -> Path | None:
    """A fresh staging folder `<landing>/.staging/<pid>-<instrument>-<uuid>`; folders of dead processes are removed.
    None when the landing folder is not writable (the view then stays in memory)."""
    root = landing_dir / STAGING
    try:
        root.mkdir(parents=True, exist_ok=True)
        for old in root.iterdir():
            pid = old.name.split("-", 1)[0]
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        folder = root / f"{os.getpid()}-{instrument_id}-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        return folder
    except OSError as exc:
        log.warning("trade_files: cannot stage under %s (%s); parsing in memory", root, exc)
        return None


class TradeFilesVendor:
    """Vendor over the landing folder. An instrument's dumps are parsed once per landing state (path, size, mtime of
    every file) and life span in a process, so month-by-month scans of one instrument parse each dump once."""

    name = VENDOR_NAME

    def __init__(self, landing_dir: Path | None = None, *, cache_size: int = 64) -> None:
        self.landing_dir = Path(landing_dir) if landing_dir is not None else default_landing_dir()

    def files(self, instrument_id: str) -> list[LandingFile]:
        instrument_id = validate_instrument_id(instrument_id)
        return [f for f in list_landing_files(self.landing_dir) if f.instrument == instrument_id]

    def fetch(self, instrument: Instrument, start: datetime, end: datetime, kind: DataKind) -> pl.DataFrame:
        """TRADES: trades in [start, end). OHLCV: candles at the instrument's base timeframe with bar open in
        [start, end), built from whole bars. FUNDING / OPEN_INTEREST: empty (dumps have none). Trades outside the
        instrument's life are never returned (they are quarantined by `scan`)."""
        kind = DataKind(kind)
        start, end = _utc(start), _utc(end)
        life = life_span(instrument)
        if kind == DataKind.TRADES:
            return self.scan(instrument.id, start, end, life=life).trades
        if kind == DataKind.OHLCV:
            step = TIMEFRAMES[instrument.base_timeframe]
            lo = _floor(start, step)
            hi = _floor(end, step) + (step if _floor(end, step) < end else timedelta(0))
            scan = self.scan(instrument.id, lo, hi, life=life)
            bars = trades_to_bars(scan.lazy_trades(), instrument.base_timeframe)
            bars = bars.filter((pl.col(TS) >= start) & (pl.col(TS) < end))
            book = book_ticker_bars(self.landing_dir.parent / BOOK_TICKER_FOLDER, instrument.id,
                                    instrument.base_timeframe, start, end)  # fmt: skip
            if book.bars.height:  # top of book from the book-ticker dumps beside the trade dumps
                bars = bars.join(book.bars, on=TS, how="left")
            return conform(bars, RAW_OHLCV_SCHEMA)
        return empty_frame(RAW_SCHEMAS[kind])

    def scan(self, instrument_id: str, start: datetime, end: datetime, *, life: Life | None = None) -> ScanResult:
        """All landing files of one instrument: trades in [start, end), quarantine placed in the window, counts.

        `life` is the instrument's span (`life_span`); without it every plausible time counts as inside. The trades
        are read from the staged parts only when asked for (`trades`, `lazy_trades`, `write_trades`)."""
        instrument_id = validate_instrument_id(instrument_id)
        start, end = _utc(start), _utc(end)
        view = self._view(instrument_id, life)
        trades = view.window(start, end)
        n_in: dict[str, int] = {}
        if trades is not None:
            per_file = trades.group_by("_file").len().collect(engine="streaming")
            n_in = {view.sources[i]: int(n) for i, n in per_file.iter_rows()}
        quarantine = view.quarantine.filter((pl.col("_at") >= start) & (pl.col("_at") < end))
        n_q = dict(quarantine.group_by("source").len().iter_rows())
        counts = [
            f | {"in_window": int(n_in.get(f["file"], 0)), "quarantined": int(n_q.get(f["file"], 0))}
            for f in view.files
            if f["file"] in n_in or f["file"] in n_q
        ]
        return ScanResult(
            instrument_id,
            conform(quarantine, QUARANTINE_SCHEMA),
            counts,
            view.cross_file_duplicates,
            in_window=sum(n_in.values()),
            _lazy=trades.drop("_file") if trades is not None else None,
            _ingested_at=view.ingested_at,
        )

    def _view(self, instrument_id: str, life: Life | None) -> _View:
        files = self.files(instrument_id)
        key = (str(self.landing_dir), instrument_id, tuple((str(f.path), f.size, f.mtime_ns) for f in files), life)
        view = _VIEWS.get(key)
        if view is None:
            while len(_VIEWS) >= _VIEWS_MAX:
                _VIEWS.pop(next(iter(_VIEWS))).drop()
            folder = _staging_folder(self.landing_dir, instrument_id) if files else None
            try:
                view = _build_view(instrument_id, files, life, folder)
            except BaseException:
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
                raise
            _VIEWS[key] = view
        return view


def _build_view(instrument_id: str, files: list[LandingFile], life: Life | None, folder: Path | None = None) -> _View:
    """Parse every file (staging its trades under `folder`), de-duplicate across files, quarantine trades outside the
    life, place every quarantine row.

    Placement (`_at`, the instant whose month holds the row): a row's own time, else its file's nearest dated line
    (see `_finish`), else (unreadable file, no dated line at all) the start of the life; then clamped into the
    life: earlier -> the life's first instant (first month), later -> its last instant (last month; today's month for
    a live instrument). Without `life`, undated rows fall back to the file's modification time and nothing is clamped.
    """
    now = datetime.now(UTC)
    many = len(files) > 1
    parsed = [
        (
            lf,
            _parse(
                lf.path,
                lf.instrument,
                ingested_at=now,
                public=False,
                spill=folder / f"f{i:05d}" if folder is not None else None,
                keys=many,
            ),
        )
        for i, lf in enumerate(files)
    ]
    sources = [str(lf.path) for lf in files]
    stores = [p.store for _, p in parsed]
    ts_type = RAW_TRADES_SCHEMA[TS]
    excluded = pl.concat(
        [_EMPTY_EXCLUDED]
        + [
            pl.DataFrame({"_file": pl.Series([i] * p.excluded.len(), dtype=pl.Int32), "_line": p.excluded})
            for i, (_, p) in enumerate(parsed)
            if p.excluded.len()
        ]
    )

    def candidates() -> pl.LazyFrame | None:
        frames = []
        for i, (_, p) in enumerate(parsed):
            lazy = p.store.lazy()
            if lazy is not None:
                frames.append(lazy.with_columns(pl.lit(i, pl.Int32).alias("_file")))
        if not frames:
            return None
        out = pl.concat(frames)
        return out.join(excluded.lazy(), on=["_file", "_line"], how="anti") if excluded.height else out

    src_of = pl.col("_file").replace_strict(list(range(len(sources))), sources, return_dtype=pl.String)
    # Across files: a trade in two overlapping dumps is one trade (decided on all files before anything else). Kept
    # keys are distinct within a file, so only hashes present in two files can be cross-file duplicates.
    dupes = _EMPTY_DUPES.with_columns(pl.lit(None, pl.Int32).alias("_file"))
    if many:
        everything = np.concatenate([p.keys for _, p in parsed])
        for _, p in parsed:
            p.keys = np.empty(0, np.uint64)
        everything.sort()
        shared = _repeated(everything)
        del everything
        lazy = candidates()
        if shared.size and lazy is not None:
            suspects = lazy.filter(pl.col("_k").is_in(pl.Series(shared))).collect().with_columns(src_of.alias("_src"))
            _, dupes = _deduplicate(suspects, cross_file=True)
            excluded = pl.concat([excluded, dupes.select("_file", "_line")])
    if life is not None:
        lo, hi = life
        before, after = pl.col(TS) < pl.lit(lo, ts_type), pl.col(TS) >= pl.lit(hi, ts_type)
        span = f"[{lo:%Y-%m-%d}, {hi:%Y-%m-%d})"
        lazy = candidates()
        outside = (
            lazy.filter(before | after)
            .collect()
            .with_columns(
                pl.when(before)
                .then(pl.lit(f"before the instrument's life {span}"))
                .otherwise(pl.lit(f"after the instrument's life {span} (or in the future)"))
                .alias("reason"),
                src_of.alias("_src"),
            )
            if lazy is not None
            else None
        )
    else:
        outside = None
    columns = [*_INTERNAL_TRADES.names(), "_file", "_src", "reason"]
    rejected = pl.concat(
        [dupes.select(columns)] + ([outside.select(columns)] if outside is not None else []), how="vertical"
    )
    # Their raw text is looked up in a second pass over just their files (accepted rows carry none).
    texts = {
        (src, line): text
        for src, group in rejected.group_by("_src")
        for line, text in _lookup_records(Path(str(src[0])), set(group["_line"].to_list())).items()
    }
    records = [texts.get((src, line)) for src, line in rejected.select("_src", "_line").iter_rows()]
    rejected_trades = rejected.select(
        pl.lit(QUARANTINE_ASSET).alias("asset"),
        pl.lit(instrument_id).alias(INSTRUMENT),
        pl.col("_src").alias("source"),
        pl.col("_line").alias("line"),
        "reason",
        pl.Series("record", records, dtype=pl.String),
        pl.lit(now, RAW_TRADES_SCHEMA[TS]).alias("quarantined_at"),
        pl.col(TS).alias("_ts"),
    )
    parts = []
    for lf, p in parsed:
        if life is not None:
            fallback = life[0]
        else:
            try:
                fallback = datetime.fromtimestamp(lf.path.stat().st_mtime, tz=UTC)
            except OSError:
                fallback = datetime.now(UTC)
        parts.append(p.bad.with_columns(pl.col("_ts").fill_null(pl.lit(fallback, ts_type))))
    quarantine = pl.concat([*parts, rejected_trades.cast(_INTERNAL_BAD)], how="vertical")
    at = pl.col("_ts")
    if life is not None:
        at = at.clip(pl.lit(life[0], ts_type), pl.lit(life[1] - timedelta(microseconds=1), ts_type))
    quarantine = quarantine.with_columns(at.alias("_at")).drop("_ts")
    lost = dict(rejected.group_by("_src").len().iter_rows())  # cross-file duplicates and trades outside the life
    counts = []
    for lf, p in parsed:
        c = p.result.counts
        accepted = c["accepted"] - int(lost.get(str(lf.path), 0))
        # Trades the file accepted but the lake does not (cross-file duplicates, outside the life) are skipped.
        counts.append(c | {"accepted": accepted, "skipped": c["skipped"] + c["accepted"] - accepted})
    excluded = pl.concat([excluded, rejected.select("_file", "_line")]).unique()
    return _View(stores, sources, excluded, life, quarantine, counts, dupes.height, now, folder)


_EMPTY_EXCLUDED = pl.DataFrame(schema={"_file": pl.Int32, "_line": pl.Int64})


def _lazy_trade_columns(trades: pl.LazyFrame, instrument: str, now: datetime) -> pl.LazyFrame:
    """Compact candidates (lazy) -> RAW_TRADES_SCHEMA columns."""
    return trades.select(
        pl.col(TS),
        pl.lit(instrument, pl.String).alias(INSTRUMENT),
        pl.col(PRICE),
        pl.col(SIZE),
        pl.col(SIDE),
        pl.col(TRADE_ID),
        pl.lit(VENDOR_NAME, pl.String).alias(VENDOR),
        pl.lit(now, RAW_TRADES_SCHEMA[INGESTED_AT]).alias(INGESTED_AT),
    ).cast(dict(RAW_TRADES_SCHEMA))  # type: ignore[arg-type]


SLICE_ROWS = 500_000  # trades sorted in memory at once when a window is streamed to parquet


def write_sorted_trades(trades: pl.LazyFrame | None, path: Path) -> int:
    """Write `trades` (RAW_TRADES_SCHEMA, any order) to `path` sorted as `sort_trades`, one time slice of at most
    ~SLICE_ROWS trades at a time (slices cut on whole seconds: `ts` leads the sort key). Returns the row count."""
    slices = time_slices(trades, "1s", SLICE_ROWS) if trades is not None else []
    if not slices:
        empty_frame(RAW_TRADES_SCHEMA).write_parquet(path, compression="lz4", statistics=True)
        return 0
    assert trades is not None
    n = 0
    writer: pq.ParquetWriter | None = None
    try:
        for lo, hi in slices:
            part = sort_trades(trades.filter(in_slice(lo, hi)).collect())
            table = part.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="lz4", write_statistics=True)
            writer.write_table(table)
            n += part.height
            del part, table
    finally:
        if writer is not None:
            writer.close()
    return n


def _utc(value: datetime) -> datetime:
    """Window bounds are UTC; a naive bound is read as UTC (Dagster time windows are already aware)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _floor(value: datetime, step: timedelta) -> datetime:
    return _EPOCH + ((value - _EPOCH) // step) * step


__all__ = [
    "LandingFile",
    "LandingListing",
    "ParseResult",
    "RejectedLandingPath",
    "ScanResult",
    "TradeFilesVendor",
    "default_landing_dir",
    "life_span",
    "list_landing_files",
    "parse_trade_file",
    "scan_landing",
]
