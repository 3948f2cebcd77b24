"""Write-audit-publish: a partition that fails a blocking check is not published. SQL keeps returning its last good
version, the failure is on that partition's check in Dagster and in the `check_failures` view, and a later passing
run publishes the new data and clears the failure. Other partitions of the same run are published as usual."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from lake_assets.cli import PlannedRun
from lake_assets.definitions import all_assets
from lake_assets.partitions import instrument_month_key
from lake_assets.storage.check_failures import read_failures
from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import build_catalog, query
from lake_assets.vocabulary import INSTRUMENT
from resources import LakeResource, MarketDataResource, WarehouseResource

INST, BAD, GOOD = "SPX", "2017-03", "2017-04"


def run(instance: dg.DagsterInstance, assets: tuple[str, ...], first: str, last: str) -> dg.ExecuteInProcessResult:
    lo, hi = instrument_month_key(INST, first), instrument_month_key(INST, last)
    return dg.materialize(
        all_assets,
        selection=dg.AssetSelection.assets(*assets),
        instance=instance,
        resources={"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": MarketDataResource()},
        tags=PlannedRun("test", list(assets), lo, hi).run_tags(),
    )


def check_status(instance: dg.DagsterInstance, check: str, month: str) -> str:
    key = dg.AssetCheckKey(dg.AssetKey("bars"), check)
    for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=20):
        if rec.event and rec.event.dagster_event.event_specific_data.partition == instrument_month_key(INST, month):
            return rec.status.value
    return "none"


def test_a_failing_partition_keeps_its_last_good_version_published(data_root: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    raw = ("raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades")
    assert run(instance, (*raw, "bars"), BAD, GOOD).success
    lake = Lake()
    good_bad_month = lake.read("cleaned", "bars", [{INSTRUMENT: INST, "month": BAD}])
    sql = f"select count(*) from bars where instrument = '{INST}' and month = '{BAD}' and not is_gap"
    assert query(sql).item() == good_bad_month.filter(~pl.col("is_gap")).height > 15

    # the vendor's March is corrupted: only 3 of ~23 trading days remain, so the new bars fail gap_ratio (blocking)
    dims = {INSTRUMENT: INST, "month": BAD}
    lake.write(lake.read("raw", "raw_ohlcv", [dims]).head(3), "raw", "raw_ohlcv", dims)
    result = run(instance, ("bars",), BAD, GOOD)
    assert result.success  # one bad partition holds back only itself
    evaluations = {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}
    failed = evaluations["gap_ratio", instrument_month_key(INST, BAD)]
    assert not failed.passed and failed.blocking and failed.metadata["gap_ratio"].value > 0.35
    assert evaluations["gap_ratio", instrument_month_key(INST, GOOD)].passed

    # SQL still returns the last good March, byte for byte; April was published as usual
    assert lake.read("cleaned", "bars", [dims]).equals(good_bad_month)
    assert query(sql).item() == good_bad_month.filter(~pl.col("is_gap")).height
    # Dagster shows the failure on that partition, the materialization says it was held back
    assert check_status(instance, "gap_ratio", BAD) == "FAILED"
    assert check_status(instance, "gap_ratio", GOOD) == "SUCCEEDED"
    mats = {str(e.materialization.partition): e.materialization for e in result.get_asset_materialization_events()}
    assert mats[instrument_month_key(INST, BAD)].metadata["published"].value is False
    assert "gap_ratio" in mats[instrument_month_key(INST, BAD)].metadata["held_back_by"].value
    assert mats[instrument_month_key(INST, GOOD)].metadata["published"].value is True
    # and the check_failures table and view list it, with its samples
    failures = read_failures(lake, "bars")
    assert failures.select("partition", "check_name").rows() == [(instrument_month_key(INST, BAD), "gap_ratio")]
    assert failures["published_version_kept"].item() is True and "gap" in failures["failing_samples"].item()
    build_catalog()
    assert query("select asset, partition, check_name from check_failures").rows() == [
        ("bars", instrument_month_key(INST, BAD), "gap_ratio")
    ]

    # the vendor's March is restored: the partition passes, is published again and its failure is gone
    assert run(instance, ("raw_ohlcv",), BAD, BAD).success
    assert run(instance, ("bars",), BAD, BAD).success
    assert check_status(instance, "gap_ratio", BAD) == "SUCCEEDED"
    assert read_failures(lake).is_empty()
    assert query("select count(*) from check_failures").item() == 0
    assert query(sql).item() == good_bad_month.filter(~pl.col("is_gap")).height
