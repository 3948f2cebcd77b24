"""One workbench run: read the inputs, (tune,) backtest, and write `<data root>/runs/<run_id>/`.

A run directory holds

- `config.json`  the validated RunConfig (canonical JSON),
- `inputs.json`  the hashes of everything read: spec files (universe, costs, features) and every lake partition file
  (sha256 of its bytes),
- `results.json` metrics (whole window; train/test when tuned), the tuning summary with the deflated Sharpe, and
  the options P&L attribution,
- `trades.parquet` and `trades.csv`, `equity.parquet`, `trials.parquet` (tuned runs), `equity.png`,
- `manifest.json` the sha256 of each file above,
- `meta.json`    wall time and when it ran: the one file that differs between two runs of the same inputs; it is
  not in the manifest and `--rerun` does not compare it.

The run id is `<name>-<hash of config and inputs>`: the same config on the same data is the same run (written again
byte for byte), a change in either is a new run. Every run also writes its `run_history` row
(`lake/workbench/run_history/run=<run_id>/`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lake_assets import tables
from lake_assets.backtests.blueprint_signals import PERIODS_PER_YEAR
from lake_assets.backtests.brackets import bracket_orders
from lake_assets.backtests.costs import load_costs
from lake_assets.backtests.engine import SIGNAL_COLUMNS, EngineConfig, run_orders, run_signals
from lake_assets.backtests.metrics import compute_metrics
from lake_assets.backtests.risk import RiskLimits, Sizing
from lake_assets.backtests.schema import STRATEGY, SizeType
from lake_assets.settings import data_root, spec_dir
from lake_assets.specs import spec_hash, universe
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT, TS, Market
from lake_assets.workbench.blend import DIRECTION, REGIME, Blend, add_votes, blend, direction_signals
from lake_assets.workbench.config import RunConfig, parse_run_config
from lake_assets.workbench.options import run_options

HASHED_FILES = ("config.json", "inputs.json", "results.json", "trades.parquet", "trades.csv", "equity.parquet",
                "trials.parquet", "equity.png")  # fmt: skip
META_FILE = "meta.json"
COST_PROFILE_OF_MARKET = {Market.PERP: "perp", Market.SPOT: "spot", Market.EQUITY: "equity", Market.INDEX: "equity"}
BAR_TABLES = {"1h": tables.BARS_1H, "1d": tables.BARS_1D}


def runs_root() -> Path:
    return data_root() / "runs"


# --- inputs ---------------------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Each instrument's bars (+ vol_regime) from the lake's first bar to the config's end, and what was read."""

    frames: dict[str, pl.DataFrame]
    hashes: dict[str, Any]
    timeframe: str


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def input_hashes(cfg: RunConfig, store: Lake, timeframe: str) -> dict[str, Any]:
    """Spec and data hashes of a run: spec files by name, lake partition files by path."""
    data: dict[str, str] = {}
    for inst in cfg.instruments:
        for table in _tables_read(cfg, timeframe, inst):
            for m in _months(store, table, inst, cfg):
                path = store.partition_path(table.group, table.name, {INSTRUMENT: inst, "month": m})
                data[str(path.relative_to(store.root))] = _file_sha(path)
    specs = {p: spec_hash(p) for p in ("universe.yaml", "costs.yaml", "features")}
    return {"spec": specs, "data": dict(sorted(data.items()))}


def _tables_read(cfg: RunConfig, timeframe: str, inst: str) -> list[tables.Table]:
    base = universe().get(inst).base_timeframe
    out = [BAR_TABLES[timeframe] if timeframe != base else tables.BARS]
    if cfg.blend.method == "regime":
        out.append(tables.FEATURES)
    return out


def _months(store: Lake, table: tables.Table, inst: str, cfg: RunConfig) -> list[str]:
    last = cfg.end.strftime("%Y-%m")
    return [m for m in store.reader.months(table, inst) if m <= last]


def load_inputs(cfg: RunConfig, store: Lake) -> Inputs:
    timeframe = cfg.timeframe or universe().get(cfg.instruments[0]).base_timeframe
    frames = {}
    for inst in cfg.instruments:
        bar_table, *rest = _tables_read(cfg, timeframe, inst)
        months = _months(store, bar_table, inst, cfg)
        bars = store.reader.instrument(bar_table, inst, months=months)
        if bars.is_empty():
            raise ValueError(f"instrument {inst}: no {bar_table.name} in the lake up to {cfg.end} "
                             f"(materialize {bar_table.name} first, e.g. `qlake demo`)")  # fmt: skip
        if rest:
            feats = store.reader.instrument(tables.FEATURES, inst, columns=[TS, REGIME],
                                            months=_months(store, tables.FEATURES, inst, cfg))  # fmt: skip
            if REGIME not in feats.columns:
                raise ValueError(f"instrument {inst}: no vol_regime feature in the lake (materialize `features`)")
            bars = bars.join(feats.unique(TS, keep="last"), on=TS, how="left")
        frames[inst] = bars.filter(pl.col(TS) < _ts(cfg.end, end=True))
    return Inputs(frames, input_hashes(cfg, store, timeframe), timeframe)


