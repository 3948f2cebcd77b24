"""Same inputs and spec -> byte-identical research outputs (hypotheses, candidates, bridge parquet files and
blueprints.jsonl) and identical blueprint content hashes: across calls in one process, with the hypotheses' rows
shuffled, and across processes running polars with 1 and 2 threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from determinism_run import OUTPUTS, files, run

from lake_assets.backtests.strategies import content_hash
from lake_assets.discovery.blueprints import read_blueprints_jsonl
from lake_assets.discovery.shrinkage import SHRINK_COLUMNS, shrink_hierarchical
from lake_assets.discovery.spec_model import load_discovery_spec
from lake_assets.settings import PROJECT_ROOT

SCRIPT = Path(__file__).with_name("determinism_run.py")


def _expected_files() -> set[str]:
    return {f"lake/discovery/{a}/part-0.parquet" for a in OUTPUTS} | {"blueprints.jsonl"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    out = tmp_path_factory.mktemp("reference")
    return out, run(out)


def test_same_inputs_give_byte_identical_outputs(reference: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    ref, first = reference
    second = run(tmp_path / "b")
    shuffled = run(tmp_path / "c", shuffle_seed=7)
    assert first and first == second == shuffled  # blueprints exist, and keep their ids and content hashes
    a, b, c = files(ref), files(tmp_path / "b"), files(tmp_path / "c")
    assert set(a) == _expected_files()
    for name in a:
        assert a[name] == b[name], name
        assert a[name] == c[name], name


def test_thread_count_does_not_change_outputs(tmp_path: Path) -> None:
    hashes = {}
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        env = {**os.environ, "POLARS_MAX_THREADS": str(threads), "PYTHONPATH": str(PROJECT_ROOT)}
        proc = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        hashes[threads] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert hashes[1] and hashes[1] == hashes[2]
    one, two = files(tmp_path / "t1"), files(tmp_path / "t2")
    assert set(one) == _expected_files()
    assert {n for n in one if one[n] != two[n]} == set()
    bps = read_blueprints_jsonl(tmp_path / "t1" / "blueprints.jsonl")
    assert {bp.blueprint_id: content_hash(bp) for bp in bps} == hashes[1]


def test_shrinkage_sums_do_not_depend_on_row_order(reference: tuple[Path, dict[str, str]]) -> None:
    """Every shrinkage column is bit-identical whatever the order of the hypotheses' rows."""
    hyp = pl.read_parquet(reference[0] / "lake" / "discovery" / "phase2_hypotheses" / "part-0.parquet")
    cell_by = load_discovery_spec(PROJECT_ROOT / "spec").families.shrinkage.cell_by
    base = shrink_hierarchical(hyp, cell_by)
    for seed in range(4):
        out = shrink_hierarchical(hyp.sample(fraction=1.0, shuffle=True, seed=seed), cell_by)
        joined = base.join(out, on="hypothesis_id", suffix="_2")
        assert joined.height == base.height
        for col in SHRINK_COLUMNS:
            assert joined[col].equals(joined[f"{col}_2"], null_equal=True), (seed, col)


def test_blueprint_content_hash_ignores_float_noise_in_evidence(reference: tuple[Path, dict[str, str]]) -> None:
    bp = read_blueprints_jsonl(reference[0] / "blueprints.jsonl")[0]
    ev = bp.evidence
    noisy = bp.model_copy(update={"evidence": ev.model_copy(update={
        "shrunk_effect_bps": ev.shrunk_effect_bps * (1 + 3e-16) + 7e-15, "p_value": ev.p_value * (1 + 2e-16),
        "family_weight": ev.family_weight + 1.1e-16})})  # fmt: skip
    assert content_hash(noisy) == content_hash(bp)
    changed = bp.model_copy(update={"evidence": ev.model_copy(update={"n": ev.n + 1})})
    assert content_hash(changed) != content_hash(bp)
    moved = bp.model_copy(update={"evidence": ev.model_copy(update={"shrunk_effect_bps": ev.shrunk_effect_bps + 0.01})})
    assert content_hash(moved) != content_hash(bp)
