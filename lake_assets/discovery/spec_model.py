"""The discovery spec: global defaults, multiplicity families and gates, validated once and hashed together.

Every discovery output carries `spec_hash`; consumers call `require_current_spec` so a frame computed under other
gates, costs or horizons is refused instead of silently mixed with current results.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field, field_validator, model_validator

from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, read_yaml, spec_hash, validate_model
from lake_assets.vocabulary import TIMEFRAMES

GLOBAL_DEFAULTS_FILE = "global_defaults.yaml"
FAMILIES_FILE = "multiplicity/families.yaml"
GATES_FILE = "gates.yaml"
SPEC_FILES = (GLOBAL_DEFAULTS_FILE, FAMILIES_FILE, GATES_FILE)

SPEC_HASH_COL = "spec_hash"
STATE_ALL = "all"
# the snooping gates (spa, stepm) run last: SPA / StepM bootstrap the set that passed every other gate
GATE_NAMES = ("sample", "fdr", "economic", "conservative", "stability", "state_information", "spa", "stepm")
SNOOPING_GATES = ("spa", "stepm")
INSTRUMENT_CLASSES = ("crypto", "equity")


# --- global_defaults.yaml ------------------------------------------------------------------------


class BaselineSettings(StrictModel):
    """Random-entry baseline: per trade, `draws_per_trade` entries on the same instrument at the same time of day
    (UTC) on random bars of the same window, traded in the same direction over the same horizon."""

    draws_per_trade: int = Field(default=20, ge=1)
    seed: int = 20240601
    match: Literal["time_of_day"] = "time_of_day"


class DiscoverySettings(StrictModel):
    entry_lag_bars: int = 1
    horizons_bars: dict[str, tuple[int, ...]]
    estimator: Literal["non_overlapping"] = "non_overlapping"
    standard_error: Literal["newey_west_fixed_b", "iid"] = "newey_west_fixed_b"
    baseline: BaselineSettings = BaselineSettings()
    min_samples: int = Field(default=20, ge=2)
    undirected_events: Literal["detection_bar_body"] = "detection_bar_body"

    @field_validator("entry_lag_bars")
    @classmethod
    def _lag(cls, v: int) -> int:
        if v < 1:
            raise ValueError(
                f"entry lag must be >= 1 bar (got {v}): the event is known only at the detection bar's close, "
                "so entering at or before it is lookahead"
            )
        return v

    @field_validator("horizons_bars")
    @classmethod
    def _horizons(cls, v: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        for tf, hs in v.items():
            if tf not in TIMEFRAMES:
                raise ValueError(f"unknown timeframe {tf!r}; expected one of {sorted(TIMEFRAMES)}")
            if not hs or any(h < 1 for h in hs) or len(set(hs)) != len(hs):
                raise ValueError(f"horizons for {tf} must be distinct integers >= 1, got {list(hs)}")
        return v


class BridgeSettings(StrictModel):
    holdout_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    holdout_start: date | None = None
    min_holdout_samples: int = Field(default=10, ge=2)
    cost_stress_multipliers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)

    @field_validator("cost_stress_multipliers")
    @classmethod
    def _mults(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(m <= 0 for m in v) or 1.0 not in v:
            raise ValueError(f"cost stress multipliers must be positive and include 1.0, got {list(v)}")
        return tuple(sorted(v))


class ExitSettings(StrictModel):
    atr_period: int = Field(default=14, ge=1)
    stop_loss_atr: float = Field(default=2.0, gt=0)
    take_profit_atr: float = Field(default=3.0, gt=0)


class SizingSettings(StrictModel):
    method: Literal["vol_target", "fixed_fraction"] = "vol_target"
    target_annual_vol: float = Field(default=0.15, gt=0)
    max_leverage: float = Field(default=2.0, gt=0)
    risk_per_trade: float = Field(default=0.005, gt=0, le=1)


class BlueprintSettings(StrictModel):
    exits: ExitSettings = ExitSettings()
    sizing: SizingSettings = SizingSettings()
    # State-conditioned rows of one effect are one trade idea: of the rows that passed the bridge, one blueprint per
    # (event type, instrument, direction, horizon) -- its lowest q, then best holdout after-cost -- at most `max_total`.
    one_per_effect: bool = True
    max_total: int = Field(default=12, ge=1)


class SnoopingSettings(StrictModel):
    reps: int = Field(default=500, ge=50)
    block_size: int = Field(default=10, ge=1)
    bootstrap: Literal["stationary", "circular", "moving block"] = "stationary"
    seed: int = 20240601
    period: str = "1d"


class GlobalDefaults(StrictModel):
    discovery: DiscoverySettings
    bridge: BridgeSettings = BridgeSettings()
    blueprints: BlueprintSettings = BlueprintSettings()
    snooping: SnoopingSettings = SnoopingSettings()


# --- multiplicity/families.yaml ------------------------------------------------------------------


class FdrSettings(StrictModel):
    # bb: Benjamini-Bogomolov two-stage (Simes-BH across groups, then BH within selected groups at q R/G);
    # bh / by: the old per-group procedures (no control across groups), kept for comparison
    method: Literal["bb", "bh", "by"] = "bb"
    group_by: tuple[str, ...] = ("family", "event_type", "verb", "horizon")

    @field_validator("group_by")
    @classmethod
    def _keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {"family", "event_type", "verb", "template", "horizon", "instrument", "timeframe", "state_col"}
        bad = [k for k in v if k not in allowed]
        if bad:
            raise ValueError(f"unknown FDR group key(s) {bad}; allowed {sorted(allowed)}")
        return v


class RuleTemplate(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    verb: Literal["continuation", "reversal"]


class StateSettings(StrictModel):
    include_all: bool = True
    columns: tuple[str, ...] = ("vol_regime", "carry_state", "session", "trend_state")


class ShrinkageSettings(StrictModel):
    cell_by: tuple[str, ...] = ("timeframe", "horizon", "template")


class Families(StrictModel):
    fdr: FdrSettings = FdrSettings()
    rule_templates: tuple[RuleTemplate, ...]
    states: StateSettings = StateSettings()
    shrinkage: ShrinkageSettings = ShrinkageSettings()

    @model_validator(mode="after")
    def _unique(self) -> Families:
        names = [t.name for t in self.rule_templates]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"rule template names must be present and unique, got {names}")
        return self


# --- gates.yaml ----------------------------------------------------------------------------------


class CostModel(StrictModel):
    fee_bps: float = Field(ge=0)
    spread_bps: float = Field(ge=0)
    slippage_bps: float = Field(ge=0)

    @property
    def round_trip_bps(self) -> float:
        """Two sides, each paying the fee, half the quoted spread and slippage."""
        return 2.0 * (self.fee_bps + self.spread_bps / 2.0 + self.slippage_bps)


class GateThresholds(StrictModel):
    max_q_value: float = Field(default=0.05, gt=0, le=1)
    min_after_cost_bps: float = 0.0
    min_state_weight: float = Field(default=0.2, ge=0, le=1)
    require_stable_sign: bool = True
    max_spa_pvalue: float = Field(default=0.05, gt=0, le=1)
    require_stepm: bool = True


class GateOverride(StrictModel):
    max_q_value: float | None = Field(default=None, gt=0, le=1)
    min_after_cost_bps: float | None = None
    min_state_weight: float | None = Field(default=None, ge=0, le=1)
    require_stable_sign: bool | None = None
    max_spa_pvalue: float | None = Field(default=None, gt=0, le=1)
    require_stepm: bool | None = None


class SnoopingGates(StrictModel):
    # family-wise size of the Romano-Wolf StepM step-down (a model is superior when rejected at this size)
    stepm_size: float = Field(default=0.05, gt=0, lt=1)


class Tracks(StrictModel):
    fallback_requires: tuple[str, ...] = ("sample", "fdr", "economic")

    @field_validator("fallback_requires")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [g for g in v if g not in GATE_NAMES]
        if bad:
            raise ValueError(f"unknown gate(s) {bad}; gates are {list(GATE_NAMES)}")
        return v


class Gates(StrictModel):
    costs: dict[Literal["crypto", "equity"], CostModel]
    conservative_cost_multiplier: float = Field(default=2.0, ge=1.0)
    defaults: GateThresholds = GateThresholds()
    overrides: dict[str, GateOverride] = Field(default_factory=dict)
    snooping: SnoopingGates = SnoopingGates()
    tracks: Tracks = Tracks()

    @model_validator(mode="after")
    def _both_classes(self) -> Gates:
        missing = [c for c in INSTRUMENT_CLASSES if c not in self.costs]
        if missing:
            raise ValueError(f"costs must be given for every instrument class; missing {missing}")
        return self

    def thresholds_for(self, event_type: str) -> GateThresholds:
        over = self.overrides.get(event_type)
        if over is None:
            return self.defaults
        return self.defaults.model_copy(update=over.model_dump(exclude_none=True))


# --- the whole spec ------------------------------------------------------------------------------


class DiscoverySpec(StrictModel):
    defaults: GlobalDefaults
    families: Families
    gates: Gates
    spec_hash: str
    root: str

    @property
    def templates(self) -> tuple[RuleTemplate, ...]:
        return self.families.rule_templates


def _load(model: type[BaseModel], root: Path, rel: str) -> Any:
    path = root / rel
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(path, "<root>", "expected a mapping")
    return validate_model(model, data, path)


def load_discovery_spec(root: Path | None = None) -> DiscoverySpec:
    """Read and validate the three discovery spec files; the hash covers exactly these files."""
    root = (root or spec_dir()).resolve()
    return DiscoverySpec(
        defaults=_load(GlobalDefaults, root, GLOBAL_DEFAULTS_FILE),
        families=_load(Families, root, FAMILIES_FILE),
        gates=_load(Gates, root, GATES_FILE),
        spec_hash=spec_hash(*SPEC_FILES, root=root),
        root=str(root),
    )


class SpecHashMismatchError(ValueError):
    """A research frame computed under another version of the discovery spec."""


def require_current_spec(frame: pl.DataFrame, spec: DiscoverySpec, what: str) -> None:
    """Refuse `frame` unless every row carries the current discovery spec hash."""
    if SPEC_HASH_COL not in frame.columns:
        raise SpecHashMismatchError(f"{what}: no `{SPEC_HASH_COL}` column; it was not produced by qlake discovery")
    found = sorted(h for h in frame[SPEC_HASH_COL].unique().to_list() if h is not None)
    if frame.height and found != [spec.spec_hash]:
        raise SpecHashMismatchError(
            f"{what} were computed with spec hash {found} but the current discovery spec "
            f"({', '.join(SPEC_FILES)} under {spec.root}) hashes to {spec.spec_hash!r}; "
            f"re-materialize {what} so results and spec agree"
        )
