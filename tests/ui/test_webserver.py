"""The Dagster UI end to end: the webserver loads the workspace, GraphQL reports the code location loaded, and the
global asset graph renders the assets in headless Chromium. Loopback only; every wait is bounded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from lake_assets.event_log import dagster_yaml
from lake_assets.settings import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
STARTUP_TIMEOUT_S = 180  # loading the code location imports the whole graph: slow on a shared 2-core machine
WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


RAW_ASSETS = ("raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades")
CLEANED_ASSETS = ("bars", "bars_1h", "bars_1d")


def screenshot(page: Page, path: Path) -> Path:
    page.wait_for_timeout(500)  # let the graph layout settle
    page.screenshot(path=str(path), full_page=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback URL built here)
        return json.loads(resp.read())


class Webserver:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def graphql(self, query: str) -> dict[str, Any]:
        answer = http(f"{self.url}/graphql", {"query": query})
        assert "errors" not in answer, answer
        return dict(answer["data"])


@contextlib.contextmanager
def running_webserver(yaml: str, log: Path) -> Iterator[Webserver]:
    """`dagster-webserver` on this project's workspace and $DAGSTER_HOME (with `yaml` as its dagster.yaml), on a free
    port, until the block ends (its process group is stopped, so its code servers and run workers are too)."""
    home = Path(os.environ["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text(yaml)
    port = free_port()
    binary = Path(sys.executable).parent / "dagster-webserver"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT,
            env=os.environ.copy(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the finalizer reaches its children too
        )
    server = Webserver(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"webserver exited:\n{log.read_text()[-4000:]}"
            try:
                info = http(f"{server.url}/server_info", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"no /server_info:\n{log.read_text()[-4000:]}"
                time.sleep(0.5)
        assert "dagster_webserver_version" in info, info
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture()
def webserver(data_root: Path, tmp_path: Path) -> Iterator[Webserver]:
    with running_webserver(dagster_yaml(), tmp_path / "webserver.log") as server:  # the yaml `qlake` writes
        yield server


def wait_for_location(server: Webserver, timeout_s: float = STARTUP_TIMEOUT_S) -> dict[str, Any]:
    """The location entry once it stopped LOADING (the webserver answers before the code location has loaded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        [entry] = workspace["locationEntries"]
        if entry["loadStatus"] == "LOADED":
            return dict(entry)
        assert time.monotonic() < deadline, entry
        time.sleep(1)


def test_webserver_loads_the_location_and_renders_the_asset_graph(webserver: Webserver, tmp_path: Path) -> None:
    entry = wait_for_location(webserver)
    assert entry["name"] == "lake_assets.definitions"
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry["locationOrLoadError"]

    assets = webserver.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    groups = {a["assetKey"]["path"][-1]: a["groupName"] for a in assets}
    assert groups["raw_ohlcv"] == "raw" and groups["bars"] == "cleaned"

    # the community sign-up modal of a fresh instance would cover the graph in the screenshots
    assert webserver.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    location = entry["name"]
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(90_000)
            # global lineage: the layers appear as (collapsed) group nodes
            page.goto(f"{webserver.url}/asset-groups", wait_until="domcontentloaded")
            page.wait_for_function("() => document.body.innerText.includes('Global asset lineage')")
            for group in ("raw", "cleaned"):
                page.get_by_text(group, exact=True).first.wait_for(state="visible")
            shots.append(screenshot(page, tmp_path / "global-lineage.png"))
            # each layer's graph: its asset nodes by name
            for group, names in (("raw", RAW_ASSETS), ("cleaned", CLEANED_ASSETS)):
                page.goto(f"{webserver.url}/locations/{location}/asset-groups/{group}", wait_until="domcontentloaded")
                for name in names:  # exact: `bars` itself, not only `bars_1h`
                    page.get_by_text(name, exact=True).first.wait_for(state="visible")
                assert "Asset checks" in page.evaluate("() => document.body.innerText")
                shots.append(screenshot(page, tmp_path / f"{group}-graph.png"))
        finally:
            browser.close()
    assert all(shot.stat().st_size > 10_000 and shot.read_bytes().startswith(b"\x89PNG") for shot in shots)
    assert webserver.proc.poll() is None  # the server survived the browser session


def test_each_partition_page_describes_that_partition(webserver: Webserver, tmp_path: Path) -> None:
    """One single-run backfill writes two months of SPX; each partition's page shows its own row count, time range
    and checks, not the run's."""
    import dagster as dg

    from lake_assets.cli import PlannedRun
    from lake_assets.definitions import all_assets, defs

    keys = ("SPX|2017-01", "SPX|2017-02")
    assets = (*RAW_ASSETS, "bars")
    run = PlannedRun("ui", list(assets), keys[0], keys[1])
    result = dg.materialize(all_assets, selection=dg.AssetSelection.assets(*assets), instance=dg.DagsterInstance.get(),
                            resources=defs.resources, tags=run.run_tags())  # fmt: skip
    assert result.success
    expected = {}
    for e in result.get_asset_materialization_events():
        mat = e.materialization
        if mat.asset_key.path == ["bars"]:
            expected[str(mat.partition)] = (mat.metadata["dagster/row_count"].value, mat.metadata["time_range"].value)
    assert set(expected) == set(keys) and expected[keys[0]] != expected[keys[1]]

    entry = wait_for_location(webserver)
    assert webserver.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.set_default_timeout(90_000)
            for key in keys:
                rows, time_range = expected[key]
                url = f"{webserver.url}/assets/bars?view=partitions&partition={urllib.parse.quote(key)}"
                page.goto(url, wait_until="domcontentloaded")
                page.get_by_text(time_range).first.wait_for(state="visible")
                text = page.evaluate("() => document.body.innerText")
                seen[key] = text
                assert time_range in text and key in text
                other = next(k for k in keys if k != key)
                assert expected[other][1] not in text  # nothing of the other partition
                screenshot(page, tmp_path / f"bars-{key.replace('|', '_')}.png")
        finally:
            browser.close()
    assert entry["loadStatus"] == "LOADED"
    for key in keys:  # row counts as the UI prints them
        assert str(expected[key][0]) in seen[key]
