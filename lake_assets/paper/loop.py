"""The paper-trading loop: each new bar of the session's instruments goes through features -> the strategy's decision
(with reasons) -> the gate -> risk -> simulated execution, and every step leaves audit rows.

Execution is the backtests' engine with the backtests' cost model, stepped by replaying the session's decision log:
the decisions (signal flags after the gate and risk) are the loop's state, persisted with the audit tables, and the
engine is deterministic and causal, so the orders, fills and equity up to a bar are the same whenever they are
computed. That makes restarts safe (a tick whose decisions were logged is never decided again, a fill already
recorded is never recorded again: fills are keyed by the engine's fill id) and gives research-to-paper parity: a
session replayed bar by bar yields the batch backtest's fills and equity over the same bars.

Per tick and instrument, fail closed: a missing or gap bar, a missing previous bar, a stale bar (live ticks), missing
features, a gate error or timeout block entries (exits still go through) and put the instrument in reduce-only mode
for `reduce_only_bars_after_error` bars; risk rejects entries past the daily loss cap, during the cooldown after a
losing trade, or beyond the open-position cap. Every check that fails is a `risk_checks` row with its reason.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import polars as pl

from lake_assets.backtests.book_runs import book_size, cost_config
from lake_assets.backtests.costs import CostSpec
from lake_assets.backtests.engine import BacktestResult, run_signals
from lake_assets.backtests.risk import Sizing
from lake_assets.backtests.schema import SizeType
from lake_assets.backtests.strategies import json_key
from lake_assets.backtests.strategy_spec import (
    ENTRY_LONG,
    ENTRY_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    SIGNAL_COLUMNS,
    StrategySpec,
    signal_exprs,
    signal_reasons,
)
from lake_assets.features.catalog import FeatureCatalog
from lake_assets.features.compute import compute_features
from lake_assets.gate.gate import Gate, GateRequest
from lake_assets.paper.spec import PaperSpec
from lake_assets.vocabulary import BARS_SCHEMA, CLOSE, INSTRUMENT, IS_GAP, TIMEFRAMES, TS, TS_DTYPE, Market

STRATEGY, SESSION = "strategy", "session"
ATR = "atr_14"  # the ATR the stop is measured in
PAPER_TABLES = ("paper_signals", "gate_decisions", "risk_checks", "paper_orders", "paper_fills", "paper_positions",
                "paper_pnl", "paper_telemetry", "paper_state")  # the order a commit writes them in  # fmt: skip
STAGES = ("features", "decision", "gate", "risk", "execution", "audit")


class CrashError(RuntimeError):
    """Raised by a test hook between two table writes of a commit (a process killed mid-tick)."""


class PaperStore(Protocol):
    def read(self, table: str) -> pl.DataFrame: ...

    def write(self, table: str, df: pl.DataFrame) -> None: ...


@dataclass
class MemoryStore:
    """A PaperStore in memory (tests, the benchmark)."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def read(self, table: str) -> pl.DataFrame:
        return self.tables.get(table, pl.DataFrame())

    def write(self, table: str, df: pl.DataFrame) -> None:
        self.tables[table] = df


@dataclass
class RunSummary:
    ticks: int
    first: datetime | None
    last: datetime | None
    entries: int
    rejections: int
    new_orders: int
    new_fills: int
    equity: float | None
    stage_ms: dict[str, float]
    tables: dict[str, pl.DataFrame]


@dataclass
class _State:
    """What a decision needs to know of the book at a bar (from the engine replay)."""

    equity: float
    day_start_equity: float
    open_positions: dict[str, float]  # instrument -> signed units
    entry_price: dict[str, float]
    last_loss_exit: dict[str, datetime]


def _empty_log() -> pl.DataFrame:
    return pl.DataFrame(schema={TS: TS_DTYPE, INSTRUMENT: pl.String, **dict.fromkeys(SIGNAL_COLUMNS, pl.Boolean),
                                "size": pl.Float64, "decision": pl.String, "reasons": pl.String,
                                "rejected_by": pl.String, "reject_reason": pl.String})  # fmt: skip


