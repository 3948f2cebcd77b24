"""What the pooled sqlite event log (lake_assets/event_log.py) saves against Dagster's stock sqlite storage.

One in-process run of a 300-partition asset that reports per-partition metadata and a check per partition (as
`PartitionPublisher` does), in three fresh DAGSTER_HOMEs: the `dagster.yaml` qlake writes locally (pooled sqlite),
the same without the `event_log_storage` entry (Dagster's stock `SqliteEventLogStorage`), and the one it writes when
`QLAKE_DAGSTER_PG_URL` is set (Dagster's Postgres storage) against a throwaway local PostgreSQL 15 cluster with its
default durability (fsync on, synchronous commit; tests/services.py starts it on 127.0.0.1, loopback TCP): Dagster's
stock Postgres storage (`postgres_stock`: a new connection per statement) and qlake's (`postgres`: the event log holds
a pooled connection), and qlake's again with `synchronous_commit = off` on the database (pooled sqlite's durability:
safe across process crashes). Prints
JSON: seconds and events per run, ms per event, and the projected cost over a `qlake demo` (its ~4,750 events,
counted in a demo's run databases). `--no-postgres` skips the Postgres column.

    python benchmarks/bench_event_log.py [--partitions N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lake_assets.event_log import PG_URL_ENV, dagster_yaml  # noqa: E402

DEMO_EVENTS = 4_750  # events in the run databases of one `qlake demo` (fresh home, 9 runs; index rows not counted)
warnings.filterwarnings("ignore")


def _probe(n: int) -> dg.AssetsDefinition:
    parts = dg.StaticPartitionsDefinition([f"p{i:04d}" for i in range(n)])

    @dg.asset(partitions_def=parts)
    def probe(context) -> None:  # type: ignore[no-untyped-def]
        for key in context.partition_keys:
            context.add_asset_metadata({"rows": 1, "key": key}, partition_key=key)

    return probe


def _run(yaml: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text(yaml)
        os.environ["DAGSTER_HOME"] = home
        asset = _probe(n)
        with dg.DagsterInstance.get() as instance:
            dg.materialize([asset], instance=instance, partition_key="p0000")  # schema creation, imports
            t0 = time.perf_counter()
            result = dg.materialize([asset], instance=instance,
                                    tags={"dagster/asset_partition_range_start": "p0000",
                                          "dagster/asset_partition_range_end": f"p{n - 1:04d}"})  # fmt: skip
            seconds = time.perf_counter() - t0
            assert result.success
            events = len(instance.all_logs(result.run_id))
    return {"seconds": round(seconds, 3), "events": events, "ms_per_event": round(1000 * seconds / events, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=300)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    for var in (PG_URL_ENV, "DAGSTER_PG_HOST"):
        os.environ.pop(var, None)
    pooled_yaml = dagster_yaml()
    stock_yaml = pooled_yaml[: pooled_yaml.index("event_log_storage:")]
    stock = _run(stock_yaml, args.partitions)
    pooled = _run(pooled_yaml, args.partitions)
    saved_ms = stock["ms_per_event"] - pooled["ms_per_event"]
    out: dict[str, object] = {
        "stock": stock, "pooled": pooled, "speedup": round(stock["ms_per_event"] / pooled["ms_per_event"], 2),
        "demo_events": DEMO_EVENTS, "demo_seconds_saved": round(saved_ms * DEMO_EVENTS / 1000, 1),
    }  # fmt: skip
    if not args.no_postgres:
        from services import postgres_bin_dir, postgres_server

        if postgres_bin_dir() is None:
            out["postgres"] = "skipped: PostgreSQL binaries not installed"
        else:
            with postgres_server(fsync=True) as pg:
                os.environ[PG_URL_ENV] = pg.create_database("bench_stock")  # Dagster's own: a connection per statement
                stock_pg = pooled_yaml[: pooled_yaml.index("event_log_storage:")]
                stock_pg += f"storage:\n  postgres:\n    postgres_url:\n      env: {PG_URL_ENV}\n"
                out["postgres_stock"] = _run(stock_pg, args.partitions)
                os.environ[PG_URL_ENV] = pg.create_database("bench_event_log")
                postgres = _run(dagster_yaml(), args.partitions)
                # the durability of pooled sqlite (WAL, synchronous=NORMAL): a crashed process loses nothing, an OS
                # crash the last commits; a per-database setting, no server restart
                os.environ[PG_URL_ENV] = pg.create_database("bench_async", "synchronous_commit = off")
                out["postgres_synchronous_commit_off"] = _run(dagster_yaml(), args.partitions)
                os.environ.pop(PG_URL_ENV)
            out["postgres"] = postgres
            out["postgres_vs_pooled"] = round(postgres["ms_per_event"] / pooled["ms_per_event"], 2)
            out["demo_seconds_postgres_vs_pooled"] = round(
                (postgres["ms_per_event"] - pooled["ms_per_event"]) * DEMO_EVENTS / 1000, 1
            )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
