"""Declarative automation over exact partitions, evaluated as the automation sensor does (tick after tick, with its
cursor): nothing to do on a complete lake; a corrected past month reaches exactly the partitions that read it, down
to the event registry; a new instrument in the universe gets its history requested.

Each step runs in a fresh process (tests/sensors/automation_scenario.py) on a small universe: partitions come from
the universe when definitions load, as after a code location reload.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lake_assets.settings import PROJECT_ROOT

SCENARIO = Path(__file__).with_name("automation_scenario.py")
CRYPTO_END = "2026-05-31"  # a short crypto life keeps the scenario small: months 2026-01..2026-05


def write_universe(spec: Path, with_ndx: bool) -> None:
    full = yaml.safe_load((PROJECT_ROOT / "spec" / "universe.yaml").read_text())
    keep = {"BTCUSDT", "BTCUSDT-PERP", "SPX"} | ({"NDX"} if with_ndx else set())
    instruments = [i for i in full["instruments"] if i["id"] in keep]
    for i in instruments:
        if i["vendor"] == "synthetic":
            i["end"] = CRYPTO_END
            i["params"] = {**i.get("params", {}), "trades": False}
    data = {"benchmarks": full["benchmarks"], "instruments": instruments}
    (spec / "universe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture()
def scenario(data_root: Path, tmp_path: Path) -> Any:
    spec = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec)
    write_universe(spec, with_ndx=False)
    state = tmp_path / "state"
    state.mkdir()

    def step(name: str) -> dict[str, Any]:
        env = {**os.environ, "QLAKE_SPEC_DIR": str(spec), "QLAKE_WORKERS": "1"}
        done = subprocess.run([sys.executable, str(SCENARIO), name, str(state)], capture_output=True, text=True,
                              env=env, timeout=600, cwd=PROJECT_ROOT)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    step.spec = spec  # type: ignore[attr-defined]
    return step


def test_automation_follows_any_partition_to_exactly_what_reads_it(scenario: Any) -> None:
    loaded = scenario("load")
    # a complete lake: the sensor's first ticks launch nothing
    assert loaded == {"first_tick": {}, "second_tick": {}}

    corrected = scenario("correct")  # a corrected delivery for SPX|2017-05, a past month
    ticks = corrected["ticks"]
    assert ticks[-1] == {} and len(ticks) <= 4  # it settles
    requested: dict[str, set[str]] = {}
    for tick in ticks:
        for asset, keys in tick.items():
            requested.setdefault(asset, set()).update(keys)
    spx_after = {f"SPX|{y}-{m:02d}" for y in (2017, 2018) for m in range(1, 13) if (y, m) >= (2017, 5)}
    assert requested["bars"] == {"SPX|2017-05"}  # only the corrected month; not the crypto, not other months
    assert requested["bars_1h"] == requested["bars_1d"] == {"SPX|2017-05"}
    # a daily month's features read its whole history (the 8,690-bar warm-up): every later month re-runs
    assert requested["features"] == spx_after
    assert requested["window_embeddings"] == {"SPX|2017-05", "SPX|2017-06", "SPX|2017-07", "SPX|2017-08"}
    assert requested["context_features"] == {k.split("|")[1] for k in spx_after}
    assert len(requested["event_registry"]) == 57  # every event type reads every instrument
    assert not any(k.startswith("BTC") for keys in requested.values() for k in keys)
    assert "raw_ohlcv" not in requested and "market_context" not in requested
    assert corrected["event_registry_updated_after_raw"]

    # editing one event spec (BETA_SHIFT's cooldown) marks stale and re-runs that event type only
    path = scenario.spec / "events" / "BETA_SHIFT.yaml"
    path.write_text(path.read_text().replace("cooldown: 288", "cooldown: 300"))
    edited = scenario("spec_sensor")
    assert edited == {"requested": ["BETA_SHIFT"], "stale": ["BETA_SHIFT"], "failed_in_ui": ["BETA_SHIFT"],
                      "settled": True}  # fmt: skip
    assert scenario("tick")["requested"] == {}  # automation does not re-run anything else for it

    # a new instrument in the universe: its history is requested (raw first, the rest follows by automation)
    write_universe(scenario.spec, with_ndx=True)
    tick = scenario("tick")["requested"]
    ndx = {f"NDX|{y}-{m:02d}" for y in (2017, 2018) for m in range(1, 13)}
    assert set(tick) == {"raw_ohlcv", "raw_funding", "raw_open_interest", "raw_trades"}, tick
    assert all(set(keys) == ndx for keys in tick.values())