def _ts(d: Any, end: bool = False) -> datetime:
    out = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return out.replace(hour=23, minute=59, second=59) if end else out


# --- one evaluation ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """What tuning changes: each indicator's parameters and the blend."""

    indicators: tuple[tuple[str, dict[str, float]], ...]
    blend: Blend

    def as_json(self) -> dict[str, Any]:
        b = self.blend
        regime = {k: list(v) for k, v in sorted(b.regime_weights.items())}
        return {"indicators": [{"name": n, "params": p} for n, p in self.indicators],
                "blend": {"method": b.method, "weights": list(b.weights), "threshold": b.threshold, "k": b.k,
                          "regime_weights": regime}}  # fmt: skip


def base_params(cfg: RunConfig) -> Params:
    n = len(cfg.indicators)
    b = cfg.blend
    weights = tuple(b.weights) if b.weights is not None else (1.0,) * n
    k = b.k if b.k is not None else n // 2 + 1
    regime = {label: tuple(ws) for label, ws in (b.regime_weights or {}).items()}
    return Params(tuple((u.name.upper(), dict(u.params)) for u in cfg.indicators),
                  Blend(b.method, weights, b.threshold, k, regime))  # fmt: skip


@dataclass
class Evaluation:
    metrics: dict[str, float]
    trades: pl.DataFrame
    equity: pl.DataFrame
    returns: np.ndarray  # per-bar returns of the equity curve
    extra: dict[str, Any] = field(default_factory=dict)


def directions(inputs: Inputs, params: Params) -> dict[str, pl.DataFrame]:
    """Each instrument's bars with votes, score and direction (indicators computed over the whole history)."""
    return {inst: blend(add_votes(f, params.indicators), params.blend) for inst, f in inputs.frames.items()}


def evaluate(
    cfg: RunConfig, inputs: Inputs, params: Params, window: tuple[datetime, datetime] | None = None
) -> Evaluation:
    """Backtest `params` over the config's window (or `window`: a train/test part of it)."""
    lo, hi = window or (_ts(cfg.start), _ts(cfg.end, end=True))
    framed = {k: f.filter((pl.col(TS) >= lo) & (pl.col(TS) <= hi)) for k, f in directions(inputs, params).items()}
    framed = {k: f for k, f in framed.items() if f.height}
    if not framed:
        raise ValueError(f"no bars of {', '.join(cfg.instruments)} between {lo:%Y-%m-%d} and {hi:%Y-%m-%d}")
    ppy = PERIODS_PER_YEAR.get(inputs.timeframe, 252.0)
    if cfg.mode == "options":
        ((_, frame),) = framed.items()
        trades, equity = run_options(frame, frame[DIRECTION], cfg.options, cfg.initial_capital, ppy)
        return _curve_evaluation(cfg, trades, equity, ppy)
    return _equities(cfg, framed, ppy)


def _engine_config(cfg: RunConfig) -> EngineConfig:
    costs = load_costs()
    market = universe().get(cfg.instruments[0]).market
    name = cfg.costs_profile or COST_PROFILE_OF_MARKET.get(market, costs.default_profile)
    if name not in costs.profiles:
        raise ValueError(f"costs_profile: {name!r} is not a profile of spec/costs.yaml ({sorted(costs.profiles)})")
    return EngineConfig.from_costs(costs.profiles[name], init_cash=cfg.initial_capital,
                                   risk=RiskLimits(max_leverage=cfg.sizing.max_leverage))  # fmt: skip


