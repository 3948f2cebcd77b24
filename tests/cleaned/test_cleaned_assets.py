"""The cleaned assets under Dagster: raw -> bars -> bars_1h / bars_1d for a spot and its perp in one run, checked
against the raw partitions they were built from, then `bars` re-materialized and compared byte for byte."""

from __future__ import annotations

import base64
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_helpers import run_range  # noqa: E402

from lake_assets import tables
from lake_assets.partitions import instrument_month_key
from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import query
from lake_assets.vocabulary import (
    BASIS_BPS,
    CLOSE,
    FUNDING_RATE,
    INSTRUMENT,
    IS_GAP,
    RETURN,
    SPOT_CLOSE,
    TS,
    VOLUME,
)

AS_OF = "2026-03-01T00:00:00+00:00"
SPOT, PERP, MONTH = "BTCUSDT", "BTCUSDT-PERP", "2026-02"
RAW = ("raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades")
CLEANED = ("bars", "bars_1h", "bars_1d")
DAYS = 28  # February 2026, a closed month at AS_OF: the full grid


class Results:
    """The events of several in-process runs, read like one ExecuteInProcessResult."""

    def __init__(self, results: list[dg.ExecuteInProcessResult]) -> None:
        self.results = results
        self.success = all(r.success for r in results)

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [e for r in self.results for e in r.get_asset_check_evaluations()]


def materialize(assets: tuple[str, ...]) -> Results:
    """MONTH of SPOT, then of PERP (one run each: their keys are not adjacent), raw before cleaned."""
    instance = dg.DagsterInstance.ephemeral()
    layers = [tuple(a for a in assets if a in RAW), tuple(a for a in assets if a not in RAW)]
    results = []
    for layer in [lay for lay in layers if lay]:
        for inst in (SPOT, PERP):
            key = instrument_month_key(inst, MONTH)
            results.append(run_range(layer, key, key, instance, AS_OF))
    return Results(results)


def read(lake: Lake, group: str, asset: str, instrument: str) -> pl.DataFrame:
    return lake.read(group, asset, [{INSTRUMENT: instrument, "month": MONTH}])


