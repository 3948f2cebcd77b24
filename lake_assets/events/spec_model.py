"""Load and validate `spec/events/`: one YAML per event type plus `canonical_event_registry.yaml`.

Windows (`window`, `short`, `long`, `within`, `persist`, `min_on`, `min_off`, `bars`, `min_periods` of a detector) and
`cooldown` are bars of the instrument's base timeframe (an int), a duration (`4h`, `7d`: the bars covering it) or a
per-timeframe mapping (`{default: 1d, 1d: 20}`), as in spec/features; `EventSpec.at(timeframe)` resolves them and a
loaded catalog is resolved for 5m bars.

Every problem becomes a SpecError(file, key, problem) at load time: unknown template, missing or extra parameter,
unknown column, a column used but not declared, a family outside the ten canonical ones, duplicated names, and any
mismatch between the canonical registry and the event files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, model_validator

from lake_assets.events.columns import ColumnKind, column_kind
from lake_assets.events.detectors import DETECTORS, DetectorParams, Predicate, predicate_kind_problem
from lake_assets.features.catalog import DEFAULT_TIMEFRAME, bars_of
from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, StrictModel, read_yaml, spec_hash, validate_model
from lake_assets.vocabulary import TIMEFRAMES

REGISTRY_FILE: Final = "canonical_event_registry.yaml"

CANONICAL_FAMILIES: Final = (
    "LIQUIDITY_DISLOCATION",
    "VOLATILITY_TRANSITION",
    "FUNDING_EPISODE",
    "POSITIONING_EXTREMES",
    "FORCED_FLOW",
    "TREND_STRUCTURE",
    "REGIME_TRANSITION",
    "INFORMATION_DESYNC",
    "TEMPORAL_STRUCTURE",
    "EXECUTION_FRICTION",
)

Direction = Literal["long", "short", "both", "neutral"]
EVENT_NAME_PATTERN: Final = r"^[A-Z][A-Z0-9_]{1,63}$"


class Prevalence(StrictModel):
    """Expected events per 1,000 bars for one instrument; the asset check fails outside [min, max]. The minimum is
    positive, so an event type that never fires on an instrument it applies to fails the check (0.01: at least about
    one event per 100,000 bars) instead of passing silently; where it cannot fire, applicability says why."""

    min_per_1000: float = Field(gt=0)
    max_per_1000: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Prevalence:
        if self.min_per_1000 > self.max_per_1000:
            raise ValueError(f"min_per_1000 {self.min_per_1000} exceeds max_per_1000 {self.max_per_1000}")
        return self


class DetectorSpec(StrictModel):
    template: str
    params: dict[str, Any] = Field(default_factory=dict)


class EventSpecFile(StrictModel):
    name: str = Field(pattern=EVENT_NAME_PATTERN)
    family: str
    description: str = ""
    detector: DetectorSpec
    columns: list[str] = Field(min_length=1)
    direction: Direction
    cooldown: int | str | dict[str, int | str]
    prevalence: Prevalence
    filters: list[Predicate] = Field(default_factory=list)
    severity_column: str | None = None
    sign_column: str | None = None


class RegistryFile(StrictModel):
    event_types: dict[str, str] = Field(min_length=1)


@dataclass(frozen=True)
class EventSpec:
    """One validated event type, ready to compile."""

    name: str
    family: str
    template: str
    params: DetectorParams
    columns: tuple[str, ...]
    direction: Direction
    cooldown: int
    min_per_1000: float
    max_per_1000: float
    filters: tuple[Predicate, ...] = ()
    severity_column: str | None = None
    sign_column: str | None = None
    description: str = ""
    file: str = ""
    timeframe: str = DEFAULT_TIMEFRAME  # the bar timeframe its windows and cooldown are counted in
    source: Any = field(default=None, repr=False, compare=False)  # the spec as data, to resolve other timeframes

    def at(self, timeframe: str) -> EventSpec:
        """The spec with its windows and cooldown in bars of `timeframe` (itself when already so)."""
        if timeframe == self.timeframe or self.source is None:
            return self
        return _resolved(self, timeframe)

    def kind(self, column: str) -> ColumnKind:
        kind = column_kind(column)
        if kind is None:  # unreachable for a loaded spec: columns are validated
            raise KeyError(column)
        return kind


@dataclass(frozen=True)
class EventCatalog:
    """All event types in canonical-registry order, with the hash of `spec/events/`."""

    specs: tuple[EventSpec, ...]
    spec_hash: str

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def entry_hash(self, name: str) -> str:
        """The version of one event type's spec: its file and its family in the registry. Editing one event's spec
        changes its hash only, so exactly that event type's partitions become stale."""
        spec = self.get(name)
        text = Path(spec.file).read_bytes() if spec.file and Path(spec.file).is_file() else repr(spec).encode()
        return hashlib.sha256(b"\0".join([name.encode(), spec.family.encode(), text])).hexdigest()[:16]

    def get(self, name: str) -> EventSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(f"unknown event type {name!r}")

    def families(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {f: [] for f in CANONICAL_FAMILIES}
        for s in self.specs:
            out[s.family].append(s.name)
        return out


# Detector parameters that count bars (a duration or per-timeframe mapping becomes bars of the instrument's timeframe).
WINDOW_PARAMS: Final = frozenset({"window", "short", "long", "within", "persist", "min_on", "min_off", "bars",
                                  "min_periods"})  # fmt: skip


def _in_bars(value: Any, timeframe: str, path: Path | str, key: str) -> Any:
    """`bars_of` for a spec window; it must resolve at every timeframe, not only the one asked."""
    if not (isinstance(value, (str, dict)) and not isinstance(value, bool)):
        return value
    try:
        for tf in TIMEFRAMES:
            bars_of(value, tf)
        return bars_of(value, timeframe)
    except (ValueError, TypeError) as exc:
        raise SpecError(path, key, str(exc)) from exc


_VARIANTS: dict[tuple[int, str], EventSpec] = {}


def _resolved(spec: EventSpec, timeframe: str) -> EventSpec:
    key = (id(spec), timeframe)
    held = _VARIANTS.get(key)
    if held is None or held.source is not spec.source:
        held = _VARIANTS[key] = event_spec_from_dict(spec.source, spec.file or "<memory>", timeframe=timeframe)
    return held


def parse_event_file(path: Path) -> EventSpec:
    """Validate one event YAML file (everything except cross-file consistency)."""
    return event_spec_from_dict(read_yaml(path), path)


def event_spec_from_dict(data: Any, path: Path | str = "<memory>", *, timeframe: str = DEFAULT_TIMEFRAME) -> EventSpec:
    """Validate one event spec given as data, windows in bars of `timeframe`; `path` names it in errors."""
    if not isinstance(data, dict):
        raise SpecError(path, "<root>", "expected a mapping with name, family, detector, columns, ...")
    raw: EventSpecFile = validate_model(EventSpecFile, data, path)
    cooldown = _in_bars(raw.cooldown, timeframe, path, "cooldown")
    if not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0:
        bad = f"must be bars (greater than or equal to 0) or a duration, got {raw.cooldown!r}"
        raise SpecError(path, "cooldown", bad)
    detector_params = {
        k: _in_bars(v, timeframe, path, f"detector.params.{k}") if k in WINDOW_PARAMS else v
        for k, v in raw.detector.params.items()
    }
    if raw.family not in CANONICAL_FAMILIES:
        raise SpecError(
            path, "family", f"{raw.family!r} is not a canonical family; expected one of {CANONICAL_FAMILIES}"
        )
    template = DETECTORS.get(raw.detector.template)
    if template is None:
        raise SpecError(
            path,
            "detector.template",
            f"unknown template {raw.detector.template!r}; expected one of {sorted(DETECTORS)}",
        )
    params: DetectorParams = validate_model(template.params, detector_params, path, prefix="detector.params")

    seen: set[str] = set()
    for i, col in enumerate(raw.columns):
        if column_kind(col) is None:
            raise SpecError(
                path,
                f"columns.{i}",
                f"unknown column {col!r}: not in the bars/features/context/market_context contract",
            )
        if col in seen:
            raise SpecError(path, f"columns.{i}", f"column {col!r} is listed twice")
        seen.add(col)

    def check_ref(key: str, col: str, kinds: tuple[ColumnKind, ...] | None) -> None:
        if col not in seen:
            known = "" if column_kind(col) is not None else " (and it is not a known column)"
            raise SpecError(path, key, f"column {col!r} is used but not declared in `columns`{known}")
        kind = column_kind(col)
        if kinds is not None and kind not in kinds:
            raise SpecError(path, key, f"column {col!r} is {kind}; this parameter needs {' or '.join(kinds)}")

    for key, col, kinds in params.column_refs():
        check_ref(f"detector.params.{key}", col, kinds)
    predicates = [(f"filters.{i}", f) for i, f in enumerate(raw.filters)]
    when = getattr(params, "when", None)
    if isinstance(when, Predicate):
        predicates.append(("detector.params.when", when))
    for key, pred in predicates:
        check_ref(f"{key}.column", pred.column, None)
        problem = predicate_kind_problem(pred, column_kind(pred.column) or "numeric")
        if problem:
            raise SpecError(path, key, problem)
    for key in ("severity_column", "sign_column"):
        col = getattr(raw, key)
        if col is not None:
            check_ref(key, col, ("numeric",))

    return EventSpec(
        name=raw.name,
        family=raw.family,
        template=raw.detector.template,
        params=params,
        columns=tuple(raw.columns),
        direction=raw.direction,
        cooldown=cooldown,
        min_per_1000=raw.prevalence.min_per_1000,
        max_per_1000=raw.prevalence.max_per_1000,
        filters=tuple(raw.filters),
        severity_column=raw.severity_column,
        sign_column=raw.sign_column,
        description=raw.description,
        file=str(path),
        timeframe=timeframe,
        source=data,
    )


def load_event_specs(directory: Path | None = None) -> EventCatalog:
    """Load `spec/events/` (or `directory`): every event file, cross-checked against the canonical registry."""
    directory = directory or spec_dir() / "events"
    reg_path = directory / REGISTRY_FILE
    reg_data = read_yaml(reg_path)
    if not isinstance(reg_data, dict):
        raise SpecError(reg_path, "<root>", "expected a mapping with `event_types`")
    registry: RegistryFile = validate_model(RegistryFile, reg_data, reg_path)
    for name, family in registry.event_types.items():
        if family not in CANONICAL_FAMILIES:
            raise SpecError(
                reg_path,
                f"event_types.{name}",
                f"{family!r} is not a canonical family; expected one of {CANONICAL_FAMILIES}",
            )

    by_name: dict[str, EventSpec] = {}
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.name != REGISTRY_FILE)
    for path in files:
        spec = parse_event_file(path)
        if spec.name in by_name:
            raise SpecError(
                path, "name", f"duplicate event type {spec.name!r} (also defined in {by_name[spec.name].file})"
            )
        if spec.name not in registry.event_types:
            raise SpecError(path, "name", f"event type {spec.name!r} is not listed in {REGISTRY_FILE}")
        canonical = registry.event_types[spec.name]
        if spec.family != canonical:
            raise SpecError(path, "family", f"{spec.family!r} differs from {REGISTRY_FILE}, which says {canonical!r}")
        by_name[spec.name] = spec
    for name in registry.event_types:
        if name not in by_name:
            raise SpecError(reg_path, f"event_types.{name}", "no event spec file defines this event type")

    digest = spec_hash(*(p.name for p in [reg_path, *files]), root=directory)
    return EventCatalog(specs=tuple(by_name[n] for n in registry.event_types), spec_hash=digest)


@lru_cache(maxsize=4)
def _cached(directory: str, stamp: tuple[tuple[str, float], ...]) -> EventCatalog:
    return load_event_specs(Path(directory))


def event_specs(directory: Path | None = None) -> EventCatalog:
    """The catalog at `spec/events/`, re-read whenever a file there changes."""
    directory = (directory or spec_dir() / "events").resolve()
    stamp = tuple(sorted((p.name, p.stat().st_mtime) for p in directory.iterdir())) if directory.is_dir() else ()
    return _cached(str(directory), stamp)
