"""The workbench's RunConfig: one reproducible research run (data, indicators, blend, tuning, exits, sizing, mode).

A RunConfig is data, never code: it names instruments from spec/universe.yaml, indicators from the feature catalogue
(spec/features, `load_feature_specs`) and blend/tuning settings; every problem is a `SpecError` naming the source
(file or `<run config>`), the dotted field and the problem (end before start, unknown indicator, weights that do not
match the indicators, capital <= 0, ...). The Dagster `workbench_run` job's config mirrors this model field for field
(`workbench/assets.py`) and is validated here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from lake_assets.specs import KeyedSpecError, SpecError, StrictModel, read_yaml, universe, validate_model
from lake_assets.vocabulary import TIMEFRAMES
from lake_assets.workbench.rules import SIGNAL_RULES, indicator_params

VOL_REGIME = "vol_regime"
REGIME_LABELS = ("low", "mid", "high")  # spec/features/returns_volatility.yaml `vol_regime` labels
METRICS = ("sharpe", "sortino", "calmar", "total_return")


class IndicatorUse(StrictModel):
    """One catalogue indicator and its parameters (the indicator's own and its signal rule's, see rules.py)."""

    name: str
    params: dict[str, float] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """A readable id: `RSI(n=14,oversold=30)`."""
        inner = ",".join(f"{k}={_num(v)}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})"


class BlendConfig(StrictModel):
    """weighted: score = sum(w_i * vote_i) / sum|w_i|, long at score >= threshold, short at <= -threshold;
    vote: long when at least k indicators vote long (short likewise); regime: weighted with the weights of the bar's
    `vol_regime` label (low | mid | high); a bar without a regime is flat."""

    method: Literal["weighted", "vote", "regime"] = "weighted"
    weights: list[float] | None = None  # one per indicator (default: equal)
    threshold: float = Field(default=0.5, gt=0, le=1)
    k: int | None = Field(default=None, ge=1)
    regime_weights: dict[str, list[float]] | None = None


class SearchParam(StrictModel):
    """One tuned dimension. target: `<indicator index>.<param>` (e.g. `0.n`), `weight.<i>`, `threshold`, `k`,
    or `regime_weight.<label>.<i>`."""

    target: str
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    choices: list[float] | None = None
    integer: bool = False

    @model_validator(mode="after")
    def _range(self) -> SearchParam:
        if self.choices is None:
            if self.low is None or self.high is None:
                raise ValueError("give `choices` or both `low` and `high`")
            if self.high < self.low:
                raise ValueError(f"high {self.high} is below low {self.low}")
        elif not self.choices:
            raise ValueError("`choices` is empty")
        return self

    def values(self) -> list[float]:
        """The grid of this dimension (choices, or low..high by step; 5 points when no step)."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.step is None:
            pts = [self.low + (self.high - self.low) * i / 4 for i in range(5)]
        else:
            n = int(round((self.high - self.low) / self.step))
            pts = [self.low + i * self.step for i in range(n + 1)]
        pts = [round(p) if self.integer else round(p, 10) for p in pts]
        return list(dict.fromkeys(pts))


class Constraints(StrictModel):
    """Feasibility on the training window; an infeasible trial is recorded with the reason, never dropped."""

    max_drawdown: float | None = Field(default=None, gt=0, le=1)
    min_trades: int | None = Field(default=None, ge=0)
    max_exposure: float | None = Field(default=None, gt=0, le=1)


class TuneConfig(StrictModel):
    enabled: bool = False
    method: Literal["grid", "random", "tpe"] = "tpe"
    n_trials: int = Field(default=30, ge=1, le=2000)
    seed: int = 7
    train_fraction: float = Field(default=0.6, gt=0.1, lt=1)
    metric: Literal["sharpe", "sortino", "calmar", "total_return"] = "sharpe"
    search_space: list[SearchParam] = Field(default_factory=list)
    constraints: Constraints = Field(default_factory=Constraints)
    per_regime: bool = False  # tune regime_weight.<label>.<i> for every label and indicator (method regime)


class ExitConfig(StrictModel):
    stop_loss_pct: float | None = Field(default=None, gt=0, lt=100)
    take_profit_pct: float | None = Field(default=None, gt=0)
    max_holding_bars: int | None = Field(default=None, ge=1)


class SizingConfig(StrictModel):
    size_type: Literal["EQUITY_PERCENT", "NOTIONAL", "UNITS"] = "EQUITY_PERCENT"
    size: float = Field(default=1.0, gt=0)
    max_leverage: float = Field(default=1.0, gt=0)