def test_raw_to_bars_to_resamples_then_rematerialize(data_root: Path) -> None:
    result = materialize(RAW + CLEANED)
    assert result.success
    lake = Lake()
    assert tables.check_lake(lake.root) == []  # raw, quarantine and cleaned tables are as declared

    mats: dict[str, dict[str, dg.AssetMaterialization]] = {}
    for event in result.get_asset_materialization_events():
        m = event.materialization
        mats.setdefault(m.asset_key.to_user_string(), {})[str(m.partition)] = m
    assert set(mats) == set(RAW + CLEANED)
    assert all(set(by_key) == {f"{SPOT}|{MONTH}", f"{PERP}|{MONTH}"} for by_key in mats.values())

    # every check ran once per asset and partition and passed (staleness too: February is closed at AS_OF)
    evaluations = {(e.asset_key.to_user_string(), e.check_name, e.partition): e
                   for e in result.get_asset_check_evaluations()}  # fmt: skip
    checks = {(a, "expectations") for a in RAW + CLEANED} | {(a, "ordering") for a in RAW}
    checks |= {(a, "unique_increasing_ts") for a in CLEANED} | {("bars", "gap_ratio"), ("bars", "staleness")}
    keys = {instrument_month_key(i, MONTH) for i in (SPOT, PERP)}
    assert set(evaluations) == {(a, c, k) for a, c in checks for k in keys}
    failed = {k[:2]: e.metadata for k, e in evaluations.items() if not e.passed}
    # the vendor's planted duplicates only warn in raw (kept as delivered); bars are clean of them
    assert set(failed) == {("raw_ohlcv", "ordering")}, failed
    assert all(e.severity == dg.AssetCheckSeverity.WARN for k, e in evaluations.items() if k[1] == "ordering")

    start = datetime(2026, 2, 1, tzinfo=UTC)
    grid = pl.datetime_range(start, start + timedelta(days=DAYS), "5m", closed="left", time_zone="UTC", eager=True)
    bars = {inst: read(lake, "cleaned", "bars", inst) for inst in (SPOT, PERP)}
    for inst, df in bars.items():
        assert df[TS].to_list() == grid.to_list(), inst  # the full regular grid, sorted, unique
        assert set(df[INSTRUMENT]) == {inst}
        raw_ts = read(lake, "raw", "raw_ohlcv", inst)[TS].unique()
        assert int(df[IS_GAP].sum()) == DAYS * 288 - raw_ts.len()  # every missing raw bar is a gap row
        gaps = df.filter(pl.col(IS_GAP))
        assert gaps.height > 0 and gaps[CLOSE].null_count() == gaps.height and gaps[RETURN].null_count() == gaps.height
        assert df.filter(~pl.col(IS_GAP))[CLOSE].null_count() == 0

    spot, perp = bars[SPOT], bars[PERP]
    assert spot[FUNDING_RATE].null_count() == spot.height and spot[BASIS_BPS].null_count() == spot.height
    assert perp[FUNDING_RATE].null_count() == 0  # January's last funding reaches back into February
    both = perp.join(spot.select(TS, pl.col(CLOSE).alias("spot")), on=TS).filter(
        pl.col(CLOSE).is_not_null() & pl.col("spot").is_not_null()
    )
    assert both.height > 0.95 * perp.height
    assert both[SPOT_CLOSE].equals(both["spot"], check_names=False)
    basis = (both[CLOSE] / both["spot"] - 1) * 1e4
    assert (both[BASIS_BPS] - basis).abs().max() < 1e-6  # type: ignore[operator]

    for asset, per_day in (("bars_1h", 24), ("bars_1d", 1)):
        for inst in (SPOT, PERP):
            coarse = read(lake, "cleaned", asset, inst)
            assert coarse.height == DAYS * per_day, (asset, inst)
            assert coarse[TS].is_sorted() and coarse[TS].n_unique() == coarse.height
            fine_volume = float(bars[inst][VOLUME].sum())
            assert abs(float(coarse[VOLUME].sum()) - fine_volume) < 1e-6 * fine_volume  # nothing lost or counted twice

    # metadata of each partition: its row count, time range, gap ratio, a Markdown preview and a PNG plot
    bars_meta = mats["bars"][f"{PERP}|{MONTH}"].metadata
    assert bars_meta["dagster/row_count"].value == DAYS * 288
    assert bars_meta["time_range"].value == "2026-02-01 00:00:00+00:00 .. 2026-02-28 23:55:00+00:00"
    gap_ratio = int(perp[IS_GAP].sum()) / (DAYS * 288)
    assert abs(float(bars_meta["gap_ratio"].value) - gap_ratio) < 1e-6  # type: ignore[arg-type]
    assert SPOT + " " not in bars_meta["preview"].value.replace("|", " ")  # only the perp's own rows
    assert "| ts | instrument |" in bars_meta["preview"].value and "basis_bps" in bars_meta["preview"].value
    png = re.fullmatch(r"!\[plot\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", bars_meta["price_and_gaps"].value)
    assert png is not None and base64.b64decode(png.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert mats["bars_1h"][f"{SPOT}|{MONTH}"].metadata["dagster/row_count"].value == DAYS * 24

    # the assets refreshed the warehouse: SQL sees the same rows
    counts = query("select instrument, count(*) as n, sum(is_gap::int) as gaps from bars group by 1 order by 1")
    assert counts.rows() == [(SPOT, DAYS * 288, spot[IS_GAP].sum()), (PERP, DAYS * 288, perp[IS_GAP].sum())]

    # re-materializing replaces the partitions exactly: same rows, no duplicates
    again = materialize(("bars",))
    assert again.success
    for inst in (SPOT, PERP):
        assert read(lake, "cleaned", "bars", inst).equals(bars[inst])
        folder = lake.partition_path("cleaned", "bars", {INSTRUMENT: inst, "month": MONTH}).parent
        assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]
    assert query("select count(*) as n, count(distinct (instrument, ts)) as u from bars").row(0) == (
        2 * DAYS * 288,
        2 * DAYS * 288,
    )
