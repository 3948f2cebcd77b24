"""Event-registry throughput: bar-rows/s for all shipped event types at 1x, 4x, 16x of 6 instruments x 95,000 bars.

Inputs are synthetic joined frames (bars + features + context + market context) with every column the shipped specs
need: 5 perps and 1 spot per replica, so not-applicable handling is exercised too. Scale k runs the registry over
6*k instrument frames (the base six replicated under new instrument ids), the way the `event_registry` asset walks
per-instrument partitions. Each scale runs in its own process so its peak RSS is its own.

Usage: python benchmarks/bench_events.py [--bars 95000] [--scales 1 4 16]   (prints one JSON document)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "events"))  # the synthetic event inputs of the tests
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_scale(scale: int, n_bars: int) -> dict[str, object]:
    import polars as pl
    from synthetic_inputs import synthetic_event_frame

    from lake_assets.events.registry import detect_events, prevalence_report
    from lake_assets.events.spec_model import load_event_specs
    from lake_assets.vocabulary import INSTRUMENT

    specs = load_event_specs()
    t0 = time.perf_counter()
    base = [synthetic_event_frame(n_bars, instrument=f"B{i}-PERP", seed=i) for i in range(5)]
    base.append(synthetic_event_frame(n_bars, instrument="B5", seed=5, perp=False))
    build_s = time.perf_counter() - t0
    detect_events(base[0].head(2000), specs)  # warm-up: numba cache load, polars kernels

    rss_inputs = _peak_rss_mb()
    events, apps, rows = [], [], 0
    t0 = time.perf_counter()
    for rep in range(scale):
        for i, frame in enumerate(base):
            f = frame.with_columns(pl.lit(f"R{rep}-I{i}").alias(INSTRUMENT))
            e, a = detect_events(f, specs)
            events.append(e)
            apps.append(a)
            rows += f.height
    elapsed = time.perf_counter() - t0
    all_events = pl.concat(events)
    app = pl.concat(apps)
    n_bars_by = dict(app.select(INSTRUMENT, "n_bars").unique(INSTRUMENT).iter_rows())
    report = prevalence_report(all_events, n_bars_by, specs, app)
    return {
        "scale": scale,
        "instruments": 6 * scale,
        "bar_rows": rows,
        "event_types": len(specs),
        "events": all_events.height,
        "seconds": round(elapsed, 3),
        "bar_rows_per_s": round(rows / elapsed),
        "bar_rows_per_s_per_event_type": round(rows * len(specs) / elapsed),
        "input_build_seconds": round(build_s, 3),
        "peak_rss_mb_inputs": round(rss_inputs, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        # above the bound; the generator does not exercise every type, so zero events is counted apart (every
        # applicable type firing is tested on a demo-like lake: tests/events/test_demo_lake.py)
        "prevalence_failures": int(report.filter(~report["passed"] & (report["n_events"] > 0)).height),
        "silent_pairs": int(report.filter(~report["passed"] & (report["n_events"] == 0)).height),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=95_000)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: run one scale
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_scale(args.one, args.bars)))
        return
    results = []
    for scale in args.scales:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(scale), "--bars", str(args.bars)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]["bar_rows_per_s"]
    for r in results:
        r["throughput_vs_first_scale"] = round(r["bar_rows_per_s"] / base, 3)
    print(
        json.dumps(
            {
                "benchmark": "event_registry",
                "bars_per_instrument": args.bars,
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "load_average": os.getloadavg(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
