"""Strategy blueprints: the data a backtest compiles for each candidate that survived discovery and the bridge.

A blueprint is pure data (never code). Its id is a hash of its definition (event, instrument, state condition,
direction, entry, exits, sizing, costs), so the same definition gets the same id on every run and a changed rule
gets a new one; evidence and spec hash ride along but do not change the id.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field, ValidationError, model_validator

from lake_assets.discovery.bridge import stress_column
from lake_assets.discovery.spec_model import STATE_ALL, DiscoverySpec, load_discovery_spec, require_current_spec
from lake_assets.specs import StrictModel
from lake_assets.storage.lake import Lake

BLUEPRINTS_GROUP, BLUEPRINTS_ASSET = "discovery", "strategy_blueprints"


class StateCondition(StrictModel):
    column: str
    value: str


class EntryRule(StrictModel):
    lag_bars: int = Field(ge=1)  # enter at the open of detection bar + lag_bars
    price: Literal["open"] = "open"


class ExitRules(StrictModel):
    time_stop_bars: int = Field(ge=1)
    stop_loss_atr: float = Field(gt=0)
    take_profit_atr: float = Field(gt=0)
    atr_period: int = Field(ge=1)


class Sizing(StrictModel):
    method: Literal["vol_target", "fixed_fraction"]
    target_annual_vol: float = Field(gt=0)
    max_leverage: float = Field(gt=0)
    risk_per_trade: float = Field(gt=0, le=1)


class Costs(StrictModel):
    instrument_class: Literal["crypto", "equity"]
    fee_bps: float = Field(ge=0)
    spread_bps: float = Field(ge=0)
    slippage_bps: float = Field(ge=0)
    round_trip_bps: float = Field(ge=0)
    conservative_multiplier: float = Field(ge=1)


class Evidence(StrictModel):
    n: int = Field(ge=1)
    raw_effect_bps: float
    shrunk_effect_bps: float
    t_stat: float | None
    t_shrunk: float
    p_value: float = Field(ge=0, le=1)
    q_value: float = Field(ge=0, le=1)
    fdr_method: str
    hit_rate: float = Field(ge=0, le=1)
    family_weight: float
    event_weight: float
    state_weight: float
    after_cost_bps: float
    holdout_n: int = Field(ge=0)
    holdout_mean_bps: float | None
    holdout_after_cost_bps: float | None
    holdout_sign_agrees: bool
    cost_stress_bps: dict[str, float | None]
    dsr: float | None = None
    # configurations discovery tried for this result (every tested hypothesis; see snooping.deflated_sharpe): a
    # walk-forward of the blueprint deflates by search_trials(dsr_n_trials, its own configurations)
    dsr_n_trials: int | None = Field(default=None, ge=1)
    dsr_trial_sr_variance: float | None = None
    spa_pvalue: float | None = None
    stepm_superior: bool | None = None
    t_df: float | None = None
    baseline_mean_bps: float | None = None
    discovery_first_entry: datetime | None = None
    discovery_last_entry: datetime | None = None


class Blueprint(StrictModel):
    blueprint_id: str = Field(pattern=r"^bp_[0-9a-f]{16}$")
    name: str
    event_type: str
    family: str
    instrument: str
    timeframe: str
    template: str
    direction: Literal["with_event", "against_event"]
    undirected_events: Literal["detection_bar_body"] = "detection_bar_body"
    state: StateCondition | None
    entry: EntryRule
    exits: ExitRules
    sizing: Sizing
    costs: Costs
    evidence: Evidence
    spec_hash: str

    @model_validator(mode="after")
    def _id_matches_definition(self) -> Blueprint:
        expected = blueprint_id(self.definition())
        if self.blueprint_id != expected:
            raise ValueError(f"blueprint_id {self.blueprint_id!r} does not match its definition (expected {expected})")
        return self

    def definition(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"blueprint_id", "name", "evidence", "spec_hash"})


def blueprint_id(definition: dict[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return "bp_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _f(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def blueprint_from_row(row: dict[str, Any], spec: DiscoverySpec) -> Blueprint:
    cost = spec.gates.costs[row["instrument_class"]]  # type: ignore[index]
    exits = spec.defaults.blueprints.exits
    state = None if row["state_col"] == STATE_ALL else StateCondition(column=row["state_col"], value=row["state_value"])
    body: dict[str, Any] = {
        "event_type": row["event_type"],
        "family": row["family"],
        "instrument": row["instrument"],
        "timeframe": row["timeframe"],
        "template": row["template"],
        "direction": "with_event" if row["verb"] == "continuation" else "against_event",
        "undirected_events": spec.defaults.discovery.undirected_events,
        "state": state,
        "entry": EntryRule(lag_bars=spec.defaults.discovery.entry_lag_bars),
        "exits": ExitRules(
            time_stop_bars=int(row["horizon"]),
            stop_loss_atr=exits.stop_loss_atr,
            take_profit_atr=exits.take_profit_atr,
            atr_period=exits.atr_period,
        ),  # fmt: skip
        "sizing": Sizing(**spec.defaults.blueprints.sizing.model_dump()),
        "costs": Costs(
            instrument_class=row["instrument_class"],
            fee_bps=cost.fee_bps,
            spread_bps=cost.spread_bps,
            slippage_bps=cost.slippage_bps,
            round_trip_bps=cost.round_trip_bps,
            conservative_multiplier=spec.gates.conservative_cost_multiplier,
        ),  # fmt: skip
    }
    definition = {k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for k, v in body.items()}
    evidence = Evidence(
        n=row["n"], raw_effect_bps=row["raw_effect_bps"], shrunk_effect_bps=row["shrunk_effect_bps"],
        t_stat=_f(row["t_stat"]), t_shrunk=row["t_shrunk"], p_value=row["p_value"], q_value=row["q_value"],
        fdr_method=row["fdr_method"], hit_rate=row["hit_rate"], family_weight=row["family_weight"],
        event_weight=row["event_weight"], state_weight=row["state_weight"], after_cost_bps=row["after_cost_bps"],
        holdout_n=row["holdout_n"], holdout_mean_bps=_f(row["holdout_mean_bps"]),
        holdout_after_cost_bps=_f(row["holdout_after_cost_bps"]),
        holdout_sign_agrees=bool(row["holdout_sign_agrees"]),
        cost_stress_bps={f"{m:g}x": _f(row[stress_column(m)]) for m in spec.defaults.bridge.cost_stress_multipliers},
        dsr=_f(row.get("dsr")), spa_pvalue=_f(row.get("spa_pvalue")), stepm_superior=row.get("stepm_superior"),
        dsr_n_trials=None if row.get("dsr_n_trials") is None else int(row["dsr_n_trials"]),
        dsr_trial_sr_variance=_f(row.get("dsr_trial_sr_variance")), t_df=_f(row.get("t_df")),
        baseline_mean_bps=_f(row.get("baseline_mean_bps")),
        discovery_first_entry=row.get("first_entry_ts"), discovery_last_entry=row.get("last_entry_ts"),
    )  # fmt: skip
    state_txt = "all" if state is None else f"{state.column}={state.value}"
    name = f"{row['event_type']} {row['verb']} {row['instrument']} h{row['horizon']} [{state_txt}]"
    return Blueprint(
        blueprint_id=blueprint_id(definition), name=name, evidence=evidence, spec_hash=row["spec_hash"], **body
    )


EFFECT_KEYS = ("event_type", "instrument", "verb", "horizon")


def select_bridge_rows(bridge: pl.DataFrame, spec: DiscoverySpec) -> pl.DataFrame:
    """The rows that become blueprints: passed the bridge; with `one_per_effect`, the best row (lowest q, then highest
    holdout after-cost expectancy, then id) of each (event type, instrument, verb, horizon); at most `max_total`."""
    settings = spec.defaults.blueprints
    order = ["q_value", "holdout_after_cost_bps", "hypothesis_id"]
    rows = bridge.filter(pl.col("bridge_pass")).sort(order, descending=[False, True, False], nulls_last=True)
    keys = [k for k in EFFECT_KEYS if k in rows.columns]
    if settings.one_per_effect and keys:
        rows = rows.unique(keys, keep="first", maintain_order=True)
    return rows.head(settings.max_total)


def strategy_blueprints(bridge: pl.DataFrame, spec: DiscoverySpec | None = None) -> list[Blueprint]:
    """One blueprint per selected bridge row (`select_bridge_rows`), ordered by id (deterministic)."""
    spec = spec or load_discovery_spec()
    require_current_spec(bridge, spec, "bridge_evaluation")
    rows = select_bridge_rows(bridge, spec).to_dicts()
    blueprints = {bp.blueprint_id: bp for bp in (blueprint_from_row(r, spec) for r in rows)}
    return [blueprints[k] for k in sorted(blueprints)]


def validate_blueprints(blueprints: Iterable[Blueprint], spec: DiscoverySpec | None = None) -> list[Blueprint]:
    """Check ids are unique and every blueprint carries the current spec hash; raise listing every problem."""
    spec = spec or load_discovery_spec()
    items = list(blueprints)
    problems, seen = [], set()
    for bp in items:
        if bp.blueprint_id in seen:
            problems.append(f"{bp.blueprint_id}: duplicate blueprint id")
        seen.add(bp.blueprint_id)
        if bp.spec_hash != spec.spec_hash:
            problems.append(f"{bp.blueprint_id}: spec hash {bp.spec_hash!r} != current {spec.spec_hash!r}")
    if problems:
        raise ValueError("invalid blueprints: " + "; ".join(problems))
    return items


def write_blueprints_jsonl(blueprints: Iterable[Blueprint], path: Path | str) -> Path:
    """Write one JSON object per line atomically (temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for bp in blueprints:
                fh.write(bp.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def blueprints_path(store: Lake) -> Path:
    """Where `strategy_blueprints` keeps its jsonl (read by backtests, the strategy sensor and the report)."""
    return store.asset_dir(BLUEPRINTS_GROUP, BLUEPRINTS_ASSET) / "blueprints.jsonl"


def load_blueprints(store: Lake) -> dict[str, Blueprint]:
    """blueprint_id -> Blueprint from the lake's jsonl; empty before discovery has run."""
    path = blueprints_path(store)
    return {bp.blueprint_id: bp for bp in read_blueprints_jsonl(path)} if path.is_file() else {}


def read_blueprints_jsonl(path: Path | str) -> list[Blueprint]:
    """Parse and validate a blueprints.jsonl; errors name the file, line and problem."""
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Blueprint.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "<root>"
            raise ValueError(f"{path}: line {lineno}: {key}: {err['msg']}") from exc
    return out
