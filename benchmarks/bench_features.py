"""Feature-layer throughput: bar-rows per second per core for the full feature set, as JSON.

Demo-sized input = 6 instruments x ~95,000 5m bars (11 months). Scales multiply the number of instrument-histories
(computed one at a time, as the per-instrument assets do), so memory stays per-instrument. Polars runs on one thread
(POLARS_MAX_THREADS=1) so rows/s is per core. Usage: python benchmarks/bench_features.py [scale ...] (default 1 4 16).

The scales run in a warm process: the first full-size instrument (JIT/cache loading, and the allocator's first
touch of ~90 MB of fresh pages, which this VM backs lazily at several us per page) is measured on its own as
`first_instrument_cold`. `month_partitions` runs the workload the `features` asset runs: each instrument-month
computed from its own warm-up (`required_lookback_bars` before the month start) with `target_start`, so a month costs
its own rows plus the warm-up's, and each call pays the fixed per-call cost (Python dispatch over ~100 features,
column construction). It reports rows/s per core of output (the month's rows) and of computed rows (warm-up
included), and that fixed cost, estimated from two short calls.

Anchors, measured in the same run on the same instrument, single-threaded:
- `expression_reference`: the catalog as its polars expression reference (`reference.expression_features`, the
  per-feature kernels glued by one lazy plan, without shared intermediates or fused lanes);
- `polars_rolling_primitives`: polars' own rolling mean/sum/std/min/max/rank and EWM over exactly the (input,
  window) pairs the full feature set needs, inputs given (NaN as null). That is only part of the work a feature set
  does, so `full_set_speedup` over it is a lower bound of qlake's speed-up over a polars implementation.
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(os.path.join(os.path.dirname(__file__), "..", ".numba_cache")))

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake_assets.features.catalog import FeatureCatalog, load_feature_specs, required_lookback_bars  # noqa: E402
from lake_assets.features.core import compute_features  # noqa: E402
from lake_assets.features.reference import expression_features, rolling_primitives  # noqa: E402
from lake_assets.malloc_tuning import tune_malloc  # noqa: E402
from lake_assets.months import month_bounds  # noqa: E402
from lake_assets.storage.reader import warmup_start  # noqa: E402
from lake_assets.vocabulary import TS  # noqa: E402


def _synthetic_bars():  # the test suite's generator, loaded by path (tests/ is not a package)
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tests" / "features" / "conftest.py"
    spec = importlib.util.spec_from_file_location("features_synthetic", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.synthetic_bars


INSTRUMENTS, BARS = 6, 95_000


def output_write_floor(rows: int, columns: int, repeats: int = 5) -> dict:
    """The machine's floor for the output alone: filling rows x columns float64 values into memory this process
    already holds (as a steady run does; the first touch of fresh pages costs far more). A feature run cannot beat
    rows / this time, whatever its kernels do; the budget's share of the floor says what is left for compute."""
    import numpy as np

    buf = np.empty(rows * columns)
    buf.fill(0.0)  # touch every page once
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        buf.fill(1.0)
        best = min(best, time.perf_counter() - t0)
    return {
        "bytes": buf.nbytes,
        "write_s": round(best, 4),
        "write_gb_per_s": round(buf.nbytes / best / 1e9, 2),
        "floor_rows_per_s": round(rows / best),
    }


def _cpu(fn) -> float:
    fn()  # warm: compile / load, first touch
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def month_partitions(inputs, catalog: FeatureCatalog) -> dict:
    """Every instrument-month as the `features` asset computes it (its bars from `history.warmup_start` to the month
    end, `target_start` at the month start), timed over all partitions; plus the fixed per-call cost from 1,000- and
    2,000-row calls."""
    import polars as pl

    lookback = required_lookback_bars(catalog)
    jobs = []
    for bars in inputs:
        for month in bars.select(pl.col(TS).dt.strftime("%Y-%m").unique().sort()).to_series():
            start, end = month_bounds(month)
            window = (pl.col(TS) >= warmup_start(month, "5m", lookback)) & (pl.col(TS) < end)  # the bench bars are 5m
            jobs.append((bars.filter(window), start))
    out_rows = sum(int((b[TS] >= m).sum()) for b, m in jobs)
    computed = sum(b.height for b, _ in jobs)
    cpu = _cpu(lambda: [compute_features(b, catalog, target_start=m) for b, m in jobs])
    short = [_cpu(lambda n=n: compute_features(inputs[0].head(n), catalog)) for n in (1000, 2000)]
    fixed = short[0] - (short[1] - short[0])  # t(n) = fixed + n * per_row
    return {
        "partitions": len(jobs),
        "warmup_bars": required_lookback_bars(catalog),
        "output_rows": out_rows,
        "computed_rows": computed,
        "cpu_s": round(cpu, 4),
        "ms_per_partition": round(cpu / len(jobs) * 1e3, 2),
        "output_rows_per_s_per_core": round(out_rows / cpu),
        "computed_rows_per_s_per_core": round(computed / cpu),
        "fixed_ms_per_call": round(fixed * 1e3, 2),
    }


