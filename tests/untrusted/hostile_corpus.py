"""A corpus of hostile trade dumps for one trade_files instrument, and how many data lines each holds.

Accounting rule (what "every line accounted for" counts; see `ParseResult` / `ScanResult` in
lake_assets/vendors/trade_files.py):
- a data line is a non-blank physical line (blank = only ASCII whitespace) that is not the CSV header;
- a file that cannot be read at all (bad or truncated gzip, binary/zeros: its first line is not UTF-8 text) is
  quarantined as ONE row with line = null, so it counts as 1 whatever it held;
- an empty file, a header-only file, a whitespace-only file and a 0-byte `.gz` (Python's gzip reads it as empty)
  hold no data line and count 0.
Every data line must end up as exactly one row of `raw_trades` or one row of `quarantine` (asset raw_trades).

Imported by path from the tests in this folder (tests/ is not a package).
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path

HEADER = "trade_id,price,qty,time,side"
BOM = b"\xef\xbb\xbf"
# 2026-11-01T00:00:00Z as epoch seconds; the corpus instrument lives from 2026-10-01 (live: to the current month)
NOV1_S = 1793491200
TOKEN = "qlakehostile"  # in hostile strings, so a file created from one would carry it in its name


@dataclass(frozen=True)
class Dump:
    name: str
    data: bytes  # the bytes on disk
    lines: int  # data lines by the accounting rule above
    unreadable: bool = False


def trade(i: int, when: str, price: float = 100.5, qty: float = 0.5, side: str = "buy") -> str:
    return f"{i},{price},{qty},{when},{side}"


def iso(i: int, day: str, **kw: object) -> str:
    return trade(i, f"{day}T00:{i % 60:02d}:00Z", **kw)  # type: ignore[arg-type]


def _csv(name: str, rows: list[str], *, header: str | None = HEADER, sep: str = "\n", blanks: int = 0) -> Dump:
    body = ([header] if header is not None else []) + rows + [""] * blanks
    text = sep.join(body) + sep
    return Dump(name, text.encode("utf-8"), len(rows))


def _jsonl(name: str, objs: list[object | str], compress: bool = False) -> Dump:
    text = "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n"
    data = text.encode("utf-8")
    return Dump(name, gzip.compress(data, mtime=0) if compress else data, len(objs))


def corpus() -> list[Dump]:
    """The hostile landing folder of one instrument (start 2026-10-01, live through the current month)."""
    ms = NOV1_S * 1000
    dumps = [
        # clean trades spread over the three life months, with blank lines (not data lines)
        _csv(
            "good.csv",
            [
                iso(100 + i, d)
                for i, d in enumerate(
                    [
                        "2026-10-02",
                        "2026-10-20",
                        "2026-11-03",
                        "2026-11-04",
                        "2026-11-29",
                        "2026-12-01",
                        "2026-12-02",
                        "2026-10-31",
                        "2026-11-30",
                        "2026-12-03",
                    ]
                )
            ],
            blanks=3,
        ),  # fmt: skip
        # truncated lines and wrong field counts
        _csv(
            "fields.csv",
            [
                iso(200, "2026-10-03"),
                "202,100.5",
                iso(203, "2026-10-03") + ",extra",
                "204,100.5,0.5,2026-10-0",
                '"205,100.5,0.5,2026-10-03T00:00:00Z,buy',
                "206,100.5,0.5,2026-10-04T00:00:00Z",
                ",,,,",
                iso(201, "2026-10-05"),
                "207",
                ",",
            ],
        ),  # fmt: skip
        # BOM + CRLF (and a blank CRLF line), CR-only line ends
        Dump(
            "bom_crlf.csv",
            BOM + ("\r\n".join([HEADER, *(iso(300 + i, "2026-10-06") for i in range(5)), "", ""])).encode(),
            5,
        ),  # fmt: skip
        _csv("cr_only.csv", [iso(310 + i, "2026-10-07") for i in range(3)], sep="\r"),
        # NaN / inf prices, sizes and times
        _csv(
            "nan_inf.csv",
            [
                trade(400, "2026-10-08T00:00:00Z", price=float("nan")),
                "401,inf,0.5,2026-10-08T00:00:00Z,buy",
                "402,-inf,0.5,2026-10-08T00:00:00Z,buy",
                "403,1e400,0.5,2026-10-08T00:00:00Z,buy",
                "404,100.5,nan,2026-10-08T00:00:00Z,buy",
                "405,100.5,Infinity,2026-10-08T00:00:00Z,buy",
                "406,100.5,0.5,nan,buy",
                "407,100.5,0.5,inf,sell",
                "408,NaN,NaN,NaN,NaN",
                iso(409, "2026-10-08"),
            ],
        ),  # fmt: skip
        # mixed epoch units: s, fractional s, ms, us, ns; and implausible epochs (1970, negative, zero)
        _csv(
            "epoch_units.csv",
            [
                trade(450, str(NOV1_S)),
                trade(451, f"{NOV1_S}.25"),
                trade(452, str(ms + 1)),
                trade(453, str(ms * 1000 + 2)),
                trade(454, str(ms * 1_000_000 + 3)),
                trade(455, "5"),
                trade(456, f"-{ms}"),
                trade(457, "0"),
                trade(458, f"{ms}.5"),
                trade(459, f"{NOV1_S} "),
            ],
        ),  # fmt: skip
        # outside the instrument's life, naive and offset ISO times, an undated line between them
        _csv(
            "out_of_life.csv",
            [
                iso(500, "1995-06-01"),
                iso(501, "2030-01-01"),
                iso(502, "2026-09-15"),
                "garbage line " + TOKEN,
                iso(503, "2027-03-01"),
                trade(504, "2099-12-31T23:59:59Z"),
                trade(505, "2100-01-01T00:00:00Z"),
                trade(506, "1989-12-31T23:59:59Z"),
                trade(507, "2026-10-05T00:00:00"),
                trade(508, "2026-10-05T05:30:00+05:30"),
                trade(509, "2026-10-05 01:00:00 UTC"),
                trade(510, "1995-06-01T00:00:00Z"),
            ],
        ),  # fmt: skip
        # duplicates within a file (exact copy, conflicting copies of one id) and across files (CSV and JSONL)
        _csv(
            "dupes_a.csv",
            [
                iso(600, "2026-11-05"),
                iso(601, "2026-11-05"),
                iso(601, "2026-11-05"),
                iso(602, "2026-11-05"),
                iso(602, "2026-11-05", price=999.0),
                iso(603, "2026-11-05"),
                iso(604, "2026-11-05"),
                ",100.5,0.5,2026-11-06T00:00:00Z,buy",
                ",100.5,0.5,2026-11-06T00:00:00Z,buy",  # id-less twice
            ],
        ),  # fmt: skip
        _jsonl(
            "dupes_b.jsonl",
            [
                {"a": 603, "p": 100.5, "q": 0.5, "T": "2026-11-05T00:03:00Z", "side": "buy"},
                {"a": 604, "p": 100.5, "q": 0.5, "T": "2026-11-05T00:04:00Z", "side": "buy"},
                {"a": 605, "p": 100.5, "q": 0.5, "T": "2026-11-05T00:05:00Z", "side": "buy"},
                {"a": 605, "p": 100.5, "q": 0.5, "T": "2026-11-05T00:05:00Z", "side": "buy"},
            ],
        ),  # fmt: skip
        # invalid JSONL: broken syntax, non-objects, missing keys, NaN, bad side, a binary and a non-UTF-8 line
        _jsonl(
            "invalid.jsonl",
            [
                {"a": 700, "p": 100.5, "q": 0.5, "T": ms + 700, "m": True},
                '{"a": 701, "p": ',
                "[1, 2, 3]",
                '"just a string"',
                "null",
                "42",
                {"p": 1.0},
                {"T": ms},
                "{'single': 'quotes'}",
                '{"a": 702, "p": NaN, "q": 1, "T": ' + str(ms) + "}",
                {"a": 703, "p": "1e400", "q": 1, "T": ms},
                {"a": 704, "p": 1, "q": 1, "T": ms, "side": "hold"},
                {"a": 705, "p": 1, "q": 1, "T": {"nested": [1]}},
                {"a": 706, "p": True, "q": 1, "T": ms},
                {"a": 707, "p": 1, "q": 1, "T": f"../../{TOKEN}", "side": f"/tmp/{TOKEN}"},
                '{"a": 708, "p": 1, "q": 1, "T": ' + str(ms) + "}{}",
                {"a": 709, "p": 1.5, "q": 2, "T": str(ms + 709), "m": "false"},
            ],
        ),  # fmt: skip
        # mixed timestamp forms in a gzip JSONL
        _jsonl(
            "mixed_ts.jsonl.gz",
            [
                {"a": 750, "p": 10, "q": 1, "T": NOV1_S + 750},
                {"a": 751, "p": 10, "q": 1, "T": ms + 751},
                {"a": 752, "p": 10, "q": 1, "T": (ms + 752) * 1000},
                {"a": 753, "p": 10, "q": 1, "T": (ms + 753) * 10**6},
                {"a": 754, "p": 10, "q": 1, "T": NOV1_S + 754.5},
                {"a": 755, "p": 10, "q": 1, "T": "2026-11-01T00:12:35Z"},
                {"a": 756, "p": 10, "q": 1, "T": "2026-11-01T00:12:36"},
                {"a": 757, "p": 10, "q": 1, "T": -1},
            ],
            compress=True,
        ),  # fmt: skip
        # a header without a price column: every line quarantined
        _csv(
            "no_price.csv",
            ["800,0.5,2026-10-09T00:00:00Z,buy", "801,0.5,2026-10-09T00:01:00Z,sell"],
            header="trade_id,qty,time,side",
        ),  # fmt: skip
        # headerless Binance aggTrades layout (the first line is data)
        _csv("binance_agg.csv", [f"{850 + i},42.5,0.1,{i},{i},{ms + 850 + i},true" for i in range(3)], header=None),
        # a non-UTF-8 line and a NUL line in an otherwise good file; a repeated header (concatenated dumps)
        Dump(
            "utf8_mid.csv",
            b"\n".join(
                [
                    HEADER.encode(),
                    iso(900, "2026-10-10").encode(),
                    b"901,\xff\xfe,0.5,2026-10-10T00:01:00Z,buy",
                    b"902,1\x00,1,x,buy",
                    iso(903, "2026-10-10").encode(),
                ]
            )
            + b"\n",
            4,
        ),  # fmt: skip
        _csv("repeated_header.csv", [iso(910, "2026-10-11"), HEADER, iso(911, "2026-10-11")]),
        # empty-ish files: no data line
        Dump("empty.csv", b"", 0),
        Dump("empty.jsonl", b" \n\t\n\r\n", 0),
        _csv("header_only.csv", []),
        Dump("zero_bytes.csv.gz", b"", 0),
        # unreadable files: one quarantine row each
        Dump("zeros.csv", b"\x00" * 4096, 1, unreadable=True),
        Dump("binary.csv", b"\xff\xfe\x00\x01" + random.Random(8).randbytes(4096), 1, unreadable=True),
        Dump("truncated.csv.gz", _truncated_gzip(), 1, unreadable=True),
        Dump("not_gzip.jsonl.gz", b'{"a": 1, "p": 1, "q": 1, "T": 1793491200000}\n', 1, unreadable=True),
        Dump(
            "gzip_garbage_tail.csv.gz",
            gzip.compress(f"{HEADER}\n{iso(960, '2026-10-12')}\n".encode(), mtime=0) + b"\x1f\x8bgarbage",
            1,
            unreadable=True,
        ),  # fmt: skip
        # hostile file names (the instrument folder is what names the instrument, never the file)
        _csv(f"odd name\twith tab ü {TOKEN}.csv", [iso(970, "2026-10-13")]),
        _csv(f"line\nbreak {TOKEN}.csv", [iso(971, "2026-10-13")]),
    ]
    names = [d.name for d in dumps]
    assert len(set(names)) == len(names)
    return dumps


def _truncated_gzip() -> bytes:
    whole = gzip.compress("\n".join([HEADER, *(iso(950 + i, "2026-10-12") for i in range(10))]).encode(), mtime=0)
    return whole[: len(whole) // 2]


IGNORED = {  # landing paths that are not dumps of the instrument: listed as rejected or skipped, never parsed
    "notes.txt": b"not a dump\n",
    ".hidden.csv": f"{HEADER}\n{iso(1, '2026-10-01')}\n".encode(),
    "partial.csv.part": f"{HEADER}\n{iso(2, '2026-10-01')}\n".encode(),
    "~lock.csv": b"",
}


def write_corpus(folder: Path) -> dict[str, int]:
    """Write every dump (and the ignored paths) into `folder` (the instrument's landing folder); returns data lines
    per dump path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for d in corpus():
        path = folder / d.name
        path.write_bytes(d.data)
        out[str(path)] = d.lines
    for name, data in IGNORED.items():
        (folder / name).write_bytes(data)
    (folder / "nested").mkdir()
    (folder / "nested" / "inner.csv").write_text(f"{HEADER}\n{iso(3, '2026-10-01')}\n")
    return out


def unreadable_names() -> set[str]:
    return {d.name for d in corpus() if d.unreadable}
