"""Book-ticker dumps in the landing folder -> top of book per bar (bid, ask and sizes at each bar's close).

Layout beside the trade dumps: `<landing>/book_ticker/<INSTRUMENT>/*.csv[.gz]`, one quote update per line, with a
header. Columns (case-insensitive): Binance's bookTicker dumps (`update_id, best_bid_price, best_bid_qty,
best_ask_price, best_ask_qty, transaction_time, event_time`) or plain names (`ts|time|timestamp, bid|bid_price,
ask|ask_price, bid_size|bid_qty, ask_size|ask_qty`). Times are epoch numbers (unit by magnitude: s, ms, us) or
ISO-8601 strings with an offset. A bar gets the last quote at or before its close (updates inside the bar), so a
bar without any update has no top of book (null), never a stale one carried over. Lines that do not parse, crossed
or non-positive quotes are dropped and counted (`BookTickerScan.malformed`). A minimal reader, not the trade-dump
machinery: book-ticker dumps are read whole (polars' CSV reader), which suits per-day or per-month files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from lake_assets.vocabulary import ASK, ASK_SIZE, BID, BID_SIZE, TIMEFRAMES, TS, validate_instrument_id

FOLDER = "book_ticker"
SUFFIXES = (".csv", ".csv.gz")
_ALIASES: dict[str, tuple[str, ...]] = {
    TS: ("transaction_time", "event_time", "ts", "time", "timestamp", "datetime"),
    BID: ("best_bid_price", "bid_price", "bid"),
    ASK: ("best_ask_price", "ask_price", "ask"),
    BID_SIZE: ("best_bid_qty", "bid_qty", "bid_size", "bid_volume"),
    ASK_SIZE: ("best_ask_qty", "ask_qty", "ask_size", "ask_volume"),
}
_TS_TYPE: pl.DataType = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class BookTickerScan:
    bars: pl.DataFrame  # ts (bar open), bid, ask, bid_size, ask_size: one row per bar with at least one quote
    lines: int
    malformed: int
    files: tuple[str, ...]


def book_ticker_files(landing_dir: Path, instrument: str) -> list[Path]:
    """The instrument's book-ticker dumps (`landing_dir` is the landing root's `book_ticker` folder)."""
    folder = Path(landing_dir) / validate_instrument_id(instrument)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.lower().endswith(SUFFIXES) and not p.name.startswith("."))


def _times(col: pl.Expr) -> pl.Expr:
    """Epoch numbers (s / ms / us by magnitude) or ISO-8601 strings -> UTC microseconds; null when unparseable."""
    num = col.cast(pl.Float64, strict=False)
    us = (
        pl.when(num < 1e11).then(num * 1e6).when(num < 1e14).then(num * 1e3).when(num < 1e17).then(num)
        .otherwise(num / 1e3)
    )  # fmt: skip
    as_num = us.cast(pl.Int64, strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    as_iso = col.str.to_datetime(time_unit="us", strict=False, time_zone="UTC")
    return pl.coalesce(as_num, as_iso)


def read_book_ticker(path: Path) -> tuple[pl.DataFrame, int, int]:
    """One dump -> (quotes: ts, bid, ask, bid_size, ask_size; lines read; lines dropped)."""
    raw = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=True)
    names = {c.strip().lower(): c for c in raw.columns}
    picked: dict[str, str | None] = {}
    for field, aliases in _ALIASES.items():
        source = next((names[a] for a in aliases if a in names), None)
        if source is None and field in (TS, BID, ASK):
            raise ValueError(f"{path.name}: no {field} column (one of {', '.join(aliases)}); header {raw.columns}")
        picked[field] = source
    quotes = raw.select(
        _times(pl.col(str(picked[TS])).str.strip_chars()).alias(TS),
        *[
            (pl.col(src).str.strip_chars().cast(pl.Float64, strict=False) if src else pl.lit(None, pl.Float64)).alias(f)
            for f, src in picked.items()
            if f != TS
        ],
    )
    ok = (
        pl.col(TS).is_not_null() & pl.col(BID).is_finite() & pl.col(ASK).is_finite() & (pl.col(BID) > 0)
        & (pl.col(ASK) >= pl.col(BID))
    )  # fmt: skip
    good = quotes.filter(ok.fill_null(False))
    return good, raw.height, raw.height - good.height


def book_ticker_bars(
    landing_dir: Path, instrument: str, timeframe: str, start: datetime, end: datetime
) -> BookTickerScan:
    """Top of book at each bar's close for bars opening in [start, end), from every dump of the instrument."""
    frames, lines, bad, names = [], 0, 0, []
    for path in book_ticker_files(landing_dir, instrument):
        quotes, n, dropped = read_book_ticker(path)
        frames.append(quotes)
        lines, bad = lines + n, bad + dropped
        names.append(path.name)
    schema = pl.Schema([(TS, _TS_TYPE), *((c, pl.Float64()) for c in (BID, ASK, BID_SIZE, ASK_SIZE))])
    if not frames:
        return BookTickerScan(pl.DataFrame(schema=schema), 0, 0, ())
    step = TIMEFRAMES[timeframe]
    quotes = pl.concat(frames).filter((pl.col(TS) >= start) & (pl.col(TS) < end)).sort(TS, maintain_order=True)
    bars = (
        quotes.with_columns(pl.col(TS).dt.truncate(step).alias("_bar"))
        .group_by("_bar", maintain_order=True)
        .agg(pl.col(BID, ASK, BID_SIZE, ASK_SIZE).last())
        .rename({"_bar": TS})
        .select(schema.names())
        .cast(schema)
    )
    return BookTickerScan(bars, lines, bad, tuple(names))
