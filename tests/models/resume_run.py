"""Run one model study in this process until killed (the resume test starts it, waits for finished trials, and
kills it with SIGKILL): python resume_run.py <storage url> <study name> <trials>."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_lake import training_frame  # noqa: E402

from lake_assets.models.study import StudyConfig, arrays_of, optimise  # noqa: E402

FEATS = [f"f{i}" for i in range(8)]


def config(url: str, name: str) -> StudyConfig:
    return StudyConfig("1h.B1.lightgbm", "1h", "binary", "lightgbm", 5, 0.4, 2, storage_url=url, study_name=name)


def main() -> None:
    url, name, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    optimise(config(url, name), arrays_of(training_frame(3000, 0.3), FEATS), trials)


if __name__ == "__main__":
    main()
