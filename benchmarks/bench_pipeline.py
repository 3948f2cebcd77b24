"""Foundation budgets: raw -> cleaned throughput, `qlake demo` cold, and a one-month refresh against a full rebuild.

Prints one JSON object. Usage:
    python benchmarks/bench_pipeline.py                 # throughput at 1x, 4x, 16x the demo universe
    python benchmarks/bench_pipeline.py --demo          # plus `qlake demo` cold (fresh data root) wall time and RSS
    python benchmarks/bench_pipeline.py --refresh       # plus one-month refresh vs full rebuild through the CLI
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lake_assets.cleaned.bars import build_bars, dedupe, resample_bars  # noqa: E402
from lake_assets.months import month_bounds  # noqa: E402
from lake_assets.raw.ingest import validate_raw  # noqa: E402
from lake_assets.specs import Instrument, universe  # noqa: E402
from lake_assets.vendors.synthetic import SyntheticVendor  # noqa: E402
from lake_assets.vocabulary import DataKind  # noqa: E402

AS_OF = datetime(2026, 11, 21, tzinfo=UTC)
MONTHS = [f"2026-{m:02d}" for m in range(1, 11)]  # ten complete months


def _instruments(scale: int) -> list[Instrument]:
    base = [i for i in universe().instruments if i.vendor == "synthetic"]
    out = []
    for k in range(scale):
        for inst in base:
            params = {**inst.params, "seed": int(inst.params.get("seed", 1)) + 1000 * k}
            spot = f"{inst.spot}-{k}" if inst.spot else None
            out.append(inst.model_copy(update={"id": f"{inst.id}-{k}", "params": params, "spot": spot}))
    return out


def raw_to_cleaned(scale: int) -> dict[str, float]:
    """Vendor fetch + row validation + de-duplication + grid/flags/as-of joins + hourly and daily resamples."""
    vendor = SyntheticVendor(as_of=AS_OF)
    insts = _instruments(scale)
    n_bars = 0
    t_fetch = t_clean = 0.0
    for inst in insts:
        for month in MONTHS:
            start, end = month_bounds(month)
            t0 = time.process_time()
            raw = {k: vendor.fetch(inst, start, end, k) for k in (DataKind.OHLCV, DataKind.FUNDING,
                                                                   DataKind.OPEN_INTEREST)}  # fmt: skip
            t1 = time.process_time()
            ohlcv, _ = dedupe(validate_raw(raw[DataKind.OHLCV], DataKind.OHLCV).accepted)
            bars = build_bars(ohlcv, instrument=inst.id, timeframe="5m", start=start, end=end,
                              funding=raw[DataKind.FUNDING], open_interest=raw[DataKind.OPEN_INTEREST])  # fmt: skip
            resample_bars(bars, "1h")
            resample_bars(bars, "1d")
            t_clean += time.process_time() - t1
            t_fetch += t1 - t0
            n_bars += bars.height
    return {
        "instruments": len(insts),
        "bars": n_bars,
        "cleaning_cpu_s": round(t_clean, 3),
        "cleaned_bars_per_s_per_core": round(n_bars / t_clean),
        "synthetic_vendor_cpu_s": round(t_fetch, 3),
        "end_to_end_bars_per_s_per_core": round(n_bars / (t_clean + t_fetch)),
    }


def _tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (workers, the numba warm-up) at this instant."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += p.memory_info().rss
    return total


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, peak RSS of the largest single process MB, peak RSS summed over the process tree MB)."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    proc, tree_peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree_peak = max(tree_peak, _tree_rss(proc))
        time.sleep(0.1)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.perf_counter() - t0, max(peak, before) / 1024, tree_peak / 2**20


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "QLAKE_DATA_ROOT": str(root), "QLAKE_WAREHOUSE": str(root / "lake.duckdb"),
            "DAGSTER_HOME": str(root / "dagster_home")}  # fmt: skip


def demo_cold() -> dict[str, float]:
    """`qlake demo` on a fresh data root with an empty numba cache (kernels compile during the run)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**_env(Path(tmp)), "NUMBA_CACHE_DIR": str(Path(tmp) / "numba_cache")}
        wall, rss_mb, tree_mb = _run([sys.executable, "-m", "lake_assets.cli", "demo"], env)
    return {"demo_wall_s": round(wall, 1), "demo_peak_rss_mb": round(rss_mb), "demo_peak_tree_rss_mb": round(tree_mb),
            "budget_wall_s": 180, "budget_rss_mb": 2048}  # fmt: skip


# raw -> bars -> features -> events for one instrument, as the budget states it
REFRESH_ASSETS = "raw_ohlcv,raw_funding,raw_open_interest,raw_trades,bars,features,event_registry"
REFRESH_INSTRUMENT = "BTCUSDT"


def refresh_vs_rebuild() -> dict[str, float]:
    """One instrument's ten months rebuilt, then its last month refreshed, each as one `qlake materialize` process
    (a run worker is a process too); plus the floor every such process pays before any data: importing the graph
    and Great Expectations (the raw and bars checks need it), measured on its own."""
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(Path(tmp))
        base = [sys.executable, "-m", "lake_assets.cli", "materialize", "--select", REFRESH_ASSETS,
                "--instruments", REFRESH_INSTRUMENT]  # fmt: skip
        full, *_ = _run([*base, "--months", f"{MONTHS[0]}..{MONTHS[-1]}"], env)
        one, *_ = _run([*base, "--months", MONTHS[-1]], env)
        floor, *_ = _run([sys.executable, "-c", "import lake_assets.definitions, great_expectations"], env)
    return {"instrument": REFRESH_INSTRUMENT, "months": len(MONTHS), "full_rebuild_s": round(full, 1),  # type: ignore[dict-item]
            "one_month_refresh_s": round(one, 1), "ratio": round(one / full, 3),
            "process_floor_s": round(floor, 1), "refresh_above_floor_s": round(one - floor, 1),
            "ratio_above_floor": round((one - floor) / (full - floor), 3), "budget_ratio": 0.10}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--refresh", action="store_true")
    args = parser.parse_args()
    pl.Config.set_tbl_rows(5)
    out: dict[str, object] = {"raw_to_cleaned": {f"{s}x": raw_to_cleaned(int(s)) for s in args.scales.split(",")}}
    if args.demo:
        out["demo"] = demo_cold()
    if args.refresh:
        out["refresh"] = refresh_vs_rebuild()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
