"""Launch a backfill on the Celery executor: one run per partition key, all at once (threads), as the daemon's
backfill would; prints one JSON line {key: [success, run_id]}. A separate process so that a run hung on its
workers is killed with it (tests/test_celery_backfill.py). Usage: python celery_backfill_runner.py ASSETS KEY..."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout

from lake_assets.celery_app import celery_run_config, distributed_job  # noqa: E402


def launch(assets: list[str], key: str) -> tuple[bool, str]:
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(distributed_job),
            instance=instance,
            run_config=celery_run_config(),
            tags={"dagster/partition": key},
            asset_selection=[dg.AssetKey(a) for a in assets],
        )
        return result.success, result.run_id


if __name__ == "__main__":
    assets, keys = sys.argv[1].split(","), sys.argv[2:]
    with ThreadPoolExecutor(len(keys)) as pool:
        outcomes = list(pool.map(lambda k: launch(assets, k), keys))
    print(json.dumps(dict(zip(keys, outcomes, strict=True))))
