"""The `workbench_run` job: a RunConfig launched from the Dagster launchpad (pre-filled with
spec/workbench/example_run.yaml) writes `<data root>/runs/<run_id>/` and its `run_history` row, and records a
`run_history` materialization whose metadata holds the metrics and a Markdown table comparing the run with the
previous run of the same name.

The Dagster config class is generated from the RunConfig model (`workbench.config`), field for field, with its
defaults: the model stays the one definition, and its validation (field and problem named) runs on what the
launchpad sends.
"""


import types
from datetime import date
from functools import cache
from typing import Any, Literal, Optional, Union, get_args, get_origin

import dagster as dg
import polars as pl
from pydantic import BaseModel, create_model

from lake_assets.settings import spec_dir
from lake_assets.specs import SpecError, read_yaml
from lake_assets.workbench.config import RunConfig, parse_run_config
from resources.lake import LakeResource

EXAMPLE = "example_run.yaml"


def _config_type(annotation: Any) -> Any:
    """A Dagster-config-compatible type for a RunConfig field type (Literal and date as str, models generated)."""
    origin = get_origin(annotation)
    if annotation is date or origin is Literal:
        return str
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return dagster_config_class(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = _config_type(args[0])
        return Optional[inner] if len(args) < len(get_args(annotation)) else inner  # noqa: UP045 (dagster)
    if origin is list:
        return list[_config_type(get_args(annotation)[0])]  # type: ignore[misc]
    if origin is dict:
        key, value = get_args(annotation)
        return dict[key, _config_type(value)]  # type: ignore[valid-type,misc]
    return annotation


@cache
def dagster_config_class(model: type[BaseModel]) -> type[dg.Config]:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        typ = _config_type(info.annotation)
        if info.is_required():
            fields[name] = (typ, ...)
        else:
            default = info.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = dagster_config_class(type(default))(**default.model_dump(mode="json"))
            fields[name] = (typ, default)
    cls: type[dg.Config] = create_model(f"{model.__name__}Config", __base__=dg.Config, **fields)  # type: ignore[call-overload]
    cls.__doc__ = model.__doc__
    return cls


WorkbenchRunConfig = dagster_config_class(RunConfig)


def example_run_config() -> dict[str, Any]:
    """spec/workbench/example_run.yaml, validated, with every field (the launchpad's pre-filled config)."""
    path = spec_dir() / "workbench" / EXAMPLE
    return parse_run_config(read_yaml(path), path).model_dump(mode="json")


@dg.op(name="run_workbench", description=__doc__)
def workbench_run_op(context: dg.OpExecutionContext, config: WorkbenchRunConfig, lake: LakeResource) -> str:  # type: ignore[valid-type]
    from lake_assets.markdown import md_table
    from lake_assets.storage.warehouse import refresh_catalog
    from lake_assets.workbench.run import compare_runs, execute_run, previous_run

    try:
        cfg = parse_run_config(config.model_dump(), "<launchpad run config>")  # type: ignore[attr-defined]
    except SpecError as exc:
        raise dg.Failure(description=str(exc)) from exc
    store = lake.lake()
    before = previous_run(cfg.name)
    outcome = execute_run(cfg, store)
    refresh_catalog(store)
    m = outcome.results["metrics"]
    meta: dict[str, Any] = {
        "run_id": outcome.run_id,
        "run_dir": dg.MetadataValue.path(str(outcome.directory)),
        "seconds": round(outcome.seconds, 2),
        **{k: float(m[k]) for k in ("total_return", "sharpe", "max_drawdown", "n_trades") if m.get(k) is not None},
    }
    if before is not None and before != outcome.run_id:
        table = compare_runs(before, outcome.run_id).filter(pl.col("differs") == "*")
        meta["compare"] = dg.MetadataValue.md(f"Compared with {before}:\n\n" + md_table(table, n=None))
    else:
        rows = [(k, v) for k, v in sorted(m.items())]
        table = pl.DataFrame(rows, schema={"metric": pl.String, outcome.run_id: pl.Float64}, orient="row")
        meta["compare"] = dg.MetadataValue.md("First run of this name:\n\n" + md_table(table, n=None))
    context.log_event(dg.AssetMaterialization(asset_key="run_history", partition=None, metadata=meta,
                                              description=f"workbench run {outcome.run_id}"))  # fmt: skip
    return outcome.run_id


@dg.job(name="workbench_run", config={"ops": {"run_workbench": {"config": example_run_config()}}},
        description="A research workbench run (RunConfig): indicators, blend, auto-tuning, equities or options; "
                    "writes <data root>/runs/<run_id>/ and a run_history row.")  # fmt: skip
def workbench_run_job() -> None:
    workbench_run_op()


workbench_jobs = [workbench_run_job]
