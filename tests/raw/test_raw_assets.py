"""The raw assets under Dagster: one single-run range over two months, an exact re-materialization, and a malformed
trade dump whose bad lines land in quarantine while its good trades land in the lake.

Each test materializes on an ephemeral instance with the synthetic vendor frozen at AS_OF (a run costs 10-40 s).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_helpers import run_range  # noqa: E402

from lake_assets.months import month_bounds
from lake_assets.partitions import instrument_month_key
from lake_assets.settings import PROJECT_ROOT
from lake_assets.specs import universe
from lake_assets.storage.lake import PART_FILE, Lake
from lake_assets.trades import trades_to_bars
from lake_assets.vendors.synthetic import SyntheticVendor
from lake_assets.vocabulary import INGESTED_AT, INSTRUMENT, PRICE, QUARANTINE_SCHEMA, TRADE_ID, TS, DataKind

AS_OF = "2026-03-01T00:00:00+00:00"
RAW = ("raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades")
KIND = {"raw_ohlcv": DataKind.OHLCV, "raw_funding": DataKind.FUNDING,
        "raw_open_interest": DataKind.OPEN_INTEREST, "raw_trades": DataKind.TRADES}  # fmt: skip
PERP = "BTCUSDT-PERP"


def materialize(
    instruments: list[str],
    assets: tuple[str, ...],
    first: str,
    last: str,
    months: tuple[str, str],
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run over the partition range first|months[0] .. last|months[1], as the CLI plans it."""
    instance = instance or dg.DagsterInstance.ephemeral()
    lo, hi = instrument_month_key(first, months[0]), instrument_month_key(last, months[1])
    return run_range(assets, lo, hi, instance, AS_OF)  # type: ignore[return-value]


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, dg.AssetMaterialization]]:
    """asset -> partition key -> materialization."""
    out: dict[str, dict[str, dg.AssetMaterialization]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        out.setdefault(mat.asset_key.to_user_string(), {})[str(mat.partition)] = mat
    return out


def meta(mat: dg.AssetMaterialization, key: str) -> Any:
    return mat.metadata[key].value


def quarantine(lake: Lake, asset: str, instrument: str, month: str) -> pl.DataFrame:
    dims = {"asset": asset, INSTRUMENT: instrument, "month": month}
    return lake.read("quality", "quarantine", [dims], QUARANTINE_SCHEMA)


def test_range_run_writes_two_months_per_asset_in_one_run(data_root: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result, lake = materialize([PERP], RAW, PERP, PERP, ("2026-01", "2026-02"), instance), Lake()
    assert result.success
    # ONE run materialized both months of every asset
    assert [r.run_id for r in instance.get_runs()] == [result.run_id]
    for asset in RAW:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
        assert sorted(r.partition_key for r in records) == [f"{PERP}|2026-01", f"{PERP}|2026-02"]
        assert {r.run_id for r in records} == {result.run_id}
    mats = materializations(result)
    assert set(mats) == set(RAW)
    inst, vendor = universe().get(PERP), SyntheticVendor(as_of=datetime.fromisoformat(AS_OF))
    for asset in RAW:
        assert set(mats[asset]) == {f"{PERP}|2026-01", f"{PERP}|2026-02"}, asset
        for month in ("2026-01", "2026-02"):
            dims = {INSTRUMENT: PERP, "month": month}
            part = lake.read("raw", asset, [dims])
            assert lake.partition_path("raw", asset, dims).is_file()
            lo, hi = month_bounds(month)
            assert part[TS].min() >= lo and part[TS].max() < hi, (asset, month)
            assert set(part[INSTRUMENT]) == {PERP}
            delivered = vendor.fetch(inst, lo, hi, KIND[asset]).height
            q = quarantine(lake, asset, PERP, month)
            assert part.height + q.height == delivered, (asset, month)  # nothing dropped silently
            assert q.is_empty() or q["reason"].null_count() == 0
            # each partition's metadata describes that partition, although one run wrote both
            mat = mats[asset][f"{PERP}|{month}"]
            assert meta(mat, "dagster/row_count") == part.height > 0
            assert meta(mat, "quarantined_rows") == q.height
            assert {"preview", "time_range", "counts", "published"} <= set(mat.metadata)
            assert meta(mat, "published") is True
            lo_text, hi_text = meta(mat, "time_range").split(" .. ")
            assert lo_text.startswith(f"{month}-01") and hi_text.startswith(month)
            other = "2026-02" if month == "2026-01" else "2026-01"
            assert month in meta(mat, "preview") and other not in meta(mat, "preview")
    # funding every 8 h: 3 a day; 5m candles: within the planted dirt of the full grid (31 + 28 days)
    funding = lake.read_all("raw", "raw_funding")
    assert funding.height == 3 * (31 + 28)
    assert 0.98 * 288 * 59 < lake.read_all("raw", "raw_ohlcv").height < 1.02 * 288 * 59
    evaluations = result.get_asset_check_evaluations()
    checks = {(e.asset_key.to_user_string(), e.check_name, e.partition) for e in evaluations}
    # one evaluation per check per partition, each on its own partition
    assert checks == {(a, c, f"{PERP}|{m}") for a in RAW for c in ("expectations", "ordering")
                      for m in ("2026-01", "2026-02")}  # fmt: skip
    assert len(evaluations) == len(checks)
    for e in evaluations:
        if e.check_name == "ordering":  # raw is kept as delivered: the vendor's duplicates only warn
            assert e.severity == dg.AssetCheckSeverity.WARN
            continue
        assert e.passed, e.metadata
        rows = meta(mats[e.asset_key.to_user_string()][str(e.partition)], "dagster/row_count")
        assert e.metadata["evaluated_rows"].value == rows  # the partition's rows, not the run's
        assert "passed" in e.metadata["results"].value
    ohlcv_order = [e for e in evaluations if e.check_name == "ordering" and e.asset_key.path == ["raw_ohlcv"]]
    assert any(not e.passed and e.metadata["duplicate_rows"].value > 0 for e in ohlcv_order)  # the planted duplicates


def test_rematerializing_a_partition_replaces_it_exactly(data_root: Path) -> None:
    assert materialize([PERP], ("raw_ohlcv",), PERP, PERP, ("2026-01", "2026-02")).success
    lake = Lake()
    dims = {INSTRUMENT: PERP, "month": "2026-01"}
    before = lake.read("raw", "raw_ohlcv", [dims])
    before_q = quarantine(lake, "raw_ohlcv", PERP, "2026-01")
    other = lake.read("raw", "raw_ohlcv", [{INSTRUMENT: PERP, "month": "2026-02"}])
    again = materialize([PERP], ("raw_ohlcv",), PERP, PERP, ("2026-01", "2026-01"))
    assert again.success
    assert set(materializations(again)["raw_ohlcv"]) == {f"{PERP}|2026-01"}
    after = lake.read("raw", "raw_ohlcv", [dims])
    assert after.height == before.height
    assert after.drop(INGESTED_AT).equals(before.drop(INGESTED_AT))  # same rows, none added twice
    assert after[INGESTED_AT].min() > before[INGESTED_AT].max()  # and really rewritten
    assert quarantine(lake, "raw_ohlcv", PERP, "2026-01").drop("quarantined_at").equals(before_q.drop("quarantined_at"))
    assert lake.read("raw", "raw_ohlcv", [{INSTRUMENT: PERP, "month": "2026-02"}]).equals(other)  # untouched
    folder = lake.partition_path("raw", "raw_ohlcv", dims).parent
    assert [p.name for p in folder.iterdir()] == [PART_FILE]  # no temp files or second parts left behind


DUMP_ID = "DUMPUSDT"
GOOD = [  # trade_id, price, qty, ISO time, side (all in January 2026)
    (1, 100.0, 0.5, "2026-01-10T00:00:01Z", "buy"),
    (2, 101.0, 0.25, "2026-01-10T00:01:00Z", "sell"),
    (3, 102.0, 1.0, "2026-01-10T00:07:30Z", "buy"),
    (4, 99.5, 2.0, "2026-01-10T00:12:00Z", "sell"),
    (5, 100.5, 0.1, "2026-01-20T12:00:00Z", "buy"),
]
BAD = [  # (line text, reason fragment)
    ("6,abc,1.0,2026-01-10T00:02:00Z,buy", "price"),  # non-numeric price: malformed
    ("7,100.0,1.0", "field"),  # truncated line: malformed
    ("8,-5.0,1.0,2026-01-10T00:03:00Z,sell", "price"),  # price <= 0: skipped
    ("9,100.0,1.0,2026-01-10T00:04:00,buy", "time"),  # naive timestamp: skipped, never guessed to be UTC
    ("2,101.0,0.25,2026-01-10T00:01:00Z,sell", "duplicate"),  # a repeated trade id: skipped
]


@pytest.fixture()
def dump_universe(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of spec/ whose universe also holds a trade_files instrument, and a malformed dump in its landing."""
    spec = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec)
    data = yaml.safe_load((spec / "universe.yaml").read_text())
    data["instruments"].append(
        {"id": DUMP_ID, "vendor": "trade_files", "market": "spot", "base_timeframe": "5m", "start": "2026-01-01"}
    )
    (spec / "universe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec))
    lines = ["trade_id,price,qty,time,side", *(",".join(map(str, row)) for row in GOOD[:3])]
    lines += [BAD[0][0], BAD[1][0], *(",".join(map(str, row)) for row in GOOD[3:]), *(b for b, _ in BAD[2:])]
    dump = data_root / "landing" / "trade_files" / DUMP_ID / "dump-2026-01.csv"
    dump.parent.mkdir(parents=True)
    dump.write_text("\n".join(lines) + "\n")
    return dump


def materialize_in_new_process(assets: tuple[str, ...], instrument: str, month: str) -> dg.DagsterInstance:
    """`qlake materialize` in a fresh process: partitions come from the universe when definitions load, so an
    instrument added to the universe exists in a new process (as after a code location reload), not in this one."""
    cmd = [sys.executable, "-m", "lake_assets.cli", "materialize", "--select", ",".join(assets),
           "--instruments", instrument, "--months", month]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return dg.DagsterInstance.get()


class InstanceResult:
    """Materializations and check evaluations of the latest runs, read from the instance like a run result."""

    def __init__(self, instance: dg.DagsterInstance, assets: tuple[str, ...]) -> None:
        self.instance, self.assets = instance, assets

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        out = []
        for a in self.assets:
            records = self.instance.fetch_materializations(dg.AssetKey(a), limit=100).records
            out += [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event]
        return out

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        out = []
        for a in self.assets:
            for name in ("expectations", "ordering"):
                key = dg.AssetCheckKey(dg.AssetKey(a), name)
                for rec in self.instance.event_log_storage.get_asset_check_execution_history(key, limit=1):
                    if rec.event and rec.event.dagster_event:
                        out.append(rec.event.dagster_event.event_specific_data)
        return out


def test_malformed_trade_dump_quarantines_bad_lines_and_lands_good_trades(dump_universe: Path) -> None:
    assert DUMP_ID in universe().ids
    instance = materialize_in_new_process(("raw_trades", "raw_ohlcv"), DUMP_ID, "2026-01")
    result = InstanceResult(instance, ("raw_trades", "raw_ohlcv"))
    lake, dims = Lake(), {INSTRUMENT: DUMP_ID, "month": "2026-01"}

    trades = lake.read("raw", "raw_trades", [dims])
    assert trades[TRADE_ID].to_list() == [str(r[0]) for r in GOOD]
    assert trades[PRICE].to_list() == [r[1] for r in GOOD]
    assert trades[TS].to_list() == [datetime.fromisoformat(r[3]).astimezone(UTC) for r in GOOD]

    q = quarantine(lake, "raw_trades", DUMP_ID, "2026-01").sort("line")
    assert q.height == len(BAD)
    assert q["line"].to_list() == [5, 6, 9, 10, 11]  # physical line numbers in the dump (header = line 1)
    assert q["record"].to_list() == [b for b, _ in BAD]
    for reason, (_, fragment) in zip(q["reason"].to_list(), BAD, strict=True):
        assert fragment in reason.lower(), (reason, fragment)
    assert set(q["source"]) == {str(dump_universe)}
    assert quarantine(lake, "raw_ohlcv", DUMP_ID, "2026-01").is_empty()

    mats = materializations(result)  # type: ignore[arg-type]
    mat = mats["raw_trades"][f"{DUMP_ID}|2026-01"]
    assert meta(mat, "dagster/row_count") == len(GOOD)
    assert meta(mat, "quarantined_rows") == len(BAD)
    files = meta(mat, "trade_files")
    header = [c.strip() for c in files.splitlines()[0].strip("|").split("|")]
    row = dict(zip(header, (c.strip() for c in files.splitlines()[2].strip("|").split("|")), strict=True))
    assert row["file"] == str(dump_universe)
    counts = {k: int(row[k]) for k in ("parsed", "accepted", "skipped", "malformed", "in_window")}
    assert counts == {"parsed": 10, "accepted": 5, "skipped": 3, "malformed": 2, "in_window": 5}

    # raw candles of a trade_files instrument are the good trades bucketed into 5m bars
    candles = lake.read("raw", "raw_ohlcv", [dims])
    expected = trades_to_bars(trades, "5m")
    assert candles[TS].to_list() == expected[TS].to_list() and candles.height == 4
    assert meta(mats["raw_ohlcv"][f"{DUMP_ID}|2026-01"], "dagster/row_count") == 4
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4 and all(e.passed for e in evaluations)
    assert {e.partition for e in evaluations} == {f"{DUMP_ID}|2026-01"}

    # re-ingesting the month replaces its quarantine rows instead of appending them again
    materialize_in_new_process(("raw_trades",), DUMP_ID, "2026-01")
    again = quarantine(lake, "raw_trades", DUMP_ID, "2026-01").sort("line")
    assert again.drop("quarantined_at").equals(q.drop("quarantined_at"))
    assert lake.read("raw", "raw_trades", [dims]).drop(INGESTED_AT).equals(trades.drop(INGESTED_AT))
