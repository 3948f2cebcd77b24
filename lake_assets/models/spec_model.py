"""spec/models/models.yaml: label definitions, training-set rules, splits, studies, the leaderboard, profiles.

Validated on `specs.StrictModel`: an unknown key, a wrong type, an unknown frequency, label scheme or family (a family
is a module of `lake_assets/models/families/`) is a SpecError naming file, key and problem. Variants are the product
frequency x label scheme x family, keyed `<frequency>.<label>.<family>` (`5m.B1.lightgbm`); training sets
`<frequency>.<label>`. Each variant's hash covers exactly the spec parts its run reads, so editing one family's or one
frequency's settings makes only those partitions stale.
"""

from __future__ import annotations

import hashlib
import json
import pkgutil
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lake_assets.settings import spec_dir
from lake_assets.specs import KeyedSpecError, StrictModel, load_spec_file

LabelScheme = Literal["B1", "T3", "R"]
Frequency = Literal["5m", "1h", "1d"]
LABEL_SCHEMES: tuple[LabelScheme, ...] = ("B1", "T3", "R")
FREQUENCIES: tuple[Frequency, ...] = ("5m", "1h", "1d")
TASK_OF_LABEL = {"B1": "binary", "T3": "multiclass", "R": "regression"}


def available_families() -> tuple[str, ...]:
    """The modules of lake_assets/models/families/ (minus the interface): a family is one module there."""
    from lake_assets.models import families

    return tuple(sorted(m.name for m in pkgutil.iter_modules(families.__path__) if not m.name.startswith("_")))


class PerFrequencyInt(StrictModel):
    m5: int = Field(alias="5m", ge=0)
    h1: int = Field(alias="1h", ge=0)
    d1: int = Field(alias="1d", ge=0)

    def of(self, frequency: str) -> int:
        return int({"5m": self.m5, "1h": self.h1, "1d": self.d1}[frequency])


class PerFrequencyFloat(StrictModel):
    m5: float = Field(alias="5m", ge=0)
    h1: float = Field(alias="1h", ge=0)
    d1: float = Field(alias="1d", ge=0)

    def of(self, frequency: str) -> float:
        return float({"5m": self.m5, "1h": self.h1, "1d": self.d1}[frequency])


class LabelSpec(StrictModel):
    horizon_bars: PerFrequencyInt
    t3_threshold_pct: PerFrequencyFloat

    @model_validator(mode="after")
    def _positive(self) -> LabelSpec:
        for f in FREQUENCIES:
            if self.horizon_bars.of(f) < 1:
                raise KeyedSpecError(f"labels.horizon_bars.{f}", "must be >= 1")
        return self


class TrainingSpec(StrictModel):
    max_rows_per_instrument: PerFrequencyInt
    warmup_bars: PerFrequencyInt
    max_abs_feature_label_corr: float = Field(0.5, gt=0, le=1)
    embedding_size: Literal[32] = 32


class SplitSpec(StrictModel):
    folds: int = Field(5, ge=2, le=50)
    min_train_fraction: float = Field(0.4, gt=0, lt=1)
    embargo_bars: PerFrequencyInt


class StudySpec(StrictModel):
    trials: int = Field(60, ge=1, le=10_000)
    seed: int = 0
    n_warmup_steps: int = Field(3, ge=0)
    n_startup_trials: int = Field(5, ge=0)
    storage: str | None = None
    threads: int = Field(1, ge=1, le=64)
    retrain_cron: str = "0 4 * * 0"


class LeaderboardSpec(StrictModel):
    w_balanced_accuracy: float = Field(0.4, ge=0)
    w_sharpe: float = Field(0.6, ge=0)
    sharpe_cap: float = Field(3.0, gt=0)
    keep_min_score: float = 0.6
    fast_slippage: float = Field(0.0001, ge=0, lt=0.1)
    realistic_fee: float = Field(0.0004, ge=0, lt=0.1)
    realistic_slippage: float = Field(0.0005, ge=0, lt=0.1)


