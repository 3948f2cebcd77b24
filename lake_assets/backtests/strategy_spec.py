"""JSON strategy specs (`spec/strategies/*.json`): the pydantic model, the loader and the signal compiler.

A strategy is data: parameters with ranges, entry/exit rules in the rule language of `strategy_rules`, sizing and
costs. Loading validates the JSON against the model and compiles every rule against the known bar/feature columns
and the indicator catalogue with the default parameters, so a typo fails at load time with the file, the field
(e.g. `entry_rules.long[1]`) and the offending token. `compile_signals` turns a spec + bars/features frame into
the four boolean signal columns the engine consumes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from lake_assets.backtests.schema import SizeType
from lake_assets.backtests.strategy_rules import (
    BUILTINS,
    KEYWORDS,
    RuleError,
    compile_rule,
    compile_term,
    conditions,
    indicator_catalogue,
    parse_rule,
    referenced_names,
)
from lake_assets.settings import spec_dir
from lake_assets.specs import KeyedSpecError, SpecError, StrictModel, validate_model
from lake_assets.vocabulary import BARS_SCHEMA, INSTRUMENT, IS_GAP, TIMEFRAMES, TS, Market

STRATEGY_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
PARAM_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")

# The same column names as `engine.run_signals` reads, so compiled signals feed the engine directly.
ENTRY_LONG, EXIT_LONG, ENTRY_SHORT, EXIT_SHORT = "long_entry", "long_exit", "short_entry", "short_exit"
SIGNAL_COLUMNS = (ENTRY_LONG, EXIT_LONG, ENTRY_SHORT, EXIT_SHORT)

# Columns a rule may name without a frame at hand (the cross-team contract); TA columns follow a naming pattern.
FEATURE_COLUMNS = (
    "ret_1",
    "rv_12",
    "rv_48",
    "rv_288",
    "vol_rank",
    "vol_regime",
    "vol_of_vol",
    "funding_z",
    "funding_carry_ann",
    "funding_persistence",
    "funding_extreme",
    "carry_state",
    "body_atr",
    "upper_wick_ratio",
    "lower_wick_ratio",
    "range_atr",
    "volume_z",
    "amihud",
    "roll_spread",
    "spread_bps",
    "depth_imbalance",
    "ofi",
    "oi_change",
    "oi_z",
    "oi_volume_ratio",
    "liquidation_proxy",
    "basis_bps",
    "basis_z",
    "trend_state",
    "weekday",
    "hour",
    "is_month_end",
    "is_holiday",
)
MARKET_CONTEXT_COLUMNS = ("session", "is_funding_ts", "session_open", "session_close", "macro_window")
CONTEXT_FEATURE_COLUMNS = ("corr_bench", "beta_bench", "dispersion", "corr_breakdown")
KNOWN_COLUMNS = frozenset([*BARS_SCHEMA.names(), *FEATURE_COLUMNS, *MARKET_CONTEXT_COLUMNS, *CONTEXT_FEATURE_COLUMNS])
TA_COLUMN_PATTERN = re.compile(r"^[a-z]+(_\d+(\.\d+)?)+(_[a-z]+)?$")  # rsi_14, macd_12_26_9_hist, bb_20_2_pctb


def is_known_column(name: str) -> bool:
    return name in KNOWN_COLUMNS or TA_COLUMN_PATTERN.fullmatch(name) is not None


# Limits of a strategy file (untrusted input): its size, the rules per side, the parameters; each rule is bounded by
# the rule language itself (strategy_rules.MAX_RULE_LENGTH / MAX_TOKENS / MAX_DEPTH).
MAX_SPEC_BYTES = 1_000_000
MAX_RULES = 32  # per side of entry_rules / exit_rules
MAX_PARAMETERS = 64
MAX_CHOICES = 1_000
MAX_MAGNITUDE = 2**53  # the largest whole number a parameter may hold (exact as a float)


def _bounded(value: Any) -> Any:
    """A finite number of sane magnitude (JSON integers are unbounded; float(10**400) would overflow)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        if abs(value) > MAX_MAGNITUDE:
            shown = f"{value:.3g}" if isinstance(value, float) else f"a {len(str(abs(value)))}-digit number"
            raise ValueError(f"must be at most 2**53 in magnitude, got {shown}")
    return value


