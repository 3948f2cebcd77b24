"""Sensors and the schedule evaluated the way the daemon does: with built contexts, saved cursors and restarts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from lake_assets.partitions import instrument_month_key, instrument_month_partitions, months_between
from lake_assets.specs import universe
from sensors.landing import landing_sensor
from sensors.refresh import daily_refresh_schedule

PERP = "BTCUSDT-PERP"


def trade_line(trade_id: int, ts: str, price: float = 100.0) -> str:
    return f"{trade_id},{price},0.5,{ts},buy"


def write_dump(path: Path, lines: list[str], mtime_ns: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["trade_id,price,qty,time,side", *lines]) + "\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # explicit: two writes within one clock tick still differ
    return path


def evaluate(cursor: str | None = None) -> dg.SensorResult:
    result = landing_sensor(dg.build_sensor_context(cursor=cursor))
    assert isinstance(result, dg.SensorResult)
    return result


def requested(result: dg.SensorResult) -> list[str]:
    return sorted(str(r.partition_key) for r in result.run_requests or [])


@pytest.fixture()
def landing(data_root: Path) -> Path:
    return data_root / "landing" / "trade_files"


def perp_keys() -> list[str]:
    """Every existing partition of the perp: what a changed dump of it can touch (the sensor does not parse)."""
    return sorted(k for k in instrument_month_partitions.get_partition_keys() if k.startswith(f"{PERP}|"))


def test_landing_sensor_requests_touched_partitions_once_across_restarts(landing: Path) -> None:
    dump = write_dump(
        landing / PERP / "dump-1.csv",
        [trade_line(1, "2026-01-31T23:59:00Z"), "garbage", trade_line(2, "2026-02-01T00:01:00Z")],
        mtime_ns=1_700_000_000_000_000_000,
    )
    # ignored: an instrument outside the universe, a file still being written
    write_dump(landing / "NOTLISTED" / "d.csv", [trade_line(1, "2026-01-05T00:00:00Z")], 1_700_000_000_000_000_000)
    write_dump(landing / "ETHUSDT" / "partial.csv.part", [trade_line(1, "2026-01-05T00:00:00Z")], 1_700_000_000_000_000)

    first = evaluate()
    assert requested(first) == perp_keys() and f"{PERP}|2026-01" in perp_keys()
    assert len(first.run_requests or []) == len(set(requested(first)))  # one request per partition
    cursor = json.loads(first.cursor or "{}")
    assert cursor[str(dump)] == [dump.stat().st_size, dump.stat().st_mtime_ns]
    assert str(landing / "NOTLISTED" / "d.csv") in cursor  # seen, so not re-logged on every tick

    # run keys are derived from the partition and the file versions: a lost cursor re-requests with the same keys
    keys = sorted(str(r.run_key) for r in first.run_requests or [])
    assert sorted(str(r.run_key) for r in evaluate().run_requests or []) == keys

    # restart: a new context with the saved cursor requests nothing
    restarted = evaluate(first.cursor)
    assert restarted.run_requests == []
    assert json.loads(restarted.cursor or "{}") == cursor

    # the dump changes: the instrument's partitions are requested again, under new run keys
    times = ("2026-01-31T23:59:00Z", "2026-02-01T00:01:00Z", "2026-03-02T00:00:00Z")
    write_dump(dump, [trade_line(i + 1, ts) for i, ts in enumerate(times)], mtime_ns=1_700_000_100_000_000_000)
    changed = evaluate(restarted.cursor)
    assert requested(changed) == perp_keys()
    assert not {r.run_key for r in changed.run_requests or []} & set(keys)
    assert evaluate(changed.cursor).run_requests == []

    # two new files of one instrument in one tick: merged, one request per partition
    write_dump(landing / PERP / "dump-2.csv", [trade_line(9, "2026-04-01T00:00:00Z")], 1_700_000_200_000_000_000)
    write_dump(landing / PERP / "dump-3.csv", [trade_line(10, "2026-05-01T00:00:00Z")], 1_700_000_200_000_000_000)
    both = evaluate(changed.cursor)
    assert requested(both) == perp_keys()

    # a removed dump: its rows must leave the lake, so its instrument is re-ingested and the cursor forgets it
    (landing / PERP / "dump-3.csv").unlink()
    removed = evaluate(both.cursor)
    assert requested(removed) == perp_keys()
    assert str(landing / PERP / "dump-3.csv") not in json.loads(removed.cursor or "{}")
    assert evaluate(removed.cursor).run_requests == []


def test_months_between_spans_year_ends() -> None:
    assert months_between("2025-11", "2026-02") == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]


def test_landing_sensor_never_requests_a_partition_that_cannot_exist(landing: Path) -> None:
    # trades dated 1995 and 2030 (outside the instrument's life) next to a good one: only existing partitions are
    # requested (the raw asset quarantines the 1995 line in the first life month, the 2030 one in the last)
    lines = [
        trade_line(1, "1995-06-01T00:00:00Z"),
        trade_line(2, "2026-02-01T00:00:00Z"),
        trade_line(3, "2030-01-01T00:00:00Z"),
    ]
    write_dump(landing / PERP / "odd.csv", lines, 1_700_000_000_000_000_000)
    result = evaluate()
    assert requested(result) == perp_keys()
    assert set(requested(result)) <= set(instrument_month_partitions.get_partition_keys())


def test_landing_sensor_keeps_ticking_on_hostile_files(landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    folder = landing / PERP
    folder.mkdir(parents=True)
    (folder / "broken.csv.gz").write_bytes(b"\x1f\x8b not gzip at all")
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 64)
    (folder / "hostile.csv.gz").write_bytes(
        gzip.compress(b"time,price\n1995-01-01T00:00:00Z,1\n2030-01-01T00:00:00Z,1\n")
    )
    (folder / "empty.csv").write_bytes(b"")
    (landing / "lowercase").mkdir()
    first = evaluate("this is not json")  # an unreadable cursor: logged, starts over
    assert requested(first) == perp_keys()
    # the sensor only stats files: it must not read them
    import lake_assets.vendors.trade_files as tf

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sensor must not parse dumps")

    monkeypatch.setattr(tf, "_parse", no_parse)
    os.utime(folder / "binary.csv", ns=(1_800_000_000_000_000_000, 1_800_000_000_000_000_000))
    assert requested(evaluate(first.cursor)) == perp_keys()

    # a listing failure is logged and the tick ends cleanly with the cursor unchanged
    import sensors.landing as landing_module

    def boom(_: object) -> None:
        raise PermissionError("denied")

    monkeypatch.setattr(landing_module, "scan_landing", boom)
    failed = evaluate(first.cursor)
    assert failed.run_requests == [] and json.loads(failed.cursor or "{}") == json.loads(first.cursor or "{}")


def refresh_at(at: datetime) -> list[dg.RunRequest]:
    requests = daily_refresh_schedule(dg.build_schedule_context(scheduled_execution_time=at))
    assert isinstance(requests, list)
    return requests


def test_daily_refresh_requests_only_live_instruments_current_month() -> None:
    requests = refresh_at(datetime(2026, 3, 5, 0, 15, tzinfo=UTC))
    live = [i.id for i in universe().instruments if i.end is None]
    assert live == ["BTCUSDT", "BTCUSDT-PERP", "ETHUSDT", "ETHUSDT-PERP", "SOLUSDT", "SOLUSDT-PERP"]  # not SPX/NDX
    assert [r.partition_key for r in requests] == [instrument_month_key(i, "2026-03") for i in live]
    assert [r.run_key for r in requests] == [f"{i}|2026-03:2026-03-05" for i in live]
    # the next day: same partitions, new run keys (one refresh per day); before any start: nothing to refresh
    next_day = refresh_at(datetime(2026, 3, 6, 0, 15, tzinfo=UTC))
    assert [r.partition_key for r in next_day] == [r.partition_key for r in requests]
    assert not {r.run_key for r in next_day} & {r.run_key for r in requests}
    before_start = daily_refresh_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2025, 12, 31, 0, 15, tzinfo=UTC))
    )
    assert isinstance(before_start, dg.SkipReason)