class Profile(StrictModel):
    trials: int = Field(ge=1, le=10_000)
    variants: tuple[str, ...] = ()


class ModelSpec(StrictModel):
    frequencies: tuple[Frequency, ...] = FREQUENCIES
    label_schemes: tuple[LabelScheme, ...] = LABEL_SCHEMES
    families: tuple[str, ...]
    labels: LabelSpec
    training: TrainingSpec
    splits: SplitSpec
    study: StudySpec
    leaderboard: LeaderboardSpec
    profiles: dict[str, Profile] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> ModelSpec:
        known = available_families()
        for i, fam in enumerate(self.families):
            if fam not in known:
                problem = f"unknown family {fam!r}; lake_assets/models/families has {known}"
                raise KeyedSpecError(f"families.{i}", problem)
        variants = set(self.variant_keys)
        for name, prof in self.profiles.items():
            for i, v in enumerate(prof.variants):
                if v not in variants:
                    problem = f"{v!r} is not a variant (e.g. 1h.B1.lightgbm)"
                    raise KeyedSpecError(f"profiles.{name}.variants.{i}", problem)
        return self

    # --- keys ---------------------------------------------------------------------------------------------------

    @property
    def training_keys(self) -> list[str]:
        return [f"{f}.{lab}" for f in self.frequencies for lab in self.label_schemes]

    @property
    def variant_keys(self) -> list[str]:
        return [f"{f}.{lab}.{fam}" for f in self.frequencies for lab in self.label_schemes for fam in self.families]

    def trials_for(self, profile: str | None) -> int:
        if profile and profile in self.profiles:
            return self.profiles[profile].trials
        return self.study.trials

    # --- hashes: what each partition reads ------------------------------------------------------------------------

    def training_hash(self, key: str) -> str:
        freq, _ = split_training_key(key)
        part = {
            "horizon": self.labels.horizon_bars.of(freq),
            "t3": self.labels.t3_threshold_pct.of(freq),
            "max_rows": self.training.max_rows_per_instrument.of(freq),
            "warmup": self.training.warmup_bars.of(freq),
            "corr": self.training.max_abs_feature_label_corr,
            "emb": self.training.embedding_size,
        }
        return _hash(part)

    def variant_hash(self, key: str) -> str:
        """The version of everything a variant's study reads (not the trial count: more trials continue a study)."""
        freq, lab, fam = split_variant_key(key)
        study = self.study.model_dump(exclude={"trials", "retrain_cron"})
        splits = {"folds": self.splits.folds, "min_train": self.splits.min_train_fraction,
                  "embargo": self.splits.embargo_bars.of(freq)}  # fmt: skip
        return _hash({"training": self.training_hash(f"{freq}.{lab}"), "family": fam, "study": study,
                      "splits": splits})  # fmt: skip


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_training_key(key: str) -> tuple[str, str]:
    freq, sep, lab = key.partition(".")
    if not sep or freq not in FREQUENCIES or lab not in LABEL_SCHEMES:
        raise ValueError(f"not a training-set key: {key!r} (expected <frequency>.<label>, e.g. 5m.B1)")
    return freq, lab


def split_variant_key(key: str) -> tuple[str, str, str]:
    parts = key.split(".")
    if len(parts) != 3 or parts[0] not in FREQUENCIES or parts[1] not in LABEL_SCHEMES or not parts[2]:
        raise ValueError(f"not a model variant key: {key!r} (expected <frequency>.<label>.<family>)")
    return parts[0], parts[1], parts[2]


def models_spec_path() -> Path:
    return spec_dir() / "models" / "models.yaml"


def load_model_spec(path: Path | None = None) -> ModelSpec:
    return load_spec_file(ModelSpec, path or models_spec_path(), "(frequencies, label_schemes, families, labels, ...)")


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> ModelSpec:
    return load_model_spec(Path(path))


def model_spec() -> ModelSpec:
    """spec/models/models.yaml, re-read when the file changes."""
    path = models_spec_path()
    return _cached(str(path), path.stat().st_mtime if path.exists() else 0.0)