def _equities(cfg: RunConfig, framed: Mapping[str, pl.DataFrame], ppy: float) -> Evaluation:
    frame = pl.concat(list(framed.values()), how="diagonal_relaxed")
    signals = pl.concat([direction_signals(f) for f in framed.values()]).with_columns(pl.lit(cfg.name).alias(STRATEGY))
    bars = frame.select([c for c in tables.BARS.schema.names() if c in frame.columns])
    size_type = SizeType(cfg.sizing.size_type)
    size = cfg.sizing.size / len(framed) if size_type == SizeType.EQUITY_PERCENT else cfg.sizing.size
    config = _engine_config(cfg)
    ex = cfg.exits
    if ex.stop_loss_pct or ex.take_profit_pct or ex.max_holding_bars:
        joined = frame.select(*[c for c in bars.columns]).join(
            signals.drop(STRATEGY), on=[TS, INSTRUMENT], how="left")
        orders = pl.concat([
            bracket_orders(part, strategy=cfg.name, size_type=size_type, size=size,
                           stop_frac=ex.stop_loss_pct / 100 if ex.stop_loss_pct else None,
                           target_frac=ex.take_profit_pct / 100 if ex.take_profit_pct else None,
                           max_hold_bars=ex.max_holding_bars, first_order_id=k * 10_000_000)
            for k, part in enumerate(joined.partition_by(INSTRUMENT, maintain_order=True))
        ])  # fmt: skip
        if orders.is_empty():
            result = run_signals(bars, signals.with_columns([pl.lit(False).alias(c) for c in SIGNAL_COLUMNS]),
                                 config, sizing=Sizing(size_type, size))  # fmt: skip
        else:
            result = run_orders(bars, orders, config)
    else:
        result = run_signals(bars, signals, config, sizing=Sizing(size_type, size))
    metrics = compute_metrics(result, ppy)
    curve = np.r_[cfg.initial_capital, result.equity["equity"].to_numpy()]
    return Evaluation(metrics, result.trades, result.equity.select(TS, "equity", "drawdown"), _returns(curve))


