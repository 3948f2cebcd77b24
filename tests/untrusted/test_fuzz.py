"""Generated landing lines, valid and hostile, written into dumps: parsing and scanning never raise, every data line
is one accepted trade or one quarantine row (an unreadable file is one row), and reading dumps writes nothing but the
scan's staged parts under the landing folder's `.staging` (gone once the scan is dropped).

Data lines are counted here independently of the parser (see hostile_corpus.py for the rule). The crashes this suite
found (25-digit epochs, JSON integers beyond float range, lone-surrogate trade ids) are tests at the end: each such
line is now one quarantine row.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_corpus import BOM, HEADER, corpus  # noqa: E402
from write_audit import recording  # noqa: E402

from lake_assets.specs import Instrument  # noqa: E402
from lake_assets.vendors.trade_files import TradeFilesVendor, life_span, parse_trade_file  # noqa: E402
from lake_assets.vocabulary import QUARANTINE_SCHEMA, RAW_TRADES_SCHEMA, TS  # noqa: E402

INST = "FUZZUSDT"
LIFE_INST = Instrument(
    id=INST, vendor="trade_files", market="spot", base_timeframe="5m", start=date(2026, 10, 1), end=date(2026, 11, 30)
)
WINDOWS = [
    (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
    (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
]
BLANK = b" \t\r\x0b\x0c"
FUZZ = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# --- the independent line count ----------------------------------------------------------------------------------


def data_lines(raw: bytes, *, header: bool) -> int:
    """Data lines of a dump's decompressed bytes: non-blank lines minus the header; 1 if unreadable (the first
    non-blank line is not UTF-8 text or holds a NUL)."""
    body = raw[len(BOM) :] if raw.startswith(BOM) else raw
    sep = b"\n" if b"\n" in body else (b"\r" if b"\r" in body.rstrip(b"\r") else b"\n")
    lines = [ln.rstrip(b"\r") for ln in body.split(sep)]
    nonblank = [ln for ln in lines if ln.strip(BLANK)]
    if not nonblank:
        return 0
    try:
        first_ok = b"\x00" not in nonblank[0] and bool(nonblank[0].decode("utf-8"))
    except UnicodeDecodeError:
        first_ok = False
    if not first_ok:
        return 1
    return len(nonblank) - (1 if header else 0)


# --- strategies ---------------------------------------------------------------------------------------------------

LIFE_LO = datetime(2026, 10, 1, tzinfo=UTC)
_in_life = st.integers(0, 61 * 86_400 - 1).map(lambda s: LIFE_LO + timedelta(seconds=s))


@st.composite
def _valid_time(draw: st.DrawFn) -> str:
    t = draw(_in_life)
    s = int(t.timestamp())
    return draw(
        st.sampled_from(
            [
                t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                t.isoformat(),
                str(s),
                str(s * 1000 + 7),
                str(s * 10**6),
                str(s * 10**9),
                f"{s}.5",
                t.strftime("%Y-%m-%d %H:%M:%S UTC"),
            ]
        )
    )


_price = st.floats(1e-6, 1e7, allow_nan=False).map(repr)
_side = st.sampled_from(["buy", "sell", "BUY", "s", "b", "ask", "bid", ""])
HOSTILE_TOKENS = [
    "",
    " ",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "-1",
    "0",
    "-0",
    "1e21",
    "-1e21",
    "abc",
    '"',
    '""',
    "1,2",
    "\x00",
    "é",
    "١٢٣",
    "0x10",
    "1_000",
    "5",
    "999999999999999999999",
    "1995-06-01T00:00:00Z",
    "2030-01-01T00:00:00Z",
    "2100-01-01T00:00:00Z",
    "2026-10-05T00:00:00",
    "2026-10-05T00:00:00+25:00",
    "2026-02-30T00:00:00Z",
    "hold",
    "true",
    "../../etc/passwd",
    "DROP TABLE raw_trades;",
    "{}",
    "[1]",
    "null",
]
_token = st.one_of(
    st.sampled_from(HOSTILE_TOKENS), st.text(st.characters(codec="utf-8", blacklist_characters="\r\n"), max_size=12)
)
_no_eol_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@st.composite
def csv_line(draw: st.DrawFn) -> bytes:
    fields = [str(draw(st.integers(0, 50))), draw(_price), draw(_price), draw(_valid_time()), draw(_side)]
    kind = draw(st.sampled_from(["valid", "valid", "field", "field", "cut", "extra", "text", "bytes"]))
    if kind == "field":  # one or two fields replaced by hostile tokens
        for _ in range(draw(st.integers(1, 2))):
            fields[draw(st.integers(0, 4))] = draw(_token)
    line = ",".join(fields)
    if kind == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    elif kind == "extra":
        line += "," + draw(_token)
    elif kind == "text":
        line = draw(st.text(st.characters(codec="utf-8", blacklist_characters="\r\n"), max_size=40))
    elif kind == "bytes":
        return draw(_no_eol_bytes)
    return line.encode("utf-8")


_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**21), 10**21),
    st.floats(-1e21, 1e21),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.text(max_size=12),
    st.sampled_from(HOSTILE_TOKENS),
)
_json_value = st.recursive(
    _json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=6
)
_KEYS = ["a", "p", "q", "T", "m", "side", "price", "qty", "time", "trade_id", "is_buyer_maker", "x"]


@st.composite
def jsonl_line(draw: st.DrawFn) -> bytes:
    t = draw(_in_life)
    obj: dict[str, object] = {
        "a": draw(st.integers(0, 50)),
        "p": draw(st.floats(1e-6, 1e7)),
        "q": 1.5,
        "T": int(t.timestamp() * 1000),
        "m": draw(st.booleans()),
    }
    kind = draw(st.sampled_from(["valid", "valid", "field", "field", "cut", "value", "text", "bytes"]))
    if kind == "field":
        obj[draw(st.sampled_from(_KEYS))] = draw(_json_value)
        if draw(st.booleans()):
            obj.pop(draw(st.sampled_from(list(obj))))
    if kind == "value":
        return json.dumps(draw(_json_value)).encode()
    if kind == "text":
        return draw(st.text(st.characters(codec="utf-8", blacklist_characters="\r\n"), max_size=40)).encode("utf-8")
    if kind == "bytes":
        return draw(_no_eol_bytes)
    line = json.dumps(obj)
    if kind == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    return line.encode()


@st.composite
def dump(draw: st.DrawFn) -> tuple[str, bytes, int]:
    """(file name, bytes on disk, data lines)."""
    is_json = draw(st.booleans())
    lines = draw(st.lists(jsonl_line() if is_json else csv_line(), max_size=12))
    lines += [b""] * draw(st.integers(0, 1))
    header = [] if is_json else [draw(st.sampled_from([HEADER, HEADER, "price,qty,time", "trade_id,qty,time,side"]))]
    body = draw(st.sampled_from([b"\n", b"\r\n"])).join([h.encode() for h in header] + lines) + b"\n"
    if draw(st.booleans()):
        body = BOM + body
    n = data_lines(body, header=not is_json)
    name = "d" + (".jsonl" if is_json else ".csv")
    if draw(st.booleans()):
        name += ".gz"
        body = gzip.compress(body, mtime=0)
        if draw(st.integers(0, 4)) == 0:  # truncated download: unreadable whatever it held
            body = body[: draw(st.integers(1, len(body) - 1))]
            n = 1
    return name, body, n


# --- the properties -----------------------------------------------------------------------------------------------


def check_parse(path: Path, expected: int) -> None:
    r = parse_trade_file(path, INST)
    assert r.trades.schema == RAW_TRADES_SCHEMA and r.quarantine.schema == QUARANTINE_SCHEMA
    assert r.parsed == r.accepted + r.skipped + r.malformed
    if r.file_error and r.file_error.startswith("unreadable"):
        assert expected == 1 and r.parsed == 0 and r.quarantine["line"].to_list() == [None], (r.counts, expected)
    else:
        assert r.parsed == expected, (r.counts, expected)
        assert r.accepted + r.quarantine.height == expected, (r.counts, r.quarantine.height)


@FUZZ
@given(st.lists(dump(), min_size=1, max_size=3))
def test_generated_dumps_are_fully_accounted_for(dumps: list[tuple[str, bytes, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / INST
        folder.mkdir()
        expected = {}
        for i, (name, body, n) in enumerate(dumps):
            path = folder / f"{i}{name}"
            path.write_bytes(body)
            expected[path] = n
        tree = sorted(Path(tmp).rglob("*"))
        with recording() as writes:
            for path, n in expected.items():
                check_parse(path, n)
            life = life_span(LIFE_INST)
            vendor = TradeFilesVendor(Path(tmp))
            scans = [vendor.scan(INST, lo, hi, life=life) for lo, hi in WINDOWS]
            for scan in scans:  # trades are read lazily from the staged parts: read them while the landing exists
                scan.trades  # noqa: B018
        # reading dumps writes nothing but the scan's staged parts, inside the landing folder's hidden .staging
        staging = str(Path(tmp) / ".staging")
        # (a scan view of an earlier example may drop its own staging folder here too)
        assert [w for w in writes if not w[1].startswith(staging) and "/.staging/" not in w[1]] == []
        assert [p for p in sorted(Path(tmp).rglob("*")) if not str(p).startswith(staging)] == tree
    trades = pl.concat([s.trades for s in scans])
    q = pl.concat([s.quarantine for s in scans])
    # across files and windows: one trade or one quarantine row per data line, each placed once, inside the life
    assert trades.height + q.height == sum(expected.values())
    assert q.filter(pl.col("line").is_not_null()).select("source", "line").is_duplicated().sum() == 0
    assert trades.is_empty() or (trades[TS].min() >= life[0] and trades[TS].max() < life[1])


@FUZZ
@given(st.lists(csv_line(), min_size=1, max_size=15))
def test_generated_lines_in_each_corpus_container(lines: list[bytes]) -> None:
    """The same generated lines inside each way a dump can be wrapped: plain, BOM + CRLF, gzip."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / INST
        folder.mkdir()
        for name, body in [
            ("plain.csv", b"\n".join([HEADER.encode(), *lines]) + b"\n"),
            ("bom_crlf.csv", BOM + b"\r\n".join([HEADER.encode(), *lines]) + b"\r\n"),
            ("gz.csv.gz", b"\n".join([HEADER.encode(), *lines]) + b"\n"),
        ]:
            path = folder / name
            path.write_bytes(gzip.compress(body, mtime=0) if name.endswith(".gz") else body)
            check_parse(path, data_lines(body, header=True))


