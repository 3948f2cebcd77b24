"""Several kinds of hostile strategy files next to good ones: every good strategy's backtest still runs end to end,
each bad one fails only its own `has_data` check, and no hostile rule text runs or writes anything.

tests/backtests/test_spec_isolation.py covers one invalid-JSON file next to one good strategy (and spec_errors); this
adds the other ways a strategy file can be hostile, next to two good strategies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_helpers import run_range  # noqa: E402
from small_lake import build_strategy_lake  # noqa: E402

from lake_assets import cli  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402

GOOD = ("rsi_reversal", "sma_crossover")
REPO = Path(__file__).resolve().parents[2]


def hostile_files(marker: Path) -> dict[str, bytes]:
    """stem -> content; a rule that ran as Python would create `marker`."""
    base = json.loads((PROJECT_ROOT / "spec" / "strategies" / "sma_crossover.json").read_text())

    def variant(name: str, **changes: object) -> bytes:
        return json.dumps({**base, "name": name, **changes}).encode()

    cmd = f"__import__('os').system('touch {marker}')"
    return {
        "exploit_rule": variant("exploit_rule", entry_rules={"long": cmd, "short": f"close > 0 and {cmd}"}),
        "huge_rule": variant("huge_rule", entry_rules={"long": "close > 1 and " * 50_000 + "close > 1"}),
        "deep_rule": variant("deep_rule", entry_rules={"long": "(" * 5_000 + "close > 1" + ")" * 5_000}),
        "unknown_indicator": variant("unknown_indicator", entry_rules={"long": "EVAL(close) > 1"}),
        "bad_parameter": variant("bad_parameter", parameters={"fast": {"type": "int", "default": "1e400"}}),
        "wrong_types": variant("wrong_types", entry_rules=["not", "a", "mapping"], sizing="all of it"),
        "binary": b"\x00\xff\xfe" * 100,
        "empty": b"",
        "not_an_object": b"[1, 2, 3]",
    }


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    spec_copy = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec_copy)
    for p in (spec_copy / "strategies").glob("*.json"):
        if p.stem not in GOOD:
            p.unlink()
    marker = tmp_path / "exploit-ran"
    for stem, content in hostile_files(marker).items():
        (spec_copy / "strategies" / f"{stem}.json").write_bytes(content)
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec_copy))
    return spec_copy / "strategies", marker


def test_hostile_strategy_files_leave_every_other_backtest_running(data_root: Path, specs: tuple[Path, Path]) -> None:
    folder, marker = specs
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True,
                            cwd=REPO, check=True).stdout  # fmt: skip
    lake = Lake()
    build_strategy_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    cli.sync_strategies(instance)  # never raises on a bad file: each has its own partition
    keys = sorted(instance.get_dynamic_partitions("strategy"))
    bad = sorted(f"json.{p.stem}" for p in folder.glob("*.json") if p.stem not in GOOD)
    assert set(bad) | {f"json.{g}" for g in GOOD} <= set(keys)
    result = run_range(("backtests",), keys[0], keys[-1], instance, raise_on_error=False)
    assert result.success  # the run itself does not fail: bad partitions are held back by their checks
    evals = {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}
    for good in GOOD:
        key = f"json.{good}"
        assert evals["has_data", key].passed and evals["accounting_identity", key].passed, key
        assert lake.exists("backtests", "metrics", {"strategy": key}), key
    for key in bad:
        check = evals.get(("has_data", key))
        assert check is not None and not check.passed and check.blocking, key
        assert f"{key.removeprefix('json.')}.json" in str(check.metadata["reason"].value), key
        assert not lake.exists("backtests", "metrics", {"strategy": key}), key
    assert not marker.exists()  # no rule text was ever run as code
    assert subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True,
                          cwd=REPO, check=True).stdout == status  # fmt: skip
