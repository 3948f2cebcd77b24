"""`qlake`: demo, sql, materialize, report, run, compare, strategies: the front door for people outside the UI.

History is loaded in a few runs, not one per partition: each contiguous range of instrument-month keys (the whole
universe, for the demo) is one single-run backfill of every instrument-month asset, month assets run as one range per
contiguous block, the rest once. Mistakes are one line and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lake_assets.settings import PROJECT_ROOT, data_root, warehouse_path

# what qlake wrote into dagster.yaml before it enabled run monitoring and queue limits: an absolute event log path
_LEGACY_DAGSTER_YAML = re.compile(
    r"telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\nevent_log_storage:\n"
    r"  module: lake_assets\.event_log\n  class: PooledSqliteEventLogStorage\n  config:\n    base_dir: \"[^\n]*\"\n"
)


def _dagster_home() -> Path:
    """$DAGSTER_HOME (default `<data root>/dagster_home`) with qlake's `dagster.yaml`: written when missing, and
    rewritten when it is exactly what an older qlake wrote (one that pinned the event log to an absolute path) or what
    qlake writes for another storage than the environment now selects (sqlite locally, Postgres when
    `QLAKE_DAGSTER_PG_URL` or `DAGSTER_PG_*` is set); a file anyone else wrote or edited is left alone."""
    from lake_assets.event_log import dagster_yaml, qlake_yamls

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(data_root() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    wanted = dagster_yaml()
    text = cfg.read_text() if cfg.exists() else None
    if text != wanted and (text is None or _LEGACY_DAGSTER_YAML.fullmatch(text) or text in qlake_yamls()):
        cfg.write_text(wanted)
    return home


@dataclass
class PlannedRun:
    """One in-process run: a set of assets sharing a partitions definition, and the partition range."""

    label: str
    asset_keys: list[str]
    range_start: str | None = None
    range_end: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def run_tags(self) -> dict[str, str]:
        from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

        tags = dict(self.tags)
        if self.range_start is not None and self.range_end is not None:
            tags[ASSET_PARTITION_RANGE_START_TAG] = self.range_start
            tags[ASSET_PARTITION_RANGE_END_TAG] = self.range_end
        return tags


# assets whose partitions (strategies) exist only once discovery has written blueprints.jsonl: planned in a second
# phase, after the first phase's runs have executed
STRATEGY_PHASE_ASSETS = ("backtests", "walkforward", "research_report")


def sync_strategies(instance: object) -> list[str]:
    """Make the `strategy` partitions equal to spec/strategies/*.json + blueprints.jsonl (as strategy_sensor does).

    Never fails on a bad strategy file (so `qlake materialize --select raw_ohlcv` runs whatever spec/strategies
    holds): the file keeps its partition (its backtests report the error) and a warning names file, key, problem."""
    import logging

    from resources.lake import LakeResource
    from sensors.strategies import STRATEGY_PARTITIONS, current_strategies, strategy_changes

    existing = set(instance.get_dynamic_partitions(STRATEGY_PARTITIONS))  # type: ignore[attr-defined]
    wanted = current_strategies(LakeResource(), logging.getLogger("qlake.strategies"))
    add, delete, _ = strategy_changes(existing, wanted, {})
    if add:
        instance.add_dynamic_partitions(STRATEGY_PARTITIONS, add)  # type: ignore[attr-defined]
    for key in delete:
        instance.delete_dynamic_partition(STRATEGY_PARTITIONS, key)  # type: ignore[attr-defined]
    return list(wanted)


def plan_and_execute(
    asset_keys: Sequence[str] | None = None,
    instruments: Sequence[str] | None = None,
    months: tuple[str, str] | None = None,
    progress: bool = True,
    between_phases: Callable[[], None] | None = None,
    model_profile: str | None = None,
) -> list[tuple[PlannedRun, bool, float]]:
    """Two phases: everything up to discovery, then (partitions re-synced from the fresh blueprints.jsonl) the
    strategy-partitioned backtests and the report. `between_phases` runs in between (the demo waits there for
    its kernel warm-up, so the backtest workers never compile the same kernels a third time)."""
    from lake_assets.definitions import all_assets

    keys = list(asset_keys) if asset_keys is not None else [a.key.to_user_string() for a in all_assets]
    first = [k for k in keys if k not in STRATEGY_PHASE_ASSETS]
    second = [k for k in keys if k in STRATEGY_PHASE_ASSETS]
    results = execute(plan_runs(first, instruments, months, model_profile), progress) if first else []
    if between_phases is not None:
        between_phases()
    if second:
        results += execute(plan_runs(second, instruments, months), progress)
    return results


class PlanError(ValueError):
    """A materialize request that selects nothing that can exist; the message says what and why."""


def requested_partitions(
    asset_keys: Sequence[str] | None, instruments: Sequence[str] | None, months: tuple[str, str] | None
) -> list[str]:
    """The instrument-month keys a request selects; PlanError (one line, with a hint) for an unknown asset or
    instrument, or a request that selects no partition that can exist. Checked before any run starts."""
    from lake_assets.definitions import all_assets
    from lake_assets.partitions import instrument_month_partitions, split_key
    from lake_assets.specs import universe

    if asset_keys is not None:
        known = [a.key.to_user_string() for a in all_assets]
        missing = set(asset_keys) - set(known)
        if missing:
            hints = [f"{m} (did you mean {', '.join(close)}?)" if (close := difflib.get_close_matches(m, known, 2))
                     else m for m in sorted(missing)]  # fmt: skip
            raise PlanError(f"unknown asset(s): {'; '.join(hints)}")
    if instruments is not None:
        unknown = [i for i in instruments if i not in universe().ids]
        if unknown:
            close = difflib.get_close_matches(unknown[0], universe().ids, 1)
            if close:
                raise PlanError(f"unknown instrument {unknown[0]} (did you mean {close[0]}?)")
            raise PlanError(f"unknown instrument(s): {', '.join(unknown)} (spec/universe.yaml has "
                            f"{', '.join(universe().ids)})")  # fmt: skip
    wanted = [
        k for k in instrument_month_partitions.get_partition_keys()
        if (instruments is None or split_key(k)[0] in instruments)
        and (months is None or months[0] <= split_key(k)[1] <= months[1])
    ]  # fmt: skip
    if (instruments is not None or months is not None) and not wanted:
        raise PlanError("no partition exists for " + _describe(instruments, months) + ": every instrument-month lies "
                        "inside an instrument's life (spec/universe.yaml start/end, today's month for live ones)")
    return wanted


def plan_runs(
    asset_keys: Sequence[str] | None = None,
    instruments: Sequence[str] | None = None,
    months: tuple[str, str] | None = None,
    model_profile: str | None = None,
) -> list[PlannedRun]:
    """Group the selected assets by partitioning and plan one run per contiguous key range (instrument-months are
    ordered instrument by instrument, so a whole history, or the whole universe, is one range), month range, or once."""
    from lake_assets.definitions import all_assets
    from lake_assets.partitions import contiguous_ranges, instrument_month_partitions, month_partitions, split_key

    selected = [a for a in all_assets if asset_keys is None or a.key.to_user_string() in asset_keys]
    wanted = requested_partitions(asset_keys, instruments, months)
    by_kind: dict[str, list[str]] = {"instrument_month": [], "month": [], "other": [], "none": []}
    for a in selected:
        pdef = a.partitions_def
        kind = (
            "none" if pdef is None
            else "instrument_month" if pdef == instrument_month_partitions
            else "month" if pdef == month_partitions
            else "other"
        )  # fmt: skip
        by_kind[kind].append(a.key.to_user_string())
    all_keys = instrument_month_partitions.get_partition_keys()
    runs: list[PlannedRun] = []
    instance = _instance()
    sync_strategies(instance)
    if by_kind["instrument_month"]:
        for lo, hi in contiguous_ranges(wanted, all_keys):
            runs.append(PlannedRun(f"{lo}..{hi}", by_kind["instrument_month"], lo, hi))
    if by_kind["month"]:
        month_keys = month_partitions.get_partition_keys()
        for lo, hi in contiguous_ranges({split_key(k)[1] for k in wanted}, month_keys):
            runs.append(PlannedRun(f"months {lo}..{hi}", by_kind["month"], lo, hi))
    # the rest in graph order (all_assets is kept topologically sorted): a run per partitioned asset over all its
    # keys, consecutive unpartitioned assets together
    for key in [a.key.to_user_string() for a in selected]:
        if key in ("training_sets", "model_runs") and model_profile is not None:
            runs.extend(_model_profile_runs(model_profile, key))
        elif key in by_kind["other"]:
            runs.append(_other_run(key))
        elif key in by_kind["none"]:
            if runs and runs[-1].label == "unpartitioned":
                runs[-1].asset_keys.append(key)
            else:
                runs.append(PlannedRun("unpartitioned", [key]))
    return runs


def _describe(instruments: Sequence[str] | None, months: tuple[str, str] | None) -> str:
    who = ", ".join(instruments) if instruments else "any instrument"
    when = "" if months is None else f" in {months[0]}" + (f"..{months[1]}" if months[1] != months[0] else "")
    return who + when


def _other_run(asset_key: str) -> PlannedRun:
    """A one-dimensional static/dynamic partitioned asset: the whole key range in one run."""
    from lake_assets.definitions import all_assets

    asset = next(a for a in all_assets if a.key.to_user_string() == asset_key)
    pdef = asset.partitions_def
    assert pdef is not None
    keys = list(pdef.get_partition_keys(dynamic_partitions_store=_instance()))
    if not keys:
        return PlannedRun(f"{asset_key} (no partitions)", [])
    return PlannedRun(f"{asset_key} {keys[0]}..{keys[-1]}", [asset_key], keys[0], keys[-1])


def _model_profile_runs(profile: str, asset: str) -> list[PlannedRun]:
    """training_sets / model_runs for a spec/models profile (the demo's): the profile's variants (and the training
    sets they read), as contiguous key ranges, tagged with the profile so each study runs the profile's trial count
    (a later run without the profile continues the studies)."""
    from lake_assets.models.assets import PROFILE_TAG, model_variant_partitions, training_set_partitions
    from lake_assets.models.spec_model import model_spec
    from lake_assets.partitions import contiguous_ranges

    spec = model_spec()
    variants = spec.profiles[profile].variants if profile in spec.profiles else spec.variant_keys
    if asset == "training_sets":
        wanted, ordered = {v.rsplit(".", 1)[0] for v in variants}, training_set_partitions.get_partition_keys()
    else:
        wanted, ordered = set(variants), model_variant_partitions.get_partition_keys()
    return [PlannedRun(f"{asset} {lo}..{hi} ({profile})", [asset], lo, hi, {PROFILE_TAG: profile})
            for lo, hi in contiguous_ranges(wanted, ordered)]  # fmt: skip


def _instance():  # type: ignore[no-untyped-def]
    import dagster as dg

    _dagster_home()
    return dg.DagsterInstance.get()


RUNNER_PID_TAG, RUNNER_HOST_TAG = "qlake/pid", "qlake/host"  # which process runs an in-process qlake run


def fail_orphaned_runs(instance: Any) -> list[str]:
    """Mark failed the runs a `qlake` process on this host started and did not finish because it died (killed,
    out of memory): without this they would show as STARTED forever. Runs launched by the Dagster daemon are watched
    by its run monitoring instead (dagster.yaml). Returns the run ids marked."""
    import dagster as dg

    from lake_assets.processes import alive

    marked = []
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED],
                                                     tags={RUNNER_HOST_TAG: socket.gethostname()}))  # fmt: skip
    for record in records:
        run = record.dagster_run
        try:
            pid = int(run.tags.get(RUNNER_PID_TAG, ""))
        except ValueError:
            continue
        if alive(pid):
            continue
        instance.report_run_failed(run, f"the qlake process (pid {pid}) that ran it is gone")
        marked.append(run.run_id)
    return marked


def execute(runs: Sequence[PlannedRun], progress: bool = True) -> list[tuple[PlannedRun, bool, float]]:
    import dagster as dg
    from tqdm import tqdm

    from lake_assets.definitions import all_assets, defs

    # A range run records one "materialization planned" event per asset for the whole range instead of one per
    # partition (hundreds of sqlite writes, ~10 s for the crypto history). Dagster's trade-off: if such a run fails,
    # its partitions show as missing rather than failed; `execute` reports failed runs itself.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    instance = _instance()
    for orphan in fail_orphaned_runs(instance):
        tqdm.write(f"marked run {orphan} failed: the qlake process that ran it is gone", file=sys.stderr)
    results = []
    bar = tqdm(runs, desc="qlake", unit="run", disable=not progress, file=sys.stderr)
    for run in bar:
        if not run.asset_keys:
            continue
        bar.set_postfix_str(run.label[:40])
        t0 = time.perf_counter()
        result = dg.materialize(
            all_assets,
            selection=dg.AssetSelection.assets(*run.asset_keys),
            instance=instance,
            resources=defs.resources,
            tags={**run.run_tags(), RUNNER_PID_TAG: str(os.getpid()), RUNNER_HOST_TAG: socket.gethostname()},
            run_config={
                "loggers": {"console": {"config": {"log_level": os.environ.get("QLAKE_LOG_LEVEL", "WARNING")}}}
            },
            raise_on_error=False,
        )
        results.append((run, result.success, time.perf_counter() - t0))
        if not result.success:
            tqdm.write(f"run failed: {run.label} ({result.run_id}); see `dagster dev` run logs", file=sys.stderr)
    return results


DEMO_WORKBENCH_RUNS = ("demo_spx_blend_tuned.yaml", "demo_spx_options.yaml")  # spec/workbench/


def demo_workbench_runs() -> list[tuple[str, str | None, float, str | None]]:
    """The demo's workbench runs (after the first phase, so the research report shows their metrics): (config,
    run id or None, seconds, error or None); a failure is reported, never raised."""
    from lake_assets.settings import spec_dir
    from lake_assets.workbench.config import load_run_config
    from lake_assets.workbench.run import execute_run

    out: list[tuple[str, str | None, float, str | None]] = []
    for name in DEMO_WORKBENCH_RUNS:
        t0 = time.perf_counter()
        try:
            outcome = execute_run(load_run_config(spec_dir() / "workbench" / name))
            out.append((name, outcome.run_id, time.perf_counter() - t0, None))
        except Exception as exc:  # noqa: BLE001 (the demo goes on and says what failed)
            out.append((name, None, time.perf_counter() - t0, _one_line(exc)))
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    import subprocess

    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    t0 = time.perf_counter()
    # compile the numba kernels into the shared cache in parallel with ingestion, which is mostly bookkeeping
    warmup = subprocess.Popen([sys.executable, "-m", "lake_assets.warmup"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip

    workbench: list[tuple[str, str | None, float, str | None]] = []

    def warmed_up() -> None:
        if warmup.wait() != 0:
            print("note: kernel warm-up failed; kernels are compiled on first use instead", file=sys.stderr)
        workbench.extend(demo_workbench_runs())

    try:
        results = plan_and_execute(between_phases=warmed_up, model_profile="demo")
    finally:
        if warmup.poll() is None:
            warmup.wait()
    failed: list[object] = [r for r, ok, _ in results if not ok]
    failed += [name for name, run_id, _, _ in workbench if run_id is None]
    from lake_assets.storage.warehouse import build_catalog, query

    build_catalog()
    print(f"\nqlake demo: {len(results)} runs in {time.perf_counter() - t0:.1f}s, {len(failed)} failed")
    for run, ok, secs in results:
        print(f"  {'ok    ' if ok else 'FAILED'} {secs:6.1f}s  {run.label}")
    for name, run_id, secs, error in workbench:
        print(f"  {'ok    ' if run_id else 'FAILED'} {secs:6.1f}s  workbench {name}: {run_id or error}")
    print(query("select instrument, count(*) as bars, sum(is_gap::int) as gaps from bars group by 1 order by 1"))
    _print_perp_automation(query)
    print(
        f"\nLake:       {data_root() / 'lake'}\nWarehouse:  {warehouse_path()}\n"
        'Query:      qlake sql "select instrument, count(*) from bars group by 1"\n'
        "Runs:       qlake sql \"select * from run_history\"; qlake strategies\n"
        "UI:         qlake ui   (dagster dev -w workspace.yaml with DAGSTER_HOME="
        f"{os.environ['DAGSTER_HOME']})"
    )
    from lake_assets.settings import reports_root

    reports = sorted(reports_root().glob("*/report.md"), key=lambda p: p.stat().st_mtime)
    if reports:
        print(f"Report:     {reports[-1]}   (qlake report)")
    return 1 if failed else 0


