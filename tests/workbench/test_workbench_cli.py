"""`qlake run`, `qlake run --rerun`, `qlake compare`, `qlake strategies` and `qlake strategies new`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lake_assets.cli import main
from lake_assets.storage.lake import Lake
from lake_assets.storage.warehouse import query

ROOT = Path(__file__).resolve().parents[2]


def test_run_rerun_compare(spx_lake: Lake, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text((ROOT / "spec" / "workbench" / "example_run.yaml").read_text())
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    run_id = out.split()[1]
    assert (data_root / "runs" / run_id / "trades.csv").is_file()
    assert query("select count(*) from run_history where run_id = '" + run_id + "'").item() == 1

    assert main(["run", "--rerun", run_id]) == 0
    assert "byte-identically" in capsys.readouterr().out

    opt = tmp_path / "opt.yaml"
    opt.write_text(cfg.read_text().replace("mode: equities", "mode: options").replace("name: spx_blend",
                                                                                     "name: spx_opt"))  # fmt: skip
    assert main(["run", str(opt)]) == 0
    opt_id = capsys.readouterr().out.split()[1]
    results = json.loads((data_root / "runs" / opt_id / "results.json").read_text())
    assert set(results["attribution"]) >= {"delta_pnl", "gamma_pnl", "vega_pnl", "theta_pnl"}
    assert main(["compare", run_id, opt_id, "--only-differences"]) == 0
    table = capsys.readouterr().out
    assert "config.mode" in table and "equities" in table and "options" in table

    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("initial_capital: 100000", "initial_capital: -5"))
    assert main(["run", str(bad)]) == 2
    assert "initial_capital: must be > 0" in capsys.readouterr().err


def test_strategies_status_and_new(spx_lake: Lake, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    spec = tmp_path / "spec"
    shutil.copytree(ROOT / "spec", spec)
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec))

    (spec / "strategies" / "broken.json").write_text('{"name": "broken", "entry_rules": {"long": "RSI(14) >"}}')
    assert main(["strategies", "new", "my_rsi", "--template", "rsi_reversal"]) == 0
    assert json.loads((spec / "strategies" / "my_rsi.json").read_text())["name"] == "my_rsi"
    assert main(["strategies", "new", "my_rsi", "--template", "rsi_reversal"]) == 2  # exists
    assert main(["strategies", "new", "x2", "--template", "nope"]) == 2
    capsys.readouterr()
    # a run directory is a strategy source too
    assert main(["run", str(spec / "workbench" / "example_run.yaml")]) == 0
    capsys.readouterr()
    # backtests recorded the hash they ran: equal to the strategy's hash now -> current, different -> stale
    import polars as pl

    from lake_assets.backtests.strategies import strategy_catalog
    from lake_assets.backtests.strategy_spec import load_strategies

    hashes = strategy_catalog(load_strategies(), [])
    for key, recorded in (("json.rsi_reversal", hashes["json.rsi_reversal"]), ("json.sma_crossover", "0" * 16)):
        spx_lake.write(pl.DataFrame({"strategy": [key], "spec_hash": [recorded], "sharpe": [0.5],
                                     "total_return": [0.1]}), "backtests", "metrics", {"strategy": key})  # fmt: skip
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    status = query("select strategy, source, status, error from strategy_status order by strategy")
    rows = {r[0]: r for r in status.iter_rows()}
    assert rows["json.broken"][2] == "invalid" and "broken.json" in rows["json.broken"][3]
    assert rows["json.my_rsi"][2] == "never run"
    assert rows["json.rsi_reversal"][2] == "current" and rows["json.sma_crossover"][2] == "stale"
    assert {"json", "workbench"} <= set(status["source"])
    assert all(f"json.{p.stem}" in rows for p in (spec / "strategy_templates").glob("*.json"))
    assert "json.broken" in out and "invalid" in out


def test_demo_workbench_runs_reach_the_report(spx_lake: Lake, data_root: Path) -> None:
    import time

    from lake_assets.cli import demo_workbench_runs
    from lake_assets.reports.research import build_report, gather

    t0 = time.perf_counter()
    runs = demo_workbench_runs()
    assert time.perf_counter() - t0 < 15.0  # the demo's added time budget (kernels already compiled here)
    assert [err for _, _, _, err in runs] == [None, None]
    tuned, options = (json.loads((data_root / "runs" / rid / "results.json").read_text()) for _, rid, _, _ in runs)
    assert tuned["tuning"]["n_trials"] == 30 and tuned["tuning"]["dsr"] is not None
    assert options["mode"] == "options" and options["metrics"]["n_trades"] > 0
    report = build_report(gather(spx_lake))
    assert "## Workbench runs" in report.markdown
    assert all(rid in report.markdown for _, rid, _, _ in runs)
    assert {r["run_id"] for r in report.data["workbench_runs"]} == {rid for _, rid, _, _ in runs}
    assert "## Strategy status" in report.markdown  # the UI table (research_report's metadata)
    status = {r["strategy"]: r["status"] for r in report.data["strategy_status"]}
    assert status["json.rsi_reversal"] == "never run"
    assert all(status[f"run.{rid}"] == "current" for _, rid, _, _ in runs)
