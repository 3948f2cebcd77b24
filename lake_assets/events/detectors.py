"""The declarative detector vocabulary: each template is a small pydantic params model plus a compiler to polars.

Specs name a template and give its parameters; nothing in YAML is ever evaluated as code. Every compiled expression
looks only backwards (shift / rolling / forward-fill), so an event at bar t depends on bars <= t only. The registry
nulls every input on gap rows before these expressions run, so "unknown" propagates instead of a gap looking like a
quiet bar.

Sign convention: a detection's sign is the direction of the triggering move (> 0 up/long, < 0 down/short, 0 or null
undirected); the registry turns it into the row's direction for events declared `both`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from pydantic import ConfigDict, Field, model_validator

from lake_assets.events.columns import ColumnKind
from lake_assets.specs import StrictModel
from lake_assets.vocabulary import CLOSE, HIGH, IS_GAP, LOW


class DetectorParams(StrictModel):
    model_config = ConfigDict(populate_by_name=True)  # merged with StrictModel's

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        """(key inside params, column name, allowed kinds or None for any) for every column the params read."""
        return []


# --- predicates ------------------------------------------------------------------------------

NUMERIC_OPS = ("gt", "ge", "lt", "le", "abs_gt", "abs_ge", "abs_lt", "abs_le")
PredicateOp = Literal[
    "gt", "ge", "lt", "le", "abs_gt", "abs_ge", "abs_lt", "abs_le", "eq", "ne", "in", "not_in", "is_true", "is_false",
    "not_null",
]  # fmt: skip
Scalar = bool | int | float | str


class Predicate(DetectorParams):
    """`column op value`, e.g. {column: funding_z, op: abs_gt, value: 2.5}."""

    column: str
    op: PredicateOp
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Predicate:
        v = self.value
        if self.op in NUMERIC_OPS and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ValueError(f"op {self.op!r} needs a numeric `value`, got {v!r}")
        if self.op in ("in", "not_in") and (not isinstance(v, list) or not v):
            raise ValueError(f"op {self.op!r} needs a non-empty list `value`, got {v!r}")
        if self.op in ("eq", "ne") and (v is None or isinstance(v, list)):
            raise ValueError(f"op {self.op!r} needs a scalar `value`, got {v!r}")
        if self.op in ("is_true", "is_false", "not_null") and v is not None:
            raise ValueError(f"op {self.op!r} takes no `value`, got {v!r}")
        return self


def _value_kind(v: Any) -> ColumnKind:
    return "bool" if isinstance(v, bool) else "string" if isinstance(v, str) else "numeric"


def predicate_kind_problem(p: Predicate, kind: ColumnKind) -> str | None:
    """Why predicate `p` cannot apply to a column of `kind` (None when it can)."""
    if p.op in NUMERIC_OPS and kind != "numeric":
        return f"op {p.op!r} needs a numeric column, {p.column!r} is {kind}"
    if p.op in ("is_true", "is_false") and kind != "bool":
        return f"op {p.op!r} needs a boolean column, {p.column!r} is {kind}"
    values = p.value if isinstance(p.value, list) else [p.value] if p.op in ("eq", "ne") else []
    for v in values:
        if _value_kind(v) != kind:
            return f"value {v!r} does not match {kind} column {p.column!r}"
    return None


def predicate_expr(p: Predicate) -> pl.Expr:
    """Boolean expression; null where the column is null or the bar is a gap (unknown, never 'false')."""
    c = pl.col(p.column)
    v = p.value
    values = v if isinstance(v, list) else [v]
    num = c.cast(pl.Float64)
    exprs: dict[str, Callable[[], pl.Expr]] = {
        "gt": lambda: num > v,
        "ge": lambda: num >= v,
        "lt": lambda: num < v,
        "le": lambda: num <= v,
        "abs_gt": lambda: num.abs() > v,
        "abs_ge": lambda: num.abs() >= v,
        "abs_lt": lambda: num.abs() < v,
        "abs_le": lambda: num.abs() <= v,
        "eq": lambda: c == pl.lit(v),
        "ne": lambda: c != pl.lit(v),
        "in": lambda: c.is_in(values),
        "not_in": lambda: c.is_in(values).not_(),
        "is_true": lambda: c.cast(pl.Boolean),
        "is_false": lambda: c.cast(pl.Boolean).not_(),
        "not_null": lambda: c.is_not_null(),
    }
    return pl.when(pl.col(IS_GAP)).then(None).otherwise(exprs[p.op]())


# --- detections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """A compiled detector: where it fires, how strongly, which way, and whether it reads the previous bar."""

    condition: pl.Expr  # Boolean; null means "no event"
    severity: pl.Expr  # Float64
    sign: pl.Expr  # Float64; > 0 up, < 0 down, 0/null undirected
    needs_prev: bool  # must not fire right after a gap bar


class Scratch:
    """Named intermediate columns for one event, so each rolling window is computed once (not once per use).

    `let` returns a reference to the stored column; the registry evaluates lets in dependency layers before the
    final condition / severity / sign expressions.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lets: list[tuple[str, pl.Expr, int]] = []  # (column name, expression, dependency depth >= 1)
        self._depth: dict[str, int] = {}

    def let(self, name: str, expr: pl.Expr) -> pl.Expr:
        col = f"{self.prefix}{name}"
        if col in self._depth:
            raise ValueError(f"scratch column {col!r} defined twice")
        depth = 1 + max((self._depth.get(r, 0) for r in expr.meta.root_names()), default=0)
        self._depth[col] = depth
        self.lets.append((col, expr.alias(col), depth))
        return pl.col(col)


