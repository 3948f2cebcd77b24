"""The warehouse under concurrent use: a writer process keeps writing partitions and rebuilding the DuckDB catalog
while this process queries it read-only. DuckDB locks a file against every other process while it is open for
writing, so this only works because the catalog is built in a temp file and swapped in; here we prove it does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from lake_assets.settings import PROJECT_ROOT, warehouse_path
from lake_assets.storage.warehouse import connect_read_only, query

ROWS = 400  # rows per partition: a consistent snapshot always holds a multiple of it
ROUNDS = 40

WRITER = """
import sys
from datetime import UTC, datetime, timedelta

import polars as pl

from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import build_catalog
from lake_assets.vocabulary import BARS_SCHEMA, CLOSE, INSTRUMENT, IS_GAP, TS, conform

rows, rounds = int(sys.argv[1]), int(sys.argv[2])
lake = Lake()


def write(i: int, version: int) -> None:
    month = f"{2020 + i // 12}-{i % 12 + 1:02d}"
    start = datetime(2020 + i // 12, i % 12 + 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({
        TS: [start + timedelta(minutes=5 * k) for k in range(rows)],
        INSTRUMENT: ["BTCUSDT"] * rows,
        CLOSE: [float(version)] * rows,
        IS_GAP: [False] * rows,
    })
    lake.write(conform(frame, BARS_SCHEMA), "cleaned", "bars", {INSTRUMENT: "BTCUSDT", "month": month})


write(0, 0)
build_catalog()
print("ready", flush=True)
for i in range(1, rounds):
    write(i, i)  # a new partition
    write(i - 1, i)  # and a re-materialization of the previous one
    build_catalog()
print("done", flush=True)
"""


def test_readers_never_see_lock_errors_while_a_writer_rebuilds(data_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "writer.log"
    with log.open("w") as out:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ROWS), str(ROUNDS)],
            cwd=PROJECT_ROOT,
            env=os.environ.copy(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text():
            assert writer.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "writer never became ready"
            time.sleep(0.05)
        held = connect_read_only()  # a reader that keeps its connection across every rebuild
        errors: list[str] = []
        seen: list[int] = []
        answers = 0
        while writer.poll() is None and time.monotonic() < deadline + 120:
            try:
                n, months = query("select count(*), count(distinct month) from bars").row(0)
                assert n == ROWS * months, (n, months)  # whole partitions only: never a torn or doubled file
                assert not seen or months >= seen[-1], (seen[-1], months)  # and never going back in time
                seen.append(months)
                n_held, months_held = held.execute("select count(*), count(distinct month) from bars").fetchone()  # type: ignore[misc]
                assert n_held == ROWS * months_held
                answers += 1
            except duckdb.Error as exc:  # a lock error or a half-swapped catalog would land here
                errors.append(f"{type(exc).__name__}: {exc}")
        held.close()
        assert writer.wait(timeout=60) == 0, log.read_text()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)
    assert errors == []
    assert "done" in log.read_text()
    assert answers >= 10 and len(set(seen)) >= 3, (answers, sorted(set(seen)))  # the reads really raced the writes
    assert query("select count(*), count(distinct month), min(close) from bars").row(0) == (
        ROWS * ROUNDS,
        ROUNDS,
        1.0,  # every partition but the last was re-materialized at least once
    )
    assert [p.name for p in warehouse_path().parent.iterdir()] == [warehouse_path().name]  # no temp catalogs left
