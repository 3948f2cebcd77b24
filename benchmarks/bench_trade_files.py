"""Trade-dump ingestion: peak RSS and lines/s of raw -> bars on large dumps, as the assets run it; JSON.

Usage: python benchmarks/bench_trade_files.py [MB ...] [--gzip] [--dir DIR] [--bars] [--asset]   (default: 100 300)

`--asset` also runs the real assets (raw_trades, raw_ohlcv, bars) on the dump through `qlake materialize` in a fresh
data root and reports the process tree's peak RSS and wall time (imports included).

For each size a Binance aggTrades CSV (with header, ~42 bytes a line, one trade every ~1 ms starting 2026-01-01 UTC,
so 100 MB ~ 2.4M lines ~ 40 minutes of trades; a few malformed/duplicate lines sprinkled in) is generated once under
DIR (default: a temp dir; reused when present), then measured in a fresh child process, as the assets run it: the
instrument's life month scanned (`scan`: parse, stage, de-duplicate), its trades streamed into the raw_trades
partition file (`ScanResult.write_trades`), and with `--bars` 5m bars built from that file as the bars asset does
(`trades_to_bars` on a lazy scan). Peak RSS is the child's ru_maxrss (includes the interpreter, polars and numpy:
~150 MB, reported as `baseline_rss_mb` after imports), sampled after each stage. lines/s = non-blank data lines /
wall seconds of scan + write (the raw asset's work).
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "2")

import contextlib  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INSTRUMENT = "BENCHUSDT"
HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
T0_MS = 1767225600000  # 2026-01-01T00:00:00Z


def generate(path: Path, megabytes: int, *, compress: bool = False) -> int:
    """Write a dump of about `megabytes` MB (uncompressed); returns the number of data lines."""
    import numpy as np

    rng = np.random.default_rng(7)
    target = megabytes * 1_000_000
    written, lines, block = 0, 0, 200_000
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8", newline="") as out:  # type: ignore[operator]
        out.write(HEADER)
        written += len(HEADER)
        trade_id = 1_000_000_000
        while written < target:
            ids = np.arange(trade_id, trade_id + block)
            ts = T0_MS + (ids - 1_000_000_000)  # one trade a millisecond
            price = 87_000 + np.round(rng.normal(0, 50, block), 2)
            qty = np.round(rng.exponential(0.05, block) + 0.00001, 5)
            maker = np.where(rng.random(block) < 0.5, "true", "false")
            chunk = [
                f"{i},{p:.2f},{q:.5f},{i},{i},{t},{m}" for i, p, q, t, m in zip(ids, price, qty, ts, maker, strict=True)
            ]
            # a few hostile lines: a truncated line, a duplicate, a non-numeric price
            chunk[17] = chunk[17][:20]
            chunk[18] = chunk[16]
            chunk[19] = chunk[19].replace(",", ",abc,", 1).replace(",abc,", ",x", 1)
            text = "\n".join(chunk) + "\n"
            out.write(text)
            written += len(text)
            lines += block
            trade_id += block
    return lines


def measure(landing: Path, bars: bool) -> dict[str, object]:
    """Runs in the child: scan the life month, write the raw partition file, build bars from it (as the assets do)."""
    from datetime import UTC, datetime

    import polars as pl

    from lake_assets.trades import trades_to_bars
    from lake_assets.vendors.trade_files import TradeFilesVendor

    def rss() -> int:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    baseline = rss()
    vendor = TradeFilesVendor(landing)
    life = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    start = time.perf_counter()
    scan = vendor.scan(INSTRUMENT, *life, life=life)
    scan_s = time.perf_counter() - start
    out: dict[str, object] = {"baseline_rss_mb": baseline, "scan_seconds": round(scan_s, 2), "scan_peak_rss_mb": rss()}
    raw = landing.parent / f"{landing.name}-raw_trades.parquet"
    start = time.perf_counter()
    written = scan.write_trades(raw)
    write_s = time.perf_counter() - start
    totals = scan.totals
    out |= {
        "write_seconds": round(write_s, 2),
        "raw_peak_rss_mb": rss(),
        "lines": totals["parsed"],
        "accepted": totals["accepted"],
        "written": written,
        "quarantined": totals["quarantined"],
        "lines_per_second": round(totals["parsed"] / (scan_s + write_s)),
        "scan_lines_per_second": round(totals["parsed"] / scan_s),
    }
    if bars:
        start = time.perf_counter()
        candles = trades_to_bars(pl.scan_parquet(raw), "5m")
        out["bars"] = candles.height
        out["bars_seconds"] = round(time.perf_counter() - start, 2)
        out["raw_bars_peak_rss_mb"] = rss()
    raw.unlink(missing_ok=True)
    return out


def measure_assets(dump: Path, lines: int) -> dict[str, object]:
    """The real assets on the dump: `qlake materialize --select raw_trades,raw_ohlcv,bars` for a trade-files
    instrument living in January 2026, in a fresh data root and process; peak RSS of the process tree (sampled)."""
    import shutil

    import psutil
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "spec"
        shutil.copytree(ROOT / "spec", spec)
        universe = yaml.safe_load((spec / "universe.yaml").read_text())
        bench = {"id": INSTRUMENT, "vendor": "trade_files", "market": "spot", "base_timeframe": "5m",
                 "start": "2026-01-01", "end": "2026-01-31"}  # fmt: skip
        universe["instruments"].append(bench)
        (spec / "universe.yaml").write_text(yaml.safe_dump(universe, sort_keys=False))
        landing = root / "data" / "landing" / "trade_files" / INSTRUMENT
        landing.mkdir(parents=True)
        (landing / dump.name).symlink_to(dump)
        env = {**os.environ, "QLAKE_SPEC_DIR": str(spec), "QLAKE_DATA_ROOT": str(root / "data"),
               "QLAKE_WAREHOUSE": str(root / "lake.duckdb"), "DAGSTER_HOME": str(root / "dagster_home")}  # fmt: skip
        cmd = [sys.executable, "-m", "lake_assets.cli", "materialize", "--select", "raw_trades,raw_ohlcv,bars",
               "--instruments", INSTRUMENT, "--months", "2026-01"]  # fmt: skip
        start = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        proc, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            time.sleep(0.05)
        wall = time.perf_counter() - start
        if child.returncode:
            raise SystemExit((child.stderr.read() if child.stderr else "")[-3000:])
        import polars as pl

        raw = pl.scan_parquet(str(root / "data/lake/raw/raw_trades/*/*/part-0.parquet")).select(pl.len()).collect()
    return {"asset_run_seconds": round(wall, 1), "asset_peak_tree_rss_mb": round(peak / 2**20),
            "asset_raw_trades_rows": raw.item(), "asset_lines_per_second": round(lines / wall)}  # fmt: skip


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(measure(Path(argv[1]), argv[2] == "1")))
        return
    compress = "--gzip" in argv
    bars = "--bars" in argv
    default = Path(tempfile.gettempdir()) / "qlake-bench-trades"
    base = Path(argv[argv.index("--dir") + 1]) if "--dir" in argv else default
    sizes = [int(a) for a in argv if a.isdigit()] or [100, 300]
    results = []
    for mb in sizes:
        landing = base / f"{mb}mb{'-gz' if compress else ''}"
        dump = landing / INSTRUMENT / f"dump.csv{'.gz' if compress else ''}"
        if not dump.exists():
            t = time.perf_counter()
            n = generate(dump, mb, compress=compress)
            print(f"generated {dump} ({n:,} lines) in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        cmd = [sys.executable, __file__, "--child", str(landing), "1" if bars else "0"]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        row = {"megabytes": mb, "file_bytes": dump.stat().st_size, "gzip": compress} | json.loads(done.stdout)
        if "--asset" in argv:  # the real raw and bars assets through `qlake materialize` (imports included)
            row |= measure_assets(dump, int(row["lines"]))
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
