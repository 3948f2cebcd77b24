"""One model variant's study as a self-contained task (no Dagster), so `model_runs` can hand the variants of a run to
`process_map` and use every core (each study fits with `study.threads` threads, 1 by default).

A task carries the lake root, the variant, the trial budget and the study storage URL; it reads the variant's
training set itself and returns the study's result, or the reason there was nothing to run.
"""

from __future__ import annotations

from dataclasses import dataclass

from lake_assets import tables
from lake_assets.features.catalog import columns_of, load_feature_specs
from lake_assets.models.spec_model import TASK_OF_LABEL, model_spec, split_variant_key
from lake_assets.models.study import StudyConfig, StudyResult, run_variant
from lake_assets.models.training import fingerprint
from lake_assets.storage.lake import Lake


@dataclass(frozen=True)
class VariantTask:
    lake_root: str
    variant: str
    trials: int
    storage_url: str


@dataclass(frozen=True)
class VariantOutcome:
    variant: str
    version: str  # the spec version the variant was run with
    training_version: str  # the training set's fingerprint ("" when there was none)
    result: StudyResult | None
    error: str | None = None


def run_variant_task(task: VariantTask) -> VariantOutcome:
    spec = model_spec()
    key = task.variant
    freq, scheme, fam = split_variant_key(key)
    version = spec.variant_hash(key)
    store = Lake(task.lake_root)
    frame = store.reader.partition(tables.TRAINING_SETS, {"training_set": f"{freq}.{scheme}"})
    if frame.is_empty():
        msg = f"variant {key}: training set {freq}.{scheme} is empty or missing (materialize training_sets)"
        return VariantOutcome(key, version, "", None, msg)
    fp = fingerprint(frame)
    s = spec.study
    cfg = StudyConfig(variant=key, frequency=freq, task=TASK_OF_LABEL[scheme], family=fam,  # type: ignore[arg-type]
                      folds=spec.splits.folds, min_train_fraction=spec.splits.min_train_fraction,
                      embargo_bars=spec.splits.embargo_bars.of(freq), seed=s.seed, threads=s.threads,
                      n_warmup_steps=s.n_warmup_steps, n_startup_trials=s.n_startup_trials,
                      storage_url=task.storage_url, study_name=f"{key}@{version}-{fp}")  # fmt: skip
    try:
        result = run_variant(cfg, frame, columns_of(load_feature_specs()), task.trials)
    except ValueError as exc:
        return VariantOutcome(key, version, fp, None, str(exc))
    return VariantOutcome(key, version, fp, result)
