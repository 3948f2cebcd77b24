"""Model layer assets: `labels` (instrument-month), `training_sets` (frequency x label), `model_runs` (one partition
per model variant of spec/models).

Thin: each reads with `store.reader`, calls the compute modules (labels.py, training.py, study.py) and publishes
through `PartitionPublisher`. `model_runs` partitions record the version of the spec parts they read (`spec_version`
metadata, compared by spec_sensor) and retrain on the spec's cron once their inputs changed, not on every new bar.
"""


import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from lake_assets import tables
from lake_assets.asset_metadata import frame_metadata
from lake_assets.automation import WAITS_FOR_CHECKS
from lake_assets.features.catalog import columns_of, load_feature_specs
from lake_assets.markdown import md_table
from lake_assets.models.labels import compute_labels
from lake_assets.models.runs import VariantTask, run_variant_task
from lake_assets.models.spec_model import model_spec, split_training_key, split_variant_key
from lake_assets.models.training import (
    InstrumentInputs,
    build_training_set,
    embeddings_at,
    feature_label_correlation,
    features_at,
    fingerprint,
)
from lake_assets.months import month_bounds, month_key
from lake_assets.parallel import process_map
from lake_assets.partitions import (
    instrument_month_key,
    instrument_month_partitions,
    instrument_months,
    life_months,
    lookahead_mapping,
    split_key,
    to_all_mapping,
)
from lake_assets.publish import PartitionPublisher, Verdict, partitioned_asset
from lake_assets.settings import data_root
from lake_assets.specs import Instrument, universe
from lake_assets.storage.lake import Lake
from lake_assets.vocabulary import INSTRUMENT, MONTH, TIMEFRAMES, TS
from resources.lake import LakeResource, WarehouseResource

GROUP = "models"
SPEC_VERSION = "spec_version"  # the partition's spec version, compared by spec_sensor
PROFILE_TAG = "qlake/model_profile"  # run tag: a spec profile (the demo's: fewer trials)
BAR_TABLES = {"5m": tables.BARS, "1h": tables.BARS_1H, "1d": tables.BARS_1D}
BARS_PER_MONTH = {"5m": 288 * 31, "1h": 24 * 31, "1d": 31}

_SPEC = model_spec()
training_set_partitions = dg.StaticPartitionsDefinition(_SPEC.training_keys)
model_variant_partitions = dg.StaticPartitionsDefinition(_SPEC.variant_keys)


def _part_hash(*parts: str) -> str:
    """Hash of the named sections of spec/models (a trial-budget edit does not change the labels' code version)."""
    dumped = json.dumps({p: getattr(_SPEC, p).model_dump(mode="json") for p in parts}, sort_keys=True)
    return hashlib.sha256(dumped.encode()).hexdigest()[:12]


def has_frequency(inst: Instrument, frequency: str) -> bool:
    """An instrument has bars at `frequency` when its base timeframe is no coarser."""
    return TIMEFRAMES[inst.base_timeframe] <= TIMEFRAMES[frequency]


def _training_mapping() -> dg.StaticPartitionMapping:
    """Every instrument-month -> the training sets of the frequencies the instrument has."""
    downs: dict[str, list[str]] = {}
    for key in instrument_month_partitions.get_partition_keys():
        inst = universe().get(split_key(key)[0])
        downs[key] = [k for k in _SPEC.training_keys if has_frequency(inst, split_training_key(k)[0])]
    return to_all_mapping(downs)


def _variant_mapping() -> dg.StaticPartitionMapping:
    return dg.StaticPartitionMapping({t: [v for v in _SPEC.variant_keys if v.startswith(t + ".")]
                                      for t in _SPEC.training_keys})  # fmt: skip


# --- labels ---------------------------------------------------------------------------------------------------------


