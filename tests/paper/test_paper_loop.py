"""The paper-trading loop: research-to-paper parity (a month replayed bar by bar gives the batch backtest's fills and
equity), fail-closed ticks (gaps, stale bars, missing features, gate timeouts and garbage), a crash between orders
and fills (no double fill after the restart, the session resumes from its persisted state), and risk rejections."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backtests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from ollama_stub import OllamaStub  # noqa: E402
from perp_lake import perp, perp_frames, write_perp_lake  # noqa: E402

from lake_assets.backtests import book_runs  # noqa: E402
from lake_assets.backtests.costs import load_costs  # noqa: E402
from lake_assets.backtests.strategy_spec import load_strategy  # noqa: E402
from lake_assets.features.catalog import load_feature_specs  # noqa: E402
from lake_assets.gate.gate import LlmGate, NoGate, load_gate_spec  # noqa: E402
from lake_assets.paper.loop import CrashError, MemoryStore, PaperLoop  # noqa: E402
from lake_assets.paper.spec import PaperRisk, PaperSpec  # noqa: E402
from lake_assets.settings import spec_dir  # noqa: E402
from lake_assets.storage.lake import Lake  # noqa: E402
from lake_assets.vocabulary import TS  # noqa: E402

E3 = spec_dir() / "strategies" / "e3_perp_flow.json"
PAIRS = [perp(5, "AAA"), perp(9, "BBB", 30.0)]
IDS = [p[0].id for p in PAIRS]
NO_RISK = PaperRisk()  # engine defaults, no paper-level caps: the batch backtest's rules exactly


def spec(**kw: object) -> PaperSpec:
    base = {"session": "t", "strategy": "e3_perp_flow", "profile": "high_trade", "instruments": IDS,
            "replay_days": 40, "block_entries_after_gap": False, "risk": NO_RISK}  # fmt: skip
    return PaperSpec(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def bars() -> dict[str, pl.DataFrame]:
    return {p[0].id: perp_frames(p, "2026-01", "2026-01")[0] for p in PAIRS}


def loop(paper: PaperSpec, store: MemoryStore, gate: object = None) -> PaperLoop:
    return PaperLoop(paper, load_strategy(E3), load_costs(), gate or NoGate(), store, load_feature_specs())


def test_a_month_replayed_bar_by_bar_gives_the_batch_backtests_fills_and_equity(
    data_root: Path, bars: dict[str, pl.DataFrame]
) -> None:
    lake = Lake()
    write_perp_lake(lake, PAIRS, "2026-01", "2026-01")
    strategy = load_strategy(E3)
    [batch] = book_runs.run_json_strategy(lake, strategy, [p[0] for p in PAIRS],
                                          params=strategy.profile_params("high_trade"))  # fmt: skip
    funding = book_runs.instrument_funding(lake, IDS)
    store = MemoryStore()
    paper = loop(spec(), store)
    # bar by bar: one tick per run call, committed every tick for the first day, then the rest in larger steps
    for _ in range(288):
        paper.run(bars, funding, max_ticks=1)
    summary = paper.run(bars, funding)
    assert summary.ticks > 0 and paper.run(bars, funding).ticks == 0  # nothing left
    fills = store.read("paper_fills").sort("fill_id")
    cols = ["fill_id", "order_id", TS, "instrument", "side", "price", "size", "fee"]
    assert batch.result.fills.height > 50
    assert fills.select(cols).equals(batch.result.fills.sort("fill_id").select(cols))
    pnl = store.read("paper_pnl").sort(TS)
    assert pnl.select(TS, "equity").equals(batch.result.equity.select(TS, "equity"))
    assert store.read("paper_signals").height == 2 * batch.result.equity.height
    assert store.read("paper_telemetry").height == batch.result.equity.height


def test_a_crash_between_orders_and_fills_never_double_fills(bars: dict[str, pl.DataFrame]) -> None:
    clean = MemoryStore()
    loop(spec(), clean).run(bars, None, max_ticks=2000)
    store = MemoryStore()
    paper = loop(spec(), store)
    paper.run(bars, None, max_ticks=1000)
    with pytest.raises(CrashError):
        loop(spec(), store).run(bars, None, max_ticks=1000, crash_after="paper_orders")
    assert store.read("paper_state")["cursor"].item() < store.read("paper_signals")[TS].max()  # cursor not moved
    loop(spec(), store).run(bars, None, max_ticks=1000)  # restart: resumes at the persisted cursor
    for name in ("paper_fills", "paper_orders", "paper_pnl", "paper_signals"):
        a, b = store.read(name), clean.read(name)
        assert a.drop("session", strict=False).sort(a.columns[0]).equals(
            b.drop("session", strict=False).sort(b.columns[0])), name  # fmt: skip
    assert store.read("paper_fills")["fill_id"].is_unique().all()


def test_gaps_stale_bars_and_missing_features_fail_closed(bars: dict[str, pl.DataFrame]) -> None:
    broken = {k: v.clone() for k, v in bars.items()}
    a = broken[IDS[0]]
    hole = a[TS][5000]
    a = a.with_columns(
        pl.when(pl.col(TS) == hole).then(None).otherwise(pl.col("close")).alias("close"),
        pl.when(pl.col(TS) == hole).then(True).otherwise(pl.col("is_gap")).alias("is_gap"),
        pl.when(pl.col(TS) == hole + timedelta(minutes=50)).then(None).otherwise(pl.col("bid")).alias("bid"),
    )
    broken[IDS[0]] = a
    store = MemoryStore()
    paper = loop(spec(block_entries_after_gap=True, risk=PaperRisk(reduce_only_bars_after_error=3)), store)
    paper.run(broken, None, max_ticks=5100)
    checks = store.read("risk_checks")
    at = checks.filter(pl.col("instrument") == IDS[0])
    assert at.filter((pl.col(TS) == hole) & (pl.col("check") == "gap_bar")).height == 1
    assert at.filter((pl.col(TS) == hole + timedelta(minutes=5)) & (pl.col("check") == "previous_bar")).height == 1
    assert "spread_bps" in at.filter((pl.col(TS) == hole + timedelta(minutes=50)) & (pl.col("check") == "features")
                                     )["reason"].item()  # fmt: skip
    sig = store.read("paper_signals").filter(pl.col("instrument") == IDS[0])
    # the failing bars and the reduce-only bars after them take no entry
    blocked = sig.filter(pl.col(TS).is_in([hole + timedelta(minutes=m) for m in (0, 5, 10, 15, 50, 55, 60)]))
    assert blocked.height == 7
    assert not blocked["long_entry"].any() and not blocked["short_entry"].any()
    # a stale live tick: `now` long after the bar
    stale = MemoryStore()
    last = bars[IDS[0]][TS][300]
    loop(spec(), stale).run(bars, None, max_ticks=300, now=last + timedelta(hours=3))
    assert (stale.read("risk_checks")["check"] == "stale").sum() > 0


@pytest.mark.parametrize("mode", ["slow", "garbage", "error"])
def test_gate_timeouts_and_garbage_reject_with_the_reason(bars: dict[str, pl.DataFrame], mode: str) -> None:
    with OllamaStub(mode, slow_s=0.5) as stub:
        llm = load_gate_spec().llm
        assert llm is not None
        gate = LlmGate(llm.model_copy(update={"base_url": stub.url, "timeout_s": 0.1, "retries": 0}))
        store = MemoryStore()
        summary = loop(spec(risk=PaperRisk(reduce_only_bars_after_error=2)), store, gate).run(bars, None,
                                                                                              max_ticks=400)
    decisions = store.read("gate_decisions")
    assert decisions.height > 0 and not decisions["allowed"].any() and decisions["error"].is_not_null().all()
    assert decisions["prompt"].is_not_null().all() and (decisions["latency_ms"] > 0).all()
    assert store.read("paper_fills").height == 0 and summary.entries == 0
    rej = store.read("risk_checks")
    assert set(rej["check"]) >= {"gate"}


def test_risk_rejections_are_recorded(bars: dict[str, pl.DataFrame]) -> None:
    store = MemoryStore()
    risk = PaperRisk(max_open_positions=1, cooldown_bars_after_loss=24, daily_loss_cap=0.0005)
    summary = loop(spec(risk=risk), store).run(bars, None, max_ticks=3000)
    checks = store.read("risk_checks")
    assert summary.rejections > 0
    assert {"max_open_positions", "cooldown", "daily_loss_cap"} & set(checks["check"])
    assert checks["reason"].str.len_chars().min() > 10
    sig = store.read("paper_signals")
    assert sig.filter(pl.col("decision") == "rejected")["reject_reason"].is_not_null().all()


def test_atr_stops_exit_and_sizing_sets_the_entry_size(bars: dict[str, pl.DataFrame]) -> None:
    store = MemoryStore()
    risk = PaperRisk(atr_stop_multiple=0.5, sizing={"kind": "vol_target", "fraction": 0.2, "target_vol": 0.0005})
    loop(spec(risk=risk), store).run(bars, None, max_ticks=1500)
    stops = store.read("risk_checks").filter(pl.col("check") == "atr_stop")
    assert stops.height > 0 and (stops["action"] == "exit").all() and stops["reason"].str.contains("ATR").all()
    sig = store.read("paper_signals")
    stopped = sig.join(stops.select("ts", "instrument"), on=["ts", "instrument"])
    assert (stopped["long_exit"] | stopped["short_exit"]).all()
    sizes = sig.filter(pl.col("decision").is_in(["long", "short"]))["size"]
    assert sizes.is_not_null().all() and (sizes > 0).all() and (sizes <= 0.2).all()