def _f(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Float64)


def _one() -> pl.Expr:
    return pl.lit(1.0, dtype=pl.Float64)


def _zero() -> pl.Expr:
    return pl.lit(0.0, dtype=pl.Float64)


def _pick(side: str, up: pl.Expr, down: pl.Expr) -> pl.Expr:
    return up if side in ("up", "above", "bearish") else down if side in ("down", "below", "bullish") else up | down


Side = Literal["up", "down", "both"]
_NUMERIC: tuple[ColumnKind, ...] = ("numeric",)


# threshold crossing ---------------------------------------------------------------------------


class ThresholdCrossParams(DetectorParams):
    """`column` crosses a level (`value`, or another column); `mode: level` fires whenever it is beyond it."""

    column: str
    value: float | None = None
    other_column: str | None = None
    side: Literal["above", "below", "either", "abs_above"] = "above"
    mode: Literal["cross", "level"] = "cross"
    severity: Literal["value", "excess"] = "value"

    @model_validator(mode="after")
    def _one_level(self) -> ThresholdCrossParams:
        if (self.value is None) == (self.other_column is None):
            raise ValueError("give exactly one of `value` or `other_column`")
        if self.side == "abs_above" and (self.value is None or self.value < 0):
            raise ValueError("side 'abs_above' needs a non-negative `value`")
        return self

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        refs: list[tuple[str, str, tuple[ColumnKind, ...] | None]] = [("column", self.column, _NUMERIC)]
        if self.other_column is not None:
            refs.append(("other_column", self.other_column, _NUMERIC))
        return refs


def threshold_cross(p: ThresholdCrossParams, ctx: Scratch) -> Detection:
    x = _f(p.column)
    if p.side == "abs_above":
        x = x.abs()
    level = _f(p.other_column) if p.other_column is not None else pl.lit(p.value, dtype=pl.Float64)
    prev_level = ctx.let("prev_level", level.shift(1)) if p.other_column is not None else level
    if p.mode == "cross":
        prev = ctx.let("prev", x.shift(1))
        up = (x > level) & (prev <= prev_level)
        down = (x < level) & (prev >= prev_level)
    else:
        up, down = x > level, x < level
    raw = _f(p.column)
    cond = up if p.side == "abs_above" else _pick(p.side, up, down)
    sign = (
        raw.sign() if p.side == "abs_above" else pl.when(x > level).then(1.0).when(x < level).then(-1.0).otherwise(0.0)
    )
    severity = (x - level).abs() if p.severity == "excess" else raw.abs()
    return Detection(cond, severity, sign, needs_prev=p.mode == "cross")


# z-score spike --------------------------------------------------------------------------------


