"""Watches `data/landing/trade_files/<INSTRUMENT>/` and requests the raw partitions a new or changed dump touches.

The cursor maps each file to its (size, mtime_ns) version, so a restart with the saved cursor requests nothing
twice, and run keys are derived from the file version, so even a lost cursor cannot double-ingest.
"""

from __future__ import annotations

import json

import dagster as dg

from lake_assets.partitions import instrument_month_key, instrument_month_partitions, months_between
from lake_assets.raw.ingest import month_key
from lake_assets.raw.vendors.trade_files import default_landing_dir, parse_trade_file, scan_landing
from lake_assets.specs import universe

landing_job = dg.define_asset_job(
    "ingest_landing_files",
    selection=dg.AssetSelection.assets("raw_trades", "raw_ohlcv"),
    description="Parse trade dumps from the landing folder into raw trades and candles.",
)


@dg.sensor(job=landing_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
    listing = scan_landing(default_landing_dir())
    known_ids = set(universe().ids)
    requests: list[dg.RunRequest] = []
    existing = set(instrument_month_partitions.get_partition_keys())
    requested_keys: set[str] = set()
    for f in listing.files:
        version = [f.size, f.mtime_ns]
        if seen.get(str(f.path)) == version:
            continue
        seen[str(f.path)] = version
        if f.instrument not in known_ids:
            context.log.warning(f"{f.path}: instrument {f.instrument!r} is not in spec/universe.yaml; skipped")
            continue
        span = parse_trade_file(f.path, f.instrument).ts_range
        if span is None:
            context.log.warning(f"{f.path}: no valid trades; its bad lines are quarantined when its month is ingested")
            continue
        keys = [instrument_month_key(f.instrument, m) for m in months_between(month_key(span[0]), month_key(span[1]))]
        outside = [k for k in keys if k not in existing]
        if outside:  # a partition that cannot exist is never requested (it would stall every later tick)
            context.log.warning(f"{f.path}: {len(outside)} month(s) outside {f.instrument}'s life, not requested "
                                f"({outside[0]}{', ...' if len(outside) > 1 else ''})")  # fmt: skip
        for key in keys:
            if key in existing and key not in requested_keys:
                requested_keys.add(key)
                run_key = f"{f.path}:{f.size}:{f.mtime_ns}:{key}"
                requests.append(dg.RunRequest(run_key=run_key, partition_key=key))
    for rejected in listing.rejected:
        context.log.warning(f"landing path rejected: {rejected.path}: {rejected.reason}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
