"""The workbench_run job from the UI: the launchpad shows the job pre-filled with spec/workbench/example_run.yaml
(headless Chromium, screenshot), its "Launch Run" button starts a run with that default config, which succeeds,
writes its run directory and its run_history row, and records a run_history materialization with the Markdown
comparison.

The instance here launches runs directly (DefaultRunCoordinator): qlake's dagster.yaml queues them for the daemon,
which this test does not start; everything else is as `qlake` writes it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from test_webserver import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Webserver,
    running_webserver,
    screenshot,
    wait_for_location,
)

from lake_assets.event_log import dagster_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workbench"))
from spx_lake import write_spx_lake  # noqa: E402

RUN_TIMEOUT_S = 600  # the run worker imports the whole graph on a shared 2-core machine
MATERIALIZATIONS = ('{ assetOrError(assetKey: {path: ["run_history"]}) { ... on Asset { assetMaterializations '
                    '{ runId metadataEntries { label } } } } }')  # fmt: skip


def _yaml_without_queue() -> str:
    text = dagster_yaml()
    start, end = text.index("run_coordinator:"), text.index("event_log_storage:")
    direct = "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    return text[:start] + direct + text[end:]


@pytest.fixture()
def webserver_direct_runs(data_root: Path, tmp_path: Path) -> Iterator[Webserver]:
    write_spx_lake(data_root)
    with running_webserver(_yaml_without_queue(), tmp_path / "webserver.log") as server:
        yield server


@pytest.mark.timeout(1500)  # webserver start-up, then a run worker that imports the whole graph
def test_launchpad_default_config_and_a_launched_run(webserver_direct_runs: Webserver, data_root: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    server = webserver_direct_runs
    entry = wait_for_location(server)
    location = entry["name"]
    assert server.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(120_000)
            page.goto(f"{server.url}/locations/__repository__@{location}/jobs/workbench_run/playground",
                      wait_until="domcontentloaded")  # fmt: skip
            page.wait_for_function("() => document.body.innerText.includes('spx_blend')")  # the pre-filled config
            text = page.evaluate("() => document.body.innerText")
            assert "run_workbench" in text and "initial_capital" in text and "No errors" in text
            shot = screenshot(page, tmp_path / "workbench-launchpad.png")
            page.get_by_role("button", name="Launch Run").click()
            page.wait_for_url("**/runs/*")
            run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = ""
    while status not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}:\n{server.log.read_text()[-3000:]}"
        time.sleep(3)
        status = server.graphql(f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["runOrError"][
            "status"]  # fmt: skip
    assert status == "SUCCESS", server.log.read_text()[-4000:]

    runs = [p for p in (data_root / "runs").iterdir() if (p / "results.json").is_file()]
    assert len(runs) == 1 and runs[0].name.startswith("spx_blend-")
    results = json.loads((runs[0] / "results.json").read_text())
    assert (data_root / "lake" / "workbench" / "run_history" / f"run={results['run_id']}" / "part-0.parquet").is_file()
    from lake_assets.storage.warehouse import query

    assert query(f"select count(*) from run_history where run_id = '{results['run_id']}'").item() == 1
    mats = server.graphql(MATERIALIZATIONS)["assetOrError"]["assetMaterializations"]
    assert any(m["runId"] == run_id and "compare" in {e["label"] for e in m["metadataEntries"]} for m in mats)
