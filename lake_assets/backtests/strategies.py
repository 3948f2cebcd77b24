"""Which strategies exist and who they are: partition keys (`json.<name>`, `bp_<hex>`), content hashes (what the
strategy sensor compares), and the load errors of strategy files (the `spec_errors` table)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from lake_assets.backtests.strategy_spec import StrategySpec
from lake_assets.discovery.blueprints import Blueprint
from lake_assets.specs import SpecError
from lake_assets.storage.lake import Lake
from lake_assets.tables import SPEC_ERRORS as SPEC_ERRORS_TABLE
from lake_assets.vocabulary import (
    conform,
)

JSON_PREFIX = "json."
BLUEPRINT_PREFIX = "bp_"
MODEL_PREFIX = "model."  # a model the leaderboard kept: model.<variant> (backtests/model_eval.py)


class NoDataError(ValueError):
    """The lake holds nothing to backtest a strategy on; the message names the strategy and the instruments."""


# --- strategy keys ------------------------------------------------------------------------------------------------


def json_key(name: str) -> str:
    """Partition key of a JSON strategy (`json:<name>` is not allowed: keys may not contain `| , [ ]` or `:`)."""
    return f"{JSON_PREFIX}{name}"


def parse_key(key: str) -> tuple[str, str]:
    """('json', name), ('blueprint', blueprint_id) or ('model', variant); anything else is an error naming the key."""
    if key.startswith(JSON_PREFIX) and len(key) > len(JSON_PREFIX):
        return "json", key[len(JSON_PREFIX) :]
    if key.startswith(BLUEPRINT_PREFIX):
        return "blueprint", key
    if key.startswith(MODEL_PREFIX) and len(key) > len(MODEL_PREFIX):
        return "model", key[len(MODEL_PREFIX) :]
    raise ValueError(f"strategy key {key!r}: expected 'json.<name>', 'bp_<hex>' or 'model.<variant>'")


EVIDENCE_DIGITS = 10  # significant digits of a blueprint's evidence floats that count towards its content hash


def _rounded(value: Any) -> Any:
    """`value` (JSON data) with every float rounded to EVIDENCE_DIGITS significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{EVIDENCE_DIGITS}g}") if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def content_hash(obj: StrategySpec | Blueprint) -> str:
    """Hash of everything a backtest of this strategy depends on in its definition (evidence included).

    A blueprint is hashed from its definition, ids, name and spec hash exactly, and its evidence (statistics
    discovery measured, which no rule reads) with floats rounded to EVIDENCE_DIGITS significant digits: float
    noise in a re-estimate (1e-15) cannot give an unchanged strategy a new identity and re-run its backtest.
    """
    if isinstance(obj, StrategySpec):
        text = obj.model_dump_json()
    else:
        data = obj.model_dump(mode="json")
        data["evidence"] = _rounded(data["evidence"])
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Materialization metadata of each `backtests` / `walkforward` partition: the content hash of the strategy it was
# computed from. strategy_sensor compares it with the current hash to decide what needs a run.
STRATEGY_HASH = "strategy_hash"


def spec_errors(specs: Mapping[str, StrategySpec]) -> dict[str, SpecError]:
    """Partition key -> SpecError of every strategy file that failed to load (`load_strategies(...).errors`)."""
    return {json_key(name): err for name, err in getattr(specs, "errors", {}).items()}


def error_hash(err: SpecError) -> str:
    """The content hash of a strategy file that failed to load: of its error (file, key, problem), so a fix or a
    new error is a change the sensor acts on, and an unchanged bad file is not run again."""
    return hashlib.sha256(f"spec error\n{err}".encode()).hexdigest()[:16]


def record_spec_errors(store: Lake, specs: Mapping[str, StrategySpec]) -> pl.DataFrame:
    """Replace the lake table `quality/spec_errors` with the load errors of `specs` (none: the table is removed,
    its view is empty). The `backtests` asset is its one writer, on every run; returns the rows written."""
    now = datetime.now(UTC)
    rows = [
        {"file": err.file, "key": err.key, "problem": err.problem, "strategy": key, "seen_at": now}
        for key, err in spec_errors(specs).items()
    ]
    frame = conform(pl.DataFrame(rows, schema=SPEC_ERRORS_TABLE.schema), SPEC_ERRORS_TABLE.schema)
    store.write(frame if rows else pl.DataFrame(), SPEC_ERRORS_TABLE.group, SPEC_ERRORS_TABLE.name)
    return frame


def strategy_catalog(
    specs: Mapping[str, StrategySpec], blueprints: Sequence[Blueprint], models: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every strategy partition key -> content hash (JSON specs, blueprints, then the models the leaderboard kept:
    `model_eval.kept_models`), sorted by key.

    A strategy file that failed to load (in `specs.errors`, see `load_strategies`) keeps its partition, hashed from
    its error, so its `backtests` partition can report the error as a failed `spec_valid` check.
    """
    out = {json_key(name): content_hash(spec) for name, spec in specs.items()}
    out.update({key: error_hash(err) for key, err in spec_errors(specs).items() if key not in out})
    out.update({bp.blueprint_id: content_hash(bp) for bp in blueprints})
    out.update(models or {})
    return dict(sorted(out.items()))


