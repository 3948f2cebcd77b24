"""Load, validate and hash `spec/`, the ground truth every layer reads.

Errors name the file, the key (a dotted path) and what is wrong, so a researcher can fix a spec without reading code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lake_assets.settings import spec_dir
from lake_assets.vocabulary import TIMEFRAMES, InvalidIdentifierError, Market, validate_instrument_id

VENDORS = ("synthetic", "packaged", "ccxt", "yfinance", "trade_files")


class SpecError(ValueError):
    """A spec file that is missing, unparsable or invalid; the message names file, key and problem."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, problem
        super().__init__(f"{file}: {key}: {problem}")


class StrictModel(BaseModel):
    """The base of every spec model: unknown keys are errors, models are immutable, and `Infinity`/`NaN` (which YAML
    and json.loads accept) in a float field is an error naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Instrument(StrictModel):
    id: str
    vendor: Literal["synthetic", "packaged", "ccxt", "yfinance", "trade_files"]
    market: Market
    base_timeframe: str = "5m"
    start: date
    end: date | None = None
    spot: str | None = None  # the spot leg of a perp, for basis
    requires_basis: bool | None = None  # defaults to True for perps
    symbol: str | None = None  # the vendor's own symbol (ccxt "BTC/USDT:USDT", yfinance "^GSPC", packaged "sp500")
    calendar: str | None = None  # exchange calendar for holidays (equities)
    params: dict[str, Any] = Field(default_factory=dict)  # vendor-specific knobs (synthetic seed, ...)

    @field_validator("id", "spot")
    @classmethod
    def _safe_id(cls, v: str | None) -> str | None:
        return None if v is None else validate_instrument_id(v)

    @field_validator("base_timeframe")
    @classmethod
    def _known_timeframe(cls, v: str) -> str:
        if v not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {v!r}; expected one of {sorted(TIMEFRAMES)}")
        return v

    @model_validator(mode="after")
    def _perp_needs_spot(self) -> Instrument:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.market == Market.PERP and self.basis_required and self.spot is None:
            raise ValueError("a perp needs `spot` (its spot leg) because basis is required; set requires_basis: false")
        return self

    @property
    def basis_required(self) -> bool:
        return self.market == Market.PERP if self.requires_basis is None else self.requires_basis

    def life_window(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """[start, end) clipped to the instrument's declared life (start date, end date inclusive), in UTC.

        The result may be empty (lo >= hi) when the request lies outside the life.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(f"start/end must be timezone-aware UTC datetimes, got {start!r}, {end!r}")
        lo = max(start.astimezone(UTC), datetime.combine(self.start, time.min, UTC))
        hi = end.astimezone(UTC)
        if self.end is not None:
            hi = min(hi, datetime.combine(self.end + timedelta(days=1), time.min, UTC))
        return lo, hi

    @property
    def vendor_symbol(self) -> str:
        return self.symbol or self.id

    @property
    def is_crypto(self) -> bool:
        return self.market in (Market.PERP, Market.SPOT)


class Universe(StrictModel):
    instruments: tuple[Instrument, ...]
    benchmarks: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Universe:
        ids = [i.id for i in self.instruments]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate instrument ids {dupes}")
        known = set(ids)
        for n, inst in enumerate(self.instruments):
            if inst.spot is not None and inst.spot not in known:
                raise KeyedSpecError(f"instruments.{n}.spot", f"spot leg {inst.spot!r} is not in the universe")
        for name, bench in self.benchmarks.items():
            if bench not in known:
                raise KeyedSpecError(f"benchmarks.{name}", f"benchmark {bench!r} is not in the universe")
        return self

    def get(self, instrument_id: str) -> Instrument:
        for inst in self.instruments:
            if inst.id == instrument_id:
                return inst
        raise KeyError(f"instrument {instrument_id!r} is not in the universe")

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.instruments]

    def benchmark_for(self, inst: Instrument) -> str | None:
        return self.benchmarks.get("crypto" if inst.is_crypto else "equity")


class KeyedSpecError(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(problem)


class _SpecLoader(yaml.SafeLoader):
    """YAML's safe loader whose dates that do not exist (`2026-13-45`) stay strings, so the spec's model rejects them
    naming the key, instead of YAML raising a bare ValueError that names nothing."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:
        return loader.construct_scalar(node)  # type: ignore[arg-type]


_SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file (safe: no tags that build objects), turning every failure into a SpecError naming the
    file."""
    if not path.is_file():
        raise SpecError(path, "<file>", "file not found")
    try:
        with path.open(encoding="utf-8-sig") as fh:
            return yaml.load(fh, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<file>"
        raise SpecError(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc


def validate_model(model: type[BaseModel], data: Any, file: Path | str, prefix: str = "") -> Any:
    """Validate `data` against a pydantic model; the first error becomes a SpecError with a dotted key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, KeyedSpecError):
            raise SpecError(file, _join(prefix, ctx_err.key), ctx_err.problem) from exc
        key = _join(prefix, ".".join(str(p) for p in err["loc"]) or "<root>")
        msg = err["msg"].removeprefix("Value error, ")
        if isinstance(ctx_err, InvalidIdentifierError):
            msg = str(ctx_err)
        raise SpecError(file, key, f"{msg} (got {_short(err.get('input'))})") from exc


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


M = TypeVar("M", bound=BaseModel)


def load_spec_file(model: type[M], path: Path, expected: str) -> M:
    """Read the YAML at `path` and validate it as `model`; any problem is a SpecError naming file, key and problem
    (`expected` says what the root should hold when it is not a mapping)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(path, "<root>", f"expected a mapping with {expected}")
    spec: M = validate_model(model, data, path)
    return spec


def load_universe(path: Path | None = None) -> Universe:
    return load_spec_file(Universe, path or spec_dir() / "universe.yaml", "`instruments`")


@lru_cache(maxsize=8)
def _cached_universe(path: str, mtime: float) -> Universe:
    return load_universe(Path(path))


def universe() -> Universe:
    """The universe at `spec/universe.yaml`, re-read when the file changes."""
    path = spec_dir() / "universe.yaml"
    return _cached_universe(str(path), path.stat().st_mtime if path.exists() else 0.0)


def spec_hash(*parts: str, root: Path | None = None) -> str:
    """A stable hash of spec files (all of `spec/`, or the named files/folders): path + bytes, sorted.

    Used in every research output and in assets' code_version so the UI shows what a spec change made stale.
    """
    root = root or spec_dir()
    targets = [root / p for p in parts] if parts else [root]
    files: list[Path] = []
    for target in targets:
        if target.is_dir():
            files.extend(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif target.is_file():
            files.append(target)
    return _hash_files(root, sorted(set(files)))


def _hash_files(root: Path, files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(f.read_bytes().replace(b"\r\n", b"\n"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]
