"""Lookahead analysis of strategies: a strategy re-run on history cut at 70% must give the same orders and fills
before the cut. An honest JSON strategy and a blueprint pass; a deliberately peeking strategy (its entry reads the
close three bars ahead) is caught, naming the book and where its past changed.

The rule language refuses negative lookbacks when it parses a file, so a JSON file cannot peek through its rules; the
peeking strategy is made by compiling a spec's signals and then shifting the close backwards, which is what a rule
or model that reads the future amounts to."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reports"))
from small_lake import build_strategy_lake  # noqa: E402

from lake_assets.backtests import book_runs  # noqa: E402
from lake_assets.backtests.lookahead import strategy_lookahead  # noqa: E402
from lake_assets.backtests.partition_work import LOOKAHEAD, StrategyTask, backtest_partition, release_lakes  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import CLOSE, INSTRUMENT, TS  # noqa: E402


@pytest.fixture()
def strategy_lake(data_root: Path) -> tuple[Lake, str]:
    lake = Lake()
    bp = build_strategy_lake(lake)
    yield lake, bp
    release_lakes()


def _report(lake: Lake, key: str) -> dict[str, object]:
    release_lakes()  # a fresh reader: the monkeypatched compile must not meet a held frame
    out = backtest_partition(StrategyTask(str(lake.root), key))
    assert isinstance(out, dict), out
    return out[LOOKAHEAD].row(0, named=True)


def test_honest_strategies_keep_their_past(strategy_lake: tuple[Lake, str]) -> None:
    lake, bp = strategy_lake
    for key in ("json.sma_crossover", "json.rsi_reversal", bp):
        report = _report(lake, key)
        assert report["identical"] is True, (key, report)
        assert report["differing"] == "none" and report["cuts"]


def test_a_peeking_strategy_is_caught(strategy_lake: tuple[Lake, str], monkeypatch: pytest.MonkeyPatch) -> None:
    lake, _ = strategy_lake
    honest = book_runs.compile_signals

    def peeking(frame: pl.DataFrame, spec: object, params: object = None) -> pl.DataFrame:
        signals = honest(frame, spec, params)  # type: ignore[arg-type]
        ahead = pl.col(CLOSE).shift(-3).over(INSTRUMENT)  # three bars into the future
        return signals.with_columns((ahead > pl.col(CLOSE) * 1.001).fill_null(False).alias("long_entry"),
                                    (ahead < pl.col(CLOSE)).fill_null(False).alias("long_exit"))  # fmt: skip

    monkeypatch.setattr(book_runs, "compile_signals", peeking)
    report = _report(lake, "json.sma_crossover")
    assert report["identical"] is False
    assert "perp" in str(report["differing"]) and "cut" in str(report["differing"])


def test_the_check_compares_only_bars_before_the_cut() -> None:
    ts = pl.datetime_range(pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 2), "1h", eager=True, time_zone="UTC")
    orders = pl.DataFrame({TS: ts, "size": range(ts.len())})

    def run(cut: object) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
        kept = orders if cut is None else orders.filter(pl.col(TS) < cut)
        # the truncated run also changes its own last bars (an order it cannot fill): not compared
        tail = kept.with_columns(pl.when(pl.col(TS) >= kept[TS].max()).then(-1).otherwise(pl.col("size")).alias("size"))
        return {"perp": (tail, pl.DataFrame())}

    assert strategy_lookahead(run, {"perp": (orders, pl.DataFrame())}, ts).identical
    moved = orders.with_columns(pl.when(pl.col(TS) == ts[3]).then(99).otherwise(pl.col("size")).alias("size"))
    report = strategy_lookahead(run, {"perp": (moved, pl.DataFrame())}, ts)
    assert not report.identical and report.differing[0]["first_ts"] == str(ts[3])
