"""Distributed execution: a multi-partition backfill of raw_ohlcv -> bars run with Dagster's Celery executor through a
Redis broker (redis-server on 127.0.0.1, started and stopped here), the instance on a throwaway PostgreSQL, is spread
over two worker processes and writes the same partitions as the in-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_helpers import run_range  # noqa: E402

from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import INGESTED_AT, INSTRUMENT  # noqa: E402

KEYS = ["BTCUSDT|2026-01", "ETHUSDT|2026-01", "BTCUSDT|2026-02"]  # runs launched together: three partitions
ASSETS = ("raw_ohlcv", "bars")
RUNS_DEADLINE = 240.0
RUNNER = Path(__file__).with_name("celery_backfill_runner.py")


def _frames(root: Path) -> dict[tuple[str, str], pl.DataFrame]:
    lake = Lake(root / "lake")
    out = {}
    for key in KEYS:
        inst, month = key.split("|")
        dims = {INSTRUMENT: inst, "month": month}
        out[("raw_ohlcv", key)] = lake.read("raw", "raw_ohlcv", [dims]).drop(INGESTED_AT)
        out[("bars", key)] = lake.read("cleaned", "bars", [dims])
    return out


def _start_worker(name: str, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "lake_assets.celery_app", "worker", "-n", f"{name}@%h", "--pool",
         "solo", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for_workers(broker: str, n: int, timeout: float = 120.0) -> None:
    from dagster_celery.make_app import make_app

    app = make_app({"broker": broker, "backend": broker})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= n:
            return
    raise TimeoutError(f"{n} celery workers did not answer within {timeout:.0f}s")


@pytest.mark.timeout(420)
def test_backfill_spreads_over_two_celery_workers_with_in_process_outputs(
    postgres: Any, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from services import redis_server

    from lake_assets.cli import _dagster_home

    if not __import__("shutil").which("redis-server"):
        pytest.skip("redis-server is not installed: apt-get install redis-server (scripts/test.sh does as root)")
    with redis_server() as broker:
        monkeypatch.setenv("QLAKE_CELERY_BROKER", broker)
        # the run processes and the workers share one instance on Postgres, created before any of them starts
        monkeypatch.setenv("QLAKE_DAGSTER_PG_URL", postgres.create_database("celery_instance"))
        _dagster_home()
        with dg.DagsterInstance.get() as instance:
            instance.get_runs(limit=1)
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "QLAKE_WORKERS": "1"}
        logs = [(tmp_path / f"worker{i}.log").open("wb") for i in (1, 2)]
        workers = [_start_worker(f"w{i}", env, log) for i, log in zip((1, 2), logs, strict=True)]
        try:
            _wait_for_workers(broker, 2)

            t0 = time.perf_counter()
            # the backfill: one run per partition, launched together (as the daemon launches a backfill's runs),
            # each orchestrated by its own process; a run hung on its workers is killed at the deadline
            launchers = [subprocess.Popen([sys.executable, str(RUNNER), ",".join(ASSETS), key], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
                         for key in KEYS]  # fmt: skip
            runs = []
            for launcher in launchers:
                try:
                    out, err = launcher.communicate(timeout=max(1.0, RUNS_DEADLINE - (time.perf_counter() - t0)))
                except subprocess.TimeoutExpired:
                    for other in launchers:
                        other.kill()
                    raise
                assert launcher.returncode == 0, err[-3000:]
                runs += list(json.loads(out.strip().splitlines()[-1]).values())
            celery_seconds = time.perf_counter() - t0
            tails = [p.read_text()[-2000:] for p in tmp_path.glob("worker*.log")]
            assert all(ok for ok, _ in runs), (runs, tails)
            with dg.DagsterInstance.get() as instance:
                pids = {
                    entry.dagster_event.pid
                    for _, run_id in runs
                    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
                }
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(30)
                except subprocess.TimeoutExpired:
                    w.kill()
            for log in logs:
                log.close()
    assert pids == {w.pid for w in workers}, (pids, [w.pid for w in workers])  # both workers ran steps
    distributed = _frames(data_root)

    # the same backfill in-process, into another lake
    other = tmp_path / "in_process"
    other.mkdir()
    monkeypatch.setenv("QLAKE_DATA_ROOT", str(other))
    t0 = time.perf_counter()
    for lo, hi in (("BTCUSDT|2026-01", "BTCUSDT|2026-02"), ("ETHUSDT|2026-01", "ETHUSDT|2026-01")):
        assert run_range(ASSETS, lo, hi, dg.DagsterInstance.ephemeral()).success
    in_process_seconds = time.perf_counter() - t0
    local = _frames(other)
    for key, frame in distributed.items():
        assert frame.height > 0 and frame.equals(local[key]), key
    print(f"celery backfill {celery_seconds:.1f}s over 2 workers; in-process {in_process_seconds:.1f}s")
