"""A model_runs study killed mid-run is continued by the next run: the same study, more trials, trial numbers never
repeated, and the trials the killed process left RUNNING marked FAIL (not counted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_lake import training_frame  # noqa: E402
from resume_run import FEATS, config  # noqa: E402

from lake_assets.models.study import FINISHED, arrays_of, optimise  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]  # the checkout under test, also for the child process


def _finished(url: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def test_killed_study_resumes(tmp_path: Path) -> None:
    url, name = f"sqlite:///{tmp_path / 'optuna.sqlite3'}", "1h.B1.lightgbm@v-f"
    script = str(Path(__file__).with_name("resume_run.py"))
    proc = subprocess.Popen([sys.executable, script, url, name, "200"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while _finished(url, name) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    n_before = sum(t.state in FINISHED for t in before)
    assert n_before >= 4

    study = optimise(config(url, name), arrays_of(training_frame(3000, 0.3), FEATS), n_before + 3)
    after = study.get_trials(deepcopy=False)
    numbers = [t.number for t in after]
    assert len(numbers) == len(set(numbers))  # no duplicate trial numbers
    assert sum(t.state in FINISHED for t in after) == n_before + 3  # the budget counts the finished trials only
    assert min(t.number for t in after if t.number >= len(before)) == len(before)  # numbering continues
    assert not [t for t in after if t.state == optuna.trial.TrialState.RUNNING]
    assert study.study_name == name and len(optuna.get_all_study_names(url)) == 1
