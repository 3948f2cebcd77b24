"""Load `spec/features/*.yaml` into a validated, hashed `FeatureCatalog`.

A spec entry instantiates either a catalogue indicator (`indicator: RSI`) or a feature template (`template: zscore`).
List-valued parameters expand into a grid (one feature per combination); `name` may use `{param}` placeholders.
Each entry declares (or inherits from the file's `defaults`) its family, inputs, lookback in bars, PIT contract and
the NaN-ratio bound an asset check enforces. Any malformed entry fails loading with SpecError(file, key, problem).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, model_validator

from lake_assets.durations import parse_duration
from lake_assets.features.indicators import INDICATORS
from lake_assets.features.templates import FEATURE_TEMPLATES
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, read_yaml, spec_hash, validate_model
from lake_assets.vocabulary import BARS_SCHEMA, CLOSE, TIMEFRAMES, TS

# Top-of-book columns and the venue's taker fee a vendor may add to bars (not in BARS_SCHEMA yet).
BID, ASK, BID_SIZE, ASK_SIZE = "bid", "ask", "bid_size", "ask_size"
TAKER_FEE_BPS = "taker_fee_bps"
OPTIONAL_BAR_COLUMNS = (BID, ASK, BID_SIZE, ASK_SIZE, TAKER_FEE_BPS)
BAR_COLUMNS: frozenset[str] = frozenset(BARS_SCHEMA.names()) | frozenset(OPTIONAL_BAR_COLUMNS)

Pit = Literal["bar_open", "bar_close"]
DEFAULT_TIMEFRAME = "5m"  # a catalog loaded without a timeframe converts durations to 5m bars
_NOT_WINDOWS = frozenset({"labels", "calendar", "col"})  # parameters that are never a window


class _Defaults(StrictModel):
    family: str | None = None
    max_nan_ratio: float = Field(default=0.05, ge=0.0, le=1.0)
    pit: Pit = "bar_close"
    min_fill: float = Field(default=1.0, gt=0.0, le=1.0)


class _Entry(StrictModel):
    name: str | None = None
    family: str | None = None
    template: str | None = None
    indicator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[str] | None = None
    lookback: int | None = Field(default=None, ge=1)
    pit: Pit | None = None
    max_nan_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    min_fill: float | None = Field(default=None, gt=0.0, le=1.0)
    description: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> _Entry:
        if (self.template is None) == (self.indicator is None):
            raise ValueError("an entry needs exactly one of `template` or `indicator`")
        return self


Window = int | str | dict[str, int | str]  # bars, a duration ('1d') or per timeframe ({default: 1d, 1d: 63})


class ContextSpec(StrictModel):
    """The `context:` block of one feature file as written: windows in bars or as durations."""

    corr_window: Window = 288
    long_corr_window: Window = 2016
    dispersion_horizon: Window = 12
    breakdown_drop: float = Field(default=0.3, gt=0.0, le=2.0)
    breakdown_min_long_corr: float = Field(default=0.5, ge=-1.0, le=1.0)
    max_nan_ratio: float = Field(default=0.05, ge=0.0, le=1.0)

    def at(self, timeframe: str) -> ContextParams:
        """Windows in bars of `timeframe` (ValueError naming the problem)."""
        data = self.model_dump()
        for key in ("corr_window", "long_corr_window", "dispersion_horizon"):
            data[key] = bars_of(data[key], timeframe)
        return ContextParams(**data)


class ContextParams(StrictModel):
    """Windows (in bars of one timeframe) and thresholds of the cross-instrument context features."""

    corr_window: int = Field(default=288, ge=2)  # bars of the short rolling correlation / beta to the benchmark
    long_corr_window: int = Field(default=2016, ge=2)  # the baseline correlation a breakdown is measured against
    dispersion_horizon: int = Field(default=12, ge=1)  # bars of the returns whose cross-sectional std is dispersion
    breakdown_drop: float = Field(default=0.3, gt=0.0, le=2.0)  # long corr - short corr that counts as a breakdown
    breakdown_min_long_corr: float = Field(default=0.5, ge=-1.0, le=1.0)  # only when usually correlated
    max_nan_ratio: float = Field(default=0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _windows(self) -> ContextParams:
        if self.long_corr_window <= self.corr_window:
            raise ValueError(f"long_corr_window ({self.long_corr_window}) must exceed corr_window ({self.corr_window})")
        return self


class _File(StrictModel):
    family: str | None = None
    defaults: _Defaults = Field(default_factory=_Defaults)
    features: list[_Entry] = Field(default_factory=list)
    context: ContextSpec | None = None


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    output: str  # the builder's output key
    dtype: pl.DataType
    max_nan_ratio: float


@dataclass(frozen=True)
class FeatureDef:
    """One expanded spec entry; an indicator with several outputs yields several columns."""

    key: str  # where it came from: "<file>:features.<i>[<grid index>]"
    file: str
    family: str
    kind: Literal["template", "indicator"]
    impl: str
    params: dict[str, Any]
    inputs: tuple[str, ...]  # bar columns or other feature columns
    columns: tuple[FeatureColumn, ...]
    own_lookback: int
    lookback: int  # own + the longest chain through feature inputs
    pit: Pit
    bar_inputs: frozenset[str] = frozenset()  # bar columns read, transitively
    description: str = ""
    # Rows of history (current included) before a value exists on gap-free bars: the feature's own window (scaled by
    # `min_fill`), chained through its feature inputs like pandas' rolling(n) over a column that starts with NaN.
    # compute_features nulls rows < span - 1 from the first bar it is given.
    own_span: int = 1
    span: int = 1

    def build(self) -> dict[str, pl.Expr]:
        """Column name -> expression (features it reads must already be columns of the frame)."""
        if self.kind == "indicator":
            params = dict(self.params)
            outputs = INDICATORS[self.impl].build(params)
            return {c.name: outputs[c.output] for c in self.columns}
        tmpl = FEATURE_TEMPLATES[self.impl]
        return {self.columns[0].name: tmpl.build(list(self.inputs), tmpl.resolve(self.params))}


@dataclass(frozen=True)
class FeatureCatalog:
    features: tuple[FeatureDef, ...]
    levels: tuple[tuple[FeatureDef, ...], ...]  # dependency levels: level k reads only bars and levels < k
    spec_hash: str
    source: str = ""
    context: ContextParams = field(default_factory=ContextParams)
    timeframe: str = DEFAULT_TIMEFRAME  # the bar timeframe spec durations were converted to bars for
    _by_column: dict[str, FeatureDef] = field(default_factory=dict, repr=False, compare=False)
    _variants: dict[str, FeatureCatalog] = field(default_factory=dict, repr=False, compare=False)

    @property
    def columns(self) -> list[str]:
        return [c.name for f in self.features for c in f.columns]

    def has_column(self, column: str) -> bool:
        return column in self._by_column

    def feature_of(self, column: str) -> FeatureDef:
        return self._by_column[column]

    def column(self, column: str) -> FeatureColumn:
        return next(c for c in self._by_column[column].columns if c.name == column)

    @property
    def max_lookback(self) -> int:
        return max((f.lookback for f in self.features), default=0)

    def restricted(self, columns: Iterable[str]) -> FeatureCatalog:
        """The catalogue of just the features producing `columns` and the features they read (transitively), in
        the same order and levels: what a consumer of a few columns computes per bar (the paper-trading loop).
        Names that are not feature columns (bar columns) are ignored."""
        keep: set[int] = set()  # id() of the kept definitions (keys repeat across spec files)
        todo = [self._by_column[c] for c in columns if c in self._by_column]
        while todo:
            f = todo.pop()
            if id(f) in keep:
                continue
            keep.add(id(f))
            todo.extend(self._by_column[i] for i in f.inputs if i in self._by_column)
        feats = tuple(f for f in self.features if id(f) in keep)
        levels = tuple(lv for lv in (tuple(f for f in level if id(f) in keep) for level in self.levels) if lv)
        return replace(self, features=feats, levels=levels, _by_column={c.name: f for f in feats for c in f.columns},
                       _variants={})  # fmt: skip

    def for_timeframe(self, timeframe: str) -> FeatureCatalog:
        """The same spec with its durations in bars of `timeframe` (same columns and spec hash; built once)."""
        if timeframe == self.timeframe:
            return self
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {sorted(TIMEFRAMES)}")
        if timeframe not in self._variants:
            if not self.source:
                raise ValueError("a catalog built in memory has no spec directory to convert its durations from")
            self._variants[timeframe] = load_feature_specs(Path(self.source), timeframe=timeframe)
        return self._variants[timeframe]


def required_lookback_bars(catalog: FeatureCatalog, timeframe: str | None = None) -> int:
    """Bars of history (of `timeframe`, default the catalog's) before a target window that reproduce its features
    (load this warm-up prefix). Durations in the spec make it differ by timeframe."""
    return (catalog if timeframe is None else catalog.for_timeframe(timeframe)).max_lookback


def bars_of(value: Any, timeframe: str) -> Any:
    """A spec window in bars of `timeframe`: an int is bars; a duration ('30d', '4h') becomes the bars covering it
    (rounded up, at least 1); a mapping picks the entry for the timeframe or `default` (an int or a duration)."""
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k != "default" and k not in TIMEFRAMES)
        if unknown:
            raise ValueError(f"per-timeframe keys {unknown} are not timeframes {sorted(TIMEFRAMES)} or `default`")
        if timeframe not in value and "default" not in value:
            raise ValueError(f"no value for timeframe {timeframe} and no `default` in {dict(value)}")
        value = value.get(timeframe, value.get("default"))
    if isinstance(value, str) and not isinstance(value, bool):
        bar = TIMEFRAMES[timeframe]
        return max(1, -(-parse_duration(value) // bar))
    return value


def _is_duration(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    if not isinstance(value, str):
        return False
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).replace(".", "p").replace("-", "m")


def _expand(params: dict[str, Any]) -> list[dict[str, Any]]:
    keys = [k for k, v in params.items() if isinstance(v, list) and k != "labels"]
    if not keys:
        return [dict(params)]
    combos = itertools.product(*(params[k] for k in keys))
    return [{**params, **dict(zip(keys, combo, strict=True))} for combo in combos]


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def fill_name(template: str, params: Mapping[str, Any], file: Path | str, key: str) -> str:
    """A column name from a spec template: each `{param}` is replaced by that parameter's value. Only bare parameter
    names are placeholders (no attribute or index access, no format specs, unlike `str.format`), so a spec string
    cannot reach into objects or ask for a gigabyte of padding."""
    if len(template) > 128:
        raise SpecError(file, key, f"name template longer than 128 characters ({len(template)})")

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _PARAM_NAME.fullmatch(name):
            raise SpecError(file, key, f"placeholder {{{name}}} is not a parameter name (only {{param}} is allowed)")
        if name not in params:
            raise SpecError(file, key, f"placeholder {{{name}}} is not a parameter; have {sorted(params)}")
        if isinstance(params[name], _PerTimeframe):
            raise SpecError(file, key, f"placeholder {{{name}}} is a per-timeframe window: the name would change")
        return str(params[name])

    filled = _PLACEHOLDER.sub(one, template)
    if "{" in filled or "}" in filled:
        raise SpecError(file, key, f"unbalanced braces in name template {template!r}")
    return filled


def _default_indicator_name(impl: str, p: dict[str, Any]) -> str:
    d = INDICATORS[impl]
    parts = [d.prefix]
    if "col" in p and p["col"] != CLOSE:
        parts.append(str(p["col"]))
    parts += [_fmt(p[k]) for k in d.params if k != "col" and p.get(k) is not None]
    return "_".join(parts)


def _in_bars(
    params: dict[str, Any], timeframe: str, file: Path, key: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params with windows in bars of `timeframe`, params as names show them: a duration as written, so a column's
    name is the same at every timeframe)."""
    bars, shown = dict(params), dict(params)
    for k, v in params.items():
        if k in _NOT_WINDOWS or not _is_duration(v):
            continue
        try:
            for tf in TIMEFRAMES:  # a window must resolve at every timeframe, not only the one loaded first
                converted = bars_of(v, tf)
                if tf == timeframe:
                    bars[k] = converted
        except ValueError as exc:
            raise SpecError(file, f"{key}.params.{k}", str(exc)) from exc
        shown[k] = v if isinstance(v, str) else _PER_TIMEFRAME
    return bars, shown


class _PerTimeframe:
    """Stands for a per-timeframe window in a name: using it as a placeholder is a spec error."""

    def __str__(self) -> str:
        return "<per-timeframe>"


_PER_TIMEFRAME = _PerTimeframe()


def _entry_defs(
    entry: _Entry, defaults: _Defaults, family: str | None, file: Path, key: str, timeframe: str = DEFAULT_TIMEFRAME
) -> list[FeatureDef]:
    fam = entry.family or family or defaults.family
    if not fam:
        raise SpecError(file, f"{key}.family", "no family: set it on the entry, the file or its defaults")
    pit: Pit = entry.pit or defaults.pit
    min_fill = entry.min_fill if entry.min_fill is not None else defaults.min_fill
    max_nan = entry.max_nan_ratio if entry.max_nan_ratio is not None else defaults.max_nan_ratio
    out: list[FeatureDef] = []
    grid = _expand(entry.params)
    for gi, spec_params in enumerate(grid):
        gkey = key if len(grid) == 1 else f"{key}[{gi}]"
        params, shown = _in_bars(spec_params, timeframe, file, gkey)
        if entry.indicator is not None:
            impl = entry.indicator
            if impl not in INDICATORS:
                raise SpecError(
                    file, f"{key}.indicator", f"unknown indicator {impl!r}; expected one of {sorted(INDICATORS)}"
                )
            d = INDICATORS[impl]
            if entry.inputs is not None:
                if "col" not in d.params or len(entry.inputs) != 1:
                    raise SpecError(
                        file,
                        f"{key}.inputs",
                        f"{impl} reads {list(d.inputs) or ['<col>']}; "
                        "`inputs` may only name the single `col` it applies to",
                    )
                params = {**params, "col": entry.inputs[0]}
            try:
                resolved = d.resolve(params)
                own = d.lookback(params)
            except (KeyError, ValueError) as exc:
                raise SpecError(file, f"{key}.params", str(exc).strip("'\"")) from exc
            inputs = d.input_columns(params)
            window = d.span(params)
            named = {**resolved, **shown}
            if entry.name is None and any(isinstance(v, _PerTimeframe) for v in named.values()):
                raise SpecError(file, f"{key}.name", "an indicator with a per-timeframe window needs a `name`")
            base = fill_name(entry.name or _default_indicator_name(impl, named), named, file, f"{key}.name")
            cols = tuple(
                FeatureColumn(base if len(d.outputs) == 1 else f"{base}_{o}", o, pl.Float64(), max_nan)
                for o in d.outputs
            )
            kind: Literal["template", "indicator"] = "indicator"
            tmpl_pit: Pit = "bar_close"
        else:
            impl = entry.template or ""
            if impl not in FEATURE_TEMPLATES:
                raise SpecError(
                    file, f"{key}.template", f"unknown template {impl!r}; expected one of {sorted(FEATURE_TEMPLATES)}"
                )
            t = FEATURE_TEMPLATES[impl]
            try:
                resolved = t.resolve(params)
                own = t.lookback(resolved)
            except (KeyError, ValueError) as exc:
                raise SpecError(file, f"{key}.params", str(exc).strip("'\"")) from exc
            inputs = tuple(entry.inputs) if entry.inputs is not None else t.inputs
            if len(inputs) != len(t.inputs):
                raise SpecError(
                    file,
                    f"{key}.inputs",
                    f"template {impl} takes {len(t.inputs)} input(s) like {list(t.inputs)}, got {list(inputs)}",
                )
            if entry.name is None:
                raise SpecError(file, f"{key}.name", f"template {impl} entries need a `name`")
            name = fill_name(entry.name, {**resolved, **shown}, file, f"{key}.name")
            cols = (FeatureColumn(name, "value", t.dtype, max_nan),)
            window = t.span(resolved)
            kind = "template"
            tmpl_pit = "bar_open" if t.pit == "bar_open" else "bar_close"
        if pit == "bar_open" and tmpl_pit != "bar_open":
            raise SpecError(file, f"{key}.pit", f"{impl} reads bar data, so it is only known at the bar close")
        if entry.lookback is not None and entry.lookback < own:
            raise SpecError(file, f"{key}.lookback", f"declared {entry.lookback} bars but {impl} needs {own}")
        out.append(
            FeatureDef(
                key=gkey,
                file=file.name,
                family=fam,
                kind=kind,
                impl=impl,
                params=resolved,
                inputs=tuple(inputs),
                columns=cols,
                own_lookback=max(own, entry.lookback or 0),
                lookback=0,
                pit=pit,
                description=entry.description,
                own_span=max(1, math.ceil(window * min_fill)),
            )
        )
    return out


def _link(defs: list[FeatureDef], files: dict[str, Path]) -> tuple[list[FeatureDef], list[list[FeatureDef]]]:
    """Check names and inputs, compute transitive lookbacks and bar inputs, and split into dependency levels."""
    by_col: dict[str, FeatureDef] = {}
    for f in defs:
        for c in f.columns:
            if c.name in by_col:
                other = by_col[c.name]
                raise SpecError(
                    files[f.file], f.key, f"duplicated feature name {c.name!r} (also {other.file}:{other.key})"
                )
            if c.name in BAR_COLUMNS and not (f.impl == "identity" and f.inputs == (c.name,)):
                raise SpecError(files[f.file], f.key, f"feature name {c.name!r} shadows a bar column")
            if not c.name.isidentifier() or c.name != c.name.lower():
                raise SpecError(files[f.file], f.key, f"feature name {c.name!r} must be a lower-case identifier")
            by_col[c.name] = f
    for f in defs:
        for i in f.inputs:
            if i not in BAR_COLUMNS and i != TS and i not in by_col:
                raise SpecError(
                    files[f.file],
                    f"{f.key}.inputs",
                    f"unknown input column {i!r}: not a bar column nor a feature declared in spec/features",
                )
    level: dict[int, int] = {}
    lookback: dict[int, int] = {}
    span: dict[int, int] = {}
    bars_in: dict[int, frozenset[str]] = {}
    state: dict[int, int] = {}

    def visit(f: FeatureDef, chain: tuple[str, ...]) -> None:
        fid = id(f)
        if state.get(fid) == 2:
            return
        if state.get(fid) == 1:
            raise SpecError(files[f.file], f"{f.key}.inputs", f"dependency cycle: {' -> '.join(chain)}")
        state[fid] = 1
        lv, lb, sp = 0, f.own_lookback, f.own_span
        bi = {i for i in f.inputs if i in BAR_COLUMNS or i == TS}
        for i in f.inputs:
            if i in by_col and i not in BAR_COLUMNS:
                dep = by_col[i]
                visit(dep, (*chain, i))
                lv = max(lv, level[id(dep)] + 1)
                lb = max(lb, f.own_lookback + lookback[id(dep)] - 1)
                sp = max(sp, f.own_span + span[id(dep)] - 1)
                bi |= bars_in[id(dep)]
        level[fid], lookback[fid], span[fid], bars_in[fid] = lv, lb, sp, frozenset(bi)
        state[fid] = 2

    for f in defs:
        visit(f, (f.columns[0].name,))
    linked = [
        FeatureDef(**{**f.__dict__, "lookback": lookback[id(f)], "span": span[id(f)], "bar_inputs": bars_in[id(f)]})
        for f in defs
    ]
    n_levels = max(level.values(), default=-1) + 1
    levels: list[list[FeatureDef]] = [[] for _ in range(n_levels)]
    for f, g in zip(defs, linked, strict=True):
        levels[level[id(f)]].append(g)
    return linked, levels


def load_feature_specs(directory: Path | None = None, *, timeframe: str = DEFAULT_TIMEFRAME) -> FeatureCatalog:
    """Read every `*.yaml` under spec/features (sorted), validate, expand grids and link dependencies; windows given
    as durations become bars of `timeframe` (`FeatureCatalog.for_timeframe` gives the other timeframes)."""
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; expected one of {sorted(TIMEFRAMES)}")
    directory = directory or spec_dir() / "features"
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        raise SpecError(directory, "<dir>", "no feature spec files (*.yaml) found")
    defs: list[FeatureDef] = []
    paths: dict[str, Path] = {}
    context: ContextParams | None = None
    context_file = ""
    for path in files:
        paths[path.name] = path
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise SpecError(path, "<root>", "expected a mapping with `features`")
        spec: _File = validate_model(_File, data, path)
        if spec.context is not None:
            if context is not None:
                raise SpecError(path, "context", f"context parameters are already declared in {context_file}")
            try:
                for tf in TIMEFRAMES:  # every timeframe must give valid windows, not only the one loaded
                    at_tf = spec.context.at(tf)
                    if tf == timeframe:
                        context = at_tf
            except (ValueError, TypeError) as exc:
                raise SpecError(path, "context", str(exc)) from exc
            context_file = path.name
        for n, entry in enumerate(spec.features):
            defs.extend(_entry_defs(entry, spec.defaults, spec.family, path, f"features.{n}", timeframe))
    linked, levels = _link(defs, paths)
    by_column = {c.name: f for f in linked for c in f.columns}
    return FeatureCatalog(
        features=tuple(linked),
        levels=tuple(tuple(lv) for lv in levels),
        spec_hash=spec_hash(directory.name, root=directory.parent),
        source=str(directory),
        context=context or ContextParams(),
        timeframe=timeframe,
        _by_column=by_column,
    )


def columns_of(catalog: FeatureCatalog, family: str | None = None) -> list[str]:
    return [c.name for f in catalog.features if family is None or f.family == family for c in f.columns]


def families(catalog: FeatureCatalog) -> list[str]:
    return sorted({f.family for f in catalog.features})
