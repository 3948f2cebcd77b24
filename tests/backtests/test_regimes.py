"""The regime classifier (spec/regimes.yaml) and metrics per regime (`metrics_by_regime`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perp_lake import perp, write_perp_lake  # noqa: E402

from lake_assets import tables  # noqa: E402
from lake_assets.backtests import book_runs  # noqa: E402
from lake_assets.backtests.regimes import REGIME, label_regimes, load_regimes  # noqa: E402
from lake_assets.backtests.strategy_spec import load_strategy  # noqa: E402
from lake_assets.settings import spec_dir  # noqa: E402
from lake_assets.specs import SpecError  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import TS  # noqa: E402


def test_every_bar_gets_one_label() -> None:
    spec = load_regimes()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    feats = pl.DataFrame({
        TS: [t0 + timedelta(minutes=5 * i) for i in range(5)],
        "adx_14": [30.0, 10.0, 25.0, None, 19.9], "vol_rank": [0.1, 0.5, 0.9, 0.5, float("nan")],
    })  # fmt: skip
    got = label_regimes(feats, spec)[REGIME].to_list()
    assert got == ["trend_low", "chop_mid", "trend_high", "unknown", "unknown"]
    assert set(got) <= set(spec.labels)
    assert label_regimes(feats.drop("adx_14"), spec)[REGIME].to_list() == ["unknown"] * 5


def test_a_bad_regime_spec_names_file_key_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "regimes.yaml"
    bad.write_text((spec_dir() / "regimes.yaml").read_text().replace("high: 0.67", "high: 0.2"))
    with pytest.raises(SpecError) as err:
        load_regimes(bad)
    assert "regimes.yaml" in str(err.value) and "volatility" in str(err.value) and "below" in str(err.value)


def test_metrics_by_regime_add_up_to_the_whole(data_root: Path) -> None:
    lake = Lake()
    pair = perp(7)
    write_perp_lake(lake, [pair], "2026-01", "2026-02")
    spec = load_strategy(spec_dir() / "strategies" / "e3_perp_flow.json")
    runs = book_runs.run_json_strategy(lake, spec, [pair[0]], params=spec.profile_params("high_trade"))
    table = book_runs.metrics_by_regime(lake, runs, load_regimes())
    assert not tables.compare_schema(tables.METRICS_BY_REGIME, table.schema)
    assert table["bars"].sum() == runs[0].result.equity.height
    assert table["n_trades"].sum() == runs[0].result.trades.height
    assert (table["total_return"] + 1).product() == pytest.approx(runs[0].result.equity["equity"][-1] / 100_000)
    assert table.filter(pl.col(REGIME) != "unknown").height >= 3


def test_report_plots_equity_over_regimes(data_root: Path) -> None:
    from lake_assets.reports.research import ReportInputs, _book_regimes, build_report

    lake = Lake()
    pair = perp(7)
    write_perp_lake(lake, [pair], "2026-01", "2026-01")
    spec = load_strategy(spec_dir() / "strategies" / "e3_perp_flow.json")
    runs = book_runs.run_json_strategy(lake, spec, [pair[0]], params=spec.profile_params("high_trade"))
    out = book_runs.result_tables(runs, "h")
    by_regime = book_runs.metrics_by_regime(lake, runs, load_regimes())
    regimes = _book_regimes(lake, by_regime)
    assert regimes.height == runs[0].result.equity.height and set(regimes["book"]) == {"perp"}
    report = build_report(ReportInputs(out["metrics"], out["equity"], metrics_by_regime=by_regime, regimes=regimes))
    assert report.pngs["equity_regimes.png"][:4] == b"\x89PNG"
    assert "## Metrics per regime" in report.markdown and "](equity_regimes.png)" in report.markdown
    assert report.data["metrics_by_regime"]