def _returns(curve: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = curve[1:] / curve[:-1] - 1.0
    return r[np.isfinite(r)]


def _curve_evaluation(cfg: RunConfig, trades: pl.DataFrame, equity: pl.DataFrame, ppy: float) -> Evaluation:
    curve = np.r_[cfg.initial_capital, equity["equity"].to_numpy()]
    r = _returns(curve)
    sd = float(np.std(r, ddof=1)) if r.size > 1 else math.nan
    mean = float(np.mean(r)) if r.size else math.nan
    peak = np.maximum.accumulate(curve)
    max_dd = float(np.max(1.0 - curve / peak))
    years = r.size / ppy if r.size else math.nan
    total = curve[-1] / curve[0] - 1.0
    cagr = (curve[-1] / curve[0]) ** (1 / years) - 1 if years and curve[-1] > 0 else math.nan
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if r.size else math.nan
    pnl = trades["pnl"].to_numpy() if trades.height else np.array([])
    held = 0.0
    if trades.height:
        ts = equity[TS]
        mask = pl.Series([False] * ts.len())
        for a, b in trades.select("entry_ts", "exit_ts").iter_rows():
            mask = mask | ((ts >= a) & (ts < b))
        held = float(mask.cast(pl.Float64).mean() or 0.0)  # type: ignore[arg-type]
    metrics = {
        "total_return": float(total), "cagr": float(cagr),
        "sharpe": mean / sd * math.sqrt(ppy) if sd and sd > 0 else math.nan,
        "sortino": mean / downside * math.sqrt(ppy) if downside and downside > 0 else math.nan,
        "max_drawdown": max_dd, "calmar": float(cagr / max_dd) if max_dd > 0 and math.isfinite(cagr) else math.nan,
        "n_trades": float(trades.height), "win_rate": float(np.mean(pnl > 0)) if pnl.size else math.nan,
        "avg_trade": float(np.mean(pnl)) if pnl.size else math.nan, "exposure": held,
        "fees_paid": float(trades["costs"].sum()) if trades.height else 0.0, "final_equity": float(curve[-1]),
    }  # fmt: skip
    parts = ("gross_pnl", "delta_pnl", "gamma_pnl", "vega_pnl", "theta_pnl", "residual_pnl", "costs")
    attribution = {c: float(trades[c].sum()) if trades.height else 0.0 for c in parts}
    return Evaluation(metrics, trades, equity, r, {"attribution": attribution})


# --- the run ------------------------------------------------------------------------------------------------------


def run_id_of(cfg: RunConfig, hashes: Mapping[str, Any]) -> str:
    text = cfg.canonical_json() + json.dumps(hashes, sort_keys=True)
    return f"{cfg.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf as null, floats rounded to 12 significant digits (stable text), tuples as lists."""
    if isinstance(value, float | np.floating):
        v = float(value)
        return float(f"{v:.12g}") if math.isfinite(v) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def _dump(obj: Any) -> str:
    return json.dumps(_clean(obj), sort_keys=True, indent=2) + "\n"


@dataclass
class RunOutcome:
    run_id: str
    directory: Path
    results: dict[str, Any]
    seconds: float


def execute_run(cfg: RunConfig, store: Lake | None = None, out_dir: Path | None = None,
                record: bool = True) -> RunOutcome:  # fmt: skip
    """Run a config and write its directory (default `<data root>/runs/<run_id>/`) and its run_history row."""
    from lake_assets.workbench.tune import tune

    t0 = time.perf_counter()
    store = store or Lake()
    inputs = load_inputs(cfg, store)
    run_id = run_id_of(cfg, inputs.hashes)
    params, tuning, trials = base_params(cfg), None, None
    if cfg.tune.enabled:
        params, tuning, trials = tune(cfg, inputs, params)
    final = evaluate(cfg, inputs, params)
    results: dict[str, Any] = {
        "run_id": run_id, "name": cfg.name, "mode": cfg.mode, "config_hash": cfg.config_hash(),
        "timeframe": inputs.timeframe, "params": params.as_json(), "metrics": final.metrics, **final.extra,
    }  # fmt: skip
    if tuning is not None:
        results["tuning"] = tuning
    directory = out_dir or runs_root() / run_id
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(cfg.canonical_json())
    (tmp / "inputs.json").write_text(_dump(inputs.hashes))
    (tmp / "results.json").write_text(_dump(results))
    final.trades.write_parquet(tmp / "trades.parquet", statistics=False)
    final.trades.write_csv(tmp / "trades.csv")
    final.equity.write_parquet(tmp / "equity.parquet", statistics=False)
    if trials is not None:
        trials.write_parquet(tmp / "trials.parquet", statistics=False)
    (tmp / "equity.png").write_bytes(equity_png(final.equity, f"{cfg.name} ({cfg.mode})"))
    manifest = {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in HASHED_FILES if (tmp / f).exists()}
    (tmp / "manifest.json").write_text(_dump(manifest))
    seconds = time.perf_counter() - t0
    (tmp / META_FILE).write_text(_dump({"wall_seconds": round(seconds, 3),
                                        "finished_at": datetime.now(UTC).isoformat()}))  # fmt: skip
    shutil.rmtree(directory, ignore_errors=True)
    tmp.replace(directory)
    if record:
        write_history_row(store, cfg, results, inputs.hashes)
    return RunOutcome(run_id, directory, results, seconds)


def equity_png(equity: pl.DataFrame, title: str) -> bytes:
    from lake_assets.figures import new_figure, png_bytes

    fig = new_figure(figsize=(8, 4), dpi=80)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x = np.arange(equity.height)
    ax.plot(x, equity["equity"].to_numpy(), lw=1)
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax2.fill_between(x, equity["drawdown"].to_numpy(), 0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown")
    ax2.set_xlabel("bar")
    return png_bytes(fig)


# --- run history ------------------------------------------------------------------------------------------------------


def history_row(cfg: RunConfig, results: Mapping[str, Any], hashes: Mapping[str, Any]) -> pl.DataFrame:
    m = results["metrics"]
    tuning = results.get("tuning") or {}
    data_hash = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]

    def f(v: Any) -> float | None:
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)

    row = {
        "run_id": results["run_id"], "name": cfg.name, "mode": cfg.mode, "instruments": ",".join(cfg.instruments),
        "start": cfg.start, "end": cfg.end, "timeframe": results["timeframe"], "blend": cfg.blend.method,
        "indicators": ",".join(u.name.upper() for u in cfg.indicators),
        "tuned": cfg.tune.enabled, "tune_method": cfg.tune.method if cfg.tune.enabled else None,
        "n_trials": tuning.get("n_trials"), "total_return": f(m.get("total_return")), "sharpe": f(m.get("sharpe")),
        "max_drawdown": f(m.get("max_drawdown")), "n_trades": f(m.get("n_trades")),
        "exposure": f(m.get("exposure")), "final_equity": f(m.get("final_equity")),
        "oos_sharpe": f((tuning.get("test") or {}).get("sharpe")), "dsr": f(tuning.get("dsr")),
        "config_hash": results["config_hash"], "inputs_hash": data_hash,
    }  # fmt: skip
    return pl.DataFrame([row], schema=tables.RUN_HISTORY.schema)


def write_history_row(store: Lake, cfg: RunConfig, results: Mapping[str, Any], hashes: Mapping[str, Any]) -> Path:
    t = tables.RUN_HISTORY
    return store.write(history_row(cfg, results, hashes), t.group, t.name, {"run": results["run_id"]})


# --- rerun and compare ------------------------------------------------------------------------------------------------