class ZScoreSpikeParams(DetectorParams):
    """z of (a transform of) `column` against the previous `window` bars (the current bar excluded) beyond `z`."""

    column: str
    window: int = Field(ge=2)
    z: float = Field(gt=0)
    side: Side = "both"
    transform: Literal["level", "abs", "diff", "abs_diff"] = "level"
    min_periods: int | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _periods(self) -> ZScoreSpikeParams:
        if self.min_periods is not None and self.min_periods > self.window:
            raise ValueError(f"min_periods {self.min_periods} exceeds window {self.window}")
        return self

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("column", self.column, _NUMERIC)]


def zscore(x: pl.Expr, window: int, min_periods: int | None = None) -> pl.Expr:
    """(x - mean) / std over the `window` bars before the current one; null when std is 0 or history is short."""
    mp = min_periods or window
    mu = x.rolling_mean(window, min_samples=mp).shift(1)
    sd = x.rolling_std(window, min_samples=mp).shift(1)
    return pl.when(sd > 0).then((x - mu) / sd).otherwise(None)


def zscore_spike(p: ZScoreSpikeParams, ctx: Scratch) -> Detection:
    x = _f(p.column)
    dx = ctx.let("dx", x - x.shift(1)) if p.transform in ("diff", "abs_diff") else x
    y = ctx.let("y", {"level": x, "abs": x.abs(), "diff": dx, "abs_diff": dx.abs()}[p.transform])
    z = ctx.let("z", zscore(y, p.window, p.min_periods))
    cond = _pick(p.side, z >= p.z, z <= -p.z)
    sign = {"level": z.sign(), "abs": x.sign(), "diff": z.sign(), "abs_diff": dx.sign()}[p.transform]
    return Detection(cond, z.abs(), sign, needs_prev=True)


# regime shift -------------------------------------------------------------------------------


class RegimeShiftParams(DetectorParams):
    """A categorical state moves into `to` (from `from`) and holds for `persist` bars; fires on the last of them."""

    column: str
    to: list[str] = Field(min_length=1)
    from_: list[str] | None = Field(default=None, alias="from", min_length=1)
    persist: int = Field(default=1, ge=1)

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("column", self.column, ("string",))]


def regime_shift(p: RegimeShiftParams, ctx: Scratch) -> Detection:
    s = pl.col(p.column)
    before = ctx.let("before", s.shift(p.persist))
    cond = s.is_in(p.to) & before.is_not_null() & (before != s)
    if p.persist > 1:  # no change (and no unknown bar) among the last persist-1 transitions
        changed = ctx.let("changed", (s != s.shift(1)).fill_null(True).cast(pl.Int32))
        cond = cond & (changed.rolling_sum(p.persist - 1, min_samples=p.persist - 1) == 0)
    if p.from_ is not None:
        cond = cond & before.is_in(p.from_)
    return Detection(cond, _one(), _zero(), needs_prev=True)


class LevelShiftParams(DetectorParams):
    """The mean over the last `short` bars vs the mean of the `long` bars before them crosses `factor` (or 1/factor)."""

    column: str
    short: int = Field(ge=1)
    long: int = Field(ge=2)
    factor: float = Field(gt=1)
    side: Side = "up"
    min_periods: int | None = Field(default=None, ge=1)

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("column", self.column, _NUMERIC)]


def level_shift(p: LevelShiftParams, ctx: Scratch) -> Detection:
    x = _f(p.column)
    recent = x.rolling_mean(p.short, min_samples=p.short)
    base = x.rolling_mean(p.long, min_samples=p.min_periods or p.long).shift(p.short)
    ratio = ctx.let("ratio", pl.when(base > 0).then(recent / base).otherwise(None))
    prev = ctx.let("prev", ratio.shift(1))
    up = (ratio >= p.factor) & (prev < p.factor)
    down = (ratio <= 1 / p.factor) & (prev > 1 / p.factor)
    sign = pl.when(ratio >= 1).then(1.0).otherwise(-1.0)
    return Detection(_pick(p.side, up, down), ratio.log().abs(), sign, needs_prev=True)


# range breakout / false breakout --------------------------------------------------------------


