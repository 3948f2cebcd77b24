"""Runs the research chain (hypotheses -> candidates -> bridge -> blueprints) on fixed synthetic inputs and writes
every output with the lake writer, for test_determinism (in-process, and as `python determinism_run.py <dir>` in
subprocesses with different POLARS_MAX_THREADS: polars reads it once, at import)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from discovery_synth import CLASSES, EventKind, simulate  # noqa: E402

from lake_assets.backtests.strategies import content_hash  # noqa: E402
from lake_assets.discovery.blueprints import strategy_blueprints, write_blueprints_jsonl  # noqa: E402
from lake_assets.discovery.bridge import bridge_evaluation  # noqa: E402
from lake_assets.discovery.candidates import phase2_candidates  # noqa: E402
from lake_assets.discovery.hypotheses import aggregate_hypotheses, trade_samples  # noqa: E402
from lake_assets.discovery.spec_model import load_discovery_spec  # noqa: E402
from lake_assets.settings import PROJECT_ROOT  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402

# three families of several event types (some with a planted effect, one that fades) over three instruments: enough
# groups at every shrinkage level for polars to aggregate them in varying orders, and promoted candidates for SPA
KINDS = [
    EventKind(f"E{i}", f"fam_{i % 3}", "mixed", 0.01, effect_bps=45.0 if i % 3 == 0 else 0.0,
              effect_until=0.6 if i == 3 else 1.0)
    for i in range(8)
]  # fmt: skip
INSTRUMENTS = ("AAA", "BBB", "CCC")
OUTPUTS = ("phase2_hypotheses", "phase2_candidates", "bridge_evaluation")


def run(out: Path, shuffle_seed: int | None = None) -> dict[str, str]:
    """Write the outputs under `out` (lake + blueprints.jsonl); blueprint id -> content hash. `shuffle_seed`
    shuffles the hypotheses' rows before the candidates are built (the result must not depend on their order)."""
    spec = load_discovery_spec(PROJECT_ROOT / "spec")
    bars, events = simulate(21, KINDS, instruments=INSTRUMENTS, n_bars=15_000)
    samples = trade_samples(events, bars, spec, CLASSES)
    hyp = aggregate_hypotheses(samples.filter(pl.col("window") == "discovery"), spec)
    lake = Lake(out / "lake")
    lake.write(hyp, "discovery", "phase2_hypotheses")
    if shuffle_seed is not None:
        hyp = hyp.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
    cands = phase2_candidates(hyp, spec, samples=samples.filter(pl.col("window") == "discovery"))
    lake.write(cands, "discovery", "phase2_candidates")
    bridge = bridge_evaluation(cands, events, bars, spec, CLASSES)
    lake.write(bridge, "discovery", "bridge_evaluation")
    blueprints = strategy_blueprints(bridge, spec)
    write_blueprints_jsonl(blueprints, out / "blueprints.jsonl")
    return {bp.blueprint_id: content_hash(bp) for bp in blueprints}


def files(out: Path) -> dict[str, bytes]:
    """Every output file under `out` by relative path -> its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    print(json.dumps(run(target)))