class PaperLoop:
    def __init__(
        self,
        spec: PaperSpec,
        strategy: StrategySpec,
        costs: CostSpec,
        gate: Gate,
        store: PaperStore,
        catalog: FeatureCatalog,
        timeframe: str = "5m",
    ) -> None:
        self.spec, self.strategy, self.gate, self.store = spec, strategy, gate, store
        self.key = json_key(strategy.name)
        self.params = strategy.profile_params(spec.profile)
        wanted = strategy.required_columns() | ({ATR} if spec.risk.atr_stop_multiple else set())
        self.catalog = catalog.restricted(wanted)
        self.feature_cols = [c for c in self.catalog.columns if c in wanted]
        self.required = sorted(strategy.required_columns())
        self.step = TIMEFRAMES[timeframe]
        self.timeframe = timeframe
        risk = spec.risk
        config = cost_config(costs, Market.PERP, risk.max_leverage or strategy.sizing.max_leverage)
        if risk.max_instrument_exposure is not None:
            config = replace(config, risk=replace(config.risk, max_instrument_exposure=risk.max_instrument_exposure))
        self.config = config
        self.sizing = Sizing(strategy.sizing.size_type, book_size(strategy, len(spec.instruments)))

    # --- the run ------------------------------------------------------------------------------------------------

    def run(
        self,
        bars: Mapping[str, pl.DataFrame],
        funding: pl.DataFrame | None = None,
        *,
        now: datetime | None = None,
        max_ticks: int | None = None,
        crash_after: str | None = None,
        on_tick: Callable[[datetime], None] | None = None,
    ) -> RunSummary:
        """Process every bar after the session's cursor (up to `max_ticks`), then commit the audit tables.
        `bars` holds each instrument's bars (BARS_SCHEMA) from at least `feature_warmup_bars` before the first new
        bar; `now` (live) enables the staleness check."""
        timings = dict.fromkeys(STAGES, 0.0)
        log = self.store.read("paper_signals")
        log = log.select(_empty_log().columns).cast(_empty_log().schema) if log.height else _empty_log()
        state = self.store.read("paper_state")
        cursor: datetime | None = cast(datetime, state["cursor"].max()) if state.height else None
        frames = {i: b if b[TS].is_sorted() else b.sort(TS) for i, b in bars.items()
                  if i in self.spec.instruments and b.height}  # fmt: skip
        if not frames:
            return RunSummary(0, None, None, 0, 0, 0, 0, None, timings, {})
        new = [f.select(TS) if cursor is None else f.select(TS).filter(pl.col(TS) > cursor) for f in frames.values()]
        clock = pl.concat(new).unique().sort(TS)[TS]
        if clock.is_empty():
            return RunSummary(0, None, None, 0, 0, 0, 0, None, timings, {})
        start: datetime | None = cast(datetime, state["session_start"].min()) if state.height else None
        if start is None:
            start = cast(datetime, clock.max()) - timedelta(days=self.spec.replay_days) + self.step
            start = max(start, cast(datetime, clock.min()))
        ticks = clock.filter((clock >= start) & ((clock > cursor) if cursor is not None else True))
        if max_ticks is not None:
            ticks = ticks.head(max_ticks)
        if ticks.is_empty():
            return RunSummary(0, None, None, 0, 0, 0, 0, None, timings, {})
        first, last = cast(datetime, ticks.min()), cast(datetime, ticks.max())

        # features and the strategy's decisions for every new bar: point-in-time, so one pass over warm-up + new
        # bars gives each bar exactly what a pass ending at that bar would
        t0 = time.perf_counter()
        rows: dict[str, dict[datetime, dict[str, Any]]] = {}
        gaps: dict[str, dict[datetime, bool]] = {}  # is_gap of every bar of the window (the previous-bar check)
        signals: dict[str, pl.DataFrame] = {}
        for inst, f in frames.items():
            upto = f.filter(pl.col(TS) <= last)
            lo = upto.filter(pl.col(TS) < first).height
            window = upto.slice(max(0, lo - self.spec.feature_warmup_bars))
            feats = compute_features(window, self.catalog, timeframe=self.timeframe)
            extra = [c for c in self.feature_cols if c not in window.columns]
            signals[inst] = window.join(feats.select(TS, *extra), on=TS, how="left")
            gaps[inst] = dict(zip(window[TS].to_list(), window[IS_GAP].to_list(), strict=True))
        timings["features"] += (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        # one pass over every instrument's window: the rules' expressions evaluated per instrument (`over`), so
        # lookbacks and indicators never cross instruments (compile_signals' per-instrument loop, without its cost)
        window_bars = self.spec.decision_window_bars
        tails = [f.tail(f.filter(pl.col(TS) >= first).height + window_bars) for f in signals.values()]
        joint = pl.concat(tails, how="diagonal_relaxed")
        shared: dict[str, pl.Expr] = {}
        exprs = signal_exprs(self.strategy, self.params, joint.schema, shared)
        joint = joint.with_columns([e.over(INSTRUMENT).alias(k) for k, e in shared.items()])
        joint = joint.with_columns([e.over(INSTRUMENT).alias(k) for k, e in exprs.items()]).drop(list(shared))
        joint = joint.filter(pl.col(TS) >= first)
        for key, sig in joint.partition_by(INSTRUMENT, as_dict=True, maintain_order=True).items():
            signals[str(key[0])] = sig
            rows[str(key[0])] = {r[TS]: r for r in sig.iter_rows(named=True)}
        timings["decision"] += (time.perf_counter() - t0) * 1e3

        after = log.filter(pl.col(TS) >= first) if log.height else log  # decisions a crash left after the cursor
        logged = {(r[TS], r[INSTRUMENT]) for r in after.select(TS, INSTRUMENT).iter_rows(named=True)}
        reduce_only: dict[str, datetime] = {}
        if state.height and "reduce_only" in state.columns and state["reduce_only"][-1]:
            reduce_only = {k: datetime.fromisoformat(v) for k, v in json.loads(state["reduce_only"][-1]).items()}
        new_log, gate_rows, risk_rows, tele = [], [], [], []
        session_bars = self._session_bars(frames, start)
        entries = rejections = 0
        states: dict[datetime, _State] = {}  # the book at a bar's close: one engine replay per bar at most
        for t in ticks:
            tick_ms = dict.fromkeys(STAGES, 0.0)
            counts = {"ok": 0, "failed": 0, "rejected": 0}
            for inst in self.spec.instruments:
                if (t, inst) in logged:
                    continue  # decided before a restart: never decided twice
                row = rows.get(inst, {}).get(t)
                out = {TS: t, INSTRUMENT: inst, **dict.fromkeys(SIGNAL_COLUMNS, False), "size": None,
                       "decision": "none", "reasons": None, "rejected_by": None, "reject_reason": None}  # fmt: skip
                if row is not None:
                    out.update({c: bool(row.get(c) or False) for c in SIGNAL_COLUMNS})
                failures = self._data_checks(inst, t, row, gaps.get(inst), now)
                wants = out[ENTRY_LONG] or out[ENTRY_SHORT]
                side = "long" if out[ENTRY_LONG] else "short"
                for check, reason in failures:
                    risk_rows.append(self._risk_row(t, inst, check, reason, "block_entries"))
                    counts["failed"] += 1
                if failures:
                    until = t + self.step * self.spec.risk.reduce_only_bars_after_error
                    reduce_only[inst] = max(until, reduce_only.get(inst, until))
                    if wants:
                        self._reject(out, "data", "; ".join(r for _, r in failures))
                        rejections += 1
                    new_log.append(out)
                    continue
                counts["ok"] += 1
                if self.spec.risk.atr_stop_multiple and row is not None:
                    r0 = time.perf_counter()
                    self._atr_stop(t, inst, row, out, session_bars, log, new_log, funding, states, risk_rows)
                    tick_ms["risk"] += (time.perf_counter() - r0) * 1e3
                if not wants:
                    new_log.append(out)
                    continue
                if inst in reduce_only and t < reduce_only[inst]:
                    reason = f"reduce-only after an error until {reduce_only[inst].isoformat()}"
                    risk_rows.append(self._risk_row(t, inst, "reduce_only", reason, "reject_entry"))
                    self._reject(out, "risk", reason)
                    rejections += 1
                    counts["rejected"] += 1
                    new_log.append(out)
                    continue
                why = signal_reasons(signals[inst].filter(pl.col(TS) == t), self.strategy, self.params)
                why = why.filter(pl.col("side") == side)
                out["reasons"] = json.dumps(why.select("condition", "fired", "value", "op", "threshold").to_dicts())
                g0 = time.perf_counter()
                request = GateRequest(self.key, inst, side, t, float(row[CLOSE]) if row else math.nan,
                                      {c: row.get(c) for c in self.feature_cols} if row else {},
                                      tuple(why.select("condition", "value", "threshold").to_dicts()))  # fmt: skip
                decision = self.gate.decide(request)
                tick_ms["gate"] += (time.perf_counter() - g0) * 1e3
                gate_rows.append({TS: t, INSTRUMENT: inst, STRATEGY: self.key, "side": side, **decision.record()})
                if not decision.allowed:
                    risk_rows.append(self._risk_row(t, inst, "gate", decision.reason, "reject_entry"))
                    self._reject(out, "gate", decision.reason)
                    rejections += 1
                    counts["rejected"] += 1
                    if decision.error:
                        reduce_only[inst] = t + self.step * self.spec.risk.reduce_only_bars_after_error
                        counts["failed"] += 1
                    new_log.append(out)
                    continue
                r0 = time.perf_counter()
                verdict = self._risk(t, inst, session_bars, log, new_log, funding, states)
                tick_ms["risk"] += (time.perf_counter() - r0) * 1e3
                if verdict is not None:
                    check, reason = verdict
                    risk_rows.append(self._risk_row(t, inst, check, reason, "reject_entry"))
                    self._reject(out, "risk", reason)
                    rejections += 1
                    counts["rejected"] += 1
                else:
                    out["decision"] = side
                    out["size"] = self._size(row)
                    entries += 1
                new_log.append(out)
            tele.append({TS: t, "instruments": len(self.spec.instruments),
                         **{f"{s}_ms": v for s, v in tick_ms.items() if s != "audit"},
                         "ok": counts["ok"], "failed": counts["failed"], "rejected": counts["rejected"]})  # fmt: skip
            if on_tick is not None:
                on_tick(t)

        # execution: the engine over the session with the whole decision log
        e0 = time.perf_counter()
        if new_log and log.height and cursor is not None and not logged:  # the usual case: new bars appended
            log = pl.concat([log, pl.DataFrame(new_log, schema=_empty_log().schema).sort(TS, INSTRUMENT)])
        else:
            log = pl.concat([log, pl.DataFrame(new_log, schema=_empty_log().schema)]) if new_log else log
            log = log.unique([TS, INSTRUMENT], keep="first").sort(TS, INSTRUMENT)
        result = self._execute(session_bars.filter(pl.col(TS) <= last), log, funding)
        timings["execution"] += (time.perf_counter() - e0) * 1e3
        for k in ("gate", "risk"):
            timings[k] += sum(r[f"{k}_ms"] for r in tele)
        for r in tele:  # the stages run once for all of a run's bars, amortised per bar
            for k in ("features", "decision", "execution"):
                r[f"{k}_ms"] = timings[k] / len(tele)
        a0 = time.perf_counter()
        tables = self._commit(result, log, gate_rows, risk_rows, tele, ticks, start, reduce_only, crash_after)
        timings["audit"] += (time.perf_counter() - a0) * 1e3
        equity = float(result.equity["equity"][-1]) if result.equity.height else None
        return RunSummary(ticks.len(), first, last, entries, rejections, tables["_new_orders"].height,
                          tables["_new_fills"].height, equity, timings,
                          {k: v for k, v in tables.items() if not k.startswith("_")})  # fmt: skip

    # --- steps --------------------------------------------------------------------------------------------------

    def _session_bars(self, frames: Mapping[str, pl.DataFrame], start: datetime) -> pl.DataFrame:
        cols = [c for c in BARS_SCHEMA.names()]
        parts = [f.filter(pl.col(TS) >= start).select([c for c in cols if c in f.columns]) for f in frames.values()]
        return pl.concat(parts, how="diagonal_relaxed").sort(INSTRUMENT, TS)

    def _data_checks(self, inst: str, t: datetime, row: Mapping[str, Any] | None, frame: Mapping[datetime, bool] | None,
                     now: datetime | None) -> list[tuple[str, str]]:  # fmt: skip
        out: list[tuple[str, str]] = []
        if row is None or frame is None:
            return [("bar_present", f"no bar for {inst} at {t.isoformat()}")]
        if row.get(IS_GAP):
            out.append(("gap_bar", "the bar is a gap (no vendor data)"))
        if self.spec.block_entries_after_gap and frame.get(t - self.step, True) is not False:
            out.append(("previous_bar", f"the previous bar ({(t - self.step).isoformat()}) is missing or a gap"))
        if now is not None and now - (t + self.step) > timedelta(minutes=self.spec.max_stale_minutes):
            out.append(("stale", f"bar closed at {(t + self.step).isoformat()}, now {now.isoformat()}: older than "
                                  f"{self.spec.max_stale_minutes} min"))  # fmt: skip
        if not row.get(IS_GAP):
            missing = [c for c in self.required if row.get(c) is None or (isinstance(row.get(c), float)
                                                                          and math.isnan(row[c]))]  # fmt: skip
            if missing:
                out.append(("features", f"missing feature value(s) {', '.join(missing)}"))
        return out

    @staticmethod
    def _reject(out: dict[str, Any], by: str, reason: str) -> None:
        out[ENTRY_LONG] = out[ENTRY_SHORT] = False
        out["decision"] = "rejected"
        out["rejected_by"], out["reject_reason"] = by, reason

    def _risk_row(self, t: datetime, inst: str, check: str, reason: str, action: str) -> dict[str, Any]:
        return {TS: t, INSTRUMENT: inst, STRATEGY: self.key, "check": check, "passed": False, "action": action,
                "reason": reason}  # fmt: skip

    def _size(self, row: Mapping[str, Any] | None) -> float | None:
        s = self.spec.risk.sizing
        if s.kind == "strategy":
            return None
        if s.kind == "fixed_fraction":
            return s.fraction
        if s.kind == "vol_target":
            rv = row.get("rv_48") if row else None
            per_bar = rv / math.sqrt(48) if rv else None
            return min(s.fraction, s.target_vol / per_bar) if per_bar else s.fraction
        kelly = s.kelly_win_rate - (1 - s.kelly_win_rate) / s.kelly_win_loss
        return max(0.0, min(s.fraction, s.kelly_cap * kelly)) or None

    def _execute(self, bars: pl.DataFrame, log: pl.DataFrame, funding: pl.DataFrame | None) -> BacktestResult:
        sig = log.select(TS, INSTRUMENT, *SIGNAL_COLUMNS, "size").with_columns(pl.lit(self.key).alias(STRATEGY))
        sizing = self.sizing
        if self.spec.risk.sizing.kind != "strategy":
            sig = sig.with_columns(pl.col("size").fill_null(self.spec.risk.sizing.fraction))
            sizing = Sizing(SizeType.EQUITY_PERCENT, self.spec.risk.sizing.fraction)
        else:
            sig = sig.drop("size")
        sig = sig.filter(pl.col(TS) <= bars[TS].max()) if bars.height else sig
        return run_signals(bars, sig, self.config, sizing=sizing, funding=funding)

    def _state(self, result: BacktestResult, t: datetime) -> _State:
        eq = result.equity.filter(pl.col(TS) <= t)
        day = eq.filter(pl.col(TS) >= datetime(t.year, t.month, t.day, tzinfo=t.tzinfo))
        fills = result.fills.filter(pl.col(TS) <= t)
        signed = fills.with_columns(pl.when(pl.col("side") == "BUY").then(pl.col("size")).otherwise(-pl.col("size"))
                                    .alias("u")).group_by(INSTRUMENT).agg(pl.col("u").sum())  # fmt: skip
        pos = {i: u for i, u in signed.iter_rows() if abs(u) > 1e-12}
        closed = result.trades.filter((pl.col("status") == "CLOSED") & (pl.col("exit_ts") <= t) & (pl.col("pnl") < 0))
        losses = dict(closed.group_by(INSTRUMENT).agg(pl.col("exit_ts").max()).iter_rows())
        open_trades = result.trades.filter(pl.col("entry_ts") <= t).sort("entry_ts")
        entry = {r[INSTRUMENT]: r["entry_price"] for r in open_trades.iter_rows(named=True) if r[INSTRUMENT] in pos}
        init = result.init_cash
        return _State(float(eq["equity"][-1]) if eq.height else init,
                      float(day["equity"][0]) if day.height else init, pos, entry, losses)  # fmt: skip

    def _atr_stop(self, t: datetime, inst: str, row: Mapping[str, Any], out: dict[str, Any], bars: pl.DataFrame,
                  log: pl.DataFrame, new_log: Sequence[dict[str, Any]], funding: pl.DataFrame | None,
                  states: dict[datetime, _State], risk_rows: list[dict[str, Any]]) -> None:  # fmt: skip
        """Exit an open position whose close moved `atr_stop_multiple` x ATR(14) against its entry price."""
        k, atr, close = self.spec.risk.atr_stop_multiple, row.get(ATR), row.get(CLOSE)
        if not k or atr is None or close is None:
            return
        state = self._state_at(t, bars, log, new_log, funding, states)
        units, entry = state.open_positions.get(inst), state.entry_price.get(inst)
        if not units or entry is None:
            return
        hit = close < entry - k * atr if units > 0 else close > entry + k * atr
        if hit:
            out[EXIT_LONG if units > 0 else EXIT_SHORT] = True
            sign = "-" if units > 0 else "+"
            reason = f"close {close:.6g} beyond entry {entry:.6g} {sign} {k} x ATR {atr:.6g}: exit"
            risk_rows.append(self._risk_row(t, inst, "atr_stop", reason, "exit"))

    def _state_at(self, t: datetime, bars: pl.DataFrame, log: pl.DataFrame, new_log: Sequence[dict[str, Any]],
                  funding: pl.DataFrame | None, states: dict[datetime, _State]) -> _State:  # fmt: skip
        if t not in states:  # decisions at t fill at t + 1 at the earliest: the book at t is the log before t
            so_far = pl.concat([log, pl.DataFrame(list(new_log), schema=_empty_log().schema)]) if new_log else log
            states[t] = self._state(self._execute(bars.filter(pl.col(TS) <= t), so_far.filter(pl.col(TS) < t),
                                                  funding), t)  # fmt: skip
        return states[t]

    def _risk(self, t: datetime, inst: str, bars: pl.DataFrame, log: pl.DataFrame, new_log: Sequence[dict[str, Any]],
              funding: pl.DataFrame | None, states: dict[datetime, _State]) -> tuple[str, str] | None:  # fmt: skip
        """(check, reason) when the entry must be rejected, from the book's state at the bar's close."""
        r = self.spec.risk
        if r.daily_loss_cap is None and not r.cooldown_bars_after_loss and r.max_open_positions is None:
            return None
        state = self._state_at(t, bars, log, new_log, funding, states)
        if r.daily_loss_cap is not None and state.equity / state.day_start_equity - 1 <= -r.daily_loss_cap:
            return "daily_loss_cap", (f"equity {state.equity:,.2f} is {1 - state.equity / state.day_start_equity:.2%} "
                                      f"below the day's start: at or past the {r.daily_loss_cap:.2%} cap")  # fmt: skip
        last_loss = state.last_loss_exit.get(inst)
        if r.cooldown_bars_after_loss and last_loss is not None and t - last_loss < self.step * (
            r.cooldown_bars_after_loss
        ):
            return "cooldown", f"a losing trade closed at {last_loss.isoformat()}: cooldown of " \
                               f"{r.cooldown_bars_after_loss} bars"  # fmt: skip
        others = [i for i in state.open_positions if i != inst]
        if r.max_open_positions is not None and len(others) >= r.max_open_positions:
            return "max_open_positions", f"{len(others)} positions open (cap {r.max_open_positions})"
        return None

    # --- audit --------------------------------------------------------------------------------------------------

    def _commit(self, result: BacktestResult, log: pl.DataFrame, gate_rows: list[dict[str, Any]],
                risk_rows: list[dict[str, Any]], tele: list[dict[str, Any]], ticks: pl.Series, start: datetime,
                reduce_only: Mapping[str, datetime], crash_after: str | None) -> dict[str, pl.DataFrame]:  # fmt: skip
        def keyed(df: pl.DataFrame, name: str, keys: list[str]) -> pl.DataFrame:
            old = self.store.read(name)
            if not old.height:
                return df.unique(keys, keep="last", maintain_order=True).sort(keys)
            if keys[0] == TS and df.height and cast(datetime, df[TS].min()) > cast(datetime, old[TS].max()):  # append
                return pl.concat([old, df.sort(keys)], how="diagonal_relaxed")
            both = pl.concat([old, df], how="diagonal_relaxed")
            return both.unique(keys, keep="last", maintain_order=True).sort(keys)

        tick_set = ticks.to_frame()
        orders_old = self.store.read("paper_orders")
        fills_old = self.store.read("paper_fills")
        orders = result.orders.with_columns(pl.lit(self.spec.session).alias(SESSION))
        fills = result.fills.with_columns(pl.lit(self.spec.session).alias(SESSION))
        new_orders = orders.join(orders_old.select("order_id"), on="order_id", how="anti") if orders_old.height \
            else orders  # fmt: skip
        new_fills = fills.join(fills_old.select("fill_id"), on="fill_id", how="anti") if fills_old.height else fills
        signed = result.fills.with_columns(
            pl.when(pl.col("side") == "BUY").then(pl.col("size")).otherwise(-pl.col("size")).alias("units")
        )  # fmt: skip
        grid = tick_set.join(pl.DataFrame({INSTRUMENT: list(self.spec.instruments)}), how="cross")
        positions = (
            grid.join(signed.select(TS, INSTRUMENT, "units"), on=[TS, INSTRUMENT], how="left")
            .with_columns(pl.col("units").fill_null(0.0))
        )  # fmt: skip
        before = signed.filter(pl.col(TS) < ticks.min()).group_by(INSTRUMENT).agg(pl.col("units").sum().alias("u0"))
        positions = (
            positions.group_by(TS, INSTRUMENT).agg(pl.col("units").sum()).sort(INSTRUMENT, TS)
            .join(before, on=INSTRUMENT, how="left")
            .with_columns((pl.col("units").cum_sum().over(INSTRUMENT) + pl.col("u0").fill_null(0.0)).alias("position"))
            .drop("u0", "units").with_columns(pl.lit(self.spec.session).alias(SESSION))
        )  # fmt: skip
        eq = result.equity.join(tick_set, on=TS, how="semi")
        pnl = eq.with_columns(
            (pl.col("equity") - pl.col("equity").first().over(pl.col(TS).dt.date())).alias("day_pnl_partial"),
            pl.lit(self.spec.session).alias(SESSION),
        ).drop(STRATEGY, strict=False)
        full_eq = result.equity.with_columns(pl.col(TS).dt.date().alias("_d"))
        day_start = full_eq.group_by("_d").agg(pl.col("equity").first().alias("_start"))
        pnl = (pnl.with_columns(pl.col(TS).dt.date().alias("_d")).join(day_start, on="_d", how="left")
               .with_columns((pl.col("equity") - pl.col("_start")).alias("day_pnl"))
               .drop("_d", "_start", "day_pnl_partial"))  # fmt: skip
        session = pl.lit(self.spec.session).alias(SESSION)
        # the engine's own risk events (resized / rejected orders, kill switches) on this run's bars, as checks
        engine = result.risk_events.join(tick_set, on=TS, how="semi") if result.risk_events.height else None
        if engine is not None and engine.height:
            risk_rows = risk_rows + [
                self._risk_row(r[TS], r[INSTRUMENT] or "", f"engine_{str(r['event']).lower()}", str(r["reason"]),
                               "resize" if r["event"] == "RESIZED" else "reject_order")
                for r in engine.iter_rows(named=True)
            ]  # fmt: skip
        out: dict[str, pl.DataFrame] = {
            "paper_signals": log.with_columns(session),
            "gate_decisions": keyed(pl.DataFrame(gate_rows, infer_schema_length=None).with_columns(session)
                                    if gate_rows else pl.DataFrame(), "gate_decisions", [TS, INSTRUMENT])
            if gate_rows else self.store.read("gate_decisions"),
            "risk_checks": keyed(pl.DataFrame(risk_rows).with_columns(session), "risk_checks",
                                 [TS, INSTRUMENT, "check"]) if risk_rows else self.store.read("risk_checks"),
            "paper_orders": keyed(orders, "paper_orders", ["order_id"]),
            "paper_fills": pl.concat([fills_old, new_fills], how="diagonal_relaxed") if fills_old.height else new_fills,
            "paper_positions": keyed(positions, "paper_positions", [TS, INSTRUMENT]),
            "paper_pnl": keyed(pnl, "paper_pnl", [TS]),
            "paper_telemetry": keyed(pl.DataFrame(tele).with_columns(session), "paper_telemetry", [TS]),
            "paper_state": pl.DataFrame({SESSION: [self.spec.session], "session_start": [start],
                                         "cursor": [ticks.max()], "strategy": [self.key],
                                         "reduce_only": [json.dumps({k: v.isoformat()
                                                                     for k, v in reduce_only.items()})],
                                         "updated_at": [datetime.now(tz=start.tzinfo)]}),  # fmt: skip
        }
        for name in PAPER_TABLES:  # paper_state (the cursor) last: a crash before it re-runs the tick, idempotently
            self.store.write(name, out[name])
            if crash_after == name:
                raise CrashError(f"crash after writing {name}")
        out["_new_orders"], out["_new_fills"] = new_orders, new_fills
        return out