DEMO_PERP_QUERIES = (
    ("top of book on the perps", "select instrument, count(bid) as quoted_bars, "
     "round(median((ask - bid) / ((ask + bid) / 2) * 1e4), 2) as median_spread_bps, "
     "round(max((ask - bid) / ((ask + bid) / 2) * 1e4), 1) as max_spread_bps from bars "
     "where instrument like '%-PERP' group by 1 order by 1"),
    ("E3 backtest (json.e3_perp_flow)", "select book, instruments, n_trades, round(total_return, 4) as total_return, "
     "round(sharpe, 2) as sharpe, (select count(distinct (ts, instrument)) from signal_reasons "
     "where strategy = 'json.e3_perp_flow') as entries_with_reasons from metrics where strategy = 'json.e3_perp_flow'"),
    ("E3 per regime", "select regime, bars, n_trades, round(total_return, 4) as total_return, "
     "round(sharpe, 2) as sharpe from metrics_by_regime where strategy = 'json.e3_perp_flow' order by regime"),
    ("paper trading (latest week replayed): select * from paper_overview", "select * from paper_overview"),
)


def _print_perp_automation(query: Callable[[str], Any]) -> None:
    """The demo's perp-automation summary: top of book, E3 with reasons and per-regime metrics, the paper session."""
    for title, sql in DEMO_PERP_QUERIES:
        try:
            print(f"\n{title}\n{query(sql)}")
        except Exception as exc:  # a view without data yet: say so, never fail the demo's summary
            print(f"\n{title}: not available ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")