class OptionsConfig(StrictModel):
    """Options mode: a long signal buys a call, a short one a put (or the vertical spread of each)."""

    structure: Literal["single", "vertical"] = "single"
    strike_by: Literal["moneyness", "delta"] = "moneyness"
    moneyness: float = Field(default=1.0, gt=0.5, lt=1.5)  # strike / spot of a call (a put mirrors: 2 - m)
    delta: float = Field(default=0.5, gt=0.01, lt=0.99)  # |delta| of the bought leg
    spread_width: float = Field(default=0.05, gt=0, lt=0.5)  # vertical: short leg strike this fraction further OTM
    days_to_expiry: int = Field(default=30, ge=2, le=730)
    roll_days: int = Field(default=5, ge=0)  # roll to a new expiry when this few calendar days are left
    rv_window: int = Field(default=20, ge=2)  # realised-vol proxy window (bars)
    vol_risk_premium: float = Field(default=0.02, ge=-0.5, le=1)  # implied = rv + vrp (vol points as a fraction)
    skew: float = Field(default=0.10, ge=-2, le=2)  # implied vol += skew * (1 - K/S): puts richer, calls cheaper
    min_vol: float = Field(default=0.05, gt=0)
    rate: float = Field(default=0.02, ge=-0.1, le=0.5)
    contract_multiplier: float = Field(default=100.0, gt=0)
    fee_per_contract: float = Field(default=0.65, ge=0)
    vol_spread: float = Field(default=0.01, ge=0, le=0.5)  # full bid/ask spread in vol points (0.01 = 1 vol point)
    premium_fraction: float = Field(default=0.1, gt=0, le=1)  # premium paid per entry as a fraction of equity