class Parameter(StrictModel):
    """A tunable parameter: int/float with an inclusive range (and optional grid step), or a list of choices."""

    type: Literal["int", "float", "choice"]
    default: float | int | str | bool
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[float | int | str | bool, ...] | None = Field(default=None, max_length=MAX_CHOICES)
    description: str = ""

    @field_validator("default", "low", "high", "step", mode="before")  # before the union picks a member
    @classmethod
    def _finite(cls, v: Any) -> Any:
        return _bounded(v)

    @field_validator("choices", mode="before")
    @classmethod
    def _finite_choices(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            for c in v[: MAX_CHOICES + 1]:
                _bounded(c)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == "choice":
            if not self.choices:
                raise ValueError("a choice parameter needs a non-empty `choices` list")
            if self.default not in self.choices:
                raise ValueError(f"default {self.default!r} is not one of the choices {list(self.choices)}")
            if self.low is not None or self.high is not None:
                raise ValueError("a choice parameter takes `choices`, not `low`/`high`")
            return self
        if self.choices is not None:
            raise ValueError(f"`choices` is only for type 'choice', not {self.type!r}")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} parameter needs `low` and `high`")
        if isinstance(self.default, bool | str):
            raise ValueError(f"default must be a number for an {self.type} parameter, got {self.default!r}")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} is outside [{self.low}, {self.high}]")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be positive, got {self.step}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scaled range needs low > 0")
        if self.type == "int":
            for label, v in (("low", self.low), ("high", self.high), ("default", self.default), ("step", self.step)):
                if v is not None and float(v) != int(v):
                    raise ValueError(f"{label} must be a whole number for an int parameter, got {v}")
        return self

    def cast(self, value: Any) -> Any:
        return int(round(value)) if self.type == "int" else float(value) if self.type == "float" else value

    def grid(self) -> list[Any] | None:
        """All values of a discrete space (choices, or a range with a step / an int range); None if continuous."""
        if self.type == "choice":
            return list(self.choices or ())
        assert self.low is not None and self.high is not None
        step = self.step if self.step is not None else (1 if self.type == "int" else None)
        if step is None:
            return None
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        return [self.cast(self.low + i * step) for i in range(n)]


RuleList = tuple[str, ...]