def _render_table(
    df: object, rows: int, max_columns: int | None, markdown: bool = False, str_lengths: int = 60
) -> str:
    """polars' table with `rows` rows and at most `max_columns` columns (the middle ones elided, as the DuckDB CLI
    does); `None` fits as many as the terminal is wide."""
    import shutil

    import polars as pl

    assert isinstance(df, pl.DataFrame)
    # tbl_width_chars: wide enough never to wrap a cell (it is a u16)
    opts: dict[str, Any] = {"tbl_rows": rows if rows > 0 else -1, "fmt_str_lengths": str_lengths,
                            "tbl_width_chars": 30_000}  # fmt: skip
    if markdown:
        opts |= {"tbl_formatting": "MARKDOWN", "tbl_hide_dataframe_shape": True, "tbl_hide_column_data_types": True}

    def render(cols: int) -> str:
        with pl.Config(tbl_cols=cols, **opts):
            return str(df)

    if max_columns is not None:
        return render(max_columns if max_columns > 0 else -1)
    width = shutil.get_terminal_size((120, 24)).columns

    def fits(text: str) -> bool:
        return max(map(len, text.splitlines()), default=0) <= width

    text = render(-1)
    if df.width <= 1 or fits(text):
        return text
    lo, hi = 1, df.width - 1  # the most columns that fit (at least one): the width grows with the column count
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(render(mid)):
            lo = mid
        else:
            hi = mid - 1
    return render(lo)


