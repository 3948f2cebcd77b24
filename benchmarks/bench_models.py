"""Model layer budgets, printed as JSON.

1. Per-trial overhead: K LightGBM trials through qlake (`study.optimise`: Optuna with the persistent sqlite storage,
   the median pruner, per-fold reports, the purged walk-forward folds) against calling `lightgbm.train` + `predict`
   directly on the same fold arrays with the same parameters (the trials are enqueued with fixed parameters, so both
   sides fit exactly the same models). Budget: overhead <= 10%.
2. Sweep: every model variant of spec/models at `--trials` trials on the lake's training sets (run `qlake demo`
   first; QLAKE_DATA_ROOT picks the lake): seconds, trials/s, pruned fraction. Target: 27 variants x 10 trials
   < 10 min on 2 cores. `--variants` measures a subset (a busy machine) and extrapolates.

    python benchmarks/bench_models.py [--trials 10] [--variants 1h.B1.lightgbm,...] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightgbm as lgb  # noqa: E402
import optuna  # noqa: E402
import polars as pl  # noqa: E402

from lake_assets.models import metrics as M  # noqa: E402
from lake_assets.models.families.lightgbm import DATASET_PARAMS, train_params  # noqa: E402
from lake_assets.models.runs import VariantTask, run_variant_task  # noqa: E402
from lake_assets.models.spec_model import model_spec  # noqa: E402
from lake_assets.models.study import StudyConfig, arrays_of, make_folds, optimise  # noqa: E402
from lake_assets.parallel import process_map, worker_count  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402

PARAMS = {"num_boost_round": 60, "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50,
          "feature_fraction": 0.8, "lambda_l2": 1.0}  # fmt: skip


def synthetic_frame(n: int, p: int, seed: int = 0) -> pl.DataFrame:
    from datetime import UTC, datetime, timedelta

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    y = (0.3 * x[:, 0] + rng.normal(size=n) > 0).astype(float)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ts = [t0 + timedelta(hours=i) for i in range(n)]
    return pl.DataFrame({"ts": ts, "instrument": "X", "label": y, "label_end_ts": [t + timedelta(hours=1) for t in ts],
                         **{f"f{i}": x[:, i] for i in range(p)}})  # fmt: skip


def overhead(n: int, p: int, k: int, repeats: int) -> dict[str, float]:
    """Seconds per trial through qlake and directly, and the overhead fraction (best of `repeats`)."""
    frame = synthetic_frame(n, p)
    cols = [f"f{i}" for i in range(p)]
    a = arrays_of(frame, cols)
    tmp = Path(tempfile.mkdtemp())
    cfg = StudyConfig("1h.B1.lightgbm", "1h", "binary", "lightgbm", 5, 0.4, 2, storage_url=f"sqlite:///{tmp}/o.db")
    folds = make_folds(a, cfg)
    y = M.encode_target(a.label, "binary")
    params = train_params("binary", PARAMS, 0, 1)

    def direct(shared: bool) -> float:
        """lightgbm.train + predict per fold: a fresh Dataset per fit (naive), or one binned Dataset per fold
        reused by every trial (what qlake does; the fair baseline for its overhead)."""
        t0 = time.perf_counter()
        data = {f.fold: lgb.Dataset(a.x[f.train], label=y[f.train], params=DATASET_PARAMS).construct()
                for f in folds} if shared else {}  # fmt: skip
        for _ in range(k):
            for f in folds:
                train = data[f.fold] if shared else lgb.Dataset(a.x[f.train], label=y[f.train], params=DATASET_PARAMS)
                booster = lgb.train(params, train, num_boost_round=PARAMS["num_boost_round"],
                                    keep_training_booster=shared)  # fmt: skip
                booster.predict(a.x[f.test])
        return (time.perf_counter() - t0) / k

    def qlake(r: int) -> float:
        c = StudyConfig(**{**cfg.__dict__, "study_name": f"bench-{r}"})
        study = optuna.create_study(study_name=c.study_name, storage=c.storage_url)
        for _ in range(k):
            study.enqueue_trial(PARAMS)
        t0 = time.perf_counter()
        optimise(c, a, k, folds)
        return (time.perf_counter() - t0) / k

    qlake(-1)  # warm: imports, the storage's schema
    d, s, q = [], [], []
    for r in range(repeats):  # interleaved, best of `repeats` each: a shared machine's noise hits all three
        d.append(direct(False))
        s.append(direct(True))
        q.append(qlake(r))
    best_d, best_s, best_q = min(d), min(s), min(q)
    return {"rows": n, "features": p, "trials": k, "folds": len(folds),
            "direct_naive_s_per_trial": round(best_d, 4), "direct_shared_datasets_s_per_trial": round(best_s, 4),
            "qlake_s_per_trial": round(best_q, 4), "overhead_vs_shared": round(best_q / best_s - 1.0, 4),
            "overhead_vs_naive": round(best_q / best_d - 1.0, 4), "budget": 0.10,
            "ok": best_q / best_s - 1.0 <= 0.10, "load_average": os.getloadavg()}  # fmt: skip


def sweep(trials: int, variants: list[str] | None) -> dict[str, object]:
    """The variants' studies as model_runs runs them: `run_variant_task` over `process_map` (one study per core),
    each a fresh study in a temporary sqlite storage."""
    spec = model_spec()
    store = Lake()
    chosen = variants or spec.variant_keys
    url = f"sqlite:///{tempfile.mkdtemp()}/sweep.db"
    t_all = time.perf_counter()
    outcomes = process_map(run_variant_task, [VariantTask(str(store.root), v, trials, url) for v in chosen])
    total = time.perf_counter() - t_all
    per: list[dict[str, object]] = []
    for out in outcomes:
        res = out.result
        if res is None:
            per.append({"variant": out.variant, "skipped": out.error})
            continue
        per.append({"variant": out.variant, "rows": int(res.folds["train_rows"].max() + res.folds["test_rows"].max()),
                    "seconds": round(res.oos.get("seconds", 0.0), 2), "trials": res.n_trials, "pruned": res.n_pruned,
                    "oos_balanced_accuracy": round(res.oos["balanced_accuracy"], 4)})  # fmt: skip
    done = [r for r in per if "seconds" in r]
    n_trials = sum(int(r["trials"]) for r in done)  # type: ignore[call-overload]
    pruned = sum(int(r["pruned"]) for r in done)  # type: ignore[call-overload]
    return {"variants": len(done), "trials_per_variant": trials, "workers": worker_count(len(chosen)),
            "seconds": round(total, 1), "trials_per_second": round(n_trials / total, 3) if total else None,
            "pruned_fraction": round(pruned / n_trials, 3) if n_trials else None, "target_seconds_all_27": 600,
            "load_average": os.getloadavg(), "per_variant": per}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--variants", default="")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--overhead-rows", type=int, default=20_000)
    args = ap.parse_args()
    out: dict[str, object] = {"overhead": overhead(args.overhead_rows, 100, 5, 3)}
    if not args.skip_sweep:
        out["sweep"] = sweep(args.trials, [v for v in args.variants.split(",") if v] or None)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