class _RangeParams(DetectorParams):
    window: int = Field(ge=2)
    side: Side = "both"
    high: str = HIGH
    low: str = LOW
    close: str = CLOSE

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("high", self.high, _NUMERIC), ("low", self.low, _NUMERIC), ("close", self.close, _NUMERIC)]

    def channel(self, ctx: Scratch) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
        """(close, upper, lower): the channel of the `window` bars before the current one (full windows only)."""
        upper = ctx.let("upper", _f(self.high).rolling_max(self.window, min_samples=self.window).shift(1))
        lower = ctx.let("lower", _f(self.low).rolling_min(self.window, min_samples=self.window).shift(1))
        return _f(self.close), upper, lower


class RangeBreakoutParams(_RangeParams):
    """The first close outside the prior `window`-bar high/low channel."""


def _breakouts(p: _RangeParams, ctx: Scratch) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    c, upper, lower = p.channel(ctx)
    prev_c = ctx.let("prev_close", c.shift(1))
    up = ctx.let("up", (c > upper) & (prev_c <= upper.shift(1)))
    down = ctx.let("down", (c < lower) & (prev_c >= lower.shift(1)))
    return c, upper, lower, up, down


def range_breakout(p: RangeBreakoutParams, ctx: Scratch) -> Detection:
    c, upper, lower, up, down = _breakouts(p, ctx)
    width = pl.when(upper > lower).then(upper - lower).otherwise(None)
    severity = pl.when(c > upper).then((c - upper) / width).otherwise((lower - c) / width)
    sign = pl.when(c > upper).then(1.0).when(c < lower).then(-1.0).otherwise(0.0)
    return Detection(_pick(p.side, up, down), severity, sign, needs_prev=True)


class FalseBreakoutParams(_RangeParams):
    """A breakout of the `window` channel whose close falls back inside within `within` bars (first such close)."""

    within: int = Field(ge=1)


def false_breakout(p: FalseBreakoutParams, ctx: Scratch) -> Detection:
    c, upper, lower, up, down = _breakouts(p, ctx)
    width = upper - lower

    def held(name: str, flag: pl.Expr, value: pl.Expr) -> pl.Expr:
        # value at the latest breakout among the previous `within` bars
        return ctx.let(name, pl.when(flag).then(value).otherwise(None).forward_fill(limit=p.within - 1).shift(1))

    up_level, up_width = held("up_level", up, upper), held("up_width", up, width)
    dn_level, dn_width = held("dn_level", down, lower), held("dn_width", down, width)
    prev_c = pl.col(f"{ctx.prefix}prev_close")
    failed_up = ctx.let("failed_up", (c < up_level) & (prev_c >= up_level))
    failed_down = ctx.let("failed_down", (c > dn_level) & (prev_c <= dn_level))
    cond = _pick(p.side, failed_up, failed_down)
    severity = (
        pl.when(failed_up)
        .then((up_level - c) / up_width)
        .otherwise((c - dn_level) / dn_width)
        .pipe(lambda e: pl.when(e.is_finite()).then(e).otherwise(None))
    )
    sign = pl.when(failed_up).then(-1.0).when(failed_down).then(1.0).otherwise(0.0)
    return Detection(cond, severity, sign, needs_prev=True)


# divergence -----------------------------------------------------------------------------------


class DivergenceParams(DetectorParams):
    """Price makes a new `window` high (low) while the oscillator stays `min_gap` below its own high (above its low)."""

    oscillator: str
    window: int = Field(ge=2)
    min_gap: float = Field(default=0.0, ge=0)
    side: Literal["bearish", "bullish", "both"] = "both"
    price: str = CLOSE

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("oscillator", self.oscillator, _NUMERIC), ("price", self.price, _NUMERIC)]


def divergence(p: DivergenceParams, ctx: Scratch) -> Detection:
    price, osc = _f(p.price), _f(p.oscillator)
    pmax = ctx.let("pmax", price.rolling_max(p.window, min_samples=p.window).shift(1))
    pmin = ctx.let("pmin", price.rolling_min(p.window, min_samples=p.window).shift(1))
    omax = ctx.let("omax", osc.rolling_max(p.window, min_samples=p.window).shift(1))
    omin = ctx.let("omin", osc.rolling_min(p.window, min_samples=p.window).shift(1))
    bearish = ctx.let("bearish", (price > pmax) & (osc < omax - p.min_gap))
    bullish = ctx.let("bullish", (price < pmin) & (osc > omin + p.min_gap))
    cond = _pick(p.side, bearish, bullish)
    severity = pl.when(bearish).then(omax - osc).otherwise(osc - omin)
    sign = pl.when(bearish).then(-1.0).when(bullish).then(1.0).otherwise(0.0)
    return Detection(cond, severity, sign, needs_prev=True)