# `qlake sql --describe VIEW`: comments read "<description> [<unit>]" (lake_assets/tables.py)
_DESCRIBE_SQL = (
    "SELECT column_name AS column, data_type AS type, "
    "regexp_extract(comment, '\\[([^\\[\\]]*)\\]$', 1) AS unit, "
    "regexp_replace(comment, '\\s*\\[[^\\[\\]]*\\]$', '') AS description "
    "FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
    "AND table_name = {view} ORDER BY column_index"
)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb
    import polars as pl

    from lake_assets.storage.warehouse import query

    header, header_sql = "", ""
    if args.describe:  # the data dictionary: each column's type, unit and description (its COMMENT)
        name = "'" + args.describe.replace("'", "''") + "'"
        sql = _DESCRIBE_SQL.format(view=name)
        header_sql = (
            f"SELECT comment FROM duckdb_views() WHERE database_name = current_database() AND view_name = {name}"
        )
    elif args.query:
        sql = args.query
    else:  # no query: list the views and what they hold
        sql = (
            "SELECT view_name AS view, comment FROM duckdb_views() WHERE database_name = current_database() "
            "AND NOT internal ORDER BY 1"
        )
    try:
        df = query(sql)
        if args.describe:
            if df.is_empty():
                print(f"qlake sql: no view named {args.describe!r} (qlake sql lists them)", file=sys.stderr)
                return 1
            header = str(query(header_sql).item() or "")
        if args.format == "csv":
            sys.stdout.write(df.write_csv())
        elif args.format == "json":
            sys.stdout.write((df.write_json() or "[]") + "\n")
        else:
            markdown = args.format == "markdown"
            columns = 0 if (markdown or args.describe) and args.max_columns is None else args.max_columns
            if header:
                print(f"{args.describe}: {header}\n")
            print(_render_table(df, args.limit, columns, markdown=markdown, str_lengths=200 if args.describe else 60))
    except (duckdb.Error, pl.exceptions.PolarsError) as exc:  # a query error is one line, not a traceback
        if getattr(args, "debug", False):
            raise
        lines = str(exc).strip().splitlines()
        print(f"qlake sql: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


def _parse_months(text: str | None) -> tuple[str, str] | None:
    """`YYYY-MM` or `YYYY-MM..YYYY-MM` (inclusive); PlanError for anything else or a reversed range."""
    import re

    if not text:
        return None
    lo, _, hi = text.strip().partition("..")
    hi = hi or lo
    for m in (lo, hi):
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", m):
            raise PlanError(f"--months: {m!r} is not a month (expected YYYY-MM or YYYY-MM..YYYY-MM)")
    if hi < lo:
        raise PlanError(f"--months: {lo}..{hi} is reversed (the first month comes first)")
    return lo, hi


def cmd_materialize(args: argparse.Namespace) -> int:
    from lake_assets.vocabulary import validate_instrument_id

    select = [s.strip() for s in args.select.split(",")] if args.select else None
    ids = args.instruments.split(",") if args.instruments else None
    instruments = [validate_instrument_id(i.strip()) for i in ids] if ids is not None else None
    months = _parse_months(args.months)
    requested_partitions(select, instruments, months)  # refuse impossible requests (one line) before any run starts
    results = plan_and_execute(select, instruments, months)
    for run, ok, secs in results:
        print(f"{'ok    ' if ok else 'FAILED'} {secs:7.1f}s  {run.label}")
    from lake_assets.storage.warehouse import build_catalog

    build_catalog()
    return 0 if all(ok for _, ok, _ in results) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from lake_assets.settings import reports_root

    reports = sorted(reports_root().glob("*/report.md"), key=lambda p: p.stat().st_mtime)
    if not reports:
        print("no report yet: run `qlake demo` or materialize research_report", file=sys.stderr)
        return 1
    print(reports[-1])
    if args.show:
        print(reports[-1].read_text())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`qlake run CONFIG.yaml`: a workbench run (lake_assets/workbench); `--rerun RUN_ID` reproduces a stored one."""
    from lake_assets.storage.warehouse import refresh_catalog
    from lake_assets.workbench.run import execute_run, rerun

    if args.rerun:
        result = rerun(args.rerun)
        if result.changed_inputs:
            print(f"qlake run --rerun {args.rerun}: inputs changed since the run, not reproducible as stored:")
            for line in result.changed_inputs:
                print(f"  {line}")
            return 1
        if result.identical:
            print(f"{args.rerun}: reproduced byte-identically (every file but meta.json, which holds the wall time)")
            return 0
        print(f"{args.rerun}: re-run differs in {', '.join(result.differing_files)}")
        return 1
    if not args.config:
        raise PlanError("qlake run: give a RunConfig YAML (e.g. spec/workbench/example_run.yaml) or --rerun RUN_ID")
    from lake_assets.workbench.config import load_run_config

    outcome = execute_run(load_run_config(args.config))
    refresh_catalog()
    m = outcome.results["metrics"]
    print(f"run {outcome.run_id} in {outcome.seconds:.1f}s: {outcome.directory}")
    print("  " + "  ".join(f"{k}={m[k]:.4g}" for k in ("total_return", "sharpe", "max_drawdown", "n_trades")
                           if isinstance(m.get(k), float)))  # fmt: skip
    tuning = outcome.results.get("tuning")
    if tuning:
        test = tuning.get("test") or {}
        print(f"  tuned ({tuning['method']}): {tuning['n_trials']} trials, {tuning['n_feasible']} feasible, "
              f"DSR {tuning.get('dsr')}, out-of-sample sharpe {test.get('sharpe')}")  # fmt: skip
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from lake_assets.workbench.run import compare_runs

    table = compare_runs(args.run_a, args.run_b)
    if args.only_differences:
        import polars as pl

        table = table.filter(pl.col("differs") == "*")
    print(_render_table(table, 0, 0, markdown=args.format == "markdown", str_lengths=80))
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    from lake_assets.workbench.status import new_strategy, templates, write_strategy_status

    if args.action == "new":
        if not args.name or not args.template:
            raise PlanError(f"qlake strategies new NAME --template TEMPLATE (templates: {', '.join(templates())})")
        print(new_strategy(args.name, args.template))
        return 0
    if args.action == "templates":
        print("\n".join(templates()))
        return 0
    from lake_assets.storage.warehouse import refresh_catalog

    frame = write_strategy_status()
    refresh_catalog()
    cols = ["strategy", "source", "status", "last_backtest", "sharpe", "total_return", "error"]
    print(_render_table(frame.select(cols), 0, 0, markdown=args.format == "markdown", str_lengths=100))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` on this project's workspace and DAGSTER_HOME, with the environment `main` set (malloc tuning,
    numba cache): the webserver's run workers inherit it."""
    argv = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), *args.dagster_args]
    os.execv(sys.executable, argv)
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    from lake_assets.malloc_tuning import tune_malloc

    tune_malloc()  # before the big allocations; children (warm-up, workers, `qlake ui`'s run workers) inherit it
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("NUMBA_CACHE_DIR", str(PROJECT_ROOT / ".numba_cache"))
    parser = argparse.ArgumentParser(prog="qlake", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="materialize the whole graph for the default universe").set_defaults(fn=cmd_demo)
    p_sql = sub.add_parser("sql", help="query the DuckDB warehouse (read-only)")
    p_sql.add_argument("query", nargs="?", help="SQL (read-only); omit it to list the views")
    p_sql.add_argument("--describe", metavar="VIEW", help="the columns of a view: type, unit and description")
    p_sql.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    p_sql.add_argument("--limit", type=int, default=50, help="rows to print in table/markdown format (0: all)")
    p_sql.add_argument("--max-columns", type=int, metavar="N",
                       help="columns to print in table/markdown format, the middle ones elided (0: all; "
                            "default: as many as the terminal is wide, all in markdown)")  # fmt: skip
    p_sql.set_defaults(fn=cmd_sql)
    p_mat = sub.add_parser("materialize", help="materialize assets for instruments/months in a few runs")
    p_mat.add_argument("--select", help="comma-separated asset names (default: all)")
    p_mat.add_argument("--instruments", help="comma-separated instrument ids (default: the universe)")
    p_mat.add_argument("--months", "--partitions", dest="months", help="YYYY-MM or YYYY-MM..YYYY-MM")
    p_mat.set_defaults(fn=cmd_materialize)
    p_rep = sub.add_parser("report", help="print the path of the latest research report")
    p_rep.add_argument("--show", action="store_true", help="also print the report's Markdown")
    p_rep.set_defaults(fn=cmd_report)
    p_run = sub.add_parser("run", help="a research workbench run from a RunConfig YAML, or --rerun a stored one")
    p_run.add_argument("config", nargs="?", help="RunConfig YAML (see spec/workbench/example_run.yaml)")
    p_run.add_argument("--rerun", metavar="RUN_ID", help="reproduce <data root>/runs/RUN_ID and compare byte for byte")
    p_run.set_defaults(fn=cmd_run)
    p_cmp = sub.add_parser("compare", help="two workbench runs' configs and metrics side by side")
    p_cmp.add_argument("run_a")
    p_cmp.add_argument("run_b")
    p_cmp.add_argument("--only-differences", action="store_true")
    p_cmp.add_argument("--format", choices=["table", "markdown"], default="table")
    p_cmp.set_defaults(fn=cmd_compare)
    p_str = sub.add_parser("strategies", help="every strategy's status (also the strategy_status view); "
                                              "`strategies new NAME --template T` writes a spec from a template")
    p_str.add_argument("action", nargs="?", choices=["list", "new", "templates"], default="list")
    p_str.add_argument("name", nargs="?", help="new: the strategy's name")
    p_str.add_argument("--template", help="new: a template from spec/strategy_templates/ (qlake strategies templates)")
    p_str.add_argument("--format", choices=["table", "markdown"], default="table")
    p_str.set_defaults(fn=cmd_strategies)
    p_ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this lake's DAGSTER_HOME")
    p_ui.add_argument("dagster_args", nargs=argparse.REMAINDER, help="passed to `dagster dev` (e.g. -p 3001)")
    p_ui.set_defaults(fn=cmd_ui)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        _dagster_home()
        return int(args.fn(args))
    except KeyboardInterrupt:
        print(f"qlake {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for a mistake; the traceback only with --debug
        if getattr(args, "debug", False):
            raise
        print(f"qlake {args.command}: {_one_line(exc)}", file=sys.stderr)
        print("  (run again with --debug for the traceback)", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    """An error as one line: a SpecError names file, key and problem; others their type unless self-explanatory."""
    from lake_assets.specs import SpecError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, SpecError | PlanError | ValueError | KeyError | FileNotFoundError):
        return text.strip("'\"")
    return f"{type(exc).__name__}: {text}"


if __name__ == "__main__":
    raise SystemExit(main())
