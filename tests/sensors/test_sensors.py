"""Sensors and the schedule evaluated the way the daemon does: with built contexts, saved cursors and restarts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from lake_assets.partitions import instrument_month_key, months_between
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


def test_landing_sensor_requests_touched_partitions_once_across_restarts(landing: Path) -> None:
    # a dump that crosses a month boundary touches two partitions
    dump = write_dump(
        landing / PERP / "dump-1.csv",
        [trade_line(1, "2026-01-31T23:59:00Z"), "garbage", trade_line(2, "2026-02-01T00:01:00Z")],
        mtime_ns=1_700_000_000_000_000_000,
    )
    # ignored: an instrument outside the universe, a file without a single valid trade, a file still being written
    write_dump(landing / "NOTLISTED" / "d.csv", [trade_line(1, "2026-01-05T00:00:00Z")], 1_700_000_000_000_000_000)
    write_dump(landing / "ETHUSDT" / "bad.csv", ["x,y", "1,-3,0.5,2026-01-05T00:00:00Z,buy"], 1_700_000_000_000_000_000)
    write_dump(landing / "ETHUSDT" / "partial.csv.part", [trade_line(1, "2026-01-05T00:00:00Z")], 1_700_000_000_000_000)

    first = evaluate()
    assert requested(first) == [instrument_month_key(PERP, "2026-01"), instrument_month_key(PERP, "2026-02")]
    assert {r.partition_key for r in first.run_requests or []} == {f"{PERP}|2026-01", f"{PERP}|2026-02"}
    cursor = json.loads(first.cursor or "{}")
    assert cursor[str(dump)] == [dump.stat().st_size, dump.stat().st_mtime_ns]
    assert str(landing / "NOTLISTED" / "d.csv") in cursor  # seen, so not re-logged on every tick

    # run keys are derived from the file version: a lost cursor re-requests with the same keys (deduplicated)
    keys = sorted(str(r.run_key) for r in first.run_requests or [])
    assert sorted(str(r.run_key) for r in evaluate().run_requests or []) == keys
    assert all(k.startswith(f"{dump}:{dump.stat().st_size}:{dump.stat().st_mtime_ns}:") for k in keys)

    # restart: a new context with the saved cursor requests nothing
    restarted = evaluate(first.cursor)
    assert restarted.run_requests == []
    assert json.loads(restarted.cursor or "{}") == cursor

    # the dump changes (a March trade appended): its partitions are requested again, under new run keys
    times = ("2026-01-31T23:59:00Z", "2026-02-01T00:01:00Z", "2026-03-02T00:00:00Z")
    write_dump(dump, [trade_line(i + 1, ts) for i, ts in enumerate(times)], mtime_ns=1_700_000_100_000_000_000)
    changed = evaluate(restarted.cursor)
    assert requested(changed) == [instrument_month_key(PERP, m) for m in ("2026-01", "2026-02", "2026-03")]
    assert not {r.run_key for r in changed.run_requests or []} & set(keys)
    assert evaluate(changed.cursor).run_requests == []

    # a new file next to it is picked up on its own
    write_dump(landing / PERP / "dump-2.csv", [trade_line(9, "2026-04-01T00:00:00Z")], 1_700_000_200_000_000_000)
    assert requested(evaluate(changed.cursor)) == [instrument_month_key(PERP, "2026-04")]


def test_months_between_spans_year_ends() -> None:
    assert months_between("2025-11", "2026-02") == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]


def test_landing_sensor_never_requests_a_partition_that_cannot_exist(landing: Path) -> None:
    # trades dated 1995 and 2030 (outside the instrument's life) next to a good one: the good month is requested,
    # the impossible ones are not (a request for them would raise and stall every later tick)
    lines = [
        trade_line(1, "1995-06-01T00:00:00Z"),
        trade_line(2, "2026-02-01T00:00:00Z"),
        trade_line(3, "2030-01-01T00:00:00Z"),
    ]
    write_dump(landing / PERP / "odd.csv", lines, 1_700_000_000_000_000_000)
    result = evaluate()
    assert requested(result) and all(k.startswith(f"{PERP}|2026-") for k in requested(result))
    assert "1995" not in " ".join(requested(result)) and "2030" not in " ".join(requested(result))


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
