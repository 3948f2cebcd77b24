"""labels -> training_sets -> model_runs -> model_leaderboard -> backtests/walkforward of the kept models, under
Dagster on an ephemeral instance over a small lake written directly (two perps x two months of 5m bars with a planted,
observable driver). The demo profile's trial count keeps it quick."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_lake import MONTHS, PERPS, build_model_lake  # noqa: E402

from lake_assets import cli, tables  # noqa: E402
from lake_assets.definitions import all_assets  # noqa: E402
from lake_assets.models.assets import PROFILE_TAG  # noqa: E402
from lake_assets.reports.research import build_report, gather  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.storage.warehouse import query  # noqa: E402
from resources import LakeResource, MarketDataResource, WarehouseResource  # noqa: E402
from sensors.specs import stale_partitions  # noqa: E402

VARIANTS = ["1h.B1.lightgbm", "1h.B1.linear", "1h.T3.nlinear", "1h.R.linear"]


def materialize(instance: dg.DagsterInstance, assets: list[str], first: str | None, last: str | None,
                **tags: str) -> dg.ExecuteInProcessResult:  # fmt: skip
    run_tags = cli.PlannedRun("test", assets, first, last).run_tags() if first else {}
    return dg.materialize(
        all_assets, selection=dg.AssetSelection.assets(*assets), instance=instance,
        resources={"lake": LakeResource(), "warehouse": WarehouseResource(), "market_data": MarketDataResource()},
        tags={**run_tags, **tags}, raise_on_error=False,
    )  # fmt: skip


def test_model_layer_end_to_end(data_root: Path) -> None:
    lake = Lake()
    build_model_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    im = [f"{p}|{m}" for p in PERPS for m in MONTHS]
    assert materialize(instance, ["labels"], im[0], im[-1]).success
    labels = lake.read_all("models", "labels")
    # the month boundary: January's last 5m bar has a label (it reads February's first bar), February's last none
    jan_last = labels.filter((pl.col("frequency") == "5m") & (pl.col("instrument") == PERPS[0])
                             & (pl.col("ts").dt.strftime("%Y-%m") == "2026-01")).sort("ts").tail(1)  # fmt: skip
    assert jan_last["y_r"][0] is not None
    assert set(labels["frequency"].unique()) == {"5m", "1h", "1d"}

    keys = ["1h.B1", "1h.T3", "1h.R"]  # key order: frequency, then B1, T3, R
    res = materialize(instance, ["training_sets"], keys[0], keys[-1])
    assert res.success
    ts = lake.read_all("models", "training_sets")
    assert ts.height > 1000 and {"label", "label_end_ts", "emb", "rsi_14"} <= set(ts.columns)
    evals = {(e.check_name, e.partition): e.passed for e in res.get_asset_check_evaluations()}
    assert all(evals[("feature_label_correlation", k)] for k in keys)

    # one run of two variants (a study per core: process_map), then one variant per run
    assert materialize(instance, ["model_runs"], VARIANTS[0], VARIANTS[1], **{PROFILE_TAG: "demo"}).success
    for variant in VARIANTS[2:]:
        assert materialize(instance, ["model_runs"], variant, variant, **{PROFILE_TAG: "demo"}).success
    runs = lake.read_all("models", "model_runs")
    assert sorted(runs["variant"].to_list()) == sorted(VARIANTS)
    assert (runs["n_trials"] >= 3).all()
    lgb_path = data_root / runs.filter(pl.col("variant") == "1h.B1.lightgbm")["model_path"][0]
    assert lgb_path.read_text().startswith("tree")  # LightGBM's own text format
    trials = lake.read_all("models", "model_trials")
    assert trials.height >= 12 and trials.unique(["variant", "trial"]).height == trials.height
    folds = lake.read_all("models", "model_folds")
    assert (folds["train_rows"] > 0).all() and folds["purged_rows"].min() >= 0

    res = materialize(instance, ["model_leaderboard"], None, None)
    assert res.success
    board = lake.read_all("models", "model_leaderboard")
    assert board.height == 4 and board["rank"].to_list() == [1, 2, 3, 4]
    assert board.filter(pl.col("kept"))["score"].min() >= 0.6 if board["kept"].any() else True
    # the planted driver is found and traded at 1h: the LightGBM classifier is kept
    lgb = board.filter(pl.col("variant") == "1h.B1.lightgbm").row(0, named=True)
    assert lgb["balanced_accuracy"] > 0.55 and lgb["kept"], lgb
    assert query("select count(*) as n from model_trials")["n"][0] == trials.height

    # kept models become strategy partitions; backtests and walkforward run them
    wanted = cli.sync_strategies(instance)
    kept = [k for k in wanted if k.startswith("model.")]
    assert "model.1h.B1.lightgbm" in kept
    res = materialize(instance, ["backtests", "walkforward"], kept[0], kept[-1])
    assert res.success
    metrics = lake.read("backtests", "metrics", [{"strategy": "model.1h.B1.lightgbm"}])
    assert metrics["kind"][0] == "model" and metrics["n_trades"][0] > 0
    wf = lake.read("backtests", "walkforward", [{"strategy": "model.1h.B1.lightgbm"}])
    assert wf["n_folds"][0] >= 3
    assert json.loads(runs.filter(pl.col("variant") == "1h.B1.lightgbm")["best_params"][0])
    assert tables.MODEL_LEADERBOARD.name == "model_leaderboard"

    # the research report's models section
    report = build_report(gather(lake))
    assert "## Models" in report.markdown and "1h.B1.lightgbm" in report.markdown

    # a model spec edit marks exactly the variants (and training sets) whose settings changed stale
    assert stale_partitions(instance) == {}
    spec_dir = data_root.parent / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec_dir)
    path = spec_dir / "models" / "models.yaml"
    text = path.read_text().replace("embargo_bars: {5m: 12, 1h: 2, 1d: 1}", "embargo_bars: {5m: 12, 1h: 3, 1d: 1}")
    path.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QLAKE_SPEC_DIR", str(spec_dir))
        stale = stale_partitions(instance)
    assert set(stale) == {"model_runs"} and set(stale["model_runs"]) == set(VARIANTS)
    # retraining: on the spec's cron once inputs changed, not on every new bar
    runs_def = next(a for a in all_assets if a.key == dg.AssetKey("model_runs"))
    assert "retrain_on_spec_cron" in str(runs_def.automation_conditions_by_key[dg.AssetKey("model_runs")])
