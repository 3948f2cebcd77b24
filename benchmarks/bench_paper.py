"""Paper-trading tick budget: one tick (features for the new bar -> E3 decision with reasons -> gate `none` -> risk ->
fill -> audit rows) for 10 synthetic perps, < 50 ms on 2 cores, with per-stage latencies; the LLM gate's latency
against a local Ollama stub (127.0.0.1) reported separately. Prints one JSON object.

Setup (not timed): a month of 5m bars per perp through the real vendor and cleaned layer; a session caught up over
its first `BENCH_WARM_BARS` bars (the engine state a live tick continues from). Timed: `BENCH_TICKS` live ticks,
each one `PaperLoop.run(..., max_ticks=1, now=<the bar's close>)` with an in-memory store (the audit rows are built
and stored; writing them as parquet to the lake is timed separately, `lake_commit_ms`).

Run: NUMBA_CACHE_DIR=/work/main/.numba_cache .venv/bin/python benchmarks/bench_paper.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_CACHE_DIR", "/work/main/.numba_cache")

import polars as pl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's lake_assets, whatever is installed
sys.path.insert(1, str(ROOT / "tests" / "llm"))

N_INSTRUMENTS = int(os.environ.get("BENCH_INSTRUMENTS", 10))
WARM_BARS = int(os.environ.get("BENCH_WARM_BARS", 288 * 5))  # the session's bars before the timed ticks
TICKS = int(os.environ.get("BENCH_TICKS", 60))
LLM_CALLS = int(os.environ.get("BENCH_LLM_CALLS", 30))
BUDGET_MS = 50.0


def _bars(n: int) -> dict[str, pl.DataFrame]:
    from lake_assets.cleaned.bars import build_bars, dedupe
    from lake_assets.raw.ingest import validate_raw
    from lake_assets.specs import Instrument
    from lake_assets.vendors.synthetic import SyntheticVendor
    from lake_assets.vocabulary import DataKind, Market

    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    vendor = SyntheticVendor(as_of=end)
    out = {}
    for k in range(n):
        params = {"seed": 100 + k, "base_price": 10.0 * (k + 1)}
        spot = Instrument(id=f"X{k}USDT", vendor="synthetic", market=Market.SPOT, start=date(2026, 1, 1),
                          params=params)  # fmt: skip
        inst = Instrument(id=f"X{k}USDT-PERP", vendor="synthetic", market=Market.PERP, spot=spot.id,
                          start=date(2026, 1, 1), params=params)  # fmt: skip
        raw = {kind: vendor.fetch(inst, start, end, kind) for kind in (DataKind.OHLCV, DataKind.FUNDING,
                                                                        DataKind.OPEN_INTEREST)}  # fmt: skip
        ohlcv = dedupe(validate_raw(raw[DataKind.OHLCV], DataKind.OHLCV).accepted)[0]
        spot_ohlcv = dedupe(validate_raw(vendor.fetch(spot, start, end, DataKind.OHLCV), DataKind.OHLCV).accepted)[0]
        out[inst.id] = build_bars(ohlcv, instrument=inst.id, timeframe="5m", start=start, end=end,
                                  funding=raw[DataKind.FUNDING], open_interest=raw[DataKind.OPEN_INTEREST],
                                  spot=spot_ohlcv)  # fmt: skip
    return out


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


def main() -> dict[str, Any]:
    from lake_assets.backtests.costs import load_costs
    from lake_assets.backtests.strategy_spec import load_strategy, strategies_dir
    from lake_assets.features.catalog import load_feature_specs
    from lake_assets.gate.gate import GateRequest, LlmGate, NoGate, load_gate_spec
    from lake_assets.paper.loop import STAGES, MemoryStore, PaperLoop
    from lake_assets.paper.spec import load_paper_spec
    from lake_assets.paper.store import LakePaperStore
    from lake_assets.storage.lake import Lake

    t0 = time.perf_counter()
    bars = _bars(N_INSTRUMENTS)
    setup_s = time.perf_counter() - t0
    ids = sorted(bars)
    base = load_paper_spec()
    spec = base.model_copy(update={"session": "bench", "instruments": tuple(ids), "replay_days": 31})
    strategy = load_strategy(strategies_dir() / f"{spec.strategy}.json")
    catalog = load_feature_specs()
    store = MemoryStore()
    loop = PaperLoop(spec, strategy, load_costs(), NoGate(), store, catalog)
    loop.run(bars, None, max_ticks=WARM_BARS)  # catch-up: the state live ticks continue from (compiles the kernels)
    clock = bars[ids[0]]["ts"]
    walls: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    entries = rejections = fills = 0
    for k in range(TICKS):
        t = clock[WARM_BARS + k]
        now = t + timedelta(minutes=5, seconds=1)
        s0 = time.perf_counter()
        summary = loop.run(bars, None, max_ticks=1, now=now)  # a live process keeps its loop between ticks
        walls.append((time.perf_counter() - s0) * 1e3)
        for s in STAGES:
            stages[s].append(summary.stage_ms[s])
        entries, rejections = entries + summary.entries, rejections + summary.rejections
        fills += summary.new_fills
    # the same tick's audit rows written as parquet partitions (the asset's LakePaperStore)
    with tempfile.TemporaryDirectory() as tmp:
        lake_store = LakePaperStore(Lake(Path(tmp)), "bench")
        for name, df in store.tables.items():
            lake_store.write(name, df)
        commit = []
        for _ in range(5):
            c0 = time.perf_counter()
            for name, df in store.tables.items():
                lake_store.write(name, df)
            commit.append((time.perf_counter() - c0) * 1e3)
    # the LLM gate against a local Ollama stub
    from ollama_stub import OllamaStub

    llm = load_gate_spec().llm
    assert llm is not None
    with OllamaStub("good") as stub:
        gate = LlmGate(llm.model_copy(update={"base_url": stub.url}))
        req = GateRequest("json.e3_perp_flow", ids[0], "long", clock[WARM_BARS], 100.0, {"body_atr": 1.0}, ())
        lat = []
        for _ in range(LLM_CALLS):
            d = gate.decide(req)
            assert d.allowed
            lat.append(d.latency_ms)
    p50 = statistics.median(walls)
    return {
        "instruments": N_INSTRUMENTS,
        "session_bars_before_ticks": WARM_BARS,
        "ticks": TICKS,
        "tick_ms": {"p50": round(p50, 2), "p95": _pct(walls, 0.95), "max": round(max(walls), 2),
                    "mean": round(statistics.fmean(walls), 2)},  # fmt: skip
        "budget_ms": BUDGET_MS,
        "within_budget_p50": p50 < BUDGET_MS,
        "stage_ms_p50": {s: round(statistics.median(v), 2) for s, v in stages.items()},
        "entries": entries,
        "rejections": rejections,
        "new_fills": fills,
        "lake_commit_ms_p50": round(statistics.median(commit), 2),
        "llm_gate_stub_ms": {"p50": round(statistics.median(lat), 2), "p95": _pct(lat, 0.95), "calls": LLM_CALLS},
        "setup_s": round(setup_s, 1),
        "polars_threads": os.environ.get("POLARS_MAX_THREADS"),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
