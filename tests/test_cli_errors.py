"""The CLI says no: a mistake gets one clear line on stderr (with a hint where one helps) and exit code 2, before any
run starts; the traceback only with --debug."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_assets import cli
from lake_assets.specs import SpecError, load_universe


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--instruments", "NOPEUSDT"], "unknown instrument NOPEUSDT"),
        (["--instruments", "BTCUSDT-PREP"], "did you mean BTCUSDT-PERP?"),
        (["--instruments", "bad/id"], "invalid instrument id 'bad/id'"),
        (["--months", "2031-01"], "no partition exists for any instrument in 2031-01"),
        (["--instruments", "BTCUSDT-PERP", "--months", "2025-06"], "no partition exists for BTCUSDT-PERP in 2025-06"),
        (["--months", "foo..bar"], "'foo' is not a month"),
        (["--months", "2026-05..2026-01"], "is reversed"),
        (["--select", "barz"], "unknown asset(s): barz (did you mean bars?)"),
    ],
)
def test_materialize_refuses_mistakes_in_one_line(
    data_root: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert cli.main(["materialize", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("qlake materialize: ") and says in err[0], err
    assert not any("Traceback" in line for line in err)
    assert not (data_root / "lake").exists()  # nothing ran


def test_errors_show_a_traceback_only_with_debug(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sql", "selec 1"]) != 0
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(Exception):  # noqa: B017 (whatever DuckDB raises, it reaches the caller)
        cli.main(["sql", "selec 1", "--debug"])


def test_a_date_that_does_not_exist_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "universe.yaml"
    path.write_text("instruments:\n  - {id: AAA, vendor: synthetic, market: spot, start: 2026-13-45}\n")
    with pytest.raises(SpecError) as err:
        load_universe(path)
    assert err.value.key == "instruments.0.start" and "2026-13-45" in str(err.value) and str(path) in str(err.value)


def test_a_killed_qlake_run_is_marked_failed_by_the_next_qlake(data_root: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import dagster as dg

    cli._dagster_home()
    cmd = [sys.executable, "-m", "lake_assets.cli", "materialize", "--select", "raw_ohlcv,bars",
           "--instruments", "BTCUSDT-PERP", "--months", "2026-01..2026-10"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    instance = dg.DagsterInstance.get()
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    deadline = time.monotonic() + 120
    while not instance.get_run_records(started):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # killed mid-run: its run would stay STARTED forever
    proc.wait(timeout=30)
    [record] = instance.get_run_records(started)
    assert cli.fail_orphaned_runs(instance) == [record.dagster_run.run_id]
    assert instance.get_run_by_id(record.dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert cli.fail_orphaned_runs(instance) == []  # and only once
