"""A shared Optuna study: two worker processes run trials of one study in parallel through a Postgres storage
(a throwaway local cluster, tests/services.py); the study holds both workers' trials and the last result reports the
study's best. Without `storage` nothing changes (tests/backtests/test_strategy_optimise.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from lake_assets.settings import PROJECT_ROOT

WORKER = Path(__file__).with_name("optuna_worker.py")
N = 8


@pytest.mark.timeout(180)
def test_two_processes_run_trials_of_one_study(postgres: Any) -> None:
    url = postgres.create_database("optuna_shared")
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(seed), str(N)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )  # fmt: skip
        for seed in (1, 2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=150)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    a, b = outs
    assert a["first"] < b["last"] and b["first"] < a["last"], "the two workers' trials did not overlap in time"

    study = optuna.load_study(study_name="shared-threshold", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 * N and {t.number for t in trials} == set(range(2 * N))
    assert all("qlake" in t.user_attrs for t in trials)
    last = max(outs, key=lambda o: o["last"])  # the worker that finished last saw every trial
    assert sorted(last["trials"]) == list(range(2 * N))
    best = study.best_trial
    assert last["best_params"]["thr"] == pytest.approx(best.params["thr"])
    assert last["best_score"] == pytest.approx(best.value)


def test_keep_returns_needs_the_in_memory_study() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_strategy_optimise import THRESHOLD, regime_switch_frame

    from lake_assets.backtests.optimise import optimise
    from lake_assets.backtests.strategy_spec import parse_strategy

    frame, split = regime_switch_frame()
    with pytest.raises(ValueError, match="in-memory study"):
        optimise(frame, parse_strategy(THRESHOLD), end=split, method="optuna", storage="sqlite://", keep_returns=True)