# onset / normalisation / run length ---------------------------------------------------------


class _PredicateParams(DetectorParams):
    when: Predicate

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("when.column", self.when.column, None)]


class OnsetParams(_PredicateParams):
    """`when` becomes true after being (known) false for at least `min_off` bars."""

    min_off: int = Field(default=1, ge=1)


class NormalisationParams(_PredicateParams):
    """`when` becomes (known) false after being true for at least `min_on` bars."""

    min_on: int = Field(default=1, ge=1)


class RunLengthParams(_PredicateParams):
    """`when` has held for exactly `bars` consecutive bars (once per run; a gap breaks the run)."""

    bars: int = Field(ge=1)


def _count(flag: pl.Expr, n: int) -> pl.Expr:
    """How many of the last n bars (current included) have `flag` true; null when any of them is unknown."""
    return flag.cast(pl.Int32).rolling_sum(n, min_samples=n)


def _pred_severity(p: Predicate, kind: ColumnKind) -> pl.Expr:
    return _f(p.column).abs() if kind == "numeric" else _one()


def onset(p: OnsetParams, ctx: Scratch, kind: ColumnKind) -> Detection:
    pred = ctx.let("pred", predicate_expr(p.when))
    cond = pred & (_count(pred.not_(), p.min_off).shift(1) == p.min_off)
    return Detection(cond, _pred_severity(p.when, kind), _zero(), needs_prev=True)


def normalisation(p: NormalisationParams, ctx: Scratch, kind: ColumnKind) -> Detection:
    pred = ctx.let("pred", predicate_expr(p.when))
    cond = pred.not_() & (_count(pred, p.min_on).shift(1) == p.min_on)
    return Detection(cond, _pred_severity(p.when, kind), _zero(), needs_prev=True)


def run_length(p: RunLengthParams, ctx: Scratch, kind: ColumnKind) -> Detection:
    pred = ctx.let("pred", predicate_expr(p.when))
    cond = (_count(pred, p.bars) == p.bars) & pred.shift(p.bars).fill_null(False).not_()
    return Detection(cond, _pred_severity(p.when, kind), _zero(), needs_prev=p.bars > 1)


# timestamp match ------------------------------------------------------------------------------


class TimestampMatchParams(DetectorParams):
    """Bars whose calendar/market-context column equals `equals` (default true): session opens, funding stamps."""

    column: str
    equals: Scalar = True

    def column_refs(self) -> list[tuple[str, str, tuple[ColumnKind, ...] | None]]:
        return [("column", self.column, (_value_kind(self.equals),))]


def timestamp_match(p: TimestampMatchParams, ctx: Scratch) -> Detection:
    cond = pl.col(p.column) == pl.lit(p.equals)
    return Detection(cond, _one(), _zero(), needs_prev=False)


# registry of templates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    params: type[DetectorParams]
    compile: Callable[..., Detection]
    uses_predicate: bool = False  # compile(params, scratch, kind_of_predicate_column)


DETECTORS: dict[str, Template] = {
    "threshold_cross": Template(ThresholdCrossParams, threshold_cross),
    "zscore_spike": Template(ZScoreSpikeParams, zscore_spike),
    "regime_shift": Template(RegimeShiftParams, regime_shift),
    "level_shift": Template(LevelShiftParams, level_shift),
    "range_breakout": Template(RangeBreakoutParams, range_breakout),
    "false_breakout": Template(FalseBreakoutParams, false_breakout),
    "divergence": Template(DivergenceParams, divergence),
    "onset": Template(OnsetParams, onset, uses_predicate=True),
    "normalisation": Template(NormalisationParams, normalisation, uses_predicate=True),
    "run_length": Template(RunLengthParams, run_length, uses_predicate=True),
    "timestamp_match": Template(TimestampMatchParams, timestamp_match),
}
