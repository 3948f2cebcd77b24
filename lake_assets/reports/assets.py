"""The `research_report` asset: Markdown + JSON + PNGs under data/reports/<run id>/, mirrored as asset metadata."""

import dagster as dg
from dagster import AssetExecutionContext

from lake_assets.asset_metadata import check_result
from lake_assets.automation import AUTOMATION
from lake_assets.backtests.model_eval import kept_models
from lake_assets.backtests.strategies import strategy_catalog
from lake_assets.backtests.strategy_spec import load_strategies
from lake_assets.discovery.blueprints import load_blueprints
from lake_assets.reports.research import build_report, gather, inline_images, write_report
from lake_assets.settings import reports_root
from resources.lake import LakeResource

GROUP = "reports"


@dg.asset(
    group_name=GROUP,
    deps=["backtests", "walkforward", "strategy_blueprints", "phase2_candidates", "model_leaderboard"],
    automation_condition=AUTOMATION,
    kinds={"markdown", "json"},
    check_specs=[dg.AssetCheckSpec("report_complete", asset="research_report", blocking=False,
                                   description="report.md, report.json and every plot were written")],
)  # fmt: skip
def research_report(context: AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Backtest ranking, walk-forward verdicts, discovery funnel and plots for the strategies that exist now."""
    store = lake.lake()
    current = strategy_catalog(load_strategies(), list(load_blueprints(store).values()), kept_models(store))
    report = build_report(gather(store, current), run_id=context.run_id)
    out_dir = reports_root() / context.run_id
    paths = write_report(report, out_dir)
    expected = {"report.md", "report.json", *report.pngs}
    missing = sorted(n for n in expected if not (n in paths and paths[n].is_file()))
    meta = {
        "path": dg.MetadataValue.path(str(paths["report.md"])),
        "report": dg.MetadataValue.md(inline_images(report.markdown, report.pngs)),  # images inline, no broken links
    }
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[check_result("report_complete", not missing, {"missing": ", ".join(missing) or "none",
                                                                     "folder": str(out_dir)})],
    )  # fmt: skip


report_assets = [research_report]
