"""process_map: input order, worker-count validation, errors surface, parallel == serial."""


import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake_assets.parallel import process_map, worker_count
from lake_assets.settings import PROJECT_ROOT


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


def _pid_after_nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_parallel_matches_serial_in_input_order(monkeypatch: pytest.MonkeyPatch) -> None:
    items = list(range(7, -1, -1))
    monkeypatch.setenv("QLAKE_WORKERS", "1")
    serial = process_map(_square_or_fail, items)
    parallel = process_map(_square_or_fail, items, workers=2)
    assert serial == parallel == [x * x for x in items]


def test_worker_error_is_raised() -> None:
    with pytest.raises(ValueError, match="negative input -3"):
        process_map(_square_or_fail, [1, -3, 2], workers=2)


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLAKE_WORKERS", "4")
    assert worker_count(10) == 4
    assert worker_count(2) == 2
    assert worker_count(0) == 1
    monkeypatch.setenv("QLAKE_WORKERS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        worker_count(3)
    monkeypatch.setenv("QLAKE_WORKERS", "two")
    with pytest.raises(ValueError, match="whole number"):
        worker_count(3)


def test_unguarded_script_is_not_rerun_by_workers(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
        "from lake_assets.parallel import process_map\n"
        "from lake_assets.backtests.strategies import parse_key\n"
        "print('MAIN BODY RUNS')\n"
        "print(process_map(parse_key, ['json.a', 'bp_1', 'json.b'], workers=2))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.count("MAIN BODY RUNS") == 1
    assert "('blueprint', 'bp_1')" in out


def test_this_process_and_a_worker_share_the_tasks() -> None:
    pids = process_map(_pid_after_nap, [0.2] * 6, workers=2)
    assert os.getpid() in pids
    assert len(set(pids)) == 2
