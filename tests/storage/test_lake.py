from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from lake_assets.storage.lake import Lake, LakePathError
from lake_assets.vocabulary import InvalidIdentifierError


def test_write_read_replace_exactly(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    dims = {"instrument": "BTCUSDT", "month": "2026-01"}
    lake.write(pl.DataFrame({"x": [1, 2, 3]}), "raw", "raw_ohlcv", dims)
    lake.write(pl.DataFrame({"x": [9]}), "raw", "raw_ohlcv", dims)
    assert lake.read("raw", "raw_ohlcv", [dims])["x"].to_list() == [9]
    assert lake.partitions("raw", "raw_ohlcv") == [dims]
    assert lake.partition_path("raw", "raw_ohlcv", dims).relative_to(tmp_path).as_posix() == (
        "raw/raw_ohlcv/instrument=BTCUSDT/month=2026-01/part-0.parquet"
    )


@pytest.mark.parametrize("bad", ["../x", "A|B", "a b", "", "X/../../etc", "..", "A" * 40])
def test_hostile_instrument_ids_never_reach_a_path(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        Lake(tmp_path).partition_path("raw", "raw_ohlcv", {"instrument": bad, "month": "2026-01"})


@pytest.mark.parametrize(("group", "asset", "dims"), [("../g", "a", {}), ("g", "A;drop", {}), ("g", "a", {"m": "../"})])
def test_hostile_names_and_keys_rejected(tmp_path: Path, group: str, asset: str, dims: dict[str, str]) -> None:
    with pytest.raises(LakePathError):
        Lake(tmp_path).partition_path(group, asset, dims)


CRASHING_WRITER = """
import sys, polars as pl, numpy as np
from lake_assets.storage.lake import Lake
n = 30_000_000
df = pl.DataFrame({"x": np.arange(n), "y": np.random.default_rng(0).random(n)})
Lake(sys.argv[1]).write(df, "raw", "raw_ohlcv", {"instrument": "BTCUSDT", "month": "2026-01"})
"""


def test_write_killed_midway_leaves_previous_partition(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    dims = {"instrument": "BTCUSDT", "month": "2026-01"}
    lake.write(pl.DataFrame({"x": [1, 2, 3], "y": [0.1, 0.2, 0.3]}), "raw", "raw_ohlcv", dims)
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)])
    folder = lake.partition_path("raw", "raw_ohlcv", dims).parent
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in folder.iterdir()):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(p.name.endswith(".tmp") for p in folder.iterdir()), "the writer never started its temp file"
    assert lake.read("raw", "raw_ohlcv", [dims])["x"].to_list() == [1, 2, 3]
    assert lake.clean_temp_files() >= 1
    assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]


def test_frame_without_columns_clears_the_partition(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    dims = {"instrument": "BTCUSDT", "month": "2026-01"}
    lake.write(pl.DataFrame({"x": [1]}), "raw", "raw_ohlcv", dims)
    lake.write(pl.DataFrame(), "raw", "raw_ohlcv", dims)
    assert not lake.exists("raw", "raw_ohlcv", dims)


def test_temp_files_of_dead_writers_are_swept_before_the_next_write_to_their_table(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    df = pl.DataFrame({"x": [1, 2]})
    lake.write(df, "cleaned", "bars", {"instrument": "AAA", "month": "2026-01"})
    folder = lake.partition_path("cleaned", "bars", {"instrument": "AAA", "month": "2026-01"}).parent
    child = subprocess.Popen(["true"])
    child.wait()  # a writer that has exited
    dead_pid = child.pid
    orphan = folder / f".part-0.parquet.{dead_pid}.0123abcd.tmp"
    orphan.write_bytes(b"half a file")
    live = folder / f".part-0.parquet.{os.getppid()}.4567cdef.tmp"  # a writer that still runs
    live.write_bytes(b"being written")
    other_table = lake.asset_dir("raw", "raw_ohlcv") / f".part-0.parquet.{dead_pid}.89ab.tmp"
    other_table.parent.mkdir(parents=True)
    other_table.write_bytes(b"x")
    fresh = Lake(tmp_path / "lake")  # the next process
    fresh.write(df, "cleaned", "bars", {"instrument": "BBB", "month": "2026-01"})
    assert not orphan.exists() and live.exists()  # the dead writer's temp file is gone, the live one's kept
    assert other_table.exists()  # a table nobody wrote to yet is left alone
    assert fresh.read("cleaned", "bars", [{"instrument": "AAA", "month": "2026-01"}]).equals(df)
