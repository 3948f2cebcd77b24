"""One worker of a shared Optuna study (tests/backtests/test_optuna_shared.py): runs N trials of the `threshold`
strategy on the regime-switch frame against STORAGE and prints one JSON line (its view of the study, and when its own
trials ran). Usage: python optuna_worker.py STORAGE SEED N_TRIALS"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]  # this checkout
from test_strategy_optimise import THRESHOLD, regime_switch_frame  # noqa: E402

from lake_assets.backtests.optimise import optimise, signal_returns  # noqa: E402
from lake_assets.backtests.strategy_spec import StrategySpec, parse_strategy  # noqa: E402

calls: list[float] = []


def timed(frame: pl.DataFrame, spec: StrategySpec) -> np.ndarray:
    calls.append(time.time())
    time.sleep(0.05)  # a trial that takes a moment, so the two workers' trials interleave
    return signal_returns(frame, spec)


def main(storage: str, seed: int, n_trials: int) -> None:
    frame, split = regime_switch_frame()
    res = optimise(frame, parse_strategy(THRESHOLD), end=split, method="optuna", n_trials=n_trials, seed=seed,
                   runner=timed, storage=storage, study_name="shared-threshold")  # fmt: skip
    print(json.dumps({"first": calls[0], "last": calls[-1], "best_params": res.best_params,
                      "best_score": res.best_score, "trials": res.trials["trial"].to_list()}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