def test_corpus_counts_agree_with_the_independent_count(tmp_path: Path) -> None:
    """The hand-declared line counts of the hostile corpus match `data_lines` and the parser."""
    folder = tmp_path / INST
    folder.mkdir()
    for d in corpus():
        path = folder / d.name
        path.write_bytes(d.data)
        raw = d.data
        if d.name.endswith(".gz") and not d.unreadable and raw:
            raw = gzip.decompress(raw)
        if not d.unreadable:
            assert data_lines(raw, header=d.name.endswith(".csv") and d.name != "binance_agg.csv") == d.lines, d.name
        check_parse(path, d.lines)


# --- known crashes: one hostile line makes the parse (so the instrument's whole scan) raise ------------------------


def _parse_accounts(tmp_path: Path, name: str, body: str, lines: int) -> None:
    folder = tmp_path / INST
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(body)
    check_parse(path, lines)  # raises today: the raw asset fails for every month of the instrument


HUGE_EPOCH = (
    "trade_files: an epoch >= ~9.2e21 (or a float like 1e300) overflows Int64 (OverflowError or TypeError from "
    "polars) when its quarantine row keeps the line's time (_Bad.ts_us)"
)


@pytest.mark.parametrize("when", ["1111111111111111111111111", "1e300", "-1e300"])
def test_huge_epoch_is_quarantined_not_a_crash(tmp_path: Path, when: str) -> None:
    _parse_accounts(tmp_path, "e.csv", f"{HEADER}\n1,100.5,0.5,{when},buy\n2,100.5,0.5,2026-10-02T00:00:00Z,buy\n", 2)


def test_huge_json_epoch_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    _parse_accounts(tmp_path, "e.jsonl", '{"a": 1, "p": 1, "T": ' + "1" * 30 + "}\n", 1)


def test_huge_json_integer_price_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    _parse_accounts(tmp_path, "p.jsonl", '{"a": 1, "T": 1793491200000, "p": 1' + "0" * 400 + "}\n", 1)


def test_lone_surrogate_trade_id_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    _parse_accounts(tmp_path, "s.jsonl", '{"a": "\\ud800", "T": 1793491200000, "p": 1}\n', 1)
