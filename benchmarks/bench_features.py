"""Feature-layer throughput: bar-rows per second per core for the full feature set, as JSON.

Demo-sized input = 6 instruments x ~95,000 5m bars (11 months). Scales multiply the number of instrument-histories
(computed one at a time, as the per-instrument assets do), so memory stays per-instrument. Polars runs on one thread
(POLARS_MAX_THREADS=1) so rows/s is per core. Usage: python benchmarks/bench_features.py [scale ...] (default 1 4 16).
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

from lake_assets.features.catalog import load_feature_specs  # noqa: E402
from lake_assets.features.core import compute_features  # noqa: E402
from lake_assets.malloc_tuning import tune_malloc  # noqa: E402


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


def main(scales: list[int]) -> dict:
    tuned = tune_malloc()  # as every pipeline process runs (lake_assets.definitions applies it)
    catalog = load_feature_specs()
    make_bars = _synthetic_bars()
    inputs = [make_bars(BARS, seed=s + 1, instrument=f"BENCH{s}") for s in range(INSTRUMENTS)]
    compute_features(inputs[0].head(5000), catalog)  # JIT / cache warm-up, not timed
    results = []
    for scale in scales:
        t0, cpu0 = time.perf_counter(), time.process_time()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        rows = 0
        for _ in range(scale):
            for bars in inputs:
                out = compute_features(bars, catalog)
                rows += out.height
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
        "results": results,
    }


if __name__ == "__main__":
    print(json.dumps(main([int(a) for a in sys.argv[1:]] or [1, 4, 16]), indent=2))
