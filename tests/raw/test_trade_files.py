"""The trade_files vendor: every malformed-input case as its own small dump, exact counts and quarantine reasons."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_assets.specs import Instrument
from lake_assets.trades import trades_to_bars
from lake_assets.vendors import trade_files
from lake_assets.vendors.trade_files import (
    ParseResult,
    TradeFilesVendor,
    list_landing_files,
    parse_trade_file,
    scan_landing,
)
from lake_assets.vocabulary import (
    QUARANTINE_SCHEMA,
    RAW_FUNDING_SCHEMA,
    RAW_OHLCV_SCHEMA,
    RAW_OPEN_INTEREST_SCHEMA,
    RAW_TRADES_SCHEMA,
    DataKind,
    InvalidIdentifierError,
    conform,
)

INST = "BTCUSDT"
T0 = 1704067200000  # 2024-01-01T00:00:00Z in ms
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
INGESTED = datetime(2024, 6, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def write(tmp_path: Path, name: str, content: str | bytes, instrument: str = INST) -> Path:
    folder = tmp_path / instrument
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    if name.endswith(".gz"):
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def parse(path: Path) -> ParseResult:
    result = parse_trade_file(path, INST, ingested_at=INGESTED)
    # Invariants every parse must satisfy, whatever the input.
    assert result.trades.schema == RAW_TRADES_SCHEMA
    assert result.quarantine.schema == QUARANTINE_SCHEMA
    assert result.parsed == result.accepted + result.skipped + result.malformed
    assert result.trades.height == result.accepted
    file_rows = result.quarantine.filter(pl.col("line").is_null()).height
    assert result.quarantine.height == result.skipped + result.malformed + file_rows
    assert result.trades["ts"].is_sorted()
    if result.quarantine.height:
        assert set(result.quarantine["asset"]) == {"raw_trades"}
        assert set(result.quarantine["source"]) == {str(path)}
        assert set(result.quarantine["instrument"]) == {INST}
    return result


def counts(r: ParseResult) -> tuple[int, int, int, int]:
    return r.parsed, r.accepted, r.skipped, r.malformed


def reasons(r: ParseResult) -> dict[int | None, str]:
    return dict(zip(r.quarantine["line"].to_list(), r.quarantine["reason"].to_list(), strict=True))


def agg_line(i: int, price: str = "42000.5", qty: str = "0.1", ms: int | str | None = None, maker: str = "true") -> str:
    ms = T0 + i * 1000 if ms is None else ms
    return f"{i},{price},{qty},{i},{i},{ms},{maker}"


# --- realistic dumps -------------------------------------------------------------------------------------------

BINANCE_AGG = """agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker
3391283427,42283.58,0.00118,4185484563,4185484563,1704067200040,true
3391283428,42283.59,0.04727,4185484564,4185484567,1704067200118,false
3391283429,42283.59,0.00050,4185484568,4185484568,1704067200118,false
3391283430,42283.58,0.23700,4185484569,4185484572,1704067200326,true
3391283431,42283.00,1.10000,4185484573,4185484580,1704067299999,true
3391283432,42290.10,0.00300,4185484581,4185484581,1704067300000,false
3391283433,42288.75,0.01500,4185484582,4185484583,1704067500000,true
"""


def test_realistic_binance_aggtrades_csv(tmp_path: Path) -> None:
    r = parse(write(tmp_path, "BTCUSDT-aggTrades-2024-01-01.csv", BINANCE_AGG))
    assert counts(r) == (7, 7, 0, 0)
    assert r.quarantine.is_empty() and r.file_error is None and r.out_of_order == 0
    t = r.trades
    assert t["trade_id"].to_list()[:3] == ["3391283427", "3391283428", "3391283429"]
    assert t["ts"][0] == datetime(2024, 1, 1, 0, 0, 0, 40000, tzinfo=UTC)
    assert t["ts"][-1] == utc(2024, 1, 1, 0, 5)
    # is_buyer_maker=true: the buyer rested, the aggressor sold.
    assert t["side"].to_list() == ["sell", "buy", "buy", "sell", "sell", "buy", "sell"]
    assert t["price"].to_list()[4] == 42283.0 and t["size"].to_list()[4] == 1.1
    assert set(t["vendor"]) == {"trade_files"} and set(t["instrument"]) == {INST}
    assert set(t["ingested_at"]) == {INGESTED}
    assert r.ts_range == (datetime(2024, 1, 1, 0, 0, 0, 40000, tzinfo=UTC), utc(2024, 1, 1, 0, 5))


def test_headerless_binance_layouts(tmp_path: Path) -> None:
    # Older public-data aggTrades: no header, 8 fields (is_best_match last).
    agg = "\n".join(f"{agg_line(i)},True" for i in range(3)) + "\n"
    r = parse(write(tmp_path, "agg.csv", agg))
    assert counts(r) == (3, 3, 0, 0)
    assert r.trades["trade_id"].to_list() == ["0", "1", "2"]
    # trades layout: id, price, qty, quote_qty, time, is_buyer_maker, is_best_match.
    trades = "101,42000.0,0.5,21000.0,1704067200000,False,True\n102,42001.0,0.25,10500.25,1704067201000,True,True\n"
    r = parse(write(tmp_path, "trades.csv", trades))
    assert counts(r) == (2, 2, 0, 0)
    assert r.trades["side"].to_list() == ["buy", "sell"]
    assert r.trades["size"].to_list() == [0.5, 0.25]  # qty, not quote_qty
    assert r.trades["ts"].to_list() == [utc(2024, 1, 1), utc(2024, 1, 1, 0, 0, 1)]
    # An all-numeric first line in no known layout: every line malformed, the file says why.
    r = parse(write(tmp_path, "odd.csv", "1,2,3\n4,5,6\n"))
    assert counts(r) == (2, 0, 0, 2)
    assert r.file_error is not None and "not a known Binance" in r.file_error


def test_jsonl_binance_keys_and_named_keys(tmp_path: Path) -> None:
    lines = [
        {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781, "T": 1498793709153, "m": True},
        {"e": "trade", "t": 12345, "p": "0.01634", "q": "1.5", "T": 1498793709200, "m": False, "M": True},
        {"timestamp": "2017-06-30T03:35:09.300Z", "price": 0.01635, "size": 2, "side": "SELL", "id": "x-1"},
    ]
    r = parse(write(tmp_path, "t.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n"))
    assert counts(r) == (3, 3, 0, 0)
    t = r.trades
    # Binance's lowercase `t` is a trade id, never the time; `T` is the time.
    assert t["ts"].to_list() == [
        datetime(2017, 6, 30, 3, 35, 9, 153000, tzinfo=UTC),
        datetime(2017, 6, 30, 3, 35, 9, 200000, tzinfo=UTC),
        datetime(2017, 6, 30, 3, 35, 9, 300000, tzinfo=UTC),
    ]
    assert t["trade_id"].to_list() == ["26129", None, "x-1"]
    assert t["side"].to_list() == ["sell", "buy", "sell"]
    assert t["price"].to_list() == [0.01633102, 0.01634, 0.01635]


def test_gzip_csv_and_jsonl(tmp_path: Path) -> None:
    r = parse(write(tmp_path, "a.csv.gz", BINANCE_AGG))
    assert counts(r) == (7, 7, 0, 0)
    jl = "\n".join(json.dumps({"T": T0 + i, "p": 10 + i, "q": 1}) for i in range(4))
    r = parse(write(tmp_path, "b.jsonl.gz", jl))
    assert counts(r) == (4, 4, 0, 0)
    assert r.trades["side"].null_count() == 4


# --- malformed lines, one case per file ----------------------------------------------------------------------


def test_truncated_lines(tmp_path: Path) -> None:
    body = "\n".join([AGG_HEADER, agg_line(1), "2,42001.0,0.3,2,2,17040672", agg_line(3), "4,4200"])
    r = parse(write(tmp_path, "trunc.csv", body))  # the last line has no newline: cut mid-write
    assert counts(r) == (4, 2, 0, 2)
    assert reasons(r) == {
        3: "truncated line: expected 7 fields, got 6",
        5: "truncated line: expected 7 fields, got 2",
    }
    assert r.trades["trade_id"].to_list() == ["1", "3"]


def test_too_many_fields_and_bad_quoting(tmp_path: Path) -> None:
    body = "\n".join([AGG_HEADER, agg_line(1) + "," + agg_line(2), agg_line(3)])
    r = parse(write(tmp_path, "merged.csv", body))
    assert counts(r) == (2, 1, 0, 1)
    assert reasons(r) == {2: "too many fields: expected 7 fields, got 14"}


def test_bad_json_lines(tmp_path: Path) -> None:
    good = json.dumps({"T": T0, "p": "100.5", "q": "2", "a": 1})
    body = "\n".join([good, '{"T": 1704067201000, "p": "100.6", "q"', "[1, 2, 3]", "not json at all", good[:-1]])
    r = parse(write(tmp_path, "bad.jsonl", body))
    assert counts(r) == (5, 1, 0, 4)
    why = reasons(r)
    assert why[2].startswith("invalid JSON") and why[4].startswith("invalid JSON") and why[5].startswith("invalid JSON")
    assert why[3] == "expected a JSON object, got list"


def test_missing_and_non_numeric_price(tmp_path: Path) -> None:
    body = "\n".join(
        [
            AGG_HEADER,
            agg_line(1),
            agg_line(2, price=""),
            agg_line(3, price="abc"),
            agg_line(4, price="1,5"),
            agg_line(5),
        ]
    )
    r = parse(write(tmp_path, "price.csv", body))
    assert counts(r) == (5, 2, 0, 3)
    assert reasons(r) == {
        3: "missing price",
        4: "non-numeric price 'abc'",
        5: "too many fields: expected 7 fields, got 8",
    }
    jl = "\n".join(
        json.dumps(x) for x in [{"T": T0, "q": 1}, {"T": T0, "p": None, "q": 1}, {"T": T0, "p": True, "q": 1}]
    )
    r = parse(write(tmp_path, "price.jsonl", jl))
    assert counts(r) == (3, 0, 0, 3)
    assert reasons(r) == {1: "missing price", 2: "missing price", 3: "non-numeric price True"}
    assert r.file_error is None  # only one record lacks the key; the file itself has prices


def test_negative_zero_and_non_positive_values(tmp_path: Path) -> None:
    body = "\n".join(
        [
            AGG_HEADER,
            agg_line(1),
            agg_line(2, qty="-0.5"),
            agg_line(3, qty="0"),
            agg_line(4, price="-1"),
            agg_line(5, price="0.0"),
            agg_line(6, qty=""),
        ]
    )
    r = parse(write(tmp_path, "neg.csv", body))
    assert counts(r) == (6, 1, 4, 1)
    assert reasons(r) == {
        3: "negative size -0.5",
        4: "zero size",
        5: "non-positive price -1.0",
        6: "non-positive price 0.0",
        7: "missing size",
    }


def test_nan_and_inf_values(tmp_path: Path) -> None:
    body = "\n".join(
        [
            AGG_HEADER,
            agg_line(1, price="NaN"),
            agg_line(2, qty="inf"),
            agg_line(3, price="-Infinity"),
            agg_line(4, ms="nan"),
            agg_line(5),
        ]
    )
    r = parse(write(tmp_path, "nan.csv", body))
    assert counts(r) == (5, 1, 0, 4)
    assert reasons(r) == {
        2: "non-finite price 'NaN'",
        3: "non-finite size 'inf'",
        4: "non-finite price '-Infinity'",
        5: "unparseable timestamp 'nan'",
    }
    # JSON's NaN / Infinity literals (Python's json accepts them) are caught the same way.
    jl = '{"T": 1704067200000, "p": NaN, "q": 1}\n{"T": 1704067200000, "p": 1, "q": Infinity}\n'
    r = parse(write(tmp_path, "nan.jsonl", jl))
    assert counts(r) == (2, 0, 0, 2)
    assert reasons(r) == {1: "non-finite price nan", 2: "non-finite size inf"}


def test_duplicate_trade_ids(tmp_path: Path) -> None:
    body = "\n".join(
        [
            AGG_HEADER,
            agg_line(1),
            agg_line(2),
            agg_line(1),  # exact repeat of id 1: one trade
            agg_line(3, price="42000.5"),
            agg_line(3, price="42999.0"),  # id 3 twice with different prices: neither can be trusted
            agg_line(2),
        ]
    )
    r = parse(write(tmp_path, "dupid.csv", body))
    assert counts(r) == (6, 2, 4, 0)
    assert reasons(r) == {
        4: "duplicate trade id 1 (first seen at line 2)",
        5: "conflicting duplicate trade id 3 (2 versions)",
        6: "conflicting duplicate trade id 3 (2 versions)",
        7: "duplicate trade id 2 (first seen at line 3)",
    }
    assert r.trades["trade_id"].to_list() == ["1", "2"]


def test_duplicate_rows_without_ids(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "timestamp,price,size,side",
            "2024-01-01T00:00:00Z,100.0,1.0,buy",
            "2024-01-01T00:00:00Z,100.0,1.0,buy",
            "2024-01-01T00:00:00Z,100.0,1.0,sell",  # same print, other side: a different trade
            "2024-01-01T00:00:00+00:00,100,1,BUY",  # same trade spelled differently
        ]
    )
    r = parse(write(tmp_path, "duprow.csv", body))
    assert counts(r) == (4, 2, 2, 0)
    assert reasons(r) == {3: "duplicate row (first seen at line 2)", 5: "duplicate row (first seen at line 2)"}
    assert sorted(r.trades["side"].to_list()) == ["buy", "sell"]


def test_out_of_order_timestamps_are_kept_and_sorted(tmp_path: Path) -> None:
    body = "\n".join([AGG_HEADER, agg_line(3), agg_line(1), agg_line(2), agg_line(5), agg_line(4)])
    r = parse(write(tmp_path, "ooo.csv", body))
    assert counts(r) == (5, 5, 0, 0)
    assert r.out_of_order == 2
    assert r.trades["trade_id"].to_list() == ["1", "2", "3", "4", "5"]


def test_timestamp_forms(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "time,price,qty",
            "1704067200,1,1",  # seconds
            "1704067200.5,2,1",  # fractional seconds
            "1704067200000,3,1",  # ms
            "1704067200000000,4,1",  # us (Binance spot dumps since 2025)
            "1704067200000000000,5,1",  # ns
            "2024-01-01T01:00:00+01:00,6,1",  # offset -> UTC
            "2024-01-01T00:00:00.123456789Z,7,1",  # ns fraction truncated to us
            "2024-01-01 00:00:00 UTC,8,1",
            "2024-01-01T00:00:00,9,1",  # naive: rejected, not guessed
            "2024-01-01,10,1",  # a date is naive too
            "yesterday,11,1",
            "5,12,1",  # 1970: a unit mix-up, not a trade
            "99999999999999999999,13,1",
        ]
    )
    r = parse(write(tmp_path, "ts.csv", body))
    assert counts(r) == (13, 8, 4, 1)
    ts = dict(zip(r.trades["price"].to_list(), r.trades["ts"].to_list(), strict=True))
    midnight = utc(2024, 1, 1)
    assert ts == {
        1.0: midnight,
        2.0: datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        3.0: midnight,
        4.0: midnight,
        5.0: midnight,
        6.0: midnight,
        7.0: datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        8.0: midnight,
    }
    why = reasons(r)
    assert why[10] == why[11] == "naive timestamp (no timezone)"
    assert why[12] == "unparseable timestamp 'yesterday'"
    assert why[13].startswith("timestamp out of range [1990, 2100)") and why[14].startswith("timestamp out of range")


def test_malformed_beats_naive(tmp_path: Path) -> None:
    r = parse(write(tmp_path, "both.csv", "time,price,qty\n2024-01-01T00:00:00,abc,1\n"))
    assert counts(r) == (1, 0, 0, 1)
    assert reasons(r) == {2: "non-numeric price 'abc'"}


def test_header_only_and_zero_byte_files(tmp_path: Path) -> None:
    for name, content in [("header.csv", AGG_HEADER + "\n"), ("empty.csv", b""), ("empty.jsonl.gz", b"")]:
        r = parse(write(tmp_path, name, content))
        assert counts(r) == (0, 0, 0, 0), name
        assert r.trades.is_empty() and r.quarantine.is_empty() and r.file_error is None
        assert r.ts_range is None


def test_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    body = "\ufeff" + "\r\n".join([AGG_HEADER, agg_line(1), "", "   ", agg_line(2), ""]) + "\r\n"
    r = parse(write(tmp_path, "bom.csv", body))
    assert counts(r) == (2, 2, 0, 0)  # blank lines are neither parsed nor quarantined
    assert r.trades["side"].to_list() == ["sell", "sell"]  # "true\r" would be unrecognised if CR leaked
    # Old-Mac CR-only endings.
    r = parse(write(tmp_path, "cr.csv", "\r".join([AGG_HEADER, agg_line(1), agg_line(2)])))
    assert counts(r) == (2, 2, 0, 0)


def test_extra_and_missing_optional_columns(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "exchange,symbol,price,ts,note",
            "binance,BTCUSDT,100.5,1704067200000,hello",
            "binance,BTCUSDT,101.0,1704067201000,",
        ]
    )
    r = parse(write(tmp_path, "extra.csv", body))
    assert counts(r) == (2, 2, 0, 0)
    assert r.trades["size"].null_count() == 2  # no size column at all: unknown, not zero
    assert r.trades["side"].null_count() == 2 and r.trades["trade_id"].null_count() == 2
    # tab-separated with quoted fields and other aliases
    tsv = 'T\tp\tq\tside\tid\n"1704067200000"\t"100"\t"2"\t"b"\t"7"\n'
    r = parse(write(tmp_path, "tabs.csv", tsv))
    assert counts(r) == (1, 1, 0, 0)
    assert r.trades.row(0, named=True) | {"ingested_at": None} == {
        "ts": utc(2024, 1, 1),
        "instrument": INST,
        "price": 100.0,
        "size": 2.0,
        "side": "buy",
        "trade_id": "7",
        "vendor": "trade_files",
        "ingested_at": None,
    }


def test_side_precedence_and_invalid_side(tmp_path: Path) -> None:
    body = "\n".join(
        [
            "time,price,qty,side,is_buyer_maker",
            "1704067200000,1,1,buy,true",  # explicit side wins
            "1704067201000,1,1,,true",  # falls back to is_buyer_maker
            "1704067202000,1,1,,",  # unknown
            "1704067203000,1,1,sideways,",
            "1704067204000,1,1,,maybe",
        ]
    )
    r = parse(write(tmp_path, "side.csv", body))
    assert counts(r) == (5, 3, 0, 2)
    assert r.trades["side"].to_list() == ["buy", "sell", None]
    assert reasons(r) == {5: "unrecognised side 'sideways'", 6: "unrecognised is_buyer_maker 'maybe'"}


def test_missing_price_or_time_column_quarantines_the_file(tmp_path: Path) -> None:
    body = "\n".join(["trade_id,qty,transact_time", "1,0.5,1704067200000", "2,0.5,1704067201000"])
    r = parse(write(tmp_path, "noprice.csv", body))
    assert counts(r) == (2, 0, 0, 2)
    assert r.file_error is not None and r.file_error.startswith("file has no price column")
    assert set(reasons(r).values()) == {r.file_error}
    r = parse(write(tmp_path, "notime.csv", "id,price,qty\n1,10,1\n"))
    assert counts(r) == (1, 0, 0, 1)
    assert r.file_error is not None and "no time column" in r.file_error
    r = parse(write(tmp_path, "neither.csv", "a,b\nx,y\n"))
    assert r.file_error is not None and "no price or time column" in r.file_error
    # JSONL: no record has the key -> the file says so, each line says what it lacks.
    r = parse(write(tmp_path, "noprice.jsonl", '{"T": 1704067200000, "q": 1}\n{"T": 1704067201000, "q": 2}\n'))
    assert counts(r) == (2, 0, 0, 2)
    assert r.file_error == "no record has a price field"
    assert set(reasons(r).values()) == {"missing price"}


def test_unreadable_files_give_one_quarantine_row(tmp_path: Path) -> None:
    good = gzip.compress((AGG_HEADER + "\n" + agg_line(1) + "\n").encode())
    cases = {
        "truncated.csv.gz": good[: len(good) // 2],
        "notgzip.csv.gz": b"this is plainly not gzip",
        "binary.csv": bytes(range(256)) * 4,
    }
    for name, content in cases.items():
        path = tmp_path / INST / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        r = parse(path)
        assert counts(r) == (0, 0, 0, 0), name
        assert r.quarantine.height == 1 and r.quarantine["line"][0] is None
        assert r.file_error is not None and r.file_error.startswith("unreadable file:")
        assert r.quarantine["reason"][0] == r.file_error
    assert "bad gzip" in parse(tmp_path / INST / "notgzip.csv.gz").file_error  # type: ignore[operator]
    assert "not UTF-8" in parse(tmp_path / INST / "binary.csv").file_error  # type: ignore[operator]


def test_invalid_utf8_line_and_repeated_header(tmp_path: Path) -> None:
    body = (AGG_HEADER + "\n" + agg_line(1) + "\n").encode() + b"2,4\xff\xfe,0.1,2,2,1704067201000,true\n"
    body += (AGG_HEADER + "\n" + agg_line(3) + "\n").encode()
    r = parse(write(tmp_path, "cat.csv", body))
    assert counts(r) == (4, 2, 0, 2)
    assert reasons(r) == {3: "invalid UTF-8 / binary data in line", 4: "repeated header line (concatenated dumps?)"}


def test_record_is_the_raw_line_truncated_to_500_chars(tmp_path: Path) -> None:
    long_line = agg_line(1, price="x" * 900)
    r = parse(write(tmp_path, "long.csv", AGG_HEADER + "\n" + long_line + "\n"))
    assert r.quarantine["record"][0] == long_line[:500]
    assert r.quarantine["reason"][0].startswith("non-numeric price 'xxx") and len(r.quarantine["reason"][0]) < 100


def test_unsafe_instrument_and_unsupported_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", BINANCE_AGG)
    with pytest.raises(InvalidIdentifierError):
        parse_trade_file(path, "../etc")
    with pytest.raises(ValueError, match="unsupported trade file type"):
        parse_trade_file(write(tmp_path, "a.parquet", b"PAR1"), INST)


# --- landing folder and vendor -------------------------------------------------------------------------------


def test_list_landing_files_ignores_and_reports_invalid_paths(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", BINANCE_AGG)
    write(tmp_path, "b.jsonl.gz", "")
    write(tmp_path, "notes.txt", "hello")
    write(tmp_path, ".hidden.csv", "x")
    write(tmp_path, "partial.csv.part", "x")
    write(tmp_path, "c.csv", BINANCE_AGG, instrument="ETHUSDT-PERP")
    write(tmp_path, "x.csv", BINANCE_AGG, instrument="bad name")
    write(tmp_path, "x.csv", BINANCE_AGG, instrument="lowercase")
    (tmp_path / INST / "nested").mkdir()
    (tmp_path / "stray.csv").write_text("x")
    files = list_landing_files(tmp_path)
    assert [(f.instrument, f.path.name) for f in files] == [
        (INST, "a.csv"),
        (INST, "b.jsonl.gz"),
        ("ETHUSDT-PERP", "c.csv"),
    ]
    a = files[0]
    assert a.size == len(BINANCE_AGG) and a.mtime_ns == os.stat(a.path).st_mtime_ns
    rejected = {r.path.relative_to(tmp_path).as_posix(): r.reason for r in scan_landing(tmp_path).rejected}
    assert set(rejected) == {"bad name", "lowercase", f"{INST}/nested", f"{INST}/notes.txt", "stray.csv"}
    assert "invalid instrument id" in rejected["lowercase"]
    assert list_landing_files(tmp_path / "missing") == []


def _month_file(tmp_path: Path) -> Path:
    """Trades in January and February with bad lines spread over both months."""
    jan, feb = 1704067200000, 1706745600000  # 2024-01-01, 2024-02-01
    lines = [
        AGG_HEADER,
        agg_line(1, ms=jan),
        "garbage line in january",  # attributed to the previous dated line -> January
        agg_line(2, ms=jan + 60_000, qty="-1"),  # own time: January
        agg_line(3, ms=feb - 1),
        agg_line(4, ms=feb),
        "2,2",  # previous dated line is in February
        agg_line(5, ms=feb + 5 * 60_000 + 1),
    ]
    return write(tmp_path, "2024-01-02.csv", "\n".join(lines) + "\n")


def test_scan_windows_trades_and_quarantines_each_bad_line_once(tmp_path: Path) -> None:
    _month_file(tmp_path)
    vendor = TradeFilesVendor(tmp_path)
    jan = vendor.scan(INST, utc(2024, 1, 1), utc(2024, 2, 1))
    feb = vendor.scan(INST, utc(2024, 2, 1), utc(2024, 3, 1))
    assert jan.trades["trade_id"].to_list() == ["1", "3"]
    assert feb.trades["trade_id"].to_list() == ["4", "5"]
    assert jan.quarantine["line"].to_list() == [3, 4]
    assert feb.quarantine["line"].to_list() == [7]
    assert jan.quarantine.schema == QUARANTINE_SCHEMA and jan.trades.schema == RAW_TRADES_SCHEMA
    assert len(jan.files) == 1 and jan.files[0] | {"file": None} == {
        "file": None,
        "parsed": 7,
        "accepted": 4,
        "skipped": 1,
        "malformed": 2,
        "out_of_order": 0,
        "file_error": None,
        "in_window": 2,
        "quarantined": 2,
    }
    assert jan.totals["in_window"] == 2 and jan.totals["quarantined"] == 2
    assert vendor.scan(INST, utc(2024, 3, 1), utc(2024, 4, 1)).files == []


def test_scan_parses_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _month_file(tmp_path)
    calls: list[Path] = []
    real = trade_files._parse

    def counting(path: Path, instrument: str, **kw: object) -> object:
        calls.append(path)
        return real(path, instrument)

    monkeypatch.setattr(trade_files, "_parse", counting)
    vendor = TradeFilesVendor(tmp_path)
    for month in (1, 2, 3):
        vendor.scan(INST, utc(2024, month, 1), utc(2024, month + 1, 1))
    assert len(calls) == 1


def test_bad_file_does_not_stop_good_files(tmp_path: Path) -> None:
    write(tmp_path, "good.csv", BINANCE_AGG)
    write(tmp_path, "noprice.csv", "id,qty,time\n1,1,1704067200000\n")
    (tmp_path / INST / "broken.csv.gz").write_bytes(b"\x1f\x8b garbage")
    os.utime(tmp_path / INST / "broken.csv.gz", (1904067200, 1904067200))  # landed in 2030: mtime is irrelevant
    # with the instrument's life: an undated row (unreadable file) sits in the first life month
    life = (utc(2024, 1, 1), utc(2024, 3, 1))
    scan = TradeFilesVendor(tmp_path).scan(INST, utc(2024, 1, 1), utc(2024, 2, 1), life=life)
    assert scan.trades.height == 7
    by_file = {Path(f["file"]).name: f for f in scan.files}
    assert by_file["broken.csv.gz"]["file_error"].startswith("unreadable file: bad gzip")
    assert by_file["noprice.csv"]["malformed"] == 1 and by_file["good.csv"]["accepted"] == 7
    assert sorted(Path(s).name for s in scan.quarantine["source"]) == ["broken.csv.gz", "noprice.csv"]


def test_cross_file_duplicates_are_kept_once(tmp_path: Path) -> None:
    lines = BINANCE_AGG.strip().splitlines()
    write(tmp_path, "part1.csv", "\n".join(lines[:5]) + "\n")  # trades 1-4
    write(tmp_path, "part2.csv", "\n".join([lines[0], *lines[3:]]) + "\n")  # trades 3-7: overlap of two
    scan = TradeFilesVendor(tmp_path).scan(INST, utc(2024, 1, 1), utc(2024, 2, 1))
    assert scan.trades.height == 7 and scan.trades["trade_id"].n_unique() == 7
    assert scan.cross_file_duplicates == 2
    assert scan.quarantine["line"].to_list() == [2, 3]
    assert all(r.startswith("duplicate trade id") and "part1.csv line" in r for r in scan.quarantine["reason"])
    assert set(Path(s).name for s in scan.quarantine["source"]) == {"part2.csv"}


def test_vendor_fetch_kinds(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", BINANCE_AGG)
    inst = Instrument(id=INST, vendor="trade_files", market="spot", base_timeframe="5m", start=date(2024, 1, 1))
    vendor = TradeFilesVendor(tmp_path)
    assert vendor.name == "trade_files"
    start, end = utc(2024, 1, 1), utc(2024, 1, 1, 0, 5)
    trades = vendor.fetch(inst, start, end, DataKind.TRADES)
    assert trades.schema == RAW_TRADES_SCHEMA and trades.height == 6  # the 00:05:00.000 trade is excluded
    bars = vendor.fetch(inst, utc(2024, 1, 1), utc(2024, 1, 2), DataKind.OHLCV)
    assert bars.schema == RAW_OHLCV_SCHEMA
    assert bars["ts"].to_list() == [utc(2024, 1, 1), utc(2024, 1, 1, 0, 5)]
    assert bars.row(0, named=True) | {"ingested_at": None} == {
        "ts": utc(2024, 1, 1),
        "instrument": INST,
        "open": 42283.58,
        "high": 42290.10,
        "low": 42283.0,
        "close": 42290.10,
        "volume": pytest.approx(0.00118 + 0.04727 + 0.0005 + 0.237 + 1.1 + 0.003),
        "bid": None, "ask": None, "bid_size": None, "ask_size": None,  # no book-ticker dumps landed
        "vendor": "trade_files",
        "ingested_at": None,
    }
    # A window starting mid-bar: bars are whole, and only bars opening inside the window are returned.
    later = vendor.fetch(inst, utc(2024, 1, 1, 0, 2), utc(2024, 1, 1, 0, 10), DataKind.OHLCV)
    assert later["ts"].to_list() == [utc(2024, 1, 1, 0, 5)]
    full = trades_to_bars(vendor.fetch(inst, utc(2024, 1, 1), utc(2024, 1, 2), DataKind.TRADES), "5m")
    assert bars.drop("ingested_at").equals(conform(full, RAW_OHLCV_SCHEMA).drop("ingested_at"))
    assert vendor.fetch(inst, start, end, DataKind.FUNDING).schema == RAW_FUNDING_SCHEMA
    assert vendor.fetch(inst, start, end, DataKind.FUNDING).is_empty()
    assert vendor.fetch(inst, start, end, DataKind.OPEN_INTEREST).schema == RAW_OPEN_INTEREST_SCHEMA
    other = Instrument(id="NOFILES", vendor="trade_files", market="spot", start=date(2024, 1, 1))
    assert vendor.fetch(other, start, end, DataKind.OHLCV).is_empty()
    with pytest.raises(InvalidIdentifierError):
        vendor.scan("../../etc", start, end)


# --- the vectorised fast path must agree with the line-by-line reference on any input ---------------------------

_messy_number = st.sampled_from(
    ["42000.5", "1", "0", "-1", "1e3", "1e400", "1.", ".5", "+2", " 3", "4 ", "nan", "inf", "1_000", "0x10", "", "abc"]
)
_messy_time = st.sampled_from(
    [
        "1704067200000",
        "1704067200",
        "1704067200123456",
        "1704067200123456789",
        "17040672001234567890",
        "1704067200.5",
        "-1704067200000",
        "5",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00",
        " 1704067200000",
        "",
        "x",
    ]
)
_messy_side = st.sampled_from(["buy", "SELL", "b", "ask", "", " buy", "hold", "true", "0"])
_messy_flag = st.sampled_from(["true", "false", "True", "0", "1", "", "maybe", " t"])
_messy_id = st.sampled_from(["1", "2", "3", "abc-1", "", " 7", "7 ", "a b", "é"])


@st.composite
def _messy_line(draw: st.DrawFn) -> str:
    fields = [draw(_messy_time), draw(_messy_number), draw(_messy_number), draw(_messy_side), draw(_messy_flag)]
    fields.append(draw(_messy_id))
    line = ",".join(fields)
    return draw(st.sampled_from([line, line, line, line[: len(line) // 2], f'"{line}"', line + ",extra", "time,x"]))


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_messy_line(), min_size=1, max_size=25))
def test_fast_path_agrees_with_line_by_line_reference(lines: list[str]) -> None:
    body = "\n".join(["time,price,qty,side,is_buyer_maker,id", *lines]) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.csv"
        path.write_text(body)
        trade_files._FAST_CSV = False
        try:
            slow = parse_trade_file(path, INST, ingested_at=INGESTED)
        finally:
            trade_files._FAST_CSV = True
        # default chunks: the vectorised path on the first chunk; small chunks: the typed reader on the later ones
        for chunk in (trade_files.CHUNK_BYTES, 160):
            default, trade_files.CHUNK_BYTES = trade_files.CHUNK_BYTES, chunk
            try:
                fast = parse_trade_file(path, INST, ingested_at=INGESTED)
            finally:
                trade_files.CHUNK_BYTES = default
            assert counts(fast) == counts(slow) and fast.out_of_order == slow.out_of_order
            assert fast.trades.equals(slow.trades)
            key = ["line", "reason"]
            q_fast, q_slow = (r.quarantine.sort(key).drop("quarantined_at") for r in (fast, slow))
            assert q_fast.equals(q_slow)


# --- a hostile landing folder: every rejected line is findable exactly once ------------------------------------


def hostile_landing(tmp_path: Path, instrument: str = INST) -> dict[str, int]:
    """Dumps with trades dated 1995 and 2030, trades in the first month but before the instrument's start, duplicates
    (within and across files), malformed lines, a bad-gzip file and a non-UTF-8 file. Returns lines read per file
    (an unreadable file counts as one)."""

    def iso(day: str, i: int) -> str:
        return f"{i},{100 + i}.5,0.5,{day}T00:00:{i % 60:02d}Z,buy"

    main = [
        "trade_id,price,qty,time,side",
        iso("1995-06-01", 1),  # before the life
        iso("2030-01-01", 2),  # after the life (the future)
        iso("2024-01-05", 3),  # in January but before the start (2024-01-15): outside every window
        iso("2024-01-06", 4),
        iso("2024-01-07", 5),
        "garbage without a time",  # placed by its neighbour (January 7th, before the start -> first month)
        iso("2024-01-20", 6),
        iso("2024-01-20", 6),  # exact duplicate
        "7,abc,0.5,2024-02-01T00:00:00Z,buy",  # malformed, own time
        iso("2024-02-02", 8),
        "9,100.0,0.5,2024-02-03T00:00:00,buy",  # naive: skipped
        iso("2024-03-05", 10),
        iso("2024-03-15", 11),  # after the end (2024-03-10)
        "12,100.0",  # truncated, neighbour after the end -> last month
        "",  # blank: not a line
    ]
    other = ["trade_id,price,qty,time,side", iso("2024-02-02", 8), iso("2024-02-10", 13), iso("1995-06-01", 1)]
    write(tmp_path, "a.csv", "\n".join(main) + "\n", instrument)
    write(tmp_path, "b.csv.gz", "\n".join(other) + "\n", instrument)  # two cross-file duplicates (8 and 1)
    (tmp_path / instrument / "broken.csv.gz").write_bytes(b"\x1f\x8b this is not a gzip stream")
    (tmp_path / instrument / "binary.csv").write_bytes(bytes(range(256)) * 8)
    return {"a.csv": 14, "b.csv.gz": 3, "broken.csv.gz": 1, "binary.csv": 1}


HOSTILE = Instrument(
    id=INST, vendor="trade_files", market="spot", base_timeframe="5m", start=date(2024, 1, 15), end=date(2024, 3, 10)
)


def test_hostile_landing_every_line_is_findable_once(tmp_path: Path) -> None:
    read = hostile_landing(tmp_path)
    vendor = TradeFilesVendor(tmp_path)
    life = trade_files.life_span(HOSTILE)
    assert life == (utc(2024, 1, 15), utc(2024, 3, 11))
    windows = [
        (utc(2024, 1, 15), utc(2024, 2, 1)),  # the partitions' windows: the first month starts with the life
        (utc(2024, 2, 1), utc(2024, 3, 1)),
        (utc(2024, 3, 1), utc(2024, 3, 11)),
    ]
    scans = [vendor.scan(INST, lo, hi, life=life) for lo, hi in windows]
    trades = pl.concat([s.trades for s in scans])
    q = pl.concat([s.quarantine for s in scans])
    assert trades["trade_id"].to_list() == ["6", "8", "13", "10"]
    # exactly one row per rejected line, none twice, and accepted + quarantined == lines read
    assert q.select("source", "line").is_duplicated().sum() == 0
    assert trades.height + q.height == sum(read.values())
    by_month = {m: s.quarantine for m, s in zip(("2024-01", "2024-02", "2024-03"), scans, strict=True)}
    lines_in = {
        m: sorted((Path(s).name, ln) for s, ln in f.select("source", "line").iter_rows()) for m, f in by_month.items()
    }
    # before the life, undated and unreadable -> first month; after the life -> last month
    assert lines_in["2024-01"] == [
        ("a.csv", 2), ("a.csv", 4), ("a.csv", 5), ("a.csv", 6), ("a.csv", 7), ("a.csv", 9),
        ("b.csv.gz", 4), ("binary.csv", None), ("broken.csv.gz", None),
    ]  # fmt: skip
    assert lines_in["2024-02"] == [("a.csv", 10), ("a.csv", 12), ("b.csv.gz", 2)]
    assert lines_in["2024-03"] == [("a.csv", 3), ("a.csv", 14), ("a.csv", 15)]
    in_a = q.filter(pl.col("source").str.ends_with("a.csv"))
    reasons_ = dict(zip(in_a["line"].to_list(), in_a["reason"].to_list(), strict=True))
    assert reasons_[2].startswith("before the instrument's life") and reasons_[3].startswith("after the instrument's")
    # metadata counts add up: per file parsed = accepted + skipped + malformed; accepted == rows in the lake
    files = {Path(f["file"]).name: f for s in scans for f in s.files}
    for name, f in files.items():
        assert f["parsed"] == f["accepted"] + f["skipped"] + f["malformed"], name
        assert f["parsed"] == (0 if f["file_error"] and f["file_error"].startswith("unreadable") else read[name])
    assert sum(f["accepted"] for f in files.values()) == trades.height
    assert sum(f["in_window"] for s in scans for f in s.files) == trades.height
    assert sum(f["quarantined"] for s in scans for f in s.files) == q.height
    # the same scan again (a re-ingestion) yields the same rows: write_quarantine replaces them per month
    again = vendor.scan(INST, *windows[0], life=life)
    assert again.quarantine.drop("quarantined_at").equals(scans[0].quarantine.drop("quarantined_at"))


def test_streamed_chunks_give_the_same_result_as_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dumps are read in line-aligned chunks (bounded memory); tiny chunks must change nothing, numbering included."""
    body = "\ufeff" + "\r\n".join([AGG_HEADER, agg_line(1), "", agg_line(2, price="x"), agg_line(1), AGG_HEADER])
    bodies = {
        "crlf.csv": body + "\r\n" + agg_line(3),
        "cr.csv": "\r".join([AGG_HEADER, agg_line(1), agg_line(2, qty="-1"), agg_line(1)]),
        "gz.csv.gz": BINANCE_AGG + "garbage\n" + BINANCE_AGG.splitlines()[1] + "\n",
        "j.jsonl": "\n".join(json.dumps({"T": T0 + i, "p": 1 + i % 3, "q": 1, "a": i % 4}) for i in range(9)) + "\n{",
    }
    paths = [write(tmp_path, name, text) for name, text in bodies.items()]
    whole = [parse(p) for p in paths]
    monkeypatch.setattr(trade_files, "CHUNK_BYTES", 7)
    for p, w in zip(paths, whole, strict=True):
        r = parse(p)
        assert counts(r) == counts(w) and r.trades.equals(w.trades), p.name
        key = ["line", "reason"]
        assert r.quarantine.sort(key).drop("quarantined_at").equals(w.quarantine.sort(key).drop("quarantined_at"))
        assert r.quarantine["record"].null_count() == 0, p.name  # duplicates' text is looked up again