class SideRules(StrictModel):
    """Rules per side; several rules on one side must all hold (AND). Missing side = not traded."""

    long: RuleList = Field(default=(), max_length=MAX_RULES)
    short: RuleList = Field(default=(), max_length=MAX_RULES)

    @field_validator("long", "short", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v


class ExitRules(SideRules):
    stop_loss_pct: float | None = Field(default=None, gt=0, lt=100)
    take_profit_pct: float | None = Field(default=None, gt=0)
    max_holding_bars: int | None = Field(default=None, ge=1, le=10_000_000)


class Sizing(StrictModel):
    size_type: SizeType = SizeType.EQUITY_PERCENT
    size: float = Field(default=1.0, gt=0)  # units of `size_type` (fraction of equity for EQUITY_PERCENT)
    max_leverage: float = Field(default=1.0, gt=0)


class Costs(StrictModel):
    fee_bps: float = Field(default=4.0, ge=0)  # per side, taker
    slippage_bps: float = Field(default=5.0, ge=0)
    include_funding: bool = True  # perps pay/receive funding while a position is open


class StrategySpec(StrictModel):
    name: str
    description: str
    parameters: dict[str, Parameter] = Field(default_factory=dict, max_length=MAX_PARAMETERS)
    entry_rules: SideRules
    exit_rules: ExitRules = ExitRules()
    sizing: Sizing = Sizing()
    costs: Costs = Costs()
    markets: tuple[Market, ...] = ()  # empty = every market
    timeframe: str | None = None
    tags: tuple[str, ...] = ()
    # record why each entry/exit fired: every condition of the side's rules with its value and threshold
    # (the backtests' `signal_reasons` table, the paper loop's `signals`)
    reasons: bool = False
    # named parameter sets (e.g. a "high_trade" test profile that loosens the thresholds); validated like overrides
    profiles: dict[str, dict[str, float | int | str | bool]] = Field(default_factory=dict, max_length=16)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not STRATEGY_NAME_PATTERN.fullmatch(v):
            raise ValueError(f"strategy name {v!r} must match {STRATEGY_NAME_PATTERN.pattern}")
        return v

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str | None) -> str | None:
        if v is not None and v not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {v!r}; expected one of {sorted(TIMEFRAMES)}")
        return v

    @model_validator(mode="after")
    def _rules(self) -> StrategySpec:
        if not self.entry_rules.long and not self.entry_rules.short:
            raise KeyedSpecError("entry_rules", "needs at least one `long` or `short` entry rule")
        for pname in self.parameters:
            if not PARAM_NAME_PATTERN.fullmatch(pname) or pname in KEYWORDS or pname in BUILTINS:
                raise KeyedSpecError(f"parameters.{pname}",
                                     "parameter names must be lower-case identifiers, not keywords")  # fmt: skip
            if is_known_column(pname):
                raise KeyedSpecError(f"parameters.{pname}", f"parameter name {pname!r} shadows a column")
        for side in ("long", "short"):
            if getattr(self.exit_rules, side) and not getattr(self.entry_rules, side):
                raise KeyedSpecError(f"exit_rules.{side}", f"exit rules for {side} but no {side} entry rule")
        for key, rule in self.rules():
            try:
                parse_rule(rule)
            except RuleError as exc:
                raise KeyedSpecError(key, str(exc)) from exc
        for pname, overrides in self.profiles.items():
            if not PARAM_NAME_PATTERN.fullmatch(pname):
                raise KeyedSpecError(f"profiles.{pname}", "profile names must be lower-case identifiers")
            try:
                self.resolve_params(overrides)
            except (KeyError, ValueError) as exc:
                raise KeyedSpecError(f"profiles.{pname}", str(exc).strip('"')) from exc
        return self

    def profile_params(self, profile: str | None) -> dict[str, Any]:
        """The parameters of a named profile (None: the defaults)."""
        if profile is None:
            return self.defaults()
        if profile not in self.profiles:
            raise KeyError(f"strategy {self.name!r} has no profile {profile!r}; has {sorted(self.profiles)}")
        return self.resolve_params(self.profiles[profile])

    def rules(self) -> list[tuple[str, str]]:
        """(dotted key, rule text) for every rule, for error messages."""
        out: list[tuple[str, str]] = []
        for group_name, group in (("entry_rules", self.entry_rules), ("exit_rules", self.exit_rules)):
            for side in ("long", "short"):
                out.extend((f"{group_name}.{side}.{i}", r) for i, r in enumerate(getattr(group, side)))
        return out

    @property
    def sides(self) -> tuple[str, ...]:
        return tuple(s for s in ("long", "short") if getattr(self.entry_rules, s))

    def applies_to(self, market: Market | str) -> bool:
        """Whether the strategy trades instruments of this market (an empty `markets` list means all)."""
        return not self.markets or Market(market) in self.markets

    def defaults(self) -> dict[str, Any]:
        return {k: p.cast(p.default) for k, p in self.parameters.items()}

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by `overrides`; unknown names and out-of-range values are errors."""
        params = self.defaults()
        for k, v in (overrides or {}).items():
            if k not in self.parameters:
                raise KeyError(f"strategy {self.name!r} has no parameter {k!r}; has {sorted(self.parameters)}")
            p = self.parameters[k]
            if p.type == "choice":
                if v not in (p.choices or ()):
                    raise ValueError(f"{self.name}.{k} = {v!r} is not one of {list(p.choices or ())}")
            elif p.low is not None and p.high is not None and not p.low - 1e-12 <= v <= p.high + 1e-12:
                raise ValueError(f"{self.name}.{k} = {v!r} is outside [{p.low}, {p.high}]")
            params[k] = p.cast(v)
        return params

    def grid_size(self) -> float:
        """Number of points in the parameter grid; inf when a parameter is continuous."""
        size = 1.0
        for p in self.parameters.values():
            g = p.grid()
            size *= math.inf if g is None else len(g)
        return size

    def grid(self) -> list[dict[str, Any]]:
        if not math.isfinite(self.grid_size()):
            raise ValueError(f"strategy {self.name!r} has continuous parameters; there is no finite grid")
        names = list(self.parameters)
        values = [self.parameters[n].grid() or [] for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]

    def required_columns(self) -> set[str]:
        """Bar/feature columns the rules read by name (indicator inputs are not listed)."""
        names: set[str] = set()
        for _, rule in self.rules():
            names |= {n for n in referenced_names(rule) if n not in self.parameters and is_known_column(n)}
        return names


# --- loading -------------------------------------------------------------------------------


def _check_rules_compile(spec: StrategySpec, file: Path | str) -> None:
    """Compile every rule with default parameters against the known columns so unknown names fail at load time."""
    catalogue = indicator_catalogue()
    params = spec.defaults()
    for key, rule in spec.rules():
        try:
            compile_rule(rule, params, columns=(), indicators=catalogue, column_ok=is_known_column)
        except RuleError as exc:
            raise SpecError(file, key, str(exc)) from exc


def parse_strategy(data: Any, file: Path | str = "<strategy>") -> StrategySpec:
    """Validate a parsed JSON object as a strategy spec (errors name file, dotted field and problem)."""
    if not isinstance(data, dict):
        raise SpecError(file, "<root>", f"expected a JSON object, got {type(data).__name__}")
    try:
        spec: StrategySpec = validate_model(StrategySpec, data, file)
        _check_rules_compile(spec, file)
    except (RecursionError, OverflowError, MemoryError) as exc:  # a last line of defence: never more than an error
        raise SpecError(file, "<root>", f"could not be validated ({type(exc).__name__}: {exc})") from exc
    return spec


def load_strategy(path: Path | str) -> StrategySpec:
    """Read and validate one `spec/strategies/<name>.json`; the name inside must equal the file stem."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(path, "<file>", "file not found")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            path, "<file>", f"file too large: {size:,} bytes, the limit (MAX_SPEC_BYTES) is {MAX_SPEC_BYTES:,}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise SpecError(path, f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(path, "<file>", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except RecursionError as exc:
        raise SpecError(path, "<file>", "not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise SpecError(path, "<file>", f"not valid JSON: {exc}") from exc
    spec = parse_strategy(data, path)
    if spec.name != path.stem:
        raise SpecError(path, "name", f"name {spec.name!r} must equal the file name {path.stem!r}")
    return spec


def strategies_dir() -> Path:
    return spec_dir() / "strategies"


class Strategies(dict[str, StrategySpec]):
    """The valid strategy specs by name, plus `errors`: for each file that failed to load, its strategy name (the
    file stem, made a safe partition key when it is not one) -> the SpecError (file, key, problem)."""

    def __init__(self, specs: Mapping[str, StrategySpec] | None = None, errors: Mapping[str, SpecError] | None = None):
        super().__init__(specs or {})
        self.errors: dict[str, SpecError] = dict(errors or {})


def invalid_name(stem: str) -> str:
    """The strategy name (partition key suffix) a file that failed to load stands under: its stem when that is a
    valid name, else a safe version of it with a hash of the original (so two odd stems never collide)."""
    if STRATEGY_NAME_PATTERN.fullmatch(stem):
        return stem
    safe = re.sub(r"[^a-z0-9_]", "_", stem.lower()).strip("_")[:40] or "file"
    return f"{safe}_{hashlib.sha1(stem.encode()).hexdigest()[:8]}"


def load_strategies(directory: Path | str | None = None) -> Strategies:
    """Every strategy spec in `spec/strategies/` (sorted by name); never raises for a bad file.

    A file that does not load (invalid JSON, an invalid spec, a rule that does not compile, over a limit) is
    skipped and reported in `.errors` (name -> SpecError naming file, key and problem), so one bad file holds back
    only itself. `load_strategies_strict` raises the first error instead.
    """
    directory = Path(directory) if directory is not None else strategies_dir()
    good: dict[str, StrategySpec] = {}
    errors: dict[str, SpecError] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            good[path.stem] = load_strategy(path)
        except SpecError as exc:
            errors[invalid_name(path.stem)] = exc
        except OSError as exc:  # unreadable (permissions, vanished between glob and read)
            errors[invalid_name(path.stem)] = SpecError(path, "<file>", f"unreadable: {exc}")
    return Strategies(good, errors)


def load_strategies_strict(directory: Path | str | None = None) -> Strategies:
    """`load_strategies`, raising the first file's SpecError when any file fails to load."""
    specs = load_strategies(directory)
    if specs.errors:
        raise next(iter(specs.errors.values()))
    return specs


# --- signals -------------------------------------------------------------------------------


def _all(exprs: list[pl.Expr]) -> pl.Expr:
    out = exprs[0]
    for e in exprs[1:]:
        out = out & e
    return out


def signal_exprs(
    spec: StrategySpec,
    params: Mapping[str, Any] | None,
    schema: Mapping[str, Any],
    shared: dict[str, pl.Expr] | None = None,
) -> dict[str, pl.Expr]:
    """The four boolean signal expressions for one instrument's frame (null inputs -> False).

    With `shared`, indicator outputs are referenced as temporary columns registered there (see `compile_rule`).
    """
    resolved = spec.resolve_params(params)
    catalogue = indicator_catalogue()
    out: dict[str, pl.Expr] = {}
    for group_name, group, cols in (
        ("entry_rules", spec.entry_rules, (ENTRY_LONG, ENTRY_SHORT)),
        ("exit_rules", spec.exit_rules, (EXIT_LONG, EXIT_SHORT)),
    ):
        for side, col in zip(("long", "short"), cols, strict=True):
            rules = getattr(group, side)
            if not rules:
                out[col] = pl.lit(False)
                continue
            exprs = []
            for i, rule in enumerate(rules):
                try:
                    exprs.append(compile_rule(rule, resolved, columns=schema, indicators=catalogue, shared=shared))
                except RuleError as exc:
                    raise SpecError(spec.name, f"{group_name}.{side}.{i}", str(exc)) from exc
            out[col] = _all(exprs).fill_null(False)
    if IS_GAP in schema:  # never act on a gap bar
        out[ENTRY_LONG] = out[ENTRY_LONG] & ~pl.col(IS_GAP).fill_null(False)
        out[ENTRY_SHORT] = out[ENTRY_SHORT] & ~pl.col(IS_GAP).fill_null(False)
    return out


def compile_signals(frame: pl.DataFrame, spec: StrategySpec, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Add `long_entry`, `long_exit`, `short_entry`, `short_exit` (bool) to a bars(+features) frame.

    Signals are known at the close of their bar; the engine fills no earlier than the next bar. With several
    instruments the rules are evaluated per instrument (lookbacks and indicators never cross instruments).
    """
    shared: dict[str, pl.Expr] = {}
    exprs = signal_exprs(spec, params, frame.schema, shared)
    named = [e.alias(k) for k, e in exprs.items()]
    temp = [e.alias(k) for k, e in shared.items()]

    def one(part: pl.DataFrame) -> pl.DataFrame:
        return part.with_columns(temp).with_columns(named).drop(list(shared))

    if INSTRUMENT in frame.columns and frame[INSTRUMENT].n_unique() > 1:
        sort_cols = [INSTRUMENT, TS] if TS in frame.columns else [INSTRUMENT]
        return pl.concat([one(g) for g in frame.sort(sort_cols, maintain_order=True).partition_by(INSTRUMENT)])
    return one(frame)


# --- reasons -------------------------------------------------------------------------------

REASON_COLUMNS = ("side", "action", "rule", "condition", "fired", "value", "op", "threshold")
_SIGNAL_OF = {("entry_rules", "long"): ENTRY_LONG, ("entry_rules", "short"): ENTRY_SHORT,
              ("exit_rules", "long"): EXIT_LONG, ("exit_rules", "short"): EXIT_SHORT}  # fmt: skip


def signal_reasons(signals: pl.DataFrame, spec: StrategySpec, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Why each entry fired: one row per (entry bar, side, condition of the side's entry rules) with whether the
    condition held, its value (left side) and threshold (right side) at that bar. `signals` is `compile_signals`'
    output (per instrument when several). Conditions are the rules' top-level `and` terms, evaluated on the same
    frame the signals were, so a reason row is exactly what the rule saw. Exit signals are not explained here: they
    fire on most bars while flat (where they mean nothing); an exit's cause is its order's and trade's rows."""
    resolved = spec.resolve_params(params)
    catalogue = indicator_catalogue()
    schema = signals.schema
    exprs: list[pl.Expr] = []
    specs: list[tuple[str, str, str, str, str, str | None]] = []  # (alias, side, action, key, text, op)
    for group_name, group in (("entry_rules", spec.entry_rules),):
        for side in ("long", "short"):
            for i, rule in enumerate(getattr(group, side)):
                key = f"{group_name}.{side}.{i}"
                for cond in conditions(rule):
                    alias = f"__r{len(specs)}"
                    fired = compile_term(cond.node, rule, resolved, schema, indicators=catalogue)
                    exprs.append(fired.cast(pl.Boolean, strict=False).fill_null(False).alias(f"{alias}_f"))
                    for part, node in (("v", cond.left), ("t", cond.right)):
                        value = (compile_term(node, rule, resolved, schema, indicators=catalogue)
                                 .cast(pl.Float64, strict=False) if node is not None else pl.lit(None, pl.Float64))
                        exprs.append(value.alias(f"{alias}_{part}"))
                    specs.append((alias, side, group_name.split("_")[0], key, cond.text, cond.op))

    def one(part: pl.DataFrame) -> pl.DataFrame:
        return part.with_columns(exprs)

    frames = (signals.sort(INSTRUMENT, TS).partition_by(INSTRUMENT, maintain_order=True)
              if INSTRUMENT in signals.columns else [signals])  # fmt: skip
    wide = pl.concat([one(f) for f in frames]) if frames else signals.with_columns(exprs)
    out = []
    for alias, side, action, key, text, op in specs:
        col = _SIGNAL_OF[(f"{action}_rules", side)]
        rows = wide.filter(pl.col(col).fill_null(False)).select(
            TS, INSTRUMENT,
            pl.lit(side).alias("side"), pl.lit(action).alias("action"), pl.lit(key).alias("rule"),
            pl.lit(text).alias("condition"), pl.col(f"{alias}_f").alias("fired"), pl.col(f"{alias}_v").alias("value"),
            pl.lit(op, pl.String).alias("op"), pl.col(f"{alias}_t").alias("threshold"),
        )  # fmt: skip
        out.append(rows)
    ts_type: pl.DataType = signals.schema.get(TS) or pl.Datetime("us", "UTC")
    schema_out = pl.Schema([(TS, ts_type), (INSTRUMENT, pl.String()), ("side", pl.String()), ("action", pl.String()),
                            ("rule", pl.String()), ("condition", pl.String()), ("fired", pl.Boolean()),
                            ("value", pl.Float64()), ("op", pl.String()), ("threshold", pl.Float64())])  # fmt: skip
    if not out:
        return pl.DataFrame(schema=schema_out)
    return pl.concat(out).sort(INSTRUMENT, TS, "action", "side", "rule", maintain_order=True)
