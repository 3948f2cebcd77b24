"""Scale: a synthetic universe of 1,000 instruments x 24 months through the control plane, and raw -> features
throughput from 1x to 64x, on a local lake and on object storage. Prints JSON.

Control plane (a fresh process whose universe is the synthetic one, as after a code location reload):
- partition count, time to load the definitions (partitions are computed from the universe at load);
- sensor tick time: the landing sensor (stats landed files) and the strategy sensor (reads the instance);
- automation evaluation time: the automation sensor's evaluation (`evaluate_automation_conditions`, its first tick
  and the next, with the cursor) over raw_ohlcv and bars, every partition of the universe, on an empty instance;
- listing an asset's partitions: through Dagster's instance API (`get_materialized_partitions`, what the webserver's
  GraphQL resolvers call underneath), after recording a materialization for `--recorded` of them. GraphQL itself is
  not measured (it needs the webserver process and adds its serialization).

Throughput: the compute path of the assets without Dagster's bookkeeping (vendor fetch, row validation, raw write,
bars from the lake, features from the lake reader, both written), over N instrument-months (N instruments, one month
each; the first month of each life, so no warm-up months are read), at scales 1, 4, 16 and 64; and at 4x with the
lake on a moto S3 server on 127.0.0.1 (tests/services.py).

    python benchmarks/bench_scale.py [--instruments 1000] [--months 24] [--scales 1,4,16,64] [--recorded 2400]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
warnings.filterwarnings("ignore")
START = "2024-01-01"


def synthetic_universe(spec: Path, n: int, months: int) -> None:
    year, month = 2024 + (months - 1) // 12, (months - 1) % 12 + 1
    end = f"{year}-{month:02d}-28"
    full = yaml.safe_load((ROOT / "spec" / "universe.yaml").read_text())
    insts = [{"id": f"SYN{i:04d}", "vendor": "synthetic", "market": "spot", "base_timeframe": "5m", "start": START,
              "end": end, "params": {"base_price": 100.0 + i, "seed": 1000 + i}} for i in range(n)]  # fmt: skip
    benchmarks = {"crypto": "SYN0000", "equity": "SYN0001"} if "benchmarks" in full else None
    data = {"benchmarks": benchmarks, "instruments": insts} if benchmarks else {"instruments": insts}
    (spec / "universe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def control_plane(recorded: int) -> dict[str, object]:
    """Runs in the child process (QLAKE_SPEC_DIR points at the synthetic universe)."""
    import dagster as dg

    t0 = time.perf_counter()
    from lake_assets.definitions import defs
    from lake_assets.partitions import instrument_month_partitions

    load_s = time.perf_counter() - t0
    keys = instrument_month_partitions.get_partition_keys()
    out: dict[str, object] = {"partitions": len(keys), "definitions_load_s": round(load_s, 2)}
    from resources import LakeResource
    from sensors.landing import landing_sensor
    from sensors.strategies import strategy_sensor

    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        landing_sensor(dg.build_sensor_context(instance=instance))
        out["landing_sensor_tick_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        strategy_sensor(dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}))
        out["strategy_sensor_tick_s"] = round(time.perf_counter() - t0, 3)

        selection = dg.AssetSelection.assets("raw_ohlcv", "bars")
        t0 = time.perf_counter()
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        out["automation_first_tick_s"] = round(time.perf_counter() - t0, 2)
        out["automation_first_tick_requested"] = first.total_requested
        t0 = time.perf_counter()
        dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                          cursor=first.cursor)  # fmt: skip
        out["automation_next_tick_s"] = round(time.perf_counter() - t0, 2)

        key = dg.AssetKey("raw_ohlcv")
        t0 = time.perf_counter()
        for k in keys[:recorded]:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=k))
        out["recorded_materializations"] = min(recorded, len(keys))
        out["record_ms_per_materialization"] = round(1000 * (time.perf_counter() - t0) / max(1, recorded), 2)
        t0 = time.perf_counter()
        listed = instance.get_materialized_partitions(key)
        out["list_materialized_partitions_s"] = round(time.perf_counter() - t0, 3)
        assert len(listed) == out["recorded_materializations"]
        t0 = time.perf_counter()
        dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                          cursor=first.cursor)  # fmt: skip
        out["automation_tick_after_recording_s"] = round(time.perf_counter() - t0, 2)
    return out


def throughput(scale: int) -> dict[str, float]:
    """raw -> bars -> features for `scale` instrument-months through the lake at $QLAKE_DATA_ROOT."""
    from datetime import UTC, datetime

    from lake_assets import tables
    from lake_assets.cleaned.assets import bars_for_partition
    from lake_assets.features.assets import features_for
    from lake_assets.features.catalog import load_feature_specs, required_lookback_bars
    from lake_assets.months import instrument_window
    from lake_assets.raw.ingest import validate_raw
    from lake_assets.specs import universe
    from lake_assets.storage.lake import Lake
    from lake_assets.vendors.synthetic import SyntheticVendor
    from lake_assets.vocabulary import INSTRUMENT, RAW_SCHEMAS, DataKind, conform

    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    vendor, lake = SyntheticVendor(as_of=as_of), Lake()
    catalog = load_feature_specs()
    lookback = required_lookback_bars(catalog)
    month = START[:7]
    def one(inst: Any) -> int:
        window = instrument_window(inst, month)
        assert window is not None
        dims = {INSTRUMENT: inst.id, "month": month}
        raw = conform(vendor.fetch(inst, *window, DataKind.OHLCV), RAW_SCHEMAS[DataKind.OHLCV])
        lake.write(validate_raw(raw, DataKind.OHLCV).accepted, "raw", "raw_ohlcv", dims)
        bars, _ = bars_for_partition(lake, inst, month, as_of)
        lake.write(bars, "cleaned", "bars", dims)
        feats = features_for(lake.reader.with_warmup(tables.BARS, inst, month, lookback), catalog, month)
        lake.write(feats, "features", "features", dims)
        return feats.height

    one(universe().instruments[-1])  # warm-up (numba kernels, imports), outside the timed scale
    t0 = time.perf_counter()
    rows = sum(one(inst) for inst in universe().instruments[:scale])
    seconds = time.perf_counter() - t0
    return {"instrument_months": scale, "seconds": round(seconds, 2), "feature_rows": rows,
            "rows_per_s": round(rows / seconds), "s_per_instrument_month": round(seconds / scale, 3)}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    if args.child == "control":
        print(json.dumps(control_plane(args.recorded)))
    else:
        print(json.dumps(throughput(int(args.child.split(":")[1]))))


def run_child(what: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    done = subprocess.run([sys.executable, __file__, "--child", what, "--recorded", str(args.recorded)], env=env,
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instruments", type=int, default=1000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--scales", default="1,4,16,64")
    ap.add_argument("--recorded", type=int, default=2400)
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    scales = [int(s) for s in args.scales.split(",")]
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec"
        shutil.copytree(ROOT / "spec", spec)
        synthetic_universe(spec, max(args.instruments, max(scales)), args.months)
        env = {**os.environ, "QLAKE_SPEC_DIR": str(spec), "GX_ANALYTICS_ENABLED": "false", "QLAKE_WORKERS": "1"}
        for var in ("QLAKE_DAGSTER_PG_URL", "DAGSTER_PG_HOST"):
            env.pop(var, None)

        def fresh(name: str) -> dict[str, str]:
            root = Path(tmp) / name
            (root / "dagster_home").mkdir(parents=True)
            from lake_assets.event_log import dagster_yaml

            (root / "dagster_home" / "dagster.yaml").write_text(dagster_yaml(environ={}))
            return {**env, "QLAKE_DATA_ROOT": str(root / "data"), "DAGSTER_HOME": str(root / "dagster_home"),
                    "QLAKE_WAREHOUSE": str(root / "wh.duckdb")}  # fmt: skip

        out["universe"] = {"instruments": args.instruments, "months": args.months}
        out["control_plane"] = run_child("control", fresh("control"), args)
        local = [run_child(f"throughput:{s}", fresh(f"local{s}"), args) for s in scales]
        base = local[0]["s_per_instrument_month"]
        for r in local:
            r["vs_linear"] = round(float(r["s_per_instrument_month"]) / float(base), 2)  # type: ignore[arg-type]
        out["raw_to_features_local"] = local
        from services import s3_server

        with s3_server() as endpoint:
            import boto3

            s3_env = {**fresh("s3"), "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                      "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                      "QLAKE_DATA_ROOT": "s3://bench/root",
                      "QLAKE_LOCAL_DATA_ROOT": str(Path(tmp) / "s3local")}  # fmt: skip
            boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                         region_name="us-east-1").create_bucket(Bucket="bench")  # fmt: skip
            s = 4 if 4 in scales else scales[0]
            out["raw_to_features_s3"] = run_child(f"throughput:{s}", s3_env, args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
