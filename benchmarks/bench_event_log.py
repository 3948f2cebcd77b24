"""What the pooled sqlite event log (lake_assets/event_log.py) saves against Dagster's stock sqlite storage.

One in-process run of a 300-partition asset that reports per-partition metadata and a check per partition (as
`PartitionPublisher` does), in two fresh DAGSTER_HOMEs: the `dagster.yaml` qlake writes, and the same without the
`event_log_storage` entry (Dagster's stock `SqliteEventLogStorage`). Prints JSON: seconds and events per run, ms per
event, and the projected saving over a `qlake demo` (its ~4,750 events, counted in a demo's run databases).

    python benchmarks/bench_event_log.py [--partitions N]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake_assets.event_log import dagster_yaml  # noqa: E402

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
        events = 0
        for db in Path(home, "history", "runs").glob("*.db"):
            if db.stem != "index":
                with sqlite3.connect(db) as c:
                    events = max(events, c.execute("select count(*) from event_logs").fetchone()[0])
    return {"seconds": round(seconds, 3), "events": events, "ms_per_event": round(1000 * seconds / events, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=300)
    args = ap.parse_args()
    pooled_yaml = dagster_yaml()
    stock_yaml = pooled_yaml[: pooled_yaml.index("event_log_storage:")]
    stock = _run(stock_yaml, args.partitions)
    pooled = _run(pooled_yaml, args.partitions)
    saved_ms = stock["ms_per_event"] - pooled["ms_per_event"]
    print(json.dumps({
        "stock": stock, "pooled": pooled, "speedup": round(stock["ms_per_event"] / pooled["ms_per_event"], 2),
        "demo_events": DEMO_EVENTS, "demo_seconds_saved": round(saved_ms * DEMO_EVENTS / 1000, 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