def anchors(bars, catalog: FeatureCatalog, qlake_cpu_s: float) -> dict:
    rows = bars.height
    ref_s = _cpu(lambda: expression_features(bars, catalog))
    frame, exprs = rolling_primitives(bars, catalog)
    prim_s = _cpu(lambda: frame.select(exprs))
    return {
        "instrument_rows": rows,
        "qlake_full_set_rows_per_s": round(rows / qlake_cpu_s),
        "expression_reference": {"cpu_s": round(ref_s, 4), "rows_per_s": round(rows / ref_s)},
        "polars_rolling_primitives": {
            "expressions": len(exprs),
            "cpu_s": round(prim_s, 4),
            "rows_per_s": round(rows / prim_s),
        },
        "full_set_speedup_vs_expression_reference": round(ref_s / qlake_cpu_s, 2),
        "full_set_speedup_vs_polars_primitives": round(prim_s / qlake_cpu_s, 2),
    }


def main(scales: list[int]) -> dict:
    tuned = tune_malloc()  # as every pipeline process runs (lake_assets.definitions applies it)
    catalog = load_feature_specs()
    make_bars = _synthetic_bars()
    inputs = [make_bars(BARS, seed=s + 1, instrument=f"BENCH{s}") for s in range(INSTRUMENTS)]
    compute_features(inputs[0].head(5000), catalog)  # JIT / cache loading
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    compute_features(inputs[0], catalog)  # the process's first full-size instrument: fresh pages
    cold_cpu, ru1 = time.process_time() - t0, resource.getrusage(resource.RUSAGE_SELF)
    first_cold = {
        "rows": inputs[0].height,
        "cpu_s": round(cold_cpu, 4),
        "sys_s": round(ru1.ru_stime - ru0.ru_stime, 4),
        "minor_page_faults": ru1.ru_minflt - ru0.ru_minflt,
        "rows_per_s": round(inputs[0].height / cold_cpu),
    }
    qlake_s = _cpu(lambda: compute_features(inputs[0], catalog))
    results = []
    for scale in scales:
        t0, cpu0 = time.perf_counter(), time.process_time()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        rows = 0
        for _ in range(scale):
            for bars in inputs:
                rows += compute_features(bars, catalog).height  # dropped at once, as an asset writes and drops it
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        results.append(
            {
                "scale": scale,
                "bar_rows": rows,
                "feature_columns": len(catalog.columns),
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "rows_per_s_per_core": round(rows / cpu),
                "rows_per_s_wall": round(rows / wall),
                # CPU split: page faults on freshly allocated column memory show up as system time
                "user_s": round(ru1.ru_utime - ru0.ru_utime, 3),
                "sys_s": round(ru1.ru_stime - ru0.ru_stime, 3),
                "minor_page_faults": ru1.ru_minflt - ru0.ru_minflt,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    return {
        "benchmark": "features",
        "polars_max_threads": os.environ["POLARS_MAX_THREADS"],
        "malloc_tuned": tuned,
        "budget_rows_per_s_per_core": 3_000_000,
        "output_write_floor_one_instrument": output_write_floor(BARS, len(catalog.columns)),
        "first_instrument_cold": first_cold,
        "results": results,
        "month_partitions": month_partitions(inputs, catalog),
        "anchors_one_instrument": anchors(inputs[0], catalog, qlake_s),
    }


if __name__ == "__main__":
    print(json.dumps(main([int(a) for a in sys.argv[1:]] or [1, 4, 16]), indent=2))
