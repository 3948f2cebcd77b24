"""A bad strategy file holds back only itself: next to a good spec, `backtests` runs the good one, fails the bad
one's `has_data` check naming file, key and problem, lists it in the `spec_errors` view, and a raw-only
`qlake materialize` does not notice it."""

from __future__ import annotations

import shutil
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
from lake_assets.storage.check_failures import read_failures  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.storage.warehouse import query  # noqa: E402

GOOD, BAD = "json.rsi_reversal", "json.broken"
BROKEN = '{"name": "broken",\n "description": }'


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of spec/ whose strategies are rsi_reversal and an invalid broken.json."""
    spec_copy = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec_copy)
    for p in (spec_copy / "strategies").glob("*.json"):
        if p.stem != "rsi_reversal":
            p.unlink()
    (spec_copy / "strategies" / "broken.json").write_text(BROKEN)
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec_copy))
    return spec_copy / "strategies"


def run_backtests(instance: dg.DagsterInstance, keys: list[str]) -> dg.ExecuteInProcessResult:
    return run_range(("backtests",), keys[0], keys[-1], instance, raise_on_error=False)


def test_backtests_fail_only_the_bad_partition(data_root: Path, specs: Path) -> None:
    lake = Lake()
    build_strategy_lake(lake)
    instance = dg.DagsterInstance.ephemeral()
    cli.sync_strategies(instance)  # does not raise; the bad file has a partition
    keys = sorted(instance.get_dynamic_partitions("strategy"))
    assert GOOD in keys and BAD in keys
    result = run_backtests(instance, [BAD, GOOD])
    assert result.success
    evals = {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}
    assert evals["has_data", GOOD].passed and evals["accounting_identity", GOOD].passed
    bad = evals["has_data", BAD]
    assert not bad.passed and bad.blocking
    reason = str(bad.metadata["reason"].value)
    assert "broken.json" in reason and "line 2 column 17" in reason and "not valid JSON" in reason
    assert lake.exists("backtests", "metrics", {"strategy": GOOD})
    assert not lake.exists("backtests", "metrics", {"strategy": BAD})
    assert read_failures(lake, "backtests").select("partition", "check_name").rows() == [(BAD, "has_data")]

    rows = query("select file, key, problem, strategy, seen_at from spec_errors").to_dicts()
    assert len(rows) == 1 and rows[0]["seen_at"] is not None
    assert rows[0]["file"] == str(specs / "broken.json") and rows[0]["key"] == "line 2 column 17"
    assert rows[0]["strategy"] == BAD and "not valid JSON" in rows[0]["problem"]

    (specs / "broken.json").unlink()  # fixed (removed): the next backtests run clears the table
    assert run_backtests(instance, [GOOD]).success
    assert query("select count(*) as n from spec_errors")["n"].to_list() == [0]


def test_raw_only_materialize_ignores_a_bad_strategy_file(data_root: Path, specs: Path) -> None:
    assert (specs / "broken.json").is_file()
    assert cli.main(["materialize", "--select", "raw_ohlcv", "--instruments", "BTCUSDT", "--months", "2026-01"]) == 0
    assert Lake().exists("raw", "raw_ohlcv", {"instrument": "BTCUSDT", "month": "2026-01"})
