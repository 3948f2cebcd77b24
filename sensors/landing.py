"""Watches `data/landing/trade_files/<INSTRUMENT>/` and requests the raw partitions a new, changed or removed dump
can touch. The sensor never parses a dump: parsing happens in the raw asset.

- A file's version is its (size, mtime_ns) from one `stat` (no content is read): any rewrite, append or `touch`
  is a new version. The cursor maps each path to its version, so a restart with the saved cursor requests nothing
  twice; a path that disappeared is dropped from the cursor and its instrument is requested again (its rows must
  leave the lake).
- Which partitions can a file touch? Without parsing it, any month of its instrument: a line lands in the month of
  its time, lines outside the instrument's life in its first or last life month, undated lines next to their
  neighbours, an unreadable file in the first life month (see `ScanResult` in lake_assets/vendors/trade_files.py).
  So a changed dump requests every existing partition of its instrument (correct, possibly wasteful for long
  histories; partitions that do not exist are never requested). Requests from several files of one instrument in
  one tick are merged: one request per partition.
- Run keys are derived from the partition and the versions of the files that triggered it, so a lost cursor that
  sees the same files again produces the same run keys (Dagster drops the duplicates).
- Nothing unexpected stops a tick: a file that cannot be stat'ed, an unreadable cursor or a listing failure is
  logged and skipped (a failing file is retried next tick, since its version is not recorded).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import dagster as dg

from lake_assets.partitions import instrument_month_partitions, split_key
from lake_assets.specs import universe
from lake_assets.vendors.trade_files import default_landing_dir, scan_landing

landing_job = dg.define_asset_job(
    "ingest_landing_files",
    selection=dg.AssetSelection.assets("raw_trades", "raw_ohlcv"),
    description="Parse trade dumps from the landing folder into raw trades and candles.",
)


def _load_cursor(context: dg.SensorEvaluationContext) -> dict[str, list[int]]:
    if not context.cursor:
        return {}
    try:
        data = json.loads(context.cursor)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return {str(k): [int(x) for x in v] for k, v in data.items()}
    except (ValueError, TypeError) as exc:
        context.log.warning(f"landing sensor: unreadable cursor ({exc}); starting over (run keys dedupe re-requests)")
        return {}


def _existing_keys_by_instrument() -> dict[str, list[str]]:
    by_inst: dict[str, list[str]] = defaultdict(list)
    for key in instrument_month_partitions.get_partition_keys():
        by_inst[split_key(key)[0]].append(key)
    return by_inst


@dg.sensor(job=landing_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen = _load_cursor(context)
    try:
        listing = scan_landing(default_landing_dir())
        known_ids = set(universe().ids)
        partitions = _existing_keys_by_instrument()
    except Exception as exc:  # noqa: BLE001 - a tick must never crash; the next one retries
        context.log.error(f"landing sensor: cannot list the landing folder ({type(exc).__name__}: {exc}); skipped")
        return dg.SensorResult(run_requests=[], cursor=json.dumps(seen, sort_keys=True))

    # instrument -> versions of the files that changed (or vanished) this tick
    triggers: dict[str, list[str]] = defaultdict(list)
    present: set[str] = set()
    for f in listing.files:
        path = str(f.path)
        present.add(path)
        try:
            version = [int(f.size), int(f.mtime_ns)]
            if seen.get(path) == version:
                continue
            seen[path] = version
            if f.instrument not in known_ids:
                context.log.warning(f"{path}: instrument {f.instrument!r} is not in spec/universe.yaml; skipped")
                continue
            triggers[f.instrument].append(f"{path}:{version[0]}:{version[1]}")
        except Exception as exc:  # noqa: BLE001
            context.log.error(f"{path}: skipped this tick ({type(exc).__name__}: {exc})")
    for path in sorted(set(seen) - present):
        try:
            del seen[path]
            instrument = path.replace("\\", "/").rsplit("/", 2)[-2]
            if instrument in known_ids:
                context.log.info(f"{path}: removed from the landing folder; re-ingesting {instrument}")
                triggers[instrument].append(f"{path}:removed")
        except Exception as exc:  # noqa: BLE001
            context.log.error(f"{path}: skipped this tick ({type(exc).__name__}: {exc})")

    requests: list[dg.RunRequest] = []
    requested: set[str] = set()
    for instrument, versions in sorted(triggers.items()):
        keys = partitions.get(instrument, [])
        if not keys:
            context.log.warning(f"{instrument}: changed dumps but no partition exists (life not started?); skipped")
            continue
        digest = hashlib.sha256("\n".join(sorted(versions)).encode()).hexdigest()[:16]
        context.log.info(
            f"{instrument}: {len(versions)} changed dump(s); requesting its {len(keys)} partition(s) "
            f"{keys[0]}..{keys[-1]} (the raw asset parses the dumps and quarantines bad lines)"
        )
        for key in keys:
            if key not in requested:  # one request per partition per tick
                requested.add(key)
                requests.append(dg.RunRequest(run_key=f"{key}:{digest}", partition_key=key))
    for rejected in listing.rejected:
        context.log.warning(f"landing path rejected: {rejected.path}: {rejected.reason}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