class RunConfig(StrictModel):
    name: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
    instruments: list[str] = Field(min_length=1)
    start: date
    end: date
    timeframe: str | None = None  # default: the instruments' base timeframe
    vendor: str | None = None  # must be the instruments' vendor in spec/universe.yaml when given
    initial_capital: float = 100_000.0
    mode: Literal["equities", "options"] = "equities"
    indicators: list[IndicatorUse] = Field(min_length=1)
    blend: BlendConfig = Field(default_factory=BlendConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    exits: ExitConfig = Field(default_factory=ExitConfig)
    sizing: SizingConfig = Field(default_factory=SizingConfig)
    options: OptionsConfig = Field(default_factory=OptionsConfig)
    costs_profile: str | None = None  # spec/costs.yaml profile (default: the market's)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if not self.initial_capital > 0:
            raise KeyedSpecError("initial_capital", f"must be > 0 (got {self.initial_capital})")
        if self.end <= self.start:
            raise KeyedSpecError("end", f"{self.end} is not after start {self.start}")
        uni = universe()
        timeframes = set()
        for i, inst in enumerate(self.instruments):
            if inst not in uni.ids:
                raise KeyedSpecError(f"instruments.{i}", f"unknown instrument {inst!r} (spec/universe.yaml has "
                                                         f"{', '.join(uni.ids)})")  # fmt: skip
            spec = uni.get(inst)
            timeframes.add(spec.base_timeframe)
            if self.vendor is not None and spec.vendor != self.vendor:
                raise KeyedSpecError("vendor", f"{inst} comes from vendor {spec.vendor!r}, not {self.vendor!r}")
        if len(timeframes) > 1:
            raise KeyedSpecError("instruments", f"instruments have different base timeframes {sorted(timeframes)}")
        base = timeframes.pop()
        if self.timeframe is not None:
            if self.timeframe not in TIMEFRAMES or self.timeframe not in ("5m", "1h", "1d"):
                raise KeyedSpecError("timeframe", f"unknown timeframe {self.timeframe!r} (5m, 1h or 1d)")
            if TIMEFRAMES[self.timeframe] < TIMEFRAMES[base]:
                raise KeyedSpecError("timeframe", f"{self.timeframe} is finer than the base timeframe {base}")
            if self.blend.method == "regime" and self.timeframe != base:
                raise KeyedSpecError("blend.method", f"regime blends need the base timeframe {base} (vol_regime)")
        if self.mode == "options" and len(self.instruments) != 1:
            raise KeyedSpecError("instruments", "options mode runs on one underlying")
        catalogue = catalogue_indicators()
        n = len(self.indicators)
        for i, use in enumerate(self.indicators):
            name = use.name.upper()
            if name not in catalogue:
                known = ", ".join(sorted(catalogue))
                raise KeyedSpecError(f"indicators.{i}.name",
                                     f"unknown indicator {use.name!r} (the feature catalogue has {known})")  # fmt: skip
            if name not in SIGNAL_RULES:
                raise KeyedSpecError(f"indicators.{i}.name", f"{name} has no default signal rule (rules exist for "
                                                             f"{', '.join(sorted(SIGNAL_RULES))})")  # fmt: skip
            allowed = indicator_params(name)
            for p in use.params:
                if p not in allowed:
                    raise KeyedSpecError(f"indicators.{i}.params.{p}", f"{name} has no parameter {p!r} (it has "
                                                                       f"{', '.join(allowed)})")  # fmt: skip
            missing = [p for p, v in allowed.items() if v is None and p not in use.params]
            if missing:
                raise KeyedSpecError(f"indicators.{i}.params", f"{name} needs {', '.join(missing)}")
        b = self.blend
        if b.weights is not None and len(b.weights) != n:
            raise KeyedSpecError("blend.weights", f"{len(b.weights)} weights for {n} indicators")
        if b.weights is not None and not any(w != 0 for w in b.weights):
            raise KeyedSpecError("blend.weights", "every weight is 0")
        if b.method == "vote" and b.k is not None and b.k > n:
            raise KeyedSpecError("blend.k", f"k = {b.k} of {n} indicators")
        if b.method == "regime":
            if not b.regime_weights:
                raise KeyedSpecError("blend.regime_weights", "regime blends need weights per vol_regime label")
            for label, ws in b.regime_weights.items():
                if label not in REGIME_LABELS:
                    raise KeyedSpecError(f"blend.regime_weights.{label}", f"unknown regime (one of {REGIME_LABELS})")
                if len(ws) != n:
                    raise KeyedSpecError(f"blend.regime_weights.{label}", f"{len(ws)} weights for {n} indicators")
        for j, sp in enumerate(self.tune.search_space):
            problem = self._target_problem(sp.target)
            if problem:
                raise KeyedSpecError(f"tune.search_space.{j}.target", problem)
        if self.tune.enabled and not self.tune.search_space and not self.tune.per_regime:
            raise KeyedSpecError("tune.search_space", "auto-tune is on but the search space is empty")
        if self.tune.per_regime and b.method != "regime":
            raise KeyedSpecError("tune.per_regime", "per-regime tuning needs blend.method: regime")
        return self

    def _target_problem(self, target: str) -> str | None:
        parts = target.split(".")
        n = len(self.indicators)
        if target in ("threshold", "k"):
            return None if target == "threshold" or self.blend.method == "vote" else "k is tuned only for votes"
        if parts[0] == "weight" and len(parts) == 2 and parts[1].isdigit():
            return None if int(parts[1]) < n else f"weight index {parts[1]} >= {n} indicators"
        if parts[0] == "regime_weight" and len(parts) == 3 and parts[2].isdigit():
            if parts[1] not in REGIME_LABELS:
                return f"unknown regime {parts[1]!r}"
            return None if int(parts[2]) < n else f"weight index {parts[2]} >= {n} indicators"
        if len(parts) == 2 and parts[0].isdigit():
            i = int(parts[0])
            if i >= n:
                return f"indicator index {i} >= {n} indicators"
            name = self.indicators[i].name.upper()
            if parts[1] not in indicator_params(name):
                return f"{name} has no parameter {parts[1]!r}"
            return None
        return ("expected `<indicator index>.<param>`, `weight.<i>`, `threshold`, `k` or "
                "`regime_weight.<label>.<i>`")  # fmt: skip

    def canonical_json(self) -> str:
        """The config as canonical JSON (sorted keys, no whitespace variance): what is hashed and stored."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2) + "\n"

    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def catalogue_indicators() -> set[str]:
    """Indicator names the feature catalogue (spec/features) uses."""
    from lake_assets.features.catalog import load_feature_specs

    return {f.impl.upper() for f in load_feature_specs().features if f.kind == "indicator"}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def parse_run_config(data: Any, source: Path | str = "<run config>") -> RunConfig:
    """Validate a mapping as a RunConfig; a problem is a SpecError naming source, field and problem."""
    if not isinstance(data, dict):
        raise SpecError(source, "<root>", "expected a mapping of RunConfig fields")
    cfg: RunConfig = validate_model(RunConfig, data, source)
    return cfg


def load_run_config(path: Path | str) -> RunConfig:
    """A RunConfig from a YAML (or JSON) file."""
    path = Path(path)
    return parse_run_config(read_yaml(path), path)
