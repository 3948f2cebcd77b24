"""Workbench runs: RunConfig validation (field and problem named), blends, tuning with constraints and DSR, the run
directory, byte-identical reruns, changed-input detection, compare and the run_history view."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from lake_assets.specs import SpecError
from lake_assets.storage.lake import Lake
from lake_assets.workbench.blend import Blend, blend
from lake_assets.workbench.config import load_run_config, parse_run_config
from lake_assets.workbench.run import HASHED_FILES, compare_runs, execute_run, rerun

EXAMPLE = Path(__file__).resolve().parents[2] / "spec" / "workbench" / "example_run.yaml"


def base(**over: object) -> dict:
    cfg = {"name": "t", "instruments": ["SPX"], "start": "2017-06-01", "end": "2018-06-30",
           "indicators": [{"name": "RSI", "params": {"n": 14}}, {"name": "MACD"}, {"name": "SMA", "params": {"n": 50}}],
           "blend": {"method": "weighted", "threshold": 0.3}}  # fmt: skip
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(
    ("over", "key", "problem"),
    [
        ({"end": "2017-01-01"}, "end", "not after start"),
        ({"initial_capital": 0}, "initial_capital", "must be > 0"),
        ({"instruments": ["NOPE"]}, "instruments.0", "unknown instrument"),
        ({"indicators": [{"name": "FOO"}]}, "indicators.0.name", "unknown indicator"),
        ({"indicators": [{"name": "ATR"}]}, "indicators.0.name", "no default signal rule"),
        ({"indicators": [{"name": "RSI", "params": {"m": 3}}]}, "indicators.0.params.m", "no parameter"),
        ({"indicators": [{"name": "SMA"}]}, "indicators.0.params", "needs n"),
        ({"blend": {"weights": [1.0, 2.0]}}, "blend.weights", "2 weights for 3 indicators"),
        ({"blend": {"method": "regime"}}, "blend.regime_weights", "weights per vol_regime"),
        ({"blend": {"method": "vote", "k": 4}}, "blend.k", "k = 4 of 3"),
        ({"vendor": "ccxt"}, "vendor", "comes from vendor 'packaged'"),
        ({"mode": "futures"}, "mode", "Input should be"),
        ({"timeframe": "5m"}, "timeframe", "finer than the base timeframe"),
        ({"tune": {"enabled": True, "search_space": [{"target": "7.n", "low": 1, "high": 2}]}},
         "tune.search_space.0.target", "indicator index 7"),
    ],
)
def test_validation_names_field_and_problem(over: dict, key: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_run_config(base(**over), "cfg.yaml")
    assert err.value.key == key and problem in err.value.problem and err.value.file == "cfg.yaml"


def test_example_config_is_valid() -> None:
    cfg = load_run_config(EXAMPLE)
    assert cfg.instruments == ["SPX"] and len(cfg.indicators) == 3


def test_blends() -> None:
    f = pl.DataFrame({"vote_0": [1, 1, -1, 0, 1], "vote_1": [1, -1, -1, 0, 0], "vote_2": [0, -1, -1, 1, 1],
                      "vol_regime": ["low", "high", None, "low", "high"]}).cast(
        {"vote_0": pl.Int8, "vote_1": pl.Int8, "vote_2": pl.Int8})  # fmt: skip
    w = blend(f, Blend("weighted", (1.0, 1.0, 1.0), 0.5, 2, {}))["direction"].to_list()
    assert w == [1, 0, -1, 0, 1]
    v = blend(f, Blend("vote", (1.0, 1.0, 1.0), 0.5, 2, {}))["direction"].to_list()
    assert v == [1, -1, -1, 0, 1]
    r = blend(f, Blend("regime", (1.0, 1.0, 1.0), 0.5, 2, {"low": (0.0, 0.0, 1.0), "high": (1.0, 0.0, 0.0)}))
    assert r["direction"].to_list() == [0, 1, 0, 1, 1]  # no regime label: flat


def test_run_directory_rerun_compare_history(spx_lake: Lake, data_root: Path) -> None:
    cfg = parse_run_config(base(exits={"stop_loss_pct": 5.0}))
    out = execute_run(cfg, spx_lake)
    for f in (*[h for h in HASHED_FILES if h != "trials.parquet"], "manifest.json", "meta.json"):
        assert (out.directory / f).is_file(), f
    assert out.directory == data_root / "runs" / out.run_id
    inputs = json.loads((out.directory / "inputs.json").read_text())
    assert any("cleaned/bars/instrument=SPX" in k for k in inputs["data"]) and "costs.yaml" in inputs["spec"]
    assert "finished_at" in (out.directory / "meta.json").read_text()
    assert "finished_at" not in (out.directory / "results.json").read_text()
    trades = pl.read_parquet(out.directory / "trades.parquet")
    assert trades.height == pl.read_csv(out.directory / "trades.csv").height > 0

    again = rerun(out.run_id, spx_lake)
    assert again.identical and not again.changed_inputs and not again.differing_files

    # the same config on the same data is the same run, byte for byte
    first = {f: (out.directory / f).read_bytes() for f in HASHED_FILES if (out.directory / f).exists()}
    out2 = execute_run(cfg, spx_lake)
    assert out2.run_id == out.run_id
    assert first == {f: (out2.directory / f).read_bytes() for f in first}

    # a changed input is named, not silently re-run
    path = spx_lake.partition_path("cleaned", "bars", {"instrument": "SPX", "month": "2018-03"})
    bars = pl.read_parquet(path)
    spx_lake.write(bars.with_columns(pl.col("close") * 1.01), "cleaned", "bars",
                   {"instrument": "SPX", "month": "2018-03"})
    changed = rerun(out.run_id, spx_lake)
    assert not changed.identical and any("month=2018-03" in c for c in changed.changed_inputs)

    other = execute_run(parse_run_config(base(name="t2", blend={"method": "vote", "k": 2})), spx_lake)
    table = compare_runs(out.run_id, other.run_id)
    row = table.filter(pl.col("field") == "config.blend.method").row(0)
    assert row[1:] == ("weighted", "vote", "*")
    assert table.filter(pl.col("field") == "metric.sharpe").height == 1

    from lake_assets.storage.warehouse import build_catalog, query

    build_catalog()
    hist = query("select run_id, name, sharpe, blend from run_history order by name")
    assert hist["name"].to_list() == ["t", "t2"] and hist["blend"].to_list() == ["weighted", "vote"]


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_tuning_constraints_and_dsr(spx_lake: Lake, method: str) -> None:
    tune = {"enabled": True, "method": method, "n_trials": 8, "seed": 3, "train_fraction": 0.6,
            "search_space": [{"target": "0.n", "low": 7, "high": 21, "step": 7, "integer": True},
                             {"target": "threshold", "low": 0.2, "high": 0.6, "step": 0.2}],
            "constraints": {"min_trades": 12, "max_drawdown": 0.5}}  # fmt: skip
    cfg = parse_run_config(base(name=f"tune_{method}", tune=tune))
    out = execute_run(cfg, spx_lake)
    trials = pl.read_parquet(out.directory / "trials.parquet")
    assert trials.height == 8
    expected = (pl.col("n_trades") >= 12) & (pl.col("max_drawdown") <= 0.5)
    assert (trials["feasible"] == trials.select(expected).to_series()).all()  # every trial judged and kept
    assert trials.filter(pl.col("feasible"))["reason"].is_null().all()
    assert trials.filter(~pl.col("feasible"))["reason"].str.contains("n_trades|max_drawdown").all()
    if method != "tpe":  # the grid holds windows/thresholds that trade too little: marked, not dropped
        assert trials.filter(~pl.col("feasible")).height > 0
    t = out.results["tuning"]
    assert t["n_trials"] == 8 and 0.0 <= t["dsr"] <= 1.0 and t["dsr_detail"]["n_trials"] == 8
    assert t["test"]["n_trades"] >= 0 and "window" in t["test"]
    best = trials.filter(pl.col("trial") == t["best_trial"]).row(0, named=True)
    assert best["feasible"] and best["score"] == trials.filter(pl.col("feasible"))["score"].max()
    assert rerun(out.run_id, spx_lake).identical


def test_regime_blend_per_regime_tuning(spx_lake: Lake) -> None:
    cfg = parse_run_config(base(name="regime", blend={"method": "regime", "threshold": 0.3, "regime_weights": {
        "low": [0, 1, 1], "mid": [1, 1, 1], "high": [1, 0, 0]}},
        tune={"enabled": True, "method": "random", "n_trials": 5, "per_regime": True}))  # fmt: skip
    out = execute_run(cfg, spx_lake)
    trials = pl.read_parquet(out.directory / "trials.parquet")
    assert trials["params"].str.contains("regime_weight.high.2").all()
    assert out.results["params"]["blend"]["method"] == "regime"


def test_workbench_run_job_in_process(spx_lake: Lake, data_root: Path) -> None:
    import dagster as dg

    from lake_assets.definitions import defs
    from lake_assets.workbench.assets import example_run_config

    defs.get_repository_def()  # the whole code location loads (op and job names do not collide)
    job = defs.resolve_job_def("workbench_run")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance)  # the default config: spec/workbench/example_run.yaml
    assert result.success
    run_id = result.output_for_node("run_workbench")
    assert (data_root / "runs" / run_id / "results.json").is_file()
    assert (data_root / "lake" / "workbench" / "run_history" / f"run={run_id}" / "part-0.parquet").is_file()
    # a second run of the same name: the materialization's Markdown compares it with the first
    cfg = example_run_config() | {"initial_capital": 50_000.0}
    second = job.execute_in_process(run_config={"ops": {"run_workbench": {"config": cfg}}}, instance=instance)
    assert second.success
    mats = [e.materialization for e in second.all_events if e.is_step_materialization]
    md = mats[0].metadata["compare"].value
    assert f"Compared with {run_id}" in md and "config.initial_capital" in md
    # a bad launchpad config fails with the field and the problem
    bad = example_run_config() | {"end": "2016-01-01"}
    failed = job.execute_in_process(run_config={"ops": {"run_workbench": {"config": bad}}}, instance=instance,
                                    raise_on_error=False)  # fmt: skip
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    assert "end: 2016-01-01 is not after start" in str(failure.step_failure_data.error)