@partitioned_asset(
    group_name=GROUP,
    partitions_def=instrument_month_partitions,
    code_version=f"labels-1-{_part_hash('labels')}",
    deps=[dg.AssetDep(a, partition_mapping=lookahead_mapping()) for a in ("bars", "bars_1h", "bars_1d")],
    kinds={"parquet", "polars"},
    checks=[
        ("labels_consistent", True, "B1, T3 and R agree (B1 = R > 0, T3 within its classes), every label window "
                                    "ends after its bar, one row per bar and frequency"),
    ],
)  # fmt: skip
def labels(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """B1 / T3 / R labels per bar at 5m, 1h and 1d (spec/models labels): the lake's only forward-looking columns."""
    store = lake.lake()
    spec = model_spec().labels
    publisher = PartitionPublisher(context, store, GROUP, "labels")
    for inst_id, month in instrument_months(context):
        inst = universe().get(inst_id)
        nxt = month_key(month_bounds(month)[1])
        months = [month] + ([nxt] if nxt in life_months(inst) else [])
        start, end = month_bounds(month)
        parts = []
        for freq, table in BAR_TABLES.items():
            if not has_frequency(inst, freq) or (freq == "5m" and inst.base_timeframe != "5m"):
                continue
            bars = store.reader.read(table, [{INSTRUMENT: inst_id, MONTH: m} for m in months],
                                     columns=[TS, INSTRUMENT, "close", "is_gap"])  # fmt: skip
            if bars.is_empty():
                continue
            lab = compute_labels(bars.sort(TS), freq, spec.horizon_bars.of(freq), spec.t3_threshold_pct.of(freq))
            parts.append(lab.filter((pl.col(TS) >= start) & (pl.col(TS) < end)))
        out = pl.concat(parts) if parts else pl.DataFrame(schema=tables.LABELS.schema)
        has = out.filter(pl.col("y_r").is_not_null())
        bad = has.filter(
            ((pl.col("y_b1") == 1) != (pl.col("y_r") > 0)) | ~pl.col("y_t3").is_in([-1, 0, 1])
            | (pl.col("label_end_ts") <= pl.col(TS))
        ).height  # fmt: skip
        dupes = out.height - out.unique([TS, "frequency"]).height
        verdict = Verdict("labels_consistent", bad == 0 and dupes == 0,
                          {"inconsistent_rows": bad, "duplicate_rows": dupes, "labelled_rows": has.height})  # fmt: skip
        meta = frame_metadata(out, [TS, "frequency", "y_b1", "y_t3", "y_r"])
        publisher.audit(instrument_month_key(inst_id, month), out, {INSTRUMENT: inst_id, MONTH: month}, [verdict],
                        meta)  # fmt: skip
    warehouse.refresh()
    yield from publisher.finish()


# --- training sets ------------------------------------------------------------------------------------------------


def instrument_inputs(store: Lake, inst: Instrument, frequency: str, max_rows: int) -> tuple[InstrumentInputs, Any]:
    """The labels (whole history), features and embeddings (the recent months the set can keep) of one instrument
    at `frequency`, and the start of those months."""
    lab_months = store.reader.months(tables.LABELS, inst.id)
    labs = store.reader.read(tables.LABELS, [{INSTRUMENT: inst.id, MONTH: m} for m in lab_months])
    labs = labs.filter(pl.col("frequency") == frequency).sort(TS) if labs.height else labs
    feat_months = store.reader.months(tables.FEATURES, inst.id)
    bars_per_month = BARS_PER_MONTH[frequency] if inst.base_timeframe != "1d" else 21
    keep = feat_months[-(math.ceil(max_rows / bars_per_month) + 1):]
    since = month_bounds(keep[0])[0] if keep else None
    feats = store.reader.read(tables.FEATURES, [{INSTRUMENT: inst.id, MONTH: m} for m in keep])
    feats = features_at(frequency, inst.base_timeframe, feats.sort(TS)) if feats.height else feats
    if frequency == inst.base_timeframe and frequency == "5m":
        emb = store.reader.read(tables.WINDOW_EMBEDDINGS, [{INSTRUMENT: inst.id, MONTH: m} for m in keep],
                                columns=[TS, "emb_32"]).rename({"emb_32": "emb"})  # fmt: skip
    else:
        bars = store.reader.read(BAR_TABLES[frequency], [{INSTRUMENT: inst.id, MONTH: m}
                                                          for m in store.reader.months(BAR_TABLES[frequency], inst.id)])
        emb = embeddings_at(frequency, bars)
    return InstrumentInputs(inst.id, labs, feats, emb), since


@partitioned_asset(
    group_name=GROUP,
    partitions_def=training_set_partitions,
    code_version=f"training-sets-1-{_part_hash('labels', 'training')}",
    deps=[
        dg.AssetDep("labels", partition_mapping=_training_mapping()),
        dg.AssetDep("features", partition_mapping=_training_mapping()),
        dg.AssetDep("window_embeddings", partition_mapping=_training_mapping()),
    ],
    kinds={"parquet", "polars"},
    checks=[
        ("feature_label_correlation", True, "no feature correlates with the label beyond spec/models "
                                            "max_abs_feature_label_corr (a leak, not an edge)"),
        ("has_rows", True, "the set has rows from at least one instrument"),
    ],
)  # fmt: skip
def training_sets(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """Features + labels joined point in time per frequency x label, after the row-exclusion rules."""
    store = lake.lake()
    spec = model_spec()
    catalog = load_feature_specs()
    feature_cols = columns_of(catalog)
    publisher = PartitionPublisher(context, store, GROUP, "training_sets")
    held: dict[tuple[str, str], tuple[InstrumentInputs, Any]] = {}  # one frequency's inputs, shared by its schemes
    for key in context.partition_keys:
        freq, scheme = split_training_key(key)
        max_rows = spec.training.max_rows_per_instrument.of(freq)
        if any(f != freq for _, f in held):
            held.clear()
        parts, since = [], {}
        for inst in universe().instruments:
            if not has_frequency(inst, freq) or (freq == "5m" and inst.base_timeframe != "5m"):
                continue
            if (inst.id, freq) not in held:
                held[inst.id, freq] = instrument_inputs(store, inst, freq, max_rows)
            inputs, start = held[inst.id, freq]
            if inputs.labels.height and inputs.features.height:
                parts.append(inputs)
                if start is not None:
                    since[inst.id] = start
        frame, counts = build_training_set(parts, scheme, feature_cols, spec.training.warmup_bars.of(freq),
                                           max_rows, since)  # fmt: skip
        corr = feature_label_correlation(frame, feature_cols)
        limit = spec.training.max_abs_feature_label_corr
        leaks = corr.filter(pl.col("abs_corr") > limit)
        verdicts = [
            Verdict("feature_label_correlation", leaks.height == 0,
                    {"max_abs_corr": float(corr["abs_corr"].to_numpy().max()) if corr.height else 0.0, "limit": limit,
                     "top": md_table(corr.head(5))}, samples=md_table(leaks.head(10)) if leaks.height else ""),
            Verdict("has_rows", frame.height > 0, {"rows": frame.height}),
        ]  # fmt: skip
        meta: dict[str, Any] = {"dagster/row_count": dg.MetadataValue.int(frame.height),
                                "exclusions": dg.MetadataValue.md(md_table(counts)) if counts.height else "none",
                                "fingerprint": fingerprint(frame), SPEC_VERSION: spec.training_hash(key)}  # fmt: skip
        publisher.audit(key, frame if frame.height else None, {"training_set": key}, verdicts, meta)
    held.clear()
    store.reader.clear()
    warehouse.refresh()
    yield from publisher.finish()


# --- model runs ---------------------------------------------------------------------------------------------------


def storage_url(spec_storage: str | None) -> str:
    return spec_storage or f"sqlite:///{data_root() / 'models' / 'optuna.sqlite3'}"


def model_dir(variant: str) -> Path:
    return data_root() / "models" / variant


RETRAIN = (
    dg.AutomationCondition.on_cron(_SPEC.study.retrain_cron, cron_timezone="UTC") & WAITS_FOR_CHECKS
).with_label("retrain_on_spec_cron")


@partitioned_asset(
    group_name=GROUP,
    partitions_def=model_variant_partitions,
    code_version="model-runs-1",
    deps=[dg.AssetDep("training_sets", partition_mapping=_variant_mapping())],
    automation_condition=RETRAIN,
    kinds={"optuna", "lightgbm", "statsmodels"},
    checks=[
        ("study_complete", True, "the study holds its trials, the best trial completed and its OOS folds have "
                                 "predictions"),
    ],
)  # fmt: skip
def model_runs(context: AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource) -> Iterator[Any]:
    """One Optuna study per model variant on its training set; the best model, params, per-fold metrics, feature
    importances, trials and OOS predictions."""
    store = lake.lake()
    spec = model_spec()
    profile = context.run.tags.get(PROFILE_TAG)
    trials = spec.trials_for(profile)
    publisher = PartitionPublisher(context, store, GROUP, "model_runs")
    url = storage_url(spec.study.storage)
    tasks = [VariantTask(str(store.root), key, trials, url) for key in context.partition_keys]
    for out in process_map(run_variant_task, tasks):  # one study per core
        key, res, version, fp = out.variant, out.result, out.version, out.training_version
        freq, scheme, fam = split_variant_key(key)
        dims = {"variant": key}
        if res is None:
            msg = out.error or f"variant {key}: no result"
            context.log.error(msg)
            publisher.audit(key, None, dims, [Verdict("study_complete", False, {"reason": msg}, msg)],
                            {SPEC_VERSION: version})  # fmt: skip
            continue
        folder = model_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"best_model.{res.model_suffix}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(res.model_text)
        tmp.replace(path)
        (folder / "best_params.json").write_text(json.dumps(res.best_params, sort_keys=True, indent=1))
        row = {
            "variant": key, "frequency": freq, "label_scheme": scheme, "family": fam, "study_name": res.study_name,
            "n_trials": res.n_trials, "n_pruned": res.n_pruned, "best_trial": res.best_trial,
            "best_value": res.best_value, "best_params": json.dumps(res.best_params, sort_keys=True),
            "oos_balanced_accuracy": res.oos["balanced_accuracy"], "oos_log_loss": res.oos["log_loss"],
            "oos_rmse": res.oos["rmse"], "oos_auc": res.oos["auc"], "oos_rows": int(res.oos["rows"]),
            "model_path": str(path.relative_to(data_root())), "spec_version": version, "training_version": fp,
        }  # fmt: skip
        summary = pl.DataFrame([row], schema=tables.MODEL_RUNS.schema)
        ok = res.n_trials >= trials and res.predictions.height > 0
        verdict = Verdict("study_complete", ok, {"finished_trials": res.n_trials, "wanted": trials,
                                                 "oos_rows": res.predictions.height})  # fmt: skip
        meta = {
            "dagster/row_count": dg.MetadataValue.int(res.predictions.height), SPEC_VERSION: version,
            "study": res.study_name, "trials": res.n_trials, "pruned": res.n_pruned,
            "best_value": res.best_value, "oos_balanced_accuracy": res.oos["balanced_accuracy"],
            "folds": dg.MetadataValue.md(md_table(res.folds.drop("variant"))),
            "top_features": dg.MetadataValue.md(md_table(res.importances.head(10))),
            "seconds": round(res.oos.get("seconds", 0.0), 2),
        }  # fmt: skip
        extra = {"model_folds": res.folds, "model_trials": res.trials, "model_importances": res.importances,
                 "model_predictions": res.predictions}
        publisher.audit(key, summary, dims, [verdict], meta, tables=extra)
    warehouse.refresh()
    yield from publisher.finish()


model_assets = [labels, training_sets, model_runs]