def load_stored(run_id: str) -> tuple[RunConfig, dict[str, Any], Path]:
    directory = runs_root() / run_id
    if not (directory / "config.json").is_file():
        known = sorted(p.name for p in runs_root().glob("*") if (p / "config.json").is_file())
        raise FileNotFoundError(f"no run {run_id!r} under {runs_root()} (runs: {', '.join(known[-5:]) or 'none'})")
    cfg = parse_run_config(json.loads((directory / "config.json").read_text()), directory / "config.json")
    return cfg, json.loads((directory / "inputs.json").read_text()), directory


def changed_inputs(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two `inputs.json`: spec files and lake files changed, added or removed."""
    out = []
    for section in ("spec", "data"):
        a, b = stored.get(section, {}), now.get(section, {})
        for key in sorted(set(a) | set(b)):
            if key not in b:
                out.append(f"{section} {key}: no longer read (removed)")
            elif key not in a:
                out.append(f"{section} {key}: new input")
            elif a[key] != b[key]:
                out.append(f"{section} {key}: changed ({a[key]} -> {b[key]})")
    return out


@dataclass
class Rerun:
    run_id: str
    identical: bool
    changed_inputs: list[str]
    differing_files: list[str]


def rerun(run_id: str, store: Lake | None = None) -> Rerun:
    """Re-run a stored config into a scratch directory and compare every hashed file byte for byte (meta.json, with
    its wall time, is not compared). When an input changed since, say which instead of running."""
    store = store or Lake()
    cfg, stored_inputs, directory = load_stored(run_id)
    timeframe = cfg.timeframe or universe().get(cfg.instruments[0]).base_timeframe
    changed = changed_inputs(stored_inputs, input_hashes(cfg, store, timeframe))
    if changed:
        return Rerun(run_id, False, changed, [])
    scratch = directory.with_name(f".{run_id}.rerun")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        outcome = execute_run(cfg, store, out_dir=scratch, record=False)
        differing = [f for f in HASHED_FILES if _bytes(directory / f) != _bytes(scratch / f)]
        if outcome.run_id != run_id:
            differing.insert(0, f"run id ({outcome.run_id})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Rerun(run_id, not differing, [], differing)


def _bytes(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def compare_runs(run_a: str, run_b: str) -> pl.DataFrame:
    """Config fields and metrics of two runs side by side (rows where they differ are marked)."""
    rows: list[tuple[str, str, str]] = []
    for run_id in (run_a, run_b):
        load_stored(run_id)
    a_cfg, b_cfg = (json.loads((runs_root() / r / "config.json").read_text()) for r in (run_a, run_b))
    a_res, b_res = (json.loads((runs_root() / r / "results.json").read_text()) for r in (run_a, run_b))
    flat_a, flat_b = _flatten(a_cfg, "config"), _flatten(b_cfg, "config")
    for key in sorted(set(flat_a) | set(flat_b)):
        rows.append((key, flat_a.get(key, "-"), flat_b.get(key, "-")))
    ma, mb = _flatten(a_res.get("metrics", {}), "metric"), _flatten(b_res.get("metrics", {}), "metric")
    for key in sorted(set(ma) | set(mb)):
        rows.append((key, ma.get(key, "-"), mb.get(key, "-")))
    for extra in ("tuning.dsr", "tuning.n_trials", "tuning.test.sharpe"):
        va = _flatten(a_res, "").get("." + extra, "-")
        vb = _flatten(b_res, "").get("." + extra, "-")
        if va != "-" or vb != "-":
            rows.append((extra, va, vb))
    df = pl.DataFrame(rows, schema={"field": pl.String, run_a: pl.String, run_b: pl.String}, orient="row")
    return df.with_columns(pl.when(pl.col(run_a) != pl.col(run_b)).then(pl.lit("*")).otherwise(pl.lit(""))
                           .alias("differs"))  # fmt: skip


def previous_run(name: str) -> str | None:
    """The latest finished run (meta.json) of a config named `name`, if any."""
    best: tuple[str, str] | None = None
    for meta in runs_root().glob(f"{name}-*/{META_FILE}"):
        finished = json.loads(meta.read_text()).get("finished_at", "")
        if best is None or finished > best[0]:
            best = (finished, meta.parent.name)
    return best[1] if best else None


def _flatten(obj: Any, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
    elif isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = f"{obj:.6g}" if isinstance(obj, float) else json.dumps(obj) if isinstance(obj, list) else str(obj)
    return out


def config_from_spec_file(name: str) -> Path:
    return spec_dir() / "workbench" / f"{name}.yaml"
