"""The lake on object storage: QLAKE_DATA_ROOT=s3://... against a moto S3 server on 127.0.0.1. Raw -> bars ->
features for one instrument-month materialized there (each partition one object), queried with `qlake sql` (DuckDB
reads the objects through fsspec, confined to the lake's prefix), read by the lake reader (objects stamped by ETag),
and a writer killed mid-upload leaves the old object intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import s3fs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_helpers import run_range  # noqa: E402

from lake_assets import tables  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import INSTRUMENT  # noqa: E402

AS_OF = "2026-03-01T00:00:00+00:00"
KEY, DIMS = "BTCUSDT|2026-01", {INSTRUMENT: "BTCUSDT", "month": "2026-01"}
ASSETS = ("raw_ohlcv", "bars", "features")  # a spot: no funding, open interest or trades
CRASH_WRITER = Path(__file__).with_name("s3_crash_writer.py")


@pytest.mark.timeout(300)
def test_raw_to_features_on_object_storage_queried_and_read(
    s3_lake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lake_assets.cli import main

    assert run_range(ASSETS, KEY, KEY, dg.DagsterInstance.ephemeral(), AS_OF).success
    fs = s3fs.S3FileSystem()
    keys = set(fs.find("qlake-test/root/lake"))
    for group, asset in (("raw", "raw_ohlcv"), ("cleaned", "bars"), ("features", "features")):
        assert f"qlake-test/root/lake/{group}/{asset}/instrument=BTCUSDT/month=2026-01/part-0.parquet" in keys
    assert not any(k.endswith(".tmp") for k in keys)  # one PUT per partition, no temp objects
    assert not (tmp_path / "data" / "lake").exists()  # nothing of the lake on local disk

    lake = Lake()
    assert lake.remote and str(lake.root) == "s3://qlake-test/root/lake"
    bars = lake.read("cleaned", "bars", [DIMS])
    features = lake.read("features", "features", [DIMS])
    assert bars.height == 31 * 288 and features.height == bars.height

    # qlake sql: the warehouse's views read the objects
    assert main(["sql", "select instrument, count(*) as n from features group by 1"]) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT" in out and str(features.height) in out.replace(",", "").replace("_", "")
    from lake_assets.storage.warehouse import query

    assert query("select count(*) as n from bars").item() == bars.height
    with pytest.raises(Exception, match="(?i)permission|disabled"):  # confined to the lake's prefix
        query("select * from read_parquet('s3://qlake-test/elsewhere/*.parquet')")
    assert "qlake-test-secret" not in out

    # the lake reader: held while the object is unchanged (its ETag), read afresh after a rewrite
    reader = lake.reader
    first = reader.instrument(tables.BARS, "BTCUSDT")
    assert first.height == bars.height and reader.reads == 1
    assert reader.instrument(tables.BARS, "BTCUSDT") is first and reader.reads == 1
    lake.write(bars.head(10), "cleaned", "bars", DIMS)
    assert reader.instrument(tables.BARS, "BTCUSDT").height == 10 and reader.reads == 2
    assert lake.partitions("cleaned", "bars") == [DIMS]


@pytest.mark.timeout(120)
def test_a_writer_killed_mid_upload_leaves_the_old_object(s3_lake: str) -> None:
    lake = Lake()
    old = pl.DataFrame({"x": [1.0, 2.0, 3.0]})
    lake.write(old, "raw", "raw_ohlcv", DIMS)
    done = subprocess.run([sys.executable, str(CRASH_WRITER), f"{s3_lake}/lake"], capture_output=True, text=True,
                          timeout=100)  # fmt: skip
    assert done.returncode == 9 and "parts sent" in done.stdout, done.stderr[-2000:]
    assert lake.read("raw", "raw_ohlcv", [DIMS]).equals(old)  # the old object, whole
    fs = s3fs.S3FileSystem()
    assert fs.find("qlake-test/root/lake") == [
        "qlake-test/root/lake/raw/raw_ohlcv/instrument=BTCUSDT/month=2026-01/part-0.parquet"
    ]
    # what the dead writer left is an incomplete multipart upload, invisible to readers (a bucket lifecycle rule,
    # AbortIncompleteMultipartUpload, removes it)
    import boto3

    uploads = boto3.client("s3").list_multipart_uploads(Bucket="qlake-test").get("Uploads", [])
    assert len(uploads) == 1
