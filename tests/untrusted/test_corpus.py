"""The hostile corpus end to end: a landing folder full of malformed dumps for one trade_files instrument keeps the
landing sensor ticking, every partition it requests exists and materializes, and every data line is accounted for in
SQL (raw_trades + quarantine == lines written); nothing is written outside the test's data root.

The instrument (DUMPUSDT, start 2026-10-01, live) is added to a copied universe; partitions are computed from the
universe when definitions load, so the sensor ticks and the materialization run in fresh processes (as after a code
location reload), each under a write-audit hook (tests/untrusted/write_audit.py). See hostile_corpus.py for the
corpus and the accounting rule (an unreadable file counts as one line: it is quarantined as one row).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_corpus import TOKEN, unreadable_names, write_corpus  # noqa: E402
from write_audit import outside, recording  # noqa: E402

from lake_assets.partitions import instrument_month_key, life_months  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.specs import universe  # noqa: E402
from lake_assets.vendors.trade_files import TradeFilesVendor, life_span, scan_landing  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INST, START = "DUMPUSDT", "2026-10-01"
COPY_MTIME_NS = 1_800_000_000_000_000_000


@pytest.fixture()
def landing(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copied spec/ whose universe also holds DUMPUSDT; temp files of this test and its children go to tmp_path."""
    spec = tmp_path / "spec"
    shutil.copytree(PROJECT_ROOT / "spec", spec)
    data = yaml.safe_load((spec / "universe.yaml").read_text())
    data["instruments"].append(
        {"id": INST, "vendor": "trade_files", "market": "spot", "base_timeframe": "5m", "start": START}
    )
    (spec / "universe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("QLAKE_SPEC_DIR", str(spec))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    return data_root / "landing" / "trade_files"


def audited(tmp_path: Path, name: str, *args: str) -> list[tuple[str, str]]:
    """Run `args` (`-m module ...` or `script ...`) in a fresh process under the write-audit hook; its writes."""
    log = tmp_path / f"audit-{name}.json"
    cmd = [sys.executable, str(HERE / "write_audit.py"), str(log), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(w) for w in json.loads(log.read_text())]  # type: ignore[misc]


def snapshot(tmp_path: Path) -> dict[str, object]:
    """What a write outside the data root would change: the checkout (tracked and untracked, not ignored), the
    pytest base temp dir next to this test's dir, the home dir, and /tmp entries named after the corpus."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    home = Path.home()
    tmp_named = set()
    for top in Path("/tmp").iterdir():
        if top.name.startswith(("pytest-of-", "bash_")):
            continue
        for p in [top, *(top.iterdir() if top.is_dir() and os.access(top, os.R_OK | os.X_OK) else [])]:
            if TOKEN in p.name or INST in p.name:
                tmp_named.add(str(p))
    return {
        "repo": status,
        "basetemp": sorted(p.name for p in tmp_path.parent.iterdir()),
        "home": sorted(p.name for p in home.iterdir()),
        "home_dagster": (home / ".dagster").exists(),
        "tmp_named": sorted(tmp_named),
    }


def test_hostile_dump_keeps_the_sensor_ticking_and_every_line_is_accounted_for(landing: Path, tmp_path: Path) -> None:
    from lake_assets.storage.warehouse import build_catalog, query

    before = snapshot(tmp_path)
    assert INST in universe().ids
    expected_keys = [instrument_month_key(INST, m) for m in life_months(universe().get(INST))]
    assert expected_keys[0] == f"{INST}|2026-10"

    with recording() as writes:
        lines = write_corpus(landing / INST)
        # landing paths that are not the instrument's dumps: never ingested, never a crash
        (landing / "lowercase").mkdir()
        (landing / "lowercase" / "x.csv").write_text("time,price\n")
        (landing / "NOTLISTED").mkdir()
        (landing / "NOTLISTED" / "d.csv").write_text("time,price\n2026-10-01T00:00:00Z,1\n")
        (landing / f"stray {TOKEN}.csv").write_text("time,price\n")
        listing = scan_landing(landing)
        assert sorted(str(f.path) for f in listing.files if f.instrument == INST) == sorted(lines)
        assert {p.path.name for p in listing.rejected} >= {"lowercase", f"stray {TOKEN}.csv", "notes.txt", "nested"}

    good, copy = landing / INST / "good.csv", landing / INST / "good_copy.csv"
    actions = [
        {"tick": None},  # 0: first tick
        {"tick": 0},  # 1: a restart with the saved cursor
        {"tick": None},  # 2: a lost cursor
        {"copy": [str(good), str(copy), COPY_MTIME_NS]},  # a second dump repeating every trade of good.csv
        {"tick": 1},  # 3
        {"tick": 3},  # 4: a restart again
    ]
    (tmp_path / "actions.json").write_text(json.dumps(actions))
    writes += audited(
        tmp_path, "sensor", str(HERE / "sensor_ticks.py"), str(tmp_path / "actions.json"), str(tmp_path / "ticks.json")
    )
    lines[str(copy)] = lines[str(good)]
    out = json.loads((tmp_path / "ticks.json").read_text())
    ticks = out["ticks"]
    assert [t["error"] for t in ticks] == [None] * 5, [t["error"] for t in ticks if t["error"]]
    existing = set(out["partitions"])

    def keys(i: int) -> list[str]:
        return [k for k, _ in ticks[i]["requests"]]

    def run_keys(i: int) -> set[str]:
        return {r for _, r in ticks[i]["requests"]}

    # every existing partition of the instrument (a dump can touch any), each once, nothing that does not exist
    assert sorted(keys(0)) == sorted(expected_keys) and len(keys(0)) == len(set(keys(0)))
    assert set(keys(0)) <= existing
    assert keys(1) == []  # restart: nothing new
    assert run_keys(2) == run_keys(0)  # a lost cursor re-requests under the same run keys (Dagster drops them)
    assert sorted(keys(3)) == sorted(expected_keys) and len(keys(3)) == len(set(keys(3)))  # merged: once each
    assert not run_keys(3) & run_keys(0)
    assert keys(4) == []
    cursor = json.loads(ticks[4]["cursor"])
    assert set(lines) <= set(cursor)  # every dump version is recorded

    months = sorted(k.split("|")[1] for k in keys(3))
    writes += audited(
        tmp_path,
        "materialize",
        "-m",
        "lake_assets.cli",
        "materialize",
        "--select",
        "raw_trades,raw_ohlcv",
        "--instruments",
        INST,
        "--months",
        f"{months[0]}..{months[-1]}",
    )

    with recording() as more:
        build_catalog()
        where = f"instrument = '{INST}'"
        n_trades = query(f"select count(*) as n from raw_trades where {where}")["n"].item()
        q = query(f"select month, source, line, reason from quarantine where {where} and asset = 'raw_trades'")
        # every data line is exactly one raw trade or one quarantine row
        assert n_trades + q.height == sum(lines.values()), (n_trades, q.height, sum(lines.values()))
        assert q.select("source", "line").drop_nulls().is_duplicated().sum() == 0
        # every quarantine row sits in a partition that exists
        assert {instrument_month_key(INST, m) for m in q["month"]} <= set(expected_keys)
        # an unreadable file is one row without a line number, in the first life month
        unreadable = q.filter(q["line"].is_null())
        assert sorted(Path(s).name for s in unreadable["source"]) == sorted(unreadable_names())
        assert set(unreadable["month"]) == {months[0]}
        # out-of-life trades (1995, 2026-09 / 2030, 2027, 2099): before -> the first life month, after -> the last
        before_life = q.filter(q["reason"].str.starts_with("before the instrument's life"))
        after_life = q.filter(q["reason"].str.starts_with("after the instrument's life"))
        assert before_life.height == 3 and set(before_life["month"]) == {months[0]}
        assert after_life.height == 3 and set(after_life["month"]) == {months[-1]}
        # cross-file duplicates: every trade of the copy is quarantined once, none lands twice
        copies = q.filter(q["source"] == str(copy))
        assert copies.height == lines[str(good)] and copies["reason"].str.contains("duplicate").all()
        dupe_ids = query(
            f"select trade_id, count(*) as n from raw_trades where {where} and trade_id is not null "
            "group by trade_id having count(*) > 1"
        )
        assert dupe_ids.is_empty(), dupe_ids
        # the lake agrees with the vendor's own accounting, file by file
        life = life_span(universe().get(INST))
        scan = TradeFilesVendor(landing).scan(INST, *life, life=life)
        assert scan.trades.height == n_trades
        per_file = {f["file"]: f for f in scan.files}
        for path, n in lines.items():
            f = per_file.get(path)
            got = 0 if f is None else f["accepted"] + f["quarantined"]
            assert got == n, (path, f)
        by_source = dict(q.group_by("source").len().iter_rows())
        assert by_source == {s: c for s, c in scan.quarantine.group_by("source").len().iter_rows()}
    writes += more

    # nothing was created outside the data root (this test's tmp dir) by any of it
    assert snapshot(tmp_path) == before
    numba_cache = Path(os.environ.get("NUMBA_CACHE_DIR", REPO / ".numba_cache"))
    assert any(e == "os.rename" and p.startswith(str(landing.parents[1])) for e, p in writes)  # the hook saw the lake
    assert outside(writes, [tmp_path, numba_cache]) == []
