"""Strategy status and authoring: every strategy source with its last backtest, staleness and validation errors,
and new strategy specs from a template library.

Sources: JSON specs (spec/strategies), discovery blueprints (blueprints.jsonl) and workbench runs
(`<data root>/runs/`). A JSON spec or blueprint is `current` when the `spec_hash` its last backtest recorded (the
metrics table, = the `strategy_hash` of its materialization) equals its content hash now, `stale` when it differs,
`never run` without a backtest and `invalid` when the file does not load (the error names file, key, problem). A
workbench run is `current` while the spec and lake files it read are unchanged (inputs.json), else `stale`.
The same rows are the `strategy_status` lake table and view, written by `qlake strategies`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from lake_assets import tables
from lake_assets.backtests.strategies import spec_errors, strategy_catalog
from lake_assets.backtests.strategy_spec import STRATEGY_NAME_PATTERN, load_strategies, parse_strategy, strategies_dir
from lake_assets.discovery.blueprints import load_blueprints
from lake_assets.settings import spec_dir
from lake_assets.specs import universe
from lake_assets.storage.lake import Lake
from lake_assets.workbench.run import changed_inputs, input_hashes, load_stored, runs_root

RUN_PREFIX = "run."


def _last_backtest(store: Lake, key: str) -> tuple[str | None, datetime | None, float | None, float | None]:
    t = tables.METRICS
    path = store.partition_path(t.group, t.name, {"strategy": key})
    if not path.is_file():
        return None, None, None, None
    m = pl.read_parquet(path, columns=["spec_hash", "sharpe", "total_return"])
    when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if m.is_empty():
        return None, when, None, None
    row = m.row(0, named=True)
    return row["spec_hash"], when, row["sharpe"], row["total_return"]


def strategy_status(store: Lake | None = None) -> pl.DataFrame:
    store = store or Lake()
    specs = load_strategies()
    errors = {k: str(e) for k, e in spec_errors(specs).items()}
    blueprints = list(load_blueprints(store).values())
    rows: list[dict[str, Any]] = []
    for key, current in strategy_catalog(specs, blueprints).items():
        recorded, when, sharpe, total = _last_backtest(store, key)
        source = "blueprint" if key.startswith("bp_") else "json"
        status = ("invalid" if key in errors else "never run" if recorded is None
                  else "current" if recorded == current else "stale")  # fmt: skip
        rows.append({"strategy": key, "source": source, "current_hash": current, "backtest_hash": recorded,
                     "last_backtest": when, "status": status, "sharpe": sharpe, "total_return": total,
                     "error": errors.get(key)})  # fmt: skip
    for run_dir in sorted(p for p in runs_root().glob("*") if (p / "config.json").is_file()):
        rows.append(_run_row(store, run_dir))
    return pl.DataFrame(rows, schema=tables.STRATEGY_STATUS.schema)


def _run_row(store: Lake, run_dir: Path) -> dict[str, Any]:
    key = RUN_PREFIX + run_dir.name
    row: dict[str, Any] = {"strategy": key, "source": "workbench", "current_hash": None, "backtest_hash": None,
                           "last_backtest": datetime.fromtimestamp((run_dir / "results.json").stat().st_mtime, UTC),
                           "status": "current", "sharpe": None, "total_return": None, "error": None}  # fmt: skip
    try:
        cfg, stored, _ = load_stored(run_dir.name)
        results = json.loads((run_dir / "results.json").read_text())
        row["sharpe"] = results["metrics"].get("sharpe")
        row["total_return"] = results["metrics"].get("total_return")
        row["backtest_hash"] = results.get("config_hash")
        row["current_hash"] = cfg.config_hash()
        timeframe = cfg.timeframe or universe().get(cfg.instruments[0]).base_timeframe
        changed = changed_inputs(stored, input_hashes(cfg, store, timeframe))
        if changed:
            row["status"] = "stale"
            row["error"] = f"inputs changed: {'; '.join(changed[:3])}" + (" ..." if len(changed) > 3 else "")
    except Exception as exc:  # noqa: BLE001 (a broken run directory is a row with its error, not a crash)
        row["status"], row["error"] = "invalid", f"{run_dir / 'config.json'}: {exc}"
    return row


def write_strategy_status(store: Lake | None = None) -> pl.DataFrame:
    store = store or Lake()
    frame = strategy_status(store)
    t = tables.STRATEGY_STATUS
    store.write(frame, t.group, t.name)
    return frame


# --- authoring --------------------------------------------------------------------------------------------------------


def templates_dir() -> Path:
    return spec_dir() / "strategy_templates"


def templates() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.json"))


def new_strategy(name: str, template: str, directory: Path | None = None) -> Path:
    """Write `spec/strategies/<name>.json` from a template (its rules, parameters, sizing and costs), validated like
    every strategy; refuses an existing file, an unknown template or an invalid name."""
    if not STRATEGY_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"strategy name {name!r}: must match {STRATEGY_NAME_PATTERN.pattern}")
    source = templates_dir() / f"{template}.json"
    if not source.is_file():
        raise ValueError(f"unknown template {template!r} (templates: {', '.join(templates())})")
    target = (directory or strategies_dir()) / f"{name}.json"
    if target.exists():
        raise FileExistsError(f"{target} exists; choose another name")
    data = json.loads(source.read_text())
    data["name"] = name
    data["description"] = f"From template {template}: {data.get('description', '')}".strip()
    parse_strategy(data, target)  # a template that no longer validates is an error, not a broken file
    target.write_text(json.dumps(data, indent=2) + "\n")
    return target
