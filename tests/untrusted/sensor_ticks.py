"""Evaluate the landing sensor in a fresh process (partitions come from the universe when definitions load, so an
instrument added to a copied universe only exists in a new process), tick by tick, with file changes between ticks.

    python sensor_ticks.py ACTIONS_JSON OUT_JSON

ACTIONS_JSON: a list of {"tick": null | i} (evaluate with no cursor, or with the cursor tick i saved) and
{"copy": [src, dst, mtime_ns]} (a new dump appears). OUT_JSON receives, per tick, its requests
[[partition_key, run_key], ...], its cursor and the error it raised (null: it never should), plus the partition keys
that exist in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback

import dagster as dg

from lake_assets.partitions import instrument_month_partitions
from sensors.landing import landing_sensor


def main(actions_path: str, out_path: str) -> None:
    actions = json.loads(open(actions_path).read())  # noqa: SIM115
    ticks: list[dict] = []
    for action in actions:
        if "copy" in action:
            src, dst, mtime_ns = action["copy"]
            shutil.copyfile(src, dst)
            os.utime(dst, ns=(mtime_ns, mtime_ns))
            continue
        ref = action["tick"]
        cursor = None if ref is None else ticks[ref]["cursor"]
        try:
            result = landing_sensor(dg.build_sensor_context(cursor=cursor))
            assert isinstance(result, dg.SensorResult)
            requests = [[str(r.partition_key), str(r.run_key)] for r in result.run_requests or []]
            ticks.append({"requests": requests, "cursor": result.cursor, "error": None})
        except Exception:  # noqa: BLE001 - reported to the test, which fails on it
            ticks.append({"requests": [], "cursor": cursor, "error": traceback.format_exc()})
    out = {"ticks": ticks, "partitions": list(instrument_month_partitions.get_partition_keys())}
    with open(out_path, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main(*sys.argv[1:3])
